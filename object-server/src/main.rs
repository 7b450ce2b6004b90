//! `object-server server [--address HOST:PORT] [--certs-dir DIR] DIR`: MinIO's command line;
//! `object-server import-minio [--dry-run] [--json FILE] --drives DIR… DATA_DIR`: the offline import.
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
        /// Address of the web console (MinIO's flag; default `:9001`; `MINIO_BROWSER=off` turns
        /// the console off).
        #[arg(long = "console-address")]
        console_address: Option<String>,
        /// Directory holding public.crt, private.key and CAs/ for TLS.
        #[arg(long = "certs-dir", short = 'S')]
        certs_dir: Option<PathBuf>,
        /// Data directory.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Import a stopped MinIO's drives into a data directory (the drives are only read). The
    /// KMS comes from the same MINIO_KMS_* environment as `server`'s: it unseals MinIO's keys
    /// and seals Coffer's.
    #[command(name = "import-minio")]
    ImportMinio {
        /// The MinIO drives (one, for a single-drive deployment). In `--drives A B DATA_DIR` the
        /// last path is the data directory.
        #[arg(long, required = true, num_args = 1..)]
        drives: Vec<PathBuf>,
        /// Only read and report what would be imported.
        #[arg(long)]
        dry_run: bool,
        /// Also write the report as JSON to this file (`-`: standard output, instead of text).
        #[arg(long)]
        json: Option<PathBuf>,
        /// The Coffer data directory to import into.
        data_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server {
            address,
            console_address,
            certs_dir,
            dirs,
        } => {
            object_server::server::init_logging();
            raise_open_file_limit();
            let mut cfg = object_server::config::Config::from_parts(
                &address,
                certs_dir,
                &dirs,
                &object_server::config::ProcessEnv,
            )?;
            if let (Some(a), Some(console)) = (console_address, cfg.console.as_mut()) {
                console.set_address(&a)?;
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(object_server::server::run(cfg))
        }
        Command::ImportMinio {
            drives,
            dry_run,
            json,
            data_dir,
        } => {
            let mut drives = drives;
            let data_dir = match data_dir {
                Some(d) => d,
                None if drives.len() >= 2 => drives.pop().expect("two paths"),
                None => anyhow::bail!("import-minio needs the data directory after the drives"),
            };
            object_server::server::init_logging();
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(object_server::import::cli(drives, data_dir, dry_run))?;
            match json.as_deref() {
                Some(p) if p == std::path::Path::new("-") => {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
                Some(p) => {
                    std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
                    print!("{}", report.to_text());
                }
                None => print!("{}", report.to_text()),
            }
            if !report.skipped.is_empty() {
                std::process::exit(2);
            }
            Ok(())
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
