//! `object-server server [--address HOST:PORT] [--console-address HOST:PORT] [--certs-dir DIR] [--backend URL] DIR`:
//! MinIO's command line (`--backend`: a bucket of another S3 service holds the objects, and DIR
//! may be left out); `object-server gateway s3 URL [DIR]`: the same gateway, spelled as
//! `minio gateway s3` was;
//! `object-server import-minio [--dry-run] [--json FILE] --drives DIR… DATA_DIR`: the offline import;
//! `object-server migrate --from URL|ALIAS [--dry-run] [--json FILE] DATA_DIR`: the online one.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// An S3 server that encrypts every object with its own key, protected by a KMS.
#[derive(Parser)]
#[command(name = "object-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The listening flags `server` and `gateway s3` share (MinIO's).
#[derive(Args)]
struct Listen {
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
}

#[derive(Subcommand)]
enum Command {
    /// Serve the S3 API from a data directory (MinIO's flags and MINIO_* environment).
    Server {
        #[command(flatten)]
        listen: Listen,
        /// Store buckets and objects in a bucket of another S3 service (the gateway):
        /// `s3://HOST[:PORT]/BUCKET` (HTTPS) or `s3+http://…`; also `COFFER_BACKEND`. Its
        /// credentials come from COFFER_BACKEND_ACCESS_KEY / COFFER_BACKEND_SECRET_KEY (or
        /// their `_FILE` forms), never from the command line; COFFER_BACKEND_CA_FILE names
        /// the CA to trust. Users, policies and bucket settings live in the backend too: DIR
        /// is optional (staged uploads only; a temp directory without it).
        #[arg(long)]
        backend: Option<String>,
        /// Data directory (with --backend: where uploads are staged; optional).
        dirs: Vec<PathBuf>,
    },
    /// Serve the S3 API from a bucket of another S3 service: `gateway s3 URL [DIR]` is
    /// `server --backend URL [DIR]` (MinIO's old `minio gateway s3` spelling).
    Gateway {
        #[command(subcommand)]
        kind: GatewayKind,
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
    /// Copy a running MinIO (or another S3 server) into a data directory through its S3 API:
    /// buckets with their settings, every version in order, delete markers, metadata, tags,
    /// retention and legal hold. Resumable: a second run copies only what is new. The keys of
    /// the source never go on the command line: environment variables (MIGRATE_ACCESS_KEY,
    /// MIGRATE_SECRET_KEY), a credentials file, or an mc alias. The KMS is the MINIO_KMS_*
    /// environment's, as `server`'s.
    Migrate {
        /// The source: `https://host:port`, or an mc alias (MC_HOST_<alias> or mc's config.json).
        #[arg(long)]
        from: String,
        /// The environment variable holding the source's access key.
        #[arg(long, value_name = "NAME")]
        from_access_key_env: Option<String>,
        /// The environment variable holding the source's secret key.
        #[arg(long, value_name = "NAME")]
        from_secret_key_env: Option<String>,
        /// A JSON file with the source's keys: {"accessKey": "...", "secretKey": "..."}.
        #[arg(long, value_name = "FILE")]
        from_credentials_file: Option<PathBuf>,
        /// mc's configuration directory, for an alias (default: $MC_CONFIG_DIR, else ~/.mc).
        #[arg(long, value_name = "DIR")]
        mc_config_dir: Option<PathBuf>,
        /// A CA certificate (PEM) to trust for the source, besides the system's.
        #[arg(long, value_name = "FILE")]
        from_ca_file: Option<PathBuf>,
        /// The source's region (request signing).
        #[arg(long, default_value = "us-east-1")]
        from_region: String,
        /// Only list and report what would be copied.
        #[arg(long)]
        dry_run: bool,
        /// Also write the report as JSON to this file (`-`: standard output, instead of text).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Versions per listing page (tests use small pages to cross page boundaries).
        #[arg(long, default_value_t = 1000, hide = true)]
        list_page_size: u32,
        /// The Coffer data directory to copy into.
        data_dir: PathBuf,
    },
}

/// The services `gateway` serves from.
#[derive(Subcommand)]
enum GatewayKind {
    /// A bucket of an S3 service (RGW, MinIO, AWS): see `server --backend`.
    S3 {
        #[command(flatten)]
        listen: Listen,
        /// `s3://HOST[:PORT]/BUCKET` (HTTPS) or `s3+http://…`.
        url: String,
        /// Where uploads are staged (optional: a temp directory).
        dirs: Vec<PathBuf>,
    },
}

fn serve(listen: Listen, backend: Option<String>, dirs: Vec<PathBuf>) -> anyhow::Result<()> {
    object_server::server::init_logging();
    raise_open_file_limit();
    let mut cfg = object_server::config::Config::from_parts(
        &listen.address,
        listen.certs_dir,
        &dirs,
        &object_server::config::ProcessEnv,
    )?;
    if backend.is_some() {
        cfg.backend = object_server::storage::engine::s3::BackendConfig::from_env(
            backend.as_deref(),
            &object_server::config::ProcessEnv,
        )?;
    }
    if let (Some(a), Some(console)) = (listen.console_address, cfg.console.as_mut()) {
        console.set_address(&a)?;
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(object_server::server::run(cfg))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server {
            listen,
            backend,
            dirs,
        } => serve(listen, backend, dirs),
        Command::Gateway {
            kind: GatewayKind::S3 { listen, url, dirs },
        } => serve(listen, Some(url), dirs),
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
            print_report(&report, json.as_deref())
        }
        Command::Migrate {
            from,
            from_access_key_env,
            from_secret_key_env,
            from_credentials_file,
            mc_config_dir,
            from_ca_file,
            from_region,
            dry_run,
            json,
            list_page_size,
            data_dir,
        } => {
            object_server::server::init_logging();
            let rt = tokio::runtime::Runtime::new()?;
            let options = object_server::migrate::Options {
                from,
                keys: object_server::migrate::credentials::KeySources {
                    access_key_env: from_access_key_env,
                    secret_key_env: from_secret_key_env,
                    credentials_file: from_credentials_file,
                    mc_config_dir,
                },
                region: from_region,
                ca_file: from_ca_file,
                dry_run,
                data_dir,
                list_page_size,
            };
            let report = rt.block_on(object_server::migrate::cli(options))?;
            print_report(&report, json.as_deref())
        }
    }
}

/// Prints an import's report (as JSON to `json`, `-` meaning standard output); exits with 2
/// when anything was left out.
fn print_report(
    report: &object_server::import::Report,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match json {
        Some(p) if p == std::path::Path::new("-") => {
            println!("{}", serde_json::to_string_pretty(report)?);
        }
        Some(p) => {
            std::fs::write(p, serde_json::to_vec_pretty(report)?)?;
            print!("{}", report.to_text());
        }
        None => print!("{}", report.to_text()),
    }
    if !report.skipped.is_empty() {
        std::process::exit(2);
    }
    Ok(())
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
