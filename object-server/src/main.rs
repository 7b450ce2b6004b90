//! `object-server server [--address HOST:PORT] [--certs-dir DIR] DIR`: MinIO's command line.
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// An S3 server that encrypts every object with its own key, protected by a KMS.
#[derive(Parser)]
#[command(name = "object-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the S3 API from a data directory (MinIO's flags and MINIO_* environment).
    Server {
        /// Address to listen on (MinIO's forms: `:9000`, `HOST:PORT`).
        #[arg(long, default_value = ":9000")]
        address: String,
        /// Directory holding public.crt, private.key and CAs/ for TLS.
        #[arg(long = "certs-dir", short = 'S')]
        certs_dir: Option<PathBuf>,
        /// Data directory.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server {
            address,
            certs_dir,
            dirs,
        } => {
            object_server::server::init_logging();
            let cfg = object_server::config::Config::from_parts(
                &address,
                certs_dir,
                &dirs,
                &object_server::config::ProcessEnv,
            )?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(object_server::server::run(cfg))
        }
    }
}
