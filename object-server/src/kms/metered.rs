//! Counts what a KMS answers, for MinIO's `minio_cluster_kms_*` metrics.
//!
//! [`Metered`] wraps the KMS that talks to the key server (inside the decrypt cache, so a
//! cached decryption is not a KMS request). Outcomes are classed as KES's own metrics class
//! them and MinIO reports them: success, error (the KMS refused: unknown key, key exists,
//! not authentic, not authorized — a 4xx from KES) and failure (unreachable or a 5xx).
//! Counting is three relaxed atomics; nothing is locked.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use zeroize::Zeroizing;

use super::{DataKey, Kms, KmsError};

/// The KMS counters of one process.
#[derive(Debug, Default)]
pub struct KmsStats {
    pub success: AtomicU64,
    pub error: AtomicU64,
    pub failure: AtomicU64,
    /// Unix seconds since when the KMS has answered readiness checks; 0 while it does not.
    online_since: AtomicI64,
}

impl KmsStats {
    fn count<T>(&self, r: &Result<T, KmsError>) {
        match r {
            Ok(_) => &self.success,
            Err(KmsError::Unavailable(_)) => &self.failure,
            Err(_) => &self.error,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Records a readiness check at `now` (Unix seconds).
    pub fn set_online(&self, online: bool, now: i64) {
        if online {
            let _ =
                self.online_since
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            self.online_since.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the last readiness check passed, and for how many seconds the KMS has been up.
    pub fn uptime(&self, now: i64) -> Option<i64> {
        match self.online_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some((now - since).max(0)),
        }
    }
}

/// A KMS whose answers are counted in a [`KmsStats`].
pub struct Metered<K> {
    inner: K,
    stats: Arc<KmsStats>,
}

impl<K> Metered<K> {
    /// Wraps `inner`.
    pub fn new(inner: K, stats: Arc<KmsStats>) -> Self {
        Self { inner, stats }
    }
}

#[async_trait::async_trait]
impl<K: Kms> Kms for Metered<K> {
    fn default_key(&self) -> &str {
        self.inner.default_key()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn create_key(&self, name: &str) -> Result<(), KmsError> {
        let r = self.inner.create_key(name).await;
        self.stats.count(&r);
        r
    }

    async fn generate_key(&self, name: &str, context: &[u8]) -> Result<DataKey, KmsError> {
        let r = self.inner.generate_key(name, context).await;
        self.stats.count(&r);
        r
    }

    async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let r = self.inner.decrypt_key(name, ciphertext, context).await;
        self.stats.count(&r);
        r
    }

    async fn encrypt_key(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let r = self.inner.encrypt_key(name, plaintext, context).await;
        self.stats.count(&r);
        r
    }

    async fn rotate_key(&self, name: &str) -> Result<u32, KmsError> {
        let r = self.inner.rotate_key(name).await;
        self.stats.count(&r);
        r
    }

    async fn ready(&self) -> Result<(), KmsError> {
        self.inner.ready().await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KmsError> {
        let r = self.inner.list_keys(prefix).await;
        self.stats.count(&r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::static_key::StaticKms;

    #[tokio::test]
    async fn answers_are_counted_by_class() {
        let stats = Arc::new(KmsStats::default());
        let kms = Metered::new(
            StaticKms::from_secret_key("k:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap(),
            stats.clone(),
        );
        let dk = kms.generate_key("k", b"ctx").await.unwrap();
        kms.decrypt_key("k", &dk.ciphertext, b"ctx").await.unwrap();
        assert!(
            kms.decrypt_key("k", &dk.ciphertext, b"other")
                .await
                .is_err()
        );
        assert_eq!(stats.success.load(Ordering::Relaxed), 2);
        assert_eq!(stats.error.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failure.load(Ordering::Relaxed), 0);
        assert_eq!(stats.uptime(100), None);
        stats.set_online(true, 100);
        stats.set_online(true, 150);
        assert_eq!(stats.uptime(160), Some(60));
        stats.set_online(false, 170);
        assert_eq!(stats.uptime(180), None);
    }
}
