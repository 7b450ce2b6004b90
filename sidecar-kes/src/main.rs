use clap::{Parser, Subcommand};

/// A KES-compatible key server: MinIO's KES API, identities, policies and Vault keystore.
#[derive(Parser)]
#[command(name = "kes", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a KES server.
    Server,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server => anyhow::bail!("the KES server is not built yet"),
    }
}
