fn main() {
    eprintln!("oci-conformance: not built yet (issue 3)");
    std::process::exit(1)
}
