fn main() {
    eprintln!("berth-bundle: not built yet (issue 4)");
    std::process::exit(1)
}
