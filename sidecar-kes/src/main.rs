//! `kes`: the KES-compatible key server and its CLI.

/// mimalloc: fewer cycles per request than the system allocator under concurrency.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = sidecar_kes::cli::main() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
