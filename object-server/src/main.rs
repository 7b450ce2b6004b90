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
            raise_open_file_limit();
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

/// A GET holds one descriptor per part of a multipart object, and every connection holds one, so
/// the default soft limit (often 1024) caps concurrent readers of large objects far below what the
/// machine allows. Like MinIO (and every Go program), the soft limit is raised to the hard one.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(hard) = limit.maximum else {
        return; // an unlimited hard limit: the kernel's nr_open applies, leave the soft one be
    };
    if limit.current.is_some_and(|soft| soft < hard) {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!("could not raise the open-file limit to {hard}: {e}");
        }
    }
}
