//! MinIO's own server and its `mc` client.

use crate::process::{Process, http_ok, peer_bin, start_on_free_ports};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running `minio server DIR`.
pub struct Minio {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    process: Process,
    dir: TempDir,
}

impl Minio {
    /// Starts `minio server` on a fresh data directory with `extra_env` (e.g. `MINIO_KMS_*`).
    pub fn start(extra_env: &[(&str, &str)]) -> Minio {
        let dir = tempfile::tempdir().expect("temp dir");
        let (access_key, secret_key) =
            ("coffer-test".to_string(), "coffer-test-secret".to_string());
        let (process, ports, ()) = start_on_free_ports(
            "minio",
            2,
            Duration::from_secs(120),
            |ports| {
                let mut command = Command::new(peer_bin("minio"));
                command
                    .args([
                        "server",
                        "--quiet",
                        "--address",
                        &format!("127.0.0.1:{}", ports[0]),
                    ])
                    .args(["--console-address", &format!("127.0.0.1:{}", ports[1])])
                    .arg(dir.path().join("data"))
                    .env("MINIO_ROOT_USER", &access_key)
                    .env("MINIO_ROOT_PASSWORD", &secret_key)
                    .env("MINIO_BROWSER", "off")
                    .env("MINIO_UPDATE", "off")
                    .env("HOME", dir.path());
                for (k, v) in extra_env {
                    command.env(k, v);
                }
                Process::spawn("minio", command, &dir.path().join("minio.log"))
            },
            |_, ports| {
                http_ok(&format!("http://127.0.0.1:{}/minio/health/ready", ports[0])).then_some(())
            },
        );
        Minio {
            endpoint: format!("http://127.0.0.1:{}", ports[0]),
            access_key,
            secret_key,
            process,
            dir,
        }
    }

    /// An `mc` command with alias `local` pointing at this server (`MC_HOST_local`) and its own
    /// config directory.
    pub fn mc(&self) -> Command {
        mc_for(
            &self.endpoint,
            &self.access_key,
            &self.secret_key,
            self.dir.path(),
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// An `mc` command with alias `local` for any S3 endpoint, keeping its config under `scratch`.
pub fn mc_for(endpoint: &str, access_key: &str, secret_key: &str, scratch: &Path) -> Command {
    let (scheme, host) = endpoint.split_once("://").expect("endpoint has a scheme");
    let mut command = Command::new(peer_bin("mc"));
    command
        .env(
            "MC_HOST_local",
            format!("{scheme}://{access_key}:{secret_key}@{host}"),
        )
        .args(["--config-dir"])
        .arg(scratch.join("mc"))
        .arg("--no-color");
    command
}
