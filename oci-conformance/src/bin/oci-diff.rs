//! Differential test: runc as the oracle for berth (see oci_conformance::diff).

fn main() {
    std::process::exit(oci_conformance::diff::main());
}
