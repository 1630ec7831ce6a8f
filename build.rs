//! Lays out the functions that berth's commands run first and together in
//! the release binary: `text-order.txt` (written by `make text-order`, see
//! bench/README.md) is the symbol order lld is given. A command then maps a
//! few hundred KB of program text instead of nearly all 4 MB (the kernel
//! maps 64 KiB around every text page fault), which is most of its peak
//! RSS. Names not in the binary any more are skipped, so a stale list only
//! costs memory, never a build. The names are those of `make build` (the
//! whole workspace: its unified features are in every crate's symbol
//! names); a `cargo build -p berth` matches fewer of them.

fn main() {
    println!("cargo:rerun-if-changed=text-order.txt");
    println!("cargo:rerun-if-env-changed=BERTH_NO_TEXT_ORDER");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("text-order.txt");
    if release && order.exists() && std::env::var_os("BERTH_NO_TEXT_ORDER").is_none() {
        println!(
            "cargo:rustc-link-arg-bin=berth=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-warn-symbol-ordering");
    }
}
