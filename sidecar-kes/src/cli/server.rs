//! `kes server`: from a config file, or `--dev` (in-memory keys, a self-signed
//! certificate and a fresh admin API key, printed). Older flags `--mlock`, `--root`,
//! `--auth` are accepted. SIGHUP reloads identities, policies and API settings.

use crate::api::Shared;
use crate::auth::{ApiKey, Identity};
use crate::config::{self, AuditTarget, KeystoreConfig, ServerConfig, TlsConfig};
use crate::log::AuditLog;
use crate::server::{
    ConnThreads, TlsFiles, TlsSettings, auth_state, open_keys, server_config,
    server_config_from_files, start_on,
};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct ServerArgs {
    /// Config file (current or older KES format).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address, overrides the config.
    #[arg(long, alias = "address")]
    addr: Option<String>,
    /// Development mode: in-memory keystore, self-signed certificate, fresh admin API key.
    #[arg(long)]
    dev: bool,
    /// TLS private key, overrides the config.
    #[arg(long)]
    key: Option<String>,
    /// TLS certificate, overrides the config.
    #[arg(long)]
    cert: Option<String>,
    /// Admin identity (older flag; `disabled` for none).
    #[arg(long)]
    root: Option<String>,
    /// Verify client certificates against the CA: on|off (older flag).
    #[arg(long, num_args = 0..=1, default_missing_value = "on")]
    auth: Option<String>,
    /// Accepted for compatibility; keys are zeroized in memory instead.
    #[arg(long)]
    mlock: bool,
    /// Print less at start.
    #[arg(long)]
    quiet: bool,
}

fn dev_tls() -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let kp = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()])?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse()?));
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("::1".parse()?));
    let cert = params.self_signed(&kp)?;
    Ok((cert.pem().into_bytes(), kp.serialize_pem().into_bytes()))
}

fn load(args: &ServerArgs) -> anyhow::Result<ServerConfig> {
    let mut cfg = match &args.config {
        Some(p) => config::load(p)?,
        None if args.dev => config::parse("", &|_| None)?,
        None => bail!("no config file: use --config FILE or --dev"),
    };
    if args.dev && args.config.is_none() {
        cfg.keystore = KeystoreConfig::Memory;
        cfg.address = "0.0.0.0:7373".into();
    }
    if let Some(a) = &args.addr {
        cfg.address = a.clone();
    }
    if let Some(k) = &args.key {
        cfg.tls.key = k.into();
    }
    if let Some(c) = &args.cert {
        cfg.tls.cert = c.into();
    }
    if let Some(r) = &args.root {
        cfg.admin = if r.eq_ignore_ascii_case("disabled") {
            Identity::new("")
        } else {
            Identity::new(r)
        };
    }
    if let Some(a) = &args.auth {
        cfg.tls.verify_clients = matches!(a.to_ascii_lowercase().as_str(), "on" | "true" | "yes");
    }
    Ok(cfg)
}

/// The server's TLS files; they are read again when they change (a renewal needs no restart).
fn tls_files(tls: &TlsConfig) -> anyhow::Result<TlsFiles> {
    let client_ca = if tls.verify_clients {
        match &tls.ca {
            Some(ca) => Some(ca.clone()),
            None => bail!("tls.auth is on but tls.ca is not set"),
        }
    } else {
        None
    };
    Ok(TlsFiles {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        client_ca,
    })
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KES_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: log collectors (kubectl logs, files) get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let mut cfg = load(&args)?;
    let mut dev_key = None;
    let tls = if args.dev && args.config.is_none() {
        let key = ApiKey::generate();
        cfg.admin = key.identity();
        dev_key = Some(key);
        let (cert_pem, key_pem) = dev_tls()?;
        server_config(&TlsSettings {
            cert_pem,
            key_pem,
            client_cas: vec![],
        })?
    } else {
        server_config_from_files(&tls_files(&cfg.tls)?)?
    };
    if args.mlock {
        tracing::info!("--mlock: accepted; secrets are zeroized after use");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let keys = open_keys(&cfg.keystore, cfg.cache)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let description = keys.describe();
        let mut shared = Shared::new(auth_state(&cfg), keys);
        shared.audit_log = match &cfg.audit_log {
            AuditTarget::Off => None,
            AuditTarget::Stdout => Some(AuditLog::stdout()),
            AuditTarget::File(path) => Some(AuditLog::file(path).map_err(|e| {
                anyhow::anyhow!("log.audit: cannot open '{}': {e}", path.display())
            })?),
        };
        let shared = Arc::new(shared);
        let threads = Arc::new(ConnThreads::per_cpu()?);
        let running = start_on(&cfg.address, tls, shared.clone(), &cfg.keys, Some(threads))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !args.quiet {
            println!("Version     {}", crate::api::sys_version());
            println!("Endpoint    https://{}", running.addr);
            println!("Keystore    {description}");
            match &dev_key {
                Some(k) => {
                    println!("Admin       {}", k.identity());
                    println!("API Key     {}", k.to_secret_string().as_str());
                }
                None if cfg.admin.is_empty() => println!("Admin       disabled"),
                None => println!("Admin       {}", cfg.admin),
            }
            println!("=> Server is up and running");
        }
        if let Some(path) = args.config.clone() {
            let shared = shared.clone();
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hup.recv().await.is_some() {
                    match config::load(&path) {
                        Ok(new) => {
                            shared.set_auth(auth_state(&new));
                            tracing::info!("configuration reloaded");
                        }
                        Err(e) => {
                            tracing::error!("reload failed, keeping the old configuration: {e}")
                        }
                    }
                }
            });
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = running.wait() => r?,
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok(())
    })
}
