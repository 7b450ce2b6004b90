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
use crate::crypto::{Cipher, HmacKey, KeyRing, KeyVersion, RingError, SecretKey};
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

/// What `kes key info` reports: every version of a key with its creation time, the newest
/// (the one new data keys are made with) and the oldest one still allowed to decrypt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyVersions {
    /// `AES256`, `ChaCha20`, or the Transit key type.
    pub algorithm: String,
    /// Every version still stored, oldest first.
    pub versions: Vec<VersionInfo>,
    /// The version new data keys and ciphertexts are made with.
    pub newest: u32,
    /// The oldest version that still decrypts.
    pub min_version: u32,
}

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionInfo {
    /// Its number, from 1.
    pub version: u32,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// What a rotation does: add a version, set the minimum version, or both (in that order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Add a new newest version.
    pub add_version: bool,
    /// Then set the oldest version still allowed to decrypt (1 up to the newest).
    pub min_version: Option<u32>,
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
    /// A version rule refused: a retired or unknown version, or an invalid minimum version.
    #[error(transparent)]
    Version(RingError),
}

impl From<CacheError> for KeyError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Store(s) => KeyError::Store(s),
            CacheError::Decode(d) => KeyError::Invalid(d),
        }
    }
}

impl From<RingError> for KeyError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::NotAuthentic => KeyError::NotAuthentic,
            RingError::Crypto => KeyError::Crypto,
            other => KeyError::Version(other),
        }
    }
}

impl KeyVersions {
    fn of_ring(ring: &KeyRing) -> Self {
        KeyVersions {
            algorithm: ring.newest().1.key.cipher().as_str().to_string(),
            versions: ring
                .versions()
                .map(|(version, k)| VersionInfo {
                    version,
                    created_at: k.created_at,
                })
                .collect(),
            newest: ring.newest().0,
            min_version: ring.min_version(),
        }
    }
}

/// A ciphertext `ring` cannot open may be under a key version that lost a concurrent write
/// and is kept only in the keystore's escrow (Vault K/V v1; see `keystore::vault::kv`): tries
/// every escrowed candidate of the version it names (of every version, if it names none). The
/// AEAD tells the right one; a version below the ring's minimum is refused as retired. A
/// failed escrow lookup is logged and counts as no candidate, so the caller's own error stands.
async fn open_escrowed(
    c: &KeyCache,
    name: &str,
    ring: &KeyRing,
    ciphertext: &[u8],
    context: &[u8],
) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    let version = crate::crypto::ciphertext::tagged_version(ciphertext);
    let candidates = match c.store().escrowed(name, version).await {
        Ok(candidates) => candidates,
        Err(e) => {
            tracing::warn!(key = name, error = %e, "escrowed key versions unavailable");
            return Ok(None);
        }
    };
    for (v, bytes) in candidates {
        let Ok(key) = KeyVersion::decode(&bytes) else {
            continue;
        };
        if let Ok(plaintext) = key.key.decrypt(ciphertext, context) {
            if v < ring.min_version() {
                return Err(KeyError::Version(RingError::Retired {
                    version: v,
                    min: ring.min_version(),
                }));
            }
            return Ok(Some(plaintext));
        }
    }
    Ok(None)
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
                let ring = c.get_at(name, now).await?;
                let first = ring.first();
                Ok(KeyInfo {
                    algorithm: ring.newest().1.key.cipher().as_str().to_string(),
                    created_at: first.created_at,
                    created_by: first.created_by.clone(),
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
                let ring = c.get_at(name, now).await?;
                let mut plaintext = Zeroizing::new([0u8; 32]);
                crate::crypto::rand::fill(&mut plaintext[..]);
                let ciphertext = ring.encrypt(&plaintext[..], context)?;
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
                let ring = c.get_at(name, now).await?;
                Ok(ring.encrypt(plaintext, context)?)
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
                let mut ring = c.get_at(name, now).await?;
                let mut opened = ring.decrypt(ciphertext, context);
                // Rotated by another replica since this one cached the key: read it again.
                if let Err(RingError::UnknownVersion(v)) = opened
                    && v > ring.newest().0
                {
                    c.invalidate(name);
                    ring = c.get_at(name, now).await?;
                    opened = ring.decrypt(ciphertext, context);
                }
                match opened {
                    Err(e @ (RingError::NotAuthentic | RingError::UnknownVersion(_))) => {
                        match open_escrowed(c, name, &ring, ciphertext, context).await? {
                            Some(plaintext) => Ok(plaintext),
                            None => Err(e.into()),
                        }
                    }
                    r => Ok(r?),
                }
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
                let ring = c.get_at(name, now).await?;
                ring.newest()
                    .1
                    .hmac
                    .as_ref()
                    .map(|h| h.sum(message))
                    .ok_or(KeyError::NoHmac)
            }
            Keys::Transit(t) => t.hmac(name, message).await,
        }
    }

    /// Every version of `name`, read from the keystore (not the cache) or from Transit.
    pub async fn versions(&self, name: &str) -> Result<KeyVersions, KeyError> {
        match self {
            Keys::Local(c) => {
                c.invalidate(name);
                Ok(KeyVersions::of_ring(&*c.get(name).await?))
            }
            Keys::Transit(t) => Ok(t.info(name).await?.versions_info()),
        }
    }

    /// Adds a version and/or sets the minimum version of `name` (see [`crate::crypto::ring`]
    /// and [`TransitKeys::rotate`]); the key's versions afterwards.
    pub async fn rotate(
        &self,
        name: &str,
        rotation: Rotation,
        by: &Identity,
    ) -> Result<KeyVersions, KeyError> {
        match self {
            Keys::Local(c) => {
                let ring = c
                    .update(name, |ring| -> Result<KeyRing, KeyError> {
                        let ring = if rotation.add_version {
                            ring.rotated(by.clone())
                        } else {
                            ring.clone()
                        };
                        Ok(match rotation.min_version {
                            Some(min) => ring.with_min_version(min)?,
                            None => ring,
                        })
                    })
                    .await?;
                Ok(KeyVersions::of_ring(&ring))
            }
            Keys::Transit(t) => Ok(t.rotate(name, rotation).await?.versions_info()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Rotation over the filesystem keystore, with two replicas (two caches over one directory).
    use super::*;
    use crate::cache::CacheConfig;
    use crate::keystore::fs::FsStore;
    use std::sync::Arc;

    fn replica(dir: &std::path::Path) -> Keys {
        let cfg = CacheConfig {
            any: Some(Duration::from_secs(300)),
            unused: None,
            offline: None,
        };
        KeyCache::new(Arc::new(FsStore::new(dir).unwrap()), cfg).into()
    }

    fn add() -> Rotation {
        Rotation {
            add_version: true,
            min_version: None,
        }
    }

    #[tokio::test]
    async fn rotation_over_the_fs_keystore_with_two_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (replica(dir.path()), replica(dir.path()));
        let me = Identity::new("admin");
        a.create("k", Cipher::Aes256, &me).await.unwrap();
        let file = dir.path().join("k");
        let before = std::fs::read(&file).unwrap();
        // Version 1: the file is a plain KES key, ciphertexts are KES's binary layout.
        assert!(KeyVersion::decode(&before).is_ok());
        let now = Instant::now;
        let dk1 = a.generate("k", b"ctx", now()).await.unwrap();
        assert_eq!(
            crate::crypto::ciphertext::tagged_version(&dk1.ciphertext),
            None
        );
        // b caches version 1.
        b.generate("k", b"ctx", now()).await.unwrap();

        let v = a.rotate("k", add(), &me).await.unwrap();
        assert_eq!((v.newest, v.min_version, v.versions.len()), (2, 1, 2));
        assert!(v.versions[1].created_at >= v.versions[0].created_at);
        // The file is a new one, KES still reads it as one key: version 2.
        let after = std::fs::read(&file).unwrap();
        let ring = KeyRing::decode(&after).unwrap();
        assert_eq!(&KeyVersion::decode(&after).unwrap(), ring.newest().1);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // a (the replica that rotated) makes version-2 ciphertexts at once.
        let dk2 = a.generate("k", b"ctx", now()).await.unwrap();
        assert_eq!(
            crate::crypto::ciphertext::tagged_version(&dk2.ciphertext),
            Some(2)
        );
        // b still uses its cached version 1 (within the cache bound) but opens version 2 by
        // reading the keystore again when a ciphertext names it.
        let stale = b.generate("k", b"ctx", now()).await.unwrap();
        assert_eq!(
            crate::crypto::ciphertext::tagged_version(&stale.ciphertext),
            None
        );
        let opened = b
            .decrypt("k", &dk2.ciphertext, b"ctx", now())
            .await
            .unwrap();
        assert_eq!(&opened[..], &dk2.plaintext[..]);
        let fresh = b.generate("k", b"ctx", now()).await.unwrap();
        assert_eq!(
            crate::crypto::ciphertext::tagged_version(&fresh.ciphertext),
            Some(2)
        );
        // Old ciphertexts open on both.
        for r in [&a, &b] {
            assert_eq!(
                &r.decrypt("k", &dk1.ciphertext, b"ctx", now())
                    .await
                    .unwrap()[..],
                &dk1.plaintext[..]
            );
        }
        // Raise the minimum to 2 with a third version: version 1 is retired, clearly.
        let v = a
            .rotate(
                "k",
                Rotation {
                    add_version: true,
                    min_version: Some(2),
                },
                &me,
            )
            .await
            .unwrap();
        assert_eq!((v.newest, v.min_version), (3, 2));
        let err = a
            .decrypt("k", &dk1.ciphertext, b"ctx", now())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            KeyError::Version(RingError::Retired { version: 1, min: 2 })
        );
        assert_eq!(
            &a.decrypt("k", &dk2.ciphertext, b"ctx", now())
                .await
                .unwrap()[..],
            &dk2.plaintext[..]
        );
        // versions() reads the keystore: b sees the minimum at once there.
        assert_eq!(b.versions("k").await.unwrap().min_version, 2);
        // Bad input changes nothing.
        let stored = std::fs::read(&file).unwrap();
        let bad = Rotation {
            add_version: true,
            min_version: Some(9),
        };
        assert_eq!(
            a.rotate("k", bad, &me).await.unwrap_err(),
            KeyError::Version(RingError::InvalidMinVersion { min: 9, newest: 4 })
        );
        assert_eq!(std::fs::read(&file).unwrap(), stored);
        assert_eq!(
            a.rotate("nope", add(), &me).await.unwrap_err(),
            KeyError::Store(StoreError::NotFound)
        );
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_rotations_lose_no_version() {
        let dir = tempfile::tempdir().unwrap();
        let me = Identity::new("admin");
        let replicas: Vec<Arc<Keys>> = (0..8).map(|_| Arc::new(replica(dir.path()))).collect();
        replicas[0]
            .create("k", Cipher::ChaCha20, &me)
            .await
            .unwrap();
        let tasks: Vec<_> = replicas
            .iter()
            .map(|r| {
                let (r, me) = (r.clone(), me.clone());
                tokio::spawn(async move {
                    let mut results = Vec::new();
                    for _ in 0..5 {
                        results.push(r.rotate("k", add(), &me).await);
                    }
                    results
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.extend(t.await.unwrap());
        }
        // Each succeeded or was told to try again; none was silently lost.
        let ok = results.iter().filter(|r| r.is_ok()).count();
        for r in &results {
            if let Err(e) = r {
                assert_eq!(*e, KeyError::Store(StoreError::Changed));
            }
        }
        let v = replicas[0].versions("k").await.unwrap();
        assert_eq!(v.newest as usize, 1 + ok);
        assert_eq!(v.algorithm, "ChaCha20");
    }

    use std::os::unix::fs::PermissionsExt;
}
