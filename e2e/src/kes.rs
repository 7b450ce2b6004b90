//! MinIO's own KES server (`minio-kes`), in dev mode or with a config file.

use crate::pki::{CertFiles, TestCa};
use crate::process::{Process, peer_bin, run, start_on_free_ports};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running `minio-kes server`.
pub struct MinioKes {
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The admin API key (`kes:v1:…`), in dev mode.
    pub api_key: Option<String>,
    /// The admin client certificate, when started with a config.
    pub admin: Option<CertFiles>,
    /// The CA that signed the server certificate, when started with a config.
    pub ca_cert: Option<PathBuf>,
    /// The admin identity (hex SHA-256 of the admin's public key).
    pub admin_identity: String,
    process: Process,
    dir: TempDir,
}

impl MinioKes {
    /// Starts `minio-kes server --dev` (in-memory keystore, self-signed certificate, an admin API key).
    pub fn dev() -> MinioKes {
        let dir = tempfile::tempdir().expect("temp dir");
        let field = |log: &str, name: &str| {
            log.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .map(str::to_string)
        };
        let (process, ports, (api_key, admin_identity)) = start_on_free_ports(
            "minio-kes --dev",
            1,
            Duration::from_secs(60),
            |ports| {
                let mut command = Command::new(peer_bin("minio-kes"));
                command.args([
                    "server",
                    "--dev",
                    "--addr",
                    &format!("127.0.0.1:{}", ports[0]),
                ]);
                Process::spawn("minio-kes (dev)", command, &dir.path().join("kes.log"))
            },
            |process, _| {
                let log = process.log();
                log.contains("Server is up")
                    .then(|| (field(&log, "API Key"), field(&log, "Admin")))
            },
        );
        MinioKes {
            endpoint: format!("https://127.0.0.1:{}", ports[0]),
            api_key,
            admin: None,
            ca_cert: None,
            admin_identity: admin_identity.expect("minio-kes printed an admin identity"),
            process,
            dir,
        }
    }

    /// Starts `minio-kes server --config` with TLS from a fresh test CA, an admin client
    /// certificate, and the config body `rest` (keystore, policies, cache…) appended to the
    /// `address`, `admin` and `tls` sections this function writes.
    pub fn with_config(rest: &str) -> MinioKes {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new(&dir.path().join("tls"), "kes-test-ca");
        let server = ca.server("kes", &[]);
        let admin = ca.client("admin", "admin", &[]);
        let admin_identity = identity_of(&admin.cert);
        let config = dir.path().join("config.yml");
        let (process, ports, ()) = start_on_free_ports(
            "minio-kes",
            1,
            Duration::from_secs(60),
            |ports| {
                std::fs::write(
                    &config,
                    format!(
                        "address: 127.0.0.1:{port}\nadmin:\n  identity: {admin_identity}\ntls:\n  key: {key}\n  cert: {cert}\n{rest}",
                        port = ports[0],
                        key = server.key.display(),
                        cert = server.cert.display(),
                    ),
                )
                .expect("write kes config");
                let mut command = Command::new(peer_bin("minio-kes"));
                command.args(["server", "--config"]).arg(&config);
                Process::spawn("minio-kes", command, &dir.path().join("kes.log"))
            },
            |process, _| process.log().contains("Server is up").then_some(()),
        );
        MinioKes {
            endpoint: format!("https://127.0.0.1:{}", ports[0]),
            api_key: None,
            admin: Some(admin),
            ca_cert: Some(ca.cert.clone()),
            admin_identity,
            process,
            dir,
        }
    }

    /// A `minio-kes` client command authenticated as the admin (`KES_SERVER`, `KES_API_KEY` or
    /// `KES_CLIENT_CERT`/`KES_CLIENT_KEY`), trusting the server's certificate with `-k` semantics
    /// left to the caller.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(peer_bin("minio-kes"));
        command.env("KES_SERVER", &self.endpoint);
        if let Some(key) = &self.api_key {
            command.env("KES_API_KEY", key);
        }
        if let Some(admin) = &self.admin {
            command
                .env("KES_CLIENT_CERT", &admin.cert)
                .env("KES_CLIENT_KEY", &admin.key);
        }
        command
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// The KES identity of a certificate, as `minio-kes identity of` computes it.
pub fn identity_of(cert: &Path) -> String {
    let out = run(
        "minio-kes identity of",
        Command::new(peer_bin("minio-kes"))
            .arg("identity")
            .arg("of")
            .arg(cert),
    );
    out.split_whitespace()
        .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no identity in `minio-kes identity of` output: {out}"))
        .to_string()
}
