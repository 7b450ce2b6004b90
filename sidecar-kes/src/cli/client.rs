//! Server address and client credentials from flags or the environment names MinIO's
//! KES CLI reads (and the guide's `KES_CLIENT_TLS_*_FILE`).

use crate::client::{ClientConfig, ClientIdentity, KesClient};
use anyhow::{Context, bail};
use clap::Args;

/// How to reach and authenticate to a server.
#[derive(Args, Clone, Debug, Default)]
pub struct ConnArgs {
    /// Server endpoint(s), comma-separated [env: MINIO_KES_SERVER, KES_SERVER, MINIO_KMS_KES_ENDPOINT].
    #[arg(short = 's', long = "server")]
    pub server: Option<String>,
    /// Skip verification of the server certificate.
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,
    /// API key `kes:v1:...` [env: MINIO_KES_API_KEY, KES_API_KEY].
    #[arg(short = 'a', long = "api-key")]
    pub api_key: Option<String>,
    /// Client private key file [env: MINIO_KES_KEY_FILE, KES_CLIENT_KEY, KES_CLIENT_TLS_KEY_FILE].
    #[arg(long = "key-file")]
    pub key_file: Option<String>,
    /// Client certificate file [env: MINIO_KES_CERT_FILE, KES_CLIENT_CERT, KES_CLIENT_TLS_CERT_FILE].
    #[arg(long = "cert-file")]
    pub cert_file: Option<String>,
    /// CA certificate file that verifies the server [env: KES_CA, MINIO_KMS_KES_CAPATH].
    #[arg(long = "ca")]
    pub ca: Option<String>,
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl ConnArgs {
    /// The client these flags and the environment describe.
    pub fn client(&self) -> anyhow::Result<KesClient> {
        let server = self
            .server
            .clone()
            .or_else(|| env_first(&["MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT"]))
            .unwrap_or_else(|| "https://127.0.0.1:7373".into());
        let endpoints: Vec<String> = server
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let api_key = self
            .api_key
            .clone()
            .or_else(|| env_first(&["MINIO_KES_API_KEY", "KES_API_KEY"]));
        let key_file = self.key_file.clone().or_else(|| {
            env_first(&[
                "MINIO_KES_KEY_FILE",
                "KES_CLIENT_KEY",
                "KES_CLIENT_TLS_KEY_FILE",
            ])
        });
        let cert_file = self.cert_file.clone().or_else(|| {
            env_first(&[
                "MINIO_KES_CERT_FILE",
                "KES_CLIENT_CERT",
                "KES_CLIENT_TLS_CERT_FILE",
            ])
        });
        let identity = match (api_key, key_file, cert_file) {
            (Some(k), _, _) => ClientIdentity::ApiKey(k),
            (None, Some(key), Some(cert)) => ClientIdentity::Certificate {
                cert_pem: std::fs::read(&cert)
                    .with_context(|| format!("cannot read client certificate '{cert}'"))?,
                key_pem: std::fs::read(&key)
                    .with_context(|| format!("cannot read client key '{key}'"))?,
            },
            _ => bail!(
                "no client credentials: set KES_API_KEY, or KES_CLIENT_KEY and KES_CLIENT_CERT"
            ),
        };
        let mut ca_pems = Vec::new();
        if let Some(ca) = self
            .ca
            .clone()
            .or_else(|| env_first(&["KES_CA", "MINIO_KMS_KES_CAPATH", "MINIO_KMS_KES_CA_PATH"]))
        {
            ca_pems.push(std::fs::read(&ca).with_context(|| format!("cannot read CA '{ca}'"))?);
        }
        Ok(KesClient::new(ClientConfig {
            endpoints,
            identity,
            ca_pems,
            ca_files: vec![],
            insecure_skip_verify: self.insecure,
        })?)
    }
}
