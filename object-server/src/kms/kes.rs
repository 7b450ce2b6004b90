//! The KES client: MinIO's KES API over mTLS (or a KES API key), built on `sidecar-kes`'s client
//! library, configured from `MINIO_KMS_KES_*`.
use std::path::PathBuf;

use sidecar_kes::client::{ClientConfig, ClientError, ClientIdentity, KesClient};
use zeroize::Zeroizing;

use super::{DataKey, Kms, KmsError};
use crate::config::KesConfig;

/// Why the KES client could not be set up. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KesSetupError {
    /// The client library refused the configuration (it names the file at fault).
    #[error("{0}")]
    Client(String),
}

/// A KMS reached through KES.
pub struct KesKms {
    client: KesClient,
    key_name: String,
}

fn map(e: ClientError) -> KmsError {
    match e {
        ClientError::KeyExists => KmsError::KeyExists,
        ClientError::KeyNotFound => KmsError::KeyNotFound,
        ClientError::DecryptionFailed => KmsError::DecryptionFailed,
        ClientError::NotAuthorized => KmsError::NotAuthorized("insufficient permissions".into()),
        other => KmsError::Unavailable(other.to_string()),
    }
}

impl KesKms {
    /// A client for the endpoints in `cfg`; `extra_cas` are `--certs-dir/CAs` (a directory).
    /// The client certificate, key and CA files are read again when they change (the
    /// operator renews them in place), so a renewal needs no restart.
    pub fn new(cfg: &KesConfig, extra_cas: Vec<PathBuf>) -> Result<Self, KesSetupError> {
        let identity = match (&cfg.api_key, &cfg.cert_file, &cfg.key_file) {
            (_, Some(c), Some(k)) => ClientIdentity::CertificateFiles {
                cert: c.clone(),
                key: k.clone(),
            },
            (Some(api), _, _) => ClientIdentity::ApiKey(api.expose().to_owned()),
            _ => return Err(KesSetupError::Client(
                "set MINIO_KMS_KES_CERT_FILE and MINIO_KMS_KES_KEY_FILE, or MINIO_KMS_KES_API_KEY"
                    .into(),
            )),
        };
        let ca_files = cfg.ca_path.iter().cloned().chain(extra_cas).collect();
        let client = KesClient::new(ClientConfig {
            endpoints: cfg.endpoints.clone(),
            identity,
            ca_pems: Vec::new(),
            ca_files,
            insecure_skip_verify: false,
        })
        .map_err(|e| KesSetupError::Client(e.to_string()))?;
        Ok(Self {
            client,
            key_name: cfg.key_name.clone(),
        })
    }
}

#[async_trait::async_trait]
impl Kms for KesKms {
    fn default_key(&self) -> &str {
        &self.key_name
    }

    fn describe(&self) -> String {
        format!(
            "KES at {} (default key '{}')",
            self.client.endpoints().join(", "),
            self.key_name
        )
    }

    async fn create_key(&self, name: &str) -> Result<(), KmsError> {
        self.client.create_key(name).await.map_err(map)
    }

    async fn generate_key(&self, name: &str, context: &[u8]) -> Result<DataKey, KmsError> {
        let dk = self.client.generate_key(name, context).await.map_err(map)?;
        if dk.plaintext.len() != 32 {
            return Err(KmsError::Unavailable(
                "KES returned a data key that is not 256 bits".into(),
            ));
        }
        Ok(DataKey {
            plaintext: dk.plaintext.clone(),
            ciphertext: dk.ciphertext.clone(),
        })
    }

    async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.client
            .decrypt_key(name, ciphertext, context)
            .await
            .map_err(map)
    }

    async fn encrypt_key(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.client
            .encrypt(name, plaintext, context)
            .await
            .map_err(map)
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KmsError> {
        self.client.list_keys(prefix).await.map_err(map)
    }

    /// Coffer's KES API (`/v1/coffer/key/rotate/<name>`); MinIO's KES has no such route and
    /// answers 404 (or 405/501): then the KMS cannot rotate, which is said as such.
    async fn rotate_key(&self, name: &str) -> Result<u32, KmsError> {
        match self.client.rotate_key(name, true, None).await {
            Ok(v) => Ok(v.newest),
            Err(ClientError::Api {
                status: 404 | 405 | 501,
                ..
            }) => Err(KmsError::Unsupported(format!(
                "the KES server at {} has no key rotation (MinIO's KES has none; Coffer's sidecar-kes has)",
                self.client.endpoints().join(", ")
            ))),
            Err(e) => Err(map(e)),
        }
    }

    async fn ready(&self) -> Result<(), KmsError> {
        // The object server's identity may be allowed only some key APIs (the MinIO KMS guide's
        // policy allows create, generate and decrypt): a describe of the default key proves KES
        // answers and the key exists; where describe is refused, generating a data key (and
        // dropping it) proves the same with the API the identity must have anyway.
        match self.client.describe_key(&self.key_name).await {
            Ok(_) => {}
            Err(ClientError::NotAuthorized) => self
                .client
                .generate_key(&self.key_name, b"")
                .await
                .map(drop)
                .map_err(map)?,
            Err(e) => return Err(map(e)),
        }
        // Cached keys keep serving while the keystore is unreachable (KES's offline cache), so
        // an outage does not take the server out of its Service. A sealed Vault is different:
        // sealing is how an operator stops every use of the keys, so the server reports not
        // ready. Only KES servers that report `keystore_sealed` (ours), to identities allowed
        // `/v1/status`, can say so; for the others the answer above stands.
        match self.client.status().await {
            Ok(status) if status["keystore_sealed"] == serde_json::Value::Bool(true) => Err(
                KmsError::Unavailable("the KMS's key store (Vault) is sealed".into()),
            ),
            _ => Ok(()),
        }
    }
}
