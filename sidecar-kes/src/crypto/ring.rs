//! Key versions of the keystores that hold keys for KES to use (memory, directory, Vault K/V):
//! a [`KeyRing`] is every version of one key, numbered from 1, and the minimum version still
//! allowed to decrypt.
//!
//! **Stored format** (what a keystore holds under the key's name; MinIO's KES reads it too):
//! - a key never rotated is stored exactly as before, KES's base64(protobuf `KeyVersion`) (or
//!   the legacy JSON it was written in): version 1, nothing added;
//! - a rotated key is base64(protobuf `KeyVersion`) of its **newest** version, plus field
//!   1701 (a number KES does not use; protobuf decoders skip unknown fields) holding the
//!   newest version's number, the minimum version and every older version. MinIO's KES reads
//!   such a key as its newest version.
//!
//! **Ciphertexts.** New ciphertexts are made with the newest version; a version-1 ciphertext is
//! KES's binary layout (a key never rotated produces exactly what it produced before), a later
//! version's is tagged with its number ([`crate::crypto::ciphertext::tag_version`]). A tagged
//! ciphertext is opened with the version it names only. An untagged one is opened with version
//! 1 and, failing that, with the other versions newest first: it is either ours from before the
//! first rotation, or one MinIO's KES made with the newest version, which it reads as the key.
//! Versions below the minimum open nothing ([`RingError::Retired`]).
//!
//! **No key and nonce pair is used twice.** Every version is a fresh random 256-bit key drawn
//! when it is added ([`KeyVersion::generate`]); no version is derived from another, and a
//! rotation never changes or re-uses an existing version's bytes. Each encryption under a
//! version draws a fresh random 16-byte IV and 12-byte nonce and uses the per-message subkey
//! HMAC-SHA256(key, iv) (AES) or HChaCha20(key, iv) (ChaCha20), exactly as before rotation
//! existed; the version tag is framing around that ciphertext, not an input of the AEAD. So a
//! (key, nonce) pair repeats only if two random 28-byte draws under the same version collide.

use super::ciphertext::{tag_algorithm, tag_version, tagged_version};
use super::version::{DecodeError, Stored, decode_stored, encode_pb, pb, wipe};
use super::{CryptoError, KeyVersion};
use crate::auth::Identity;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Every version of a key and the oldest one allowed to decrypt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRing {
    versions: BTreeMap<u32, KeyVersion>,
    min_version: u32,
}

/// Why a ring operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// Wrong key, wrong context, or a tampered ciphertext.
    #[error("decryption failed: ciphertext is not authentic")]
    NotAuthentic,
    /// The ciphertext names a version below the key's minimum version.
    #[error("decryption failed: key version {version} is retired (minimum version {min})")]
    Retired { version: u32, min: u32 },
    /// The ciphertext names a version this ring does not have (a newer one, if another
    /// replica rotated the key since this ring was read).
    #[error("decryption failed: key version {0} does not exist")]
    UnknownVersion(u32),
    /// A minimum version above the newest version (or zero).
    #[error("invalid minimum version {min}: the key has versions 1 to {newest}")]
    InvalidMinVersion { min: u32, newest: u32 },
    /// The crypto library failed.
    #[error("crypto failure")]
    Crypto,
}

fn crypto(e: CryptoError) -> RingError {
    match e {
        CryptoError::NotAuthentic => RingError::NotAuthentic,
        _ => RingError::Crypto,
    }
}

impl KeyRing {
    /// A key never rotated: `key` is version 1.
    pub fn single(key: KeyVersion) -> Self {
        KeyRing {
            versions: BTreeMap::from([(1, key)]),
            min_version: 1,
        }
    }

    /// Decodes what a keystore holds (see the module doc); a plain KES key is version 1.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut msg = match decode_stored(b)? {
            Stored::Json(v) => return Ok(Self::single(*v)),
            Stored::Pb(msg) => msg,
        };
        let result = Self::from_pb(&msg);
        wipe(&mut msg);
        result
    }

    fn from_pb(msg: &pb::KeyVersion) -> Result<Self, DecodeError> {
        let newest = KeyVersion::from_pb(msg)?;
        let Some(ring) = &msg.coffer_ring else {
            return Ok(Self::single(newest));
        };
        let bad = DecodeError::Field("coffer_ring");
        if ring.newest < 2 || ring.min_version == 0 || ring.min_version > ring.newest {
            return Err(bad);
        }
        let mut versions = BTreeMap::new();
        for o in &ring.older {
            let key = o.key.as_ref().ok_or(bad)?;
            if o.version == 0 || o.version >= ring.newest {
                return Err(bad);
            }
            if versions
                .insert(o.version, KeyVersion::from_pb(key)?)
                .is_some()
            {
                return Err(bad);
            }
        }
        versions.insert(ring.newest, newest);
        Ok(KeyRing {
            versions,
            min_version: ring.min_version,
        })
    }

    /// The stored form (see the module doc): a ring of one version with minimum 1 encodes
    /// exactly as [`KeyVersion::encode`].
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let (newest, key) = self.newest();
        let mut msg = key.to_pb();
        if newest != 1 || self.min_version != 1 {
            msg.coffer_ring = Some(pb::Ring {
                newest,
                min_version: self.min_version,
                older: self
                    .versions
                    .iter()
                    .filter(|(v, _)| **v != newest)
                    .map(|(v, k)| pb::Older {
                        version: *v,
                        key: Some(k.to_pb()),
                    })
                    .collect(),
            });
        }
        encode_pb(msg)
    }

    /// The newest version: its number and key.
    pub fn newest(&self) -> (u32, &KeyVersion) {
        let (v, k) = self
            .versions
            .last_key_value()
            .expect("a ring has a version");
        (*v, k)
    }

    /// The first version (the key as created).
    pub fn first(&self) -> &KeyVersion {
        self.versions
            .first_key_value()
            .expect("a ring has a version")
            .1
    }

    /// Every version with its key, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = (u32, &KeyVersion)> {
        self.versions.iter().map(|(v, k)| (*v, k))
    }

    /// The oldest version allowed to decrypt.
    pub fn min_version(&self) -> u32 {
        self.min_version
    }

    /// This ring with a new newest version: a fresh random key of the newest's cipher, created
    /// now by `by`.
    pub fn rotated(&self, by: Identity) -> Self {
        let (newest, key) = self.newest();
        let mut next = self.clone();
        next.versions
            .insert(newest + 1, KeyVersion::generate(key.key.cipher(), by));
        next
    }

    /// This ring with minimum version `min` (1 up to the newest version).
    pub fn with_min_version(&self, min: u32) -> Result<Self, RingError> {
        let (newest, _) = self.newest();
        if min == 0 || min > newest {
            return Err(RingError::InvalidMinVersion { min, newest });
        }
        let mut next = self.clone();
        next.min_version = min;
        Ok(next)
    }

    /// `plaintext` encrypted under the newest version, bound to `context`, naming its version
    /// unless that is version 1.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, RingError> {
        let (version, key) = self.newest();
        let ct = key.key.encrypt(plaintext, context).map_err(crypto)?;
        Ok(if version == 1 {
            ct
        } else {
            tag_version(&ct, tag_algorithm(key.key.cipher()), version)
        })
    }

    /// Opens a ciphertext of [`Self::encrypt`] (or of any KES holding one of these versions)
    /// with the same `context`; see the module doc for which versions are tried.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, RingError> {
        if let Some(version) = tagged_version(ciphertext) {
            let key = self
                .versions
                .get(&version)
                .ok_or(RingError::UnknownVersion(version))?;
            if version < self.min_version {
                return Err(RingError::Retired {
                    version,
                    min: self.min_version,
                });
            }
            return key.key.decrypt(ciphertext, context).map_err(crypto);
        }
        let allowed = |v: &u32| *v >= self.min_version;
        let order = self
            .versions
            .keys()
            .take(1)
            .chain(self.versions.keys().skip(1).rev())
            .filter(|v| allowed(v));
        let mut tried = false;
        for v in order {
            tried = true;
            match self.versions[v].key.decrypt(ciphertext, context) {
                Ok(p) => return Ok(p),
                Err(CryptoError::NotAuthentic) => continue,
                Err(e) => return Err(crypto(e)),
            }
        }
        if !tried {
            return Err(RingError::NotAuthentic);
        }
        // Untagged and opened by no allowed version: a retired version may be the one.
        if self.min_version > 1 {
            for (v, k) in self.versions.range(..self.min_version) {
                if k.key.decrypt(ciphertext, context).is_ok() {
                    return Err(RingError::Retired {
                        version: *v,
                        min: self.min_version,
                    });
                }
            }
        }
        Err(RingError::NotAuthentic)
    }

    /// When the first version was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.first().created_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Cipher;

    fn key() -> KeyVersion {
        KeyVersion::generate(Cipher::Aes256, Identity::new("creator"))
    }

    #[test]
    fn a_key_never_rotated_encodes_byte_for_byte_as_before() {
        let k = key();
        let ring = KeyRing::single(k.clone());
        assert_eq!(ring.encode(), k.encode());
        assert_eq!(KeyRing::decode(&k.encode()).unwrap(), ring);
        // Its ciphertexts are KES's binary layout, opened by the key alone.
        let ct = ring.encrypt(b"data key", b"ctx").unwrap();
        assert_eq!(&k.key.decrypt(&ct, b"ctx").unwrap()[..], b"data key");
        assert_eq!(crate::crypto::ciphertext::tagged_version(&ct), None);
    }

    #[test]
    fn rotation_adds_a_version_that_kes_reads_as_the_key() {
        let ring = KeyRing::single(key());
        let old_ct = ring.encrypt(b"one", b"c").unwrap();
        let r2 = ring.rotated(Identity::new("rotator"));
        let r3 = r2.rotated(Identity::new("rotator"));
        assert_eq!(r3.newest().0, 3);
        let stored = r3.encode();
        // KES's view of the stored key: the newest version.
        assert_eq!(&KeyVersion::decode(&stored).unwrap(), r3.newest().1);
        let back = KeyRing::decode(&stored).unwrap();
        assert_eq!(back, r3);
        assert_eq!(
            back.versions().map(|(v, _)| v).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        // New ciphertexts name version 3; the newest key alone (KES's view) opens them.
        let new_ct = back.encrypt(b"three", b"c").unwrap();
        assert_eq!(crate::crypto::ciphertext::tagged_version(&new_ct), Some(3));
        assert_eq!(
            &r3.newest().1.key.decrypt(&new_ct, b"c").unwrap()[..],
            b"three"
        );
        assert_eq!(&back.decrypt(&new_ct, b"c").unwrap()[..], b"three");
        // Old version-1 ciphertexts still open; so does an untagged one of the newest version
        // (what MinIO's KES makes after the rotation).
        assert_eq!(&back.decrypt(&old_ct, b"c").unwrap()[..], b"one");
        let kes_ct = r3.newest().1.key.encrypt(b"by kes", b"c").unwrap();
        assert_eq!(&back.decrypt(&kes_ct, b"c").unwrap()[..], b"by kes");
        // The wrong context opens nothing.
        assert_eq!(
            back.decrypt(&new_ct, b"other").unwrap_err(),
            RingError::NotAuthentic
        );
        assert_eq!(
            back.decrypt(&old_ct, b"other").unwrap_err(),
            RingError::NotAuthentic
        );
    }

    #[test]
    fn every_version_is_a_fresh_key() {
        let mut ring = KeyRing::single(key());
        for _ in 0..4 {
            ring = ring.rotated(Identity::default());
        }
        let keys: std::collections::HashSet<_> =
            ring.versions().map(|(_, k)| *k.key.bytes()).collect();
        assert_eq!(keys.len(), 5);
        let hmacs: std::collections::HashSet<_> = ring
            .versions()
            .map(|(_, k)| *k.hmac.as_ref().unwrap().bytes())
            .collect();
        assert_eq!(hmacs.len(), 5);
    }

    #[test]
    fn a_minimum_version_retires_older_ciphertexts() {
        let r1 = KeyRing::single(key());
        let ct1 = r1.encrypt(b"v1", b"").unwrap();
        let r2 = r1.rotated(Identity::default());
        let ct2 = r2.encrypt(b"v2", b"").unwrap();
        let r3 = r2.rotated(Identity::default());
        let ct3 = r3.encrypt(b"v3", b"").unwrap();
        let raised = KeyRing::decode(&r3.with_min_version(3).unwrap().encode()).unwrap();
        assert_eq!(raised.min_version(), 3);
        assert_eq!(
            raised.decrypt(&ct1, b"").unwrap_err(),
            RingError::Retired { version: 1, min: 3 }
        );
        assert_eq!(
            raised.decrypt(&ct2, b"").unwrap_err(),
            RingError::Retired { version: 2, min: 3 }
        );
        assert_eq!(&raised.decrypt(&ct3, b"").unwrap()[..], b"v3");
        // Lowered again (as Transit allows), the old versions open again.
        let lowered = raised.with_min_version(1).unwrap();
        assert_eq!(&lowered.decrypt(&ct1, b"").unwrap()[..], b"v1");
        // Out of range.
        assert_eq!(
            r3.with_min_version(4).unwrap_err(),
            RingError::InvalidMinVersion { min: 4, newest: 3 }
        );
        assert!(r3.with_min_version(0).is_err());
        // A minimum on a key never rotated is version 1 only: encoded as before.
        let single = KeyRing::single(key());
        assert_eq!(
            single.with_min_version(1).unwrap().encode(),
            single.encode()
        );
    }

    #[test]
    fn a_ciphertext_naming_an_unknown_version_is_refused() {
        let r2 = KeyRing::single(key()).rotated(Identity::default());
        let r3 = r2.rotated(Identity::default());
        let ct3 = r3.encrypt(b"v3", b"").unwrap();
        assert_eq!(
            r2.decrypt(&ct3, b"").unwrap_err(),
            RingError::UnknownVersion(3)
        );
    }

    #[test]
    fn malformed_rings_are_refused() {
        use prost::Message;
        let r2 = KeyRing::single(key()).rotated(Identity::default());
        let reencode = |f: &dyn Fn(&mut pb::Ring)| {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&r2.encode()[..])
                .unwrap();
            let mut msg = pb::KeyVersion::decode(&raw[..]).unwrap();
            f(msg.coffer_ring.as_mut().unwrap());
            KeyRing::decode(&encode_pb(msg))
        };
        assert!(reencode(&|_| {}).is_ok());
        assert!(reencode(&|r| r.min_version = 3).is_err());
        assert!(reencode(&|r| r.min_version = 0).is_err());
        assert!(reencode(&|r| r.newest = 1).is_err());
        assert!(reencode(&|r| r.older[0].version = 2).is_err());
        assert!(reencode(&|r| r.older.push(r.older[0].clone())).is_err());
        assert!(reencode(&|r| r.older[0].key = None).is_err());
    }
}
