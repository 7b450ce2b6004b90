//! `kes`: the KES-compatible key server and its CLI.

fn main() {
    if let Err(e) = sidecar_kes::cli::main() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
