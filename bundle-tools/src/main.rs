fn main() {
    std::process::exit(berth_bundle::cli::main());
}
