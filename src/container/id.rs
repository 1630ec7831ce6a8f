use crate::error::{Error, Result};

/// Container ids name directories under `--root`: only `[A-Za-z0-9_+.-]`,
/// and never `.` or `..`, so an id can never point outside it.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!("invalid container ID format: {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn ids_cannot_escape_root() {
        for good in ["abc", "a-b_c.d+e", "123", "..a", "a.."] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", "a\0b", "/abs"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
