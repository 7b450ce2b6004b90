//! A static-key KMS that counts the calls reaching it: for the tests of what sits in front of a
//! KMS (the decrypt cache, bucket keys) to say how many calls they saved.
use std::sync::atomic::{AtomicUsize, Ordering};

use zeroize::Zeroizing;

use super::static_key::StaticKms;
use super::{DataKey, Kms, KmsError};

pub struct CountingKms {
    inner: StaticKms,
    generated: AtomicUsize,
    decrypted: AtomicUsize,
}

impl CountingKms {
    pub fn new(inner: StaticKms) -> Self {
        CountingKms {
            inner,
            generated: AtomicUsize::new(0),
            decrypted: AtomicUsize::new(0),
        }
    }

    /// Data keys generated so far.
    pub fn generated(&self) -> usize {
        self.generated.load(Ordering::Relaxed)
    }

    /// Decryptions asked for so far (refused ones too).
    pub fn decrypted(&self) -> usize {
        self.decrypted.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl Kms for CountingKms {
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
        self.generated.fetch_add(1, Ordering::Relaxed);
        self.inner.generate_key(name, context).await
    }
    async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.decrypted.fetch_add(1, Ordering::Relaxed);
        self.inner.decrypt_key(name, ciphertext, context).await
    }
    async fn ready(&self) -> Result<(), KmsError> {
        self.inner.ready().await
    }
}
