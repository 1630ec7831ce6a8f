fn main() {
    std::process::exit(oci_conformance::cli::main());
}
