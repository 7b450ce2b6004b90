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
