//! A short-lived cache of the data keys a remote KMS decrypted.
//!
//! Every GET of an SSE-S3 or SSE-KMS object asks the KMS to decrypt the object's data key: with
//! KES one HTTPS round trip, whose CPU (client and KES) is the largest part of what encryption
//! costs a GET of a small object that is read again and again. The cache answers the same
//! request (key name, ciphertext and context alike) for [`TTL`] after the KMS answered it.
//!
//! What it may not do, and why it cannot:
//! - outlive a key's deletion or a policy change for long: an entry is used for at most [`TTL`]
//!   after the KMS last said yes, never refreshed by use;
//! - answer what the KMS would refuse: only a request that succeeded is cached, and only the
//!   identical request is answered from it (a different context or ciphertext asks the KMS);
//! - leak: the plaintexts stay in this process's memory, wiped when dropped, at most
//!   [`MAX_ENTRIES`] of them.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{DataKey, Kms, KmsError};

/// How long a decrypted data key is reused.
pub const TTL: Duration = Duration::from_secs(10);

/// Entries kept at most (about 200 bytes each).
pub const MAX_ENTRIES: usize = 4096;

/// (key name, ciphertext, context) of a decrypt request.
type Request = (String, Vec<u8>, Vec<u8>);

/// When the KMS answered, and the plaintext it gave.
type Answer = (Instant, Zeroizing<Vec<u8>>);

/// A [`Kms`] whose successful decryptions are reused for [`TTL`].
pub struct DecryptCache<K> {
    inner: K,
    entries: Mutex<HashMap<Request, Answer>>,
}

impl<K: Kms> DecryptCache<K> {
    /// Caches the decryptions of `inner`.
    pub fn new(inner: K) -> Self {
        Self {
            inner,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lookup(&self, req: &Request) -> Option<Zeroizing<Vec<u8>>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(req)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, k)| k.clone())
    }

    fn remember(&self, req: Request, plaintext: &Zeroizing<Vec<u8>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(req, (Instant::now(), plaintext.clone()));
    }
}

#[async_trait::async_trait]
impl<K: Kms> Kms for DecryptCache<K> {
    fn default_key(&self) -> &str {
        self.inner.default_key()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn create_key(&self, name: &str) -> Result<(), KmsError> {
        self.inner.create_key(name).await
    }

    async fn generate_key(&self, name: &str, context: &[u8]) -> Result<DataKey, KmsError> {
        self.inner.generate_key(name, context).await
    }

    async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let req = (name.to_owned(), ciphertext.to_vec(), context.to_vec());
        if let Some(k) = self.lookup(&req) {
            return Ok(k);
        }
        let k = self.inner.decrypt_key(name, ciphertext, context).await?;
        self.remember(req, &k);
        Ok(k)
    }

    async fn encrypt_key(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.inner.encrypt_key(name, plaintext, context).await
    }

    async fn rotate_key(&self, name: &str) -> Result<u32, KmsError> {
        self.inner.rotate_key(name).await
    }

    async fn ready(&self) -> Result<(), KmsError> {
        self.inner.ready().await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KmsError> {
        self.inner.list_keys(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::counting::CountingKms;
    use crate::kms::static_key::StaticKms;

    #[tokio::test]
    async fn only_the_identical_successful_request_is_answered_from_the_cache() {
        let kms =
            StaticKms::from_secret_key("k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        let cache = DecryptCache::new(CountingKms::new(kms));
        let name = cache.default_key().to_owned();
        let dk = cache.generate_key(&name, b"ctx").await.unwrap();
        let calls = || cache.inner.decrypted();
        let first = cache
            .decrypt_key(&name, &dk.ciphertext, b"ctx")
            .await
            .unwrap();
        assert_eq!(first, dk.plaintext);
        let again = cache
            .decrypt_key(&name, &dk.ciphertext, b"ctx")
            .await
            .unwrap();
        assert_eq!((again, calls()), (dk.plaintext.clone(), 1));
        // Another context goes to the KMS, which refuses it; a refusal is not remembered.
        for _ in 0..2 {
            assert!(
                cache
                    .decrypt_key(&name, &dk.ciphertext, b"other")
                    .await
                    .is_err()
            );
        }
        assert_eq!(calls(), 3);
        // An entry past its time asks the KMS again.
        let req = (name.clone(), dk.ciphertext.clone(), b"ctx".to_vec());
        cache.entries.lock().unwrap().get_mut(&req).unwrap().0 =
            Instant::now().checked_sub(TTL).unwrap();
        cache
            .decrypt_key(&name, &dk.ciphertext, b"ctx")
            .await
            .unwrap();
        assert_eq!(calls(), 4);
    }
}
