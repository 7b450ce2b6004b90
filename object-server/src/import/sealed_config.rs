//! MinIO's configuration files sealed by its KMS (with a KMS configured, MinIO seals every IAM
//! file this way; facts from MinIO's public `internal/config/crypto.go`, `cmd/iam-object-store.go`
//! and the `secure-io/sio-go` stream format):
//!
//! ```text
//! version u8 (1) ‖ size u32 LE ‖ JSON {"keyid","kmskey" (base64),"algorithm","nonce" (base64)} ‖ stream
//! ```
//!
//! The data key is `kmskey` decrypted by the KMS key `keyid` with the context
//! `{".minio.sys": ".minio.sys/<path>"}` (older files: `{".minio.sys": "<path>"}`), `<path>` the
//! file's path under `.minio.sys/`. The stream (`algorithm` AES-256-GCM or ChaCha20-Poly1305)
//! is the plaintext cut in 16 KiB fragments, each sealed with the nonce `nonce[8] ‖ n u32 LE`
//! (`n` from 1) and the associated data `flag ‖ T`: flag `0x80` on the last fragment, `0x00`
//! before, and `T` the tag of the empty message sealed with counter 0. So a truncated,
//! reordered or extended stream fails to open.
//!
//! Nonces: this module only opens what MinIO sealed; the one seal it performs recomputes `T`
//! over the empty message under MinIO's own nonce, which encrypts nothing new.
//! A file that is valid UTF-8 was stored plain (MinIO without a KMS) and is returned as it is;
//! files sealed with the root credentials (MinIO without a KMS, older releases) are refused.
use aws_lc_rs::aead::{
    AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

use super::minio_sse::go_json;
use crate::kms::Kms;

/// The plaintext of a stream fragment.
const FRAGMENT: usize = 1 << 14;
/// The AEAD tag.
const TAG: usize = 16;
/// The largest metadata block MinIO writes.
const MAX_METADATA: usize = 1 << 20;

#[derive(Deserialize)]
struct Header {
    keyid: String,
    kmskey: String,
    algorithm: String,
    nonce: String,
}

/// Why a sealed file did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// Not MinIO's KMS format (probably sealed with the root credentials).
    #[error(
        "not sealed by a KMS (MinIO without a KMS seals with the root credentials: not supported)"
    )]
    NotKmsSealed,
    /// The header is damaged or names an unknown cipher.
    #[error("malformed sealed file: {0}")]
    Malformed(&'static str),
    /// The KMS did not give the data key.
    #[error("the KMS did not decrypt the file's key ({0})")]
    Kms(String),
    /// A fragment failed authentication.
    #[error("the file is not authentic (damaged, or sealed under another key)")]
    NotAuthentic,
}

/// Opens the file at `rel` (its path under `.minio.sys/`) as MinIO stored it.
pub async fn open(
    kms: &dyn Kms,
    rel: &str,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealedError> {
    if std::str::from_utf8(data).is_ok() {
        return Ok(Zeroizing::new(data.to_vec()));
    }
    if data.len() < 5 || data[0] != 1 {
        return Err(SealedError::NotKmsSealed);
    }
    let size = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if size > MAX_METADATA || data.len() < 5 + size {
        return Err(SealedError::NotKmsSealed);
    }
    let header: Header =
        serde_json::from_slice(&data[5..5 + size]).map_err(|_| SealedError::NotKmsSealed)?;
    let alg: &'static Algorithm = match header.algorithm.as_str() {
        "AES-256-GCM" => &AES_256_GCM,
        "ChaCha20-Poly1305" => &CHACHA20_POLY1305,
        _ => return Err(SealedError::Malformed("unknown algorithm")),
    };
    let ciphertext = B64
        .decode(&header.kmskey)
        .map_err(|_| SealedError::Malformed("kmskey"))?;
    let nonce: [u8; 8] = B64
        .decode(&header.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(SealedError::Malformed("nonce"))?;
    let mut last = None;
    for path in [format!("{}/{rel}", super::MINIO_SYS), rel.to_owned()] {
        let ctx = BTreeMap::from([(super::MINIO_SYS.to_owned(), path)]);
        match kms
            .decrypt_key(&header.keyid, &ciphertext, &go_json(&ctx))
            .await
        {
            Ok(key) => return open_stream(alg, &key, &nonce, &data[5 + size..]),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(SealedError::Kms(last.unwrap_or_default()))
}

/// Opens an sio-go stream (see the module doc).
fn open_stream(
    alg: &'static Algorithm,
    key: &[u8],
    nonce: &[u8; 8],
    stream: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealedError> {
    let key = UnboundKey::new(alg, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealedError::Malformed("data key length"))?;
    let nonce_n = |n: u32| {
        let mut full = [0u8; 12];
        full[..8].copy_from_slice(nonce);
        full[8..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(full)
    };
    let mut empty = Vec::new();
    let t = key
        .seal_in_place_separate_tag(nonce_n(0), Aad::empty(), &mut empty)
        .map_err(|_| SealedError::NotAuthentic)?;
    let mut ad = [0u8; 1 + TAG];
    ad[1..].copy_from_slice(t.as_ref());
    if stream.len() < TAG {
        return Err(SealedError::NotAuthentic);
    }
    let fragments: Vec<&[u8]> = stream.chunks(FRAGMENT + TAG).collect();
    let mut out = Zeroizing::new(Vec::with_capacity(stream.len()));
    for (i, fragment) in fragments.iter().enumerate() {
        let n = u32::try_from(i + 1).map_err(|_| SealedError::Malformed("too long"))?;
        ad[0] = if i + 1 == fragments.len() { 0x80 } else { 0x00 };
        let mut buf = Zeroizing::new(fragment.to_vec());
        let plain = key
            .open_in_place(nonce_n(n), Aad::from(&ad[..]), &mut buf)
            .map_err(|_| SealedError::NotAuthentic)?;
        out.extend_from_slice(plain);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seals `plain` as sio-go does (the test's own encoder, written from the module doc).
    fn seal_stream(key: &[u8; 32], nonce: &[u8; 8], plain: &[u8]) -> Vec<u8> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
        let n = |i: u32| {
            let mut full = [0u8; 12];
            full[..8].copy_from_slice(nonce);
            full[8..].copy_from_slice(&i.to_le_bytes());
            Nonce::assume_unique_for_key(full)
        };
        let t = key
            .seal_in_place_separate_tag(n(0), Aad::empty(), &mut Vec::new())
            .unwrap();
        let mut ad = vec![0u8];
        ad.extend_from_slice(t.as_ref());
        let chunks: Vec<&[u8]> = if plain.is_empty() {
            vec![&[]]
        } else {
            plain.chunks(FRAGMENT).collect()
        };
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            ad[0] = if i + 1 == chunks.len() { 0x80 } else { 0 };
            let mut buf = c.to_vec();
            key.seal_in_place_append_tag(n(i as u32 + 1), Aad::from(&ad[..]), &mut buf)
                .unwrap();
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn streams_open_whole_and_fail_cut_reordered_or_flipped() {
        let (key, nonce) = ([7u8; 32], [9u8; 8]);
        for len in [0, 1, FRAGMENT, FRAGMENT + 1, 3 * FRAGMENT + 5] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let s = seal_stream(&key, &nonce, &plain);
            let got = open_stream(&AES_256_GCM, &key, &nonce, &s).unwrap();
            assert_eq!(&got[..], &plain[..], "len {len}");
            assert!(open_stream(&AES_256_GCM, &[8u8; 32], &nonce, &s).is_err());
            assert!(open_stream(&AES_256_GCM, &key, &[0u8; 8], &s).is_err());
            let mut flipped = s.clone();
            flipped[s.len() / 2] ^= 1;
            assert!(open_stream(&AES_256_GCM, &key, &nonce, &flipped).is_err());
            if len > FRAGMENT {
                // Dropping the last fragment leaves a non-final one last: refused.
                let cut = &s[..FRAGMENT + TAG];
                assert!(open_stream(&AES_256_GCM, &key, &nonce, cut).is_err());
            }
            if len > 2 * FRAGMENT {
                let mut swapped = s[FRAGMENT + TAG..2 * (FRAGMENT + TAG)].to_vec();
                swapped.extend_from_slice(&s[..FRAGMENT + TAG]);
                swapped.extend_from_slice(&s[2 * (FRAGMENT + TAG)..]);
                assert!(open_stream(&AES_256_GCM, &key, &nonce, &swapped).is_err());
            }
        }
    }

    #[tokio::test]
    async fn plain_files_pass_and_foreign_formats_are_refused() {
        let kms = crate::kms::static_key::StaticKms::from_secret_key(&format!(
            "k:{}",
            B64.encode([1u8; 32])
        ))
        .unwrap();
        // A file sealed as MinIO seals it opens only at its own path.
        let rel = "config/iam/users/u/identity.json";
        let ctx = BTreeMap::from([(
            super::super::MINIO_SYS.to_owned(),
            format!(".minio.sys/{rel}"),
        )]);
        let dk = kms.generate_key("k", &go_json(&ctx)).await.unwrap();
        let nonce = [3u8; 8];
        let header = serde_json::json!({
            "keyid": "k", "kmskey": B64.encode(&dk.ciphertext),
            "algorithm": "AES-256-GCM", "nonce": B64.encode(nonce),
        })
        .to_string();
        let mut file = vec![1u8];
        file.extend_from_slice(&(header.len() as u32).to_le_bytes());
        file.extend_from_slice(header.as_bytes());
        let key: [u8; 32] = dk.plaintext[..].try_into().unwrap();
        file.extend_from_slice(&seal_stream(&key, &nonce, b"\xff secret"));
        assert_eq!(&open(&kms, rel, &file).await.unwrap()[..], b"\xff secret");
        let moved = open(&kms, "config/iam/users/v/identity.json", &file).await;
        assert!(matches!(moved, Err(SealedError::Kms(_))), "{moved:?}");
        let plain = br#"{"version":1}"#;
        let got = open(&kms, "config/iam/format.json", plain).await.unwrap();
        assert_eq!(&got[..], plain);
        let err = open(&kms, "x", &[0xff, 0, 0, 0, 0, 1]).await.unwrap_err();
        assert!(matches!(err, SealedError::NotKmsSealed), "{err}");
        let mut huge = vec![1u8, 0xff, 0xff, 0xff, 0x7f];
        huge.push(0xff);
        assert!(matches!(
            open(&kms, "x", &huge).await.unwrap_err(),
            SealedError::NotKmsSealed
        ));
    }
}
