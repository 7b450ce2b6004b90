//! Sealing an object key under a key-encryption key bound to the object's path.
//!
//! The sealing key is `HMAC-SHA256(kek, "coffer-seal-v1" ‖ iv ‖ domain ‖ 0 ‖ bucket "/" object)`
//! with a fresh random 32-byte `iv`; the object key is sealed with AES-256-GCM under it. Because
//! the path and the mode (`domain`) are inside the derivation, a sealed key copied onto another
//! object, or presented under another mode, does not open. The KEK is the KMS data key (SSE-S3,
//! SSE-KMS) or the customer's key (SSE-C); neither is stored.
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::package::ObjectKey;

/// Why a sealed key did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Wrong key-encryption key, wrong path, or tampered metadata.
    #[error("the object key could not be unsealed")]
    NotAuthentic,
    /// The stored sealed key is malformed.
    #[error("the sealed object key is malformed")]
    Malformed,
}

/// An object key sealed for one bucket/object path, as stored in the object's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealedKey {
    /// Base64 of the 32-byte random IV of the sealing-key derivation.
    pub iv: String,
    /// Base64 of AES-256-GCM(sealing key, object key) ‖ tag.
    pub sealed: String,
}

fn sealing_key(
    kek: &[u8],
    iv: &[u8],
    domain: &str,
    bucket: &str,
    object: &str,
) -> Zeroizing<[u8; 32]> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, kek);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(b"coffer-seal-v1");
    ctx.update(iv);
    ctx.update(domain.as_bytes());
    ctx.update(&[0]);
    ctx.update(bucket.as_bytes());
    ctx.update(b"/");
    ctx.update(object.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key"))
}

/// Seals `key` under `kek` for `domain` (the SSE mode) and `bucket/object`.
pub fn seal(kek: &[u8], domain: &str, bucket: &str, object: &str, key: &ObjectKey) -> SealedKey {
    let mut iv = [0u8; 32];
    rand::fill(&mut iv);
    let sk = sealing_key(kek, &iv, domain, bucket, object);
    let mut buf = key.as_bytes().to_vec();
    // The sealing key is unique per iv, so a fixed nonce is never reused under one key.
    aead(&sk)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut buf,
        )
        .expect("AES-GCM seal");
    SealedKey {
        iv: B64.encode(iv),
        sealed: B64.encode(buf),
    }
}

/// Opens a key sealed by [`seal`] with the same `kek`, `domain` and path.
pub fn unseal(
    kek: &[u8],
    domain: &str,
    bucket: &str,
    object: &str,
    sealed: &SealedKey,
) -> Result<ObjectKey, SealError> {
    let iv = B64.decode(&sealed.iv).map_err(|_| SealError::Malformed)?;
    let mut buf = Zeroizing::new(
        B64.decode(&sealed.sealed)
            .map_err(|_| SealError::Malformed)?,
    );
    if iv.len() != 32 || buf.len() != 48 {
        return Err(SealError::Malformed);
    }
    let sk = sealing_key(kek, &iv, domain, bucket, object);
    let plain = aead(&sk)
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut buf[..],
        )
        .map_err(|_| SealError::NotAuthentic)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(plain);
    Ok(ObjectKey::from_bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let kek = [7u8; 32];
        let k = ObjectKey::generate();
        let s = seal(&kek, "SSE-S3", "b", "a/b", &k);
        assert_eq!(
            unseal(&kek, "SSE-S3", "b", "a/b", &s).unwrap().as_bytes(),
            k.as_bytes()
        );
    }

    #[test]
    fn bound_to_kek_path_and_mode() {
        let kek = [7u8; 32];
        let k = ObjectKey::generate();
        let s = seal(&kek, "SSE-S3", "b", "obj", &k);
        assert_eq!(
            unseal(&[8u8; 32], "SSE-S3", "b", "obj", &s).unwrap_err(),
            SealError::NotAuthentic
        );
        assert_eq!(
            unseal(&kek, "SSE-S3", "b", "obj2", &s).unwrap_err(),
            SealError::NotAuthentic
        );
        assert_eq!(
            unseal(&kek, "SSE-S3", "c", "obj", &s).unwrap_err(),
            SealError::NotAuthentic
        );
        assert_eq!(
            unseal(&kek, "SSE-C", "b", "obj", &s).unwrap_err(),
            SealError::NotAuthentic
        );
    }

    #[test]
    fn fresh_iv_each_time() {
        let k = ObjectKey::generate();
        assert_ne!(
            seal(&[1; 32], "d", "b", "o", &k),
            seal(&[1; 32], "d", "b", "o", &k)
        );
    }

    #[test]
    fn malformed() {
        let s = SealedKey {
            iv: "!!".into(),
            sealed: "AA==".into(),
        };
        assert_eq!(
            unseal(&[1; 32], "d", "b", "o", &s).unwrap_err(),
            SealError::Malformed
        );
    }
}
