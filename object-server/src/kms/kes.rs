//! The KES client (MinIO's KES API over mTLS).
use zeroize::Zeroizing;

use super::{DataKey, Kms, KmsError};
use crate::config::KesConfig;

/// A KMS reached through KES.
pub struct KesKms {
    key_name: String,
}

impl KesKms {
    /// Connects to the endpoints in `cfg`; `extra_cas` are PEMs from `--certs-dir/CAs`.
    pub fn new(cfg: &KesConfig, _extra_cas: Vec<Vec<u8>>) -> anyhow::Result<Self> {
        let _ = &cfg.key_name;
        anyhow::bail!("the KES client is not available in this build yet")
    }
}

#[async_trait::async_trait]
impl Kms for KesKms {
    fn default_key(&self) -> &str {
        &self.key_name
    }
    fn describe(&self) -> String {
        "KES".to_owned()
    }
    async fn create_key(&self, _name: &str) -> Result<(), KmsError> {
        Err(KmsError::Unavailable("KES".into()))
    }
    async fn generate_key(&self, _name: &str, _context: &[u8]) -> Result<DataKey, KmsError> {
        Err(KmsError::Unavailable("KES".into()))
    }
    async fn decrypt_key(
        &self,
        _name: &str,
        _ciphertext: &[u8],
        _context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Err(KmsError::Unavailable("KES".into()))
    }
    async fn ready(&self) -> Result<(), KmsError> {
        Err(KmsError::Unavailable("KES".into()))
    }
}
