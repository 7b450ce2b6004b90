//! The `kes` command line: today's KES verbs and the older ones of the MinIO KMS guide.

mod client;
mod identity;
mod key;
mod server;

use clap::{Parser, Subcommand};

/// A KES-compatible key server: MinIO's KES API, identities, policies and Vault keystore.
#[derive(Parser)]
#[command(name = "kes", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a KES server.
    Server(server::ServerArgs),
    /// Create or inspect identities (certificates and API keys).
    #[command(subcommand)]
    Identity(identity::IdentityCmd),
    /// Manage master keys.
    #[command(subcommand)]
    Key(key::KeyCmd),
    /// Show the status of a KES server.
    Status {
        #[command(flatten)]
        conn: client::ConnArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect policies.
    #[command(subcommand)]
    Policy(key::PolicyCmd),
    /// Older tools (`kes tool identity new|of`).
    #[command(subcommand)]
    Tool(ToolCmd),
}

#[derive(Subcommand)]
enum ToolCmd {
    /// Alias of `kes identity`.
    #[command(subcommand)]
    Identity(identity::IdentityCmd),
}

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(args),
        Command::Identity(cmd) | Command::Tool(ToolCmd::Identity(cmd)) => identity::run(cmd),
        Command::Key(cmd) => key::run(cmd),
        Command::Policy(cmd) => key::run_policy(cmd),
        Command::Status { conn, json } => key::status(conn, json),
    }
}
