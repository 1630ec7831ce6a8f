//! `--uid-map`/`--gid-map` in umoci's `CONTAINER:HOST[:SIZE]` form: layer
//! ownership is container ids, the files on disk get host ids.

use anyhow::{bail, Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap(pub Vec<IdRange>);

impl IdRange {
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| {
            p.parse::<u32>()
                .with_context(|| format!("invalid id map {s:?}: {p:?} is not a number"))
        };
        let r = match parts.as_slice() {
            [c, h] => IdRange {
                container: num(c)?,
                host: num(h)?,
                size: 1,
            },
            [c, h, n] => IdRange {
                container: num(c)?,
                host: num(h)?,
                size: num(n)?,
            },
            _ => bail!("invalid id map {s:?}: expected CONTAINER:HOST[:SIZE]"),
        };
        if r.size == 0 {
            bail!("invalid id map {s:?}: size 0");
        }
        Ok(r)
    }
}

impl IdMap {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Container id → host id; identity without a map. An id outside every
    /// range cannot be represented on the host and is an error.
    pub fn to_host(&self, id: u32) -> Result<u32> {
        if self.0.is_empty() {
            return Ok(id);
        }
        for r in &self.0 {
            if id >= r.container && (id - r.container) < r.size {
                return Ok(r.host + (id - r.container));
            }
        }
        bail!("id {id} is not covered by the id map {self}")
    }
}

impl IdMap {
    /// Host id → container id (the inverse of `to_host`), for commit.
    pub fn to_container(&self, id: u32) -> Result<u32> {
        if self.0.is_empty() {
            return Ok(id);
        }
        for r in &self.0 {
            if id >= r.host && (id - r.host) < r.size {
                return Ok(r.container + (id - r.host));
            }
        }
        bail!("host id {id} is not covered by the id map {self}")
    }
}

impl std::fmt::Display for IdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.container, self.host, self.size)
    }
}

/// `C:H:N,C:H:N` (the command line's own notation).
impl std::fmt::Display for IdMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(IdRange::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_inside_ranges_only() {
        let m = IdMap(vec![IdRange::parse("0:100000:65536").expect("valid")]);
        assert_eq!(m.to_host(0).expect("mapped"), 100000);
        assert_eq!(m.to_host(1000).expect("mapped"), 101000);
        assert!(m.to_host(70000).is_err());
        assert_eq!(IdRange::parse("5:6").expect("valid").size, 1);
        assert!(IdRange::parse("5").is_err());
        assert!(IdRange::parse("a:1").is_err());
        let e = format!("{:#}", m.to_host(70000).expect_err("unmapped"));
        assert_eq!(e, "id 70000 is not covered by the id map 0:100000:65536");
    }
}
