//! Where the key operations of the API happen, behind one type the handlers call:
//!
//! - [`Keys::Local`]: master keys live in a keystore (memory, a directory, Vault K/V), are
//!   fetched into the [`KeyCache`] and used here, with KES's ciphertext format
//!   (`crate::crypto`);
//! - [`Keys::Transit`]: master keys live in Vault's Transit engine and never leave it; every
//!   operation is a Transit call ([`TransitKeys`]).
//!
//! The handlers keep KES's routes, texts and status codes either way; only what a ciphertext
//! looks like differs (opaque bytes to every client).

use crate::auth::Identity;
use crate::cache::{CacheError, KeyCache};
use crate::crypto::{Cipher, CryptoError, HmacKey, KeyVersion, SecretKey};
use crate::keystore::StoreError;
use crate::keystore::vault::TransitKeys;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The keys the API serves.
pub enum Keys {
    /// Master keys from a keystore, cached and used in this process.
    Local(KeyCache),
    /// Master keys that stay in Vault Transit.
    Transit(TransitKeys),
}

impl From<KeyCache> for Keys {
    fn from(cache: KeyCache) -> Self {
        Keys::Local(cache)
    }
}

impl From<TransitKeys> for Keys {
    fn from(transit: TransitKeys) -> Self {
        Keys::Transit(transit)
    }
}

/// What `/v1/key/describe` reports of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// `AES256`, `ChaCha20`, or the Transit key type for a Transit key of another type.
    pub algorithm: String,
    /// When the key (its first version) was created.
    pub created_at: time::OffsetDateTime,
    /// Who created it (empty for Transit keys: Transit does not record it).
    pub created_by: Identity,
}

/// A fresh data key: the plaintext (wiped on drop) and its ciphertext under a master key.
pub struct DataKey {
    /// The 256-bit key.
    pub plaintext: Zeroizing<[u8; 32]>,
    /// The plaintext encrypted under the master key, bound to the request's context.
    pub ciphertext: Vec<u8>,
}

/// Why a key operation failed; the API maps each to KES's status and text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The keystore (or Vault) failed, or has no such key.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored value is not a key.
    #[error("stored key is invalid: {0}")]
    Invalid(String),
    /// Wrong key, wrong context, or a tampered ciphertext.
    #[error("decryption failed: ciphertext is not authentic")]
    NotAuthentic,
    /// The crypto library failed.
    #[error("crypto failure")]
    Crypto,
    /// The key has no HMAC key (imported into KES without one).
    #[error("key does not support HMAC")]
    NoHmac,
    /// This keystore cannot do the operation (the text says which and why).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl From<CacheError> for KeyError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Store(s) => KeyError::Store(s),
            CacheError::Decode(d) => KeyError::Invalid(d),
        }
    }
}

fn crypto(e: CryptoError) -> KeyError {
    match e {
        CryptoError::NotAuthentic => KeyError::NotAuthentic,
        _ => KeyError::Crypto,
    }
}

impl Keys {
    /// The keystore, for `kes server`'s banner, e.g. `Filesystem: /keys`.
    pub fn describe(&self) -> String {
        match self {
            Keys::Local(c) => c.store().describe(),
            Keys::Transit(t) => t.describe(),
        }
    }

    /// Checks the keystore; the round trip.
    pub async fn status(&self) -> Result<Duration, StoreError> {
        match self {
            Keys::Local(c) => c.status().await,
            Keys::Transit(t) => t.status().await,
        }
    }

    /// Drops cached keys that no expiry rule keeps (called every few seconds).
    pub fn evict(&self) {
        match self {
            Keys::Local(c) => c.evict(),
            Keys::Transit(_) => {} // nothing cached: see `keystore::vault::transit`
        }
    }

    /// Creates a key with `cipher` (local keystores; Transit keys are AES-256-GCM). Never
    /// overwrites: `Exists` if the name is taken.
    pub async fn create(
        &self,
        name: &str,
        cipher: Cipher,
        created_by: &Identity,
    ) -> Result<(), StoreError> {
        match self {
            Keys::Local(c) => {
                c.create(name, &KeyVersion::generate(cipher, created_by.clone()))
                    .await
            }
            Keys::Transit(t) => t.create(name).await,
        }
    }

    /// Stores a key given by the client (local keystores only).
    pub async fn import(
        &self,
        name: &str,
        key: SecretKey,
        created_by: &Identity,
    ) -> Result<(), KeyError> {
        match self {
            Keys::Local(c) => {
                let kv = KeyVersion {
                    key,
                    hmac: Some(HmacKey::generate()),
                    created_at: time::OffsetDateTime::now_utc(),
                    created_by: created_by.clone(),
                };
                Ok(c.create(name, &kv).await?)
            }
            Keys::Transit(_) => Err(KeyError::Unsupported(
                "key import is not supported by the Vault Transit keystore: its keys are created in Vault and never leave it",
            )),
        }
    }

    /// The key's metadata, as of `now` (the request's arrival) for the cache.
    pub async fn info(&self, name: &str, now: Instant) -> Result<KeyInfo, KeyError> {
        match self {
            Keys::Local(c) => {
                let kv = c.get_at(name, now).await?;
                Ok(KeyInfo {
                    algorithm: kv.key.cipher().as_str().to_string(),
                    created_at: kv.created_at,
                    created_by: kv.created_by.clone(),
                })
            }
            Keys::Transit(t) => {
                let info = t.info(name).await?;
                Ok(KeyInfo {
                    algorithm: info.algorithm(),
                    created_at: info.created_at(),
                    created_by: Identity::default(),
                })
            }
        }
    }

    /// Sorted key names with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Keys::Local(c) => c.list(prefix).await,
            Keys::Transit(t) => Ok(crate::keystore::filter_sorted(t.list().await?, prefix)),
        }
    }

    /// Deletes a key; `NotFound` if there is none.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self {
            Keys::Local(c) => c.delete(name).await,
            Keys::Transit(t) => t.delete(name).await,
        }
    }

    /// A fresh data key and its ciphertext under `name`, bound to `context`.
    pub async fn generate(
        &self,
        name: &str,
        context: &[u8],
        now: Instant,
    ) -> Result<DataKey, KeyError> {
        match self {
            Keys::Local(c) => {
                let kv = c.get_at(name, now).await?;
                let mut plaintext = Zeroizing::new([0u8; 32]);
                crate::crypto::rand::fill(&mut plaintext[..]);
                let ciphertext = kv.key.encrypt(&plaintext[..], context).map_err(crypto)?;
                Ok(DataKey {
                    plaintext,
                    ciphertext,
                })
            }
            Keys::Transit(t) => t.generate(name, context).await,
        }
    }

    /// `plaintext` encrypted under `name`, bound to `context`.
    pub async fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, KeyError> {
        match self {
            Keys::Local(c) => {
                let kv = c.get_at(name, now).await?;
                kv.key.encrypt(plaintext, context).map_err(crypto)
            }
            Keys::Transit(t) => t.encrypt(name, plaintext, context).await,
        }
    }

    /// The plaintext of a ciphertext of [`Self::generate`] or [`Self::encrypt`] under `name`
    /// with the same `context`.
    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
        now: Instant,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        match self {
            Keys::Local(c) => {
                let kv = c.get_at(name, now).await?;
                kv.key.decrypt(ciphertext, context).map_err(crypto)
            }
            Keys::Transit(t) => t.decrypt(name, ciphertext, context).await,
        }
    }

    /// HMAC-SHA256 of `message` under the key's HMAC key.
    pub async fn hmac(
        &self,
        name: &str,
        message: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, KeyError> {
        match self {
            Keys::Local(c) => {
                let kv = c.get_at(name, now).await?;
                kv.hmac
                    .as_ref()
                    .map(|h| h.sum(message))
                    .ok_or(KeyError::NoHmac)
            }
            Keys::Transit(t) => t.hmac(name, message).await,
        }
    }
}
