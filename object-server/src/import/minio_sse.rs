//! MinIO's server-side encryption of a stored object version: which mode, and the object key
//! unsealed through the KMS (facts from MinIO's public `internal/crypto` and `internal/kms`).
//!
//! - SSE-S3 and SSE-KMS keep in the version's internal metadata the sealed object key
//!   (`X-Minio-Internal-Server-Side-Encryption-{S3,Kms}-Sealed-Key`, 64 bytes: a DARE 2.0
//!   package of the 32-byte key), its IV (`…-Iv`, 32 bytes), the seal algorithm
//!   (`DAREv2-HMAC-SHA256`), the KMS key name (`…-S3-Kms-Key-Id`) and the KMS ciphertext of the
//!   data key (`…-S3-Kms-Sealed-Key`); SSE-KMS also the client's context (`…-Context`, base64
//!   JSON).
//! - The data key comes back from the KMS's decrypt with the context `{"<bucket>":
//!   "<bucket>/<object>"}` (plus the client's), JSON with sorted keys and Go's escaping.
//!   KES's ciphertext layout and that of MinIO's static key (`MINIO_KMS_SECRET_KEY`) are the
//!   same as Coffer's (`crate::kms`), so Coffer's KMS client decrypts both.
//! - The key that sealed the object key is `HMAC-SHA256(data key, iv ‖ "SSE-S3"|"SSE-KMS" ‖
//!   "DAREv2-HMAC-SHA256" ‖ path.Join(bucket, object))`.
//! - A single-part body is one DARE stream under the object key; part `n` of a multipart object
//!   is one under `HMAC-SHA256(object key, n as u32 LE)`.
//! - A single-part object's ETag is stored sealed: hex of a DARE stream of the MD5 under
//!   `HMAC-SHA256(object key, "SSE-etag")`. MinIO answers with the MD5 for SSE-S3 and with the
//!   last 32 hex digits of the sealed form for SSE-KMS and SSE-C.
//!
//! Keys unsealed here live in [`Zeroizing`] buffers and are never logged or put in an error.
use std::collections::BTreeMap;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::dare;
use crate::kms::{Kms, KmsError};

const PREFIX: &str = "x-minio-internal-server-side-encryption-";
const SEAL_ALGORITHM: &str = "DAREv2-HMAC-SHA256";

/// How MinIO encrypted a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MinioSse {
    /// Not encrypted.
    None,
    /// SSE-S3 or SSE-KMS: a key this importer can unseal through the KMS.
    Kms(KmsSealed),
    /// SSE-C: the customer's key is not ours to have.
    Customer,
}

/// SSE-S3 vs SSE-KMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    /// SSE-S3.
    #[serde(rename = "SSE-S3")]
    S3,
    /// SSE-KMS.
    #[serde(rename = "SSE-KMS")]
    Kms,
}

impl Mode {
    fn domain(self) -> &'static str {
        match self {
            Mode::S3 => "SSE-S3",
            Mode::Kms => "SSE-KMS",
        }
    }
}

/// An object key sealed under a KMS data key. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsSealed {
    /// SSE-S3 or SSE-KMS.
    pub mode: Mode,
    /// The KMS key name.
    pub key_id: String,
    /// The KMS ciphertext of the data key.
    pub kms_ciphertext: Vec<u8>,
    /// The client's SSE-KMS context (without the bucket entry MinIO adds).
    pub context: BTreeMap<String, String>,
    iv: [u8; 32],
    sealed_key: [u8; 64],
}

/// Why an encrypted version could not be opened. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The SSE metadata is incomplete or malformed.
    #[error("MinIO SSE metadata is invalid: {0}")]
    Metadata(&'static str),
    /// A seal algorithm of an older MinIO this importer does not read.
    #[error("MinIO seal algorithm {0:?} is not supported")]
    Algorithm(String),
    /// The KMS did not give the data key back.
    #[error("the KMS could not decrypt the object's data key ({key}): {source}")]
    Kms {
        /// The KMS key name.
        key: String,
        /// What the KMS said.
        source: KmsError,
    },
    /// The sealed object key did not open under the data key (tampered, or another object's).
    #[error("the sealed object key is not authentic")]
    Unseal,
}

fn lookup<'a>(
    sys: &'a BTreeMap<String, Vec<u8>>,
    user: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<&'a [u8]> {
    let full = format!("{PREFIX}{name}");
    sys.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&full))
        .map(|(_, v)| v.as_slice())
        .or_else(|| {
            user.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&full))
                .map(|(_, v)| v.as_bytes())
        })
}

fn text<'a>(v: &'a [u8], what: &'static str) -> Result<&'a str, SseError> {
    std::str::from_utf8(v).map_err(|_| SseError::Metadata(what))
}

fn b64_fixed<const N: usize>(v: &[u8], what: &'static str) -> Result<[u8; N], SseError> {
    let raw = B64
        .decode(text(v, what)?)
        .map_err(|_| SseError::Metadata(what))?;
    raw.try_into().map_err(|_| SseError::Metadata(what))
}

impl MinioSse {
    /// Reads the encryption of a version from its internal and user metadata.
    pub fn of(
        sys: &BTreeMap<String, Vec<u8>>,
        user: &BTreeMap<String, String>,
    ) -> Result<Self, SseError> {
        let get = |name: &str| lookup(sys, user, name);
        if get("sealed-key").is_some() {
            return Ok(MinioSse::Customer);
        }
        let (mode, sealed) = match (get("s3-sealed-key"), get("kms-sealed-key")) {
            (Some(s), None) => (Mode::S3, s),
            (None, Some(s)) => (Mode::Kms, s),
            (None, None) => return Ok(MinioSse::None),
            (Some(_), Some(_)) => return Err(SseError::Metadata("two sealed keys")),
        };
        let algorithm = text(
            get("seal-algorithm").ok_or(SseError::Metadata("seal algorithm missing"))?,
            "seal algorithm",
        )?;
        if algorithm != SEAL_ALGORITHM {
            return Err(SseError::Algorithm(algorithm.to_owned()));
        }
        let iv = b64_fixed::<32>(get("iv").ok_or(SseError::Metadata("IV missing"))?, "IV")?;
        let sealed_key = b64_fixed::<64>(sealed, "sealed key")?;
        let key_id = text(
            get("s3-kms-key-id").ok_or(SseError::Metadata("KMS key id missing"))?,
            "KMS key id",
        )?
        .to_owned();
        let kms_ciphertext = B64
            .decode(text(
                get("s3-kms-sealed-key").ok_or(SseError::Metadata("KMS data key missing"))?,
                "KMS data key",
            )?)
            .map_err(|_| SseError::Metadata("KMS data key"))?;
        let context = match get("context") {
            None => BTreeMap::new(),
            Some(c) => {
                let json = B64
                    .decode(text(c, "KMS context")?)
                    .map_err(|_| SseError::Metadata("KMS context"))?;
                serde_json::from_slice(&json).map_err(|_| SseError::Metadata("KMS context"))?
            }
        };
        Ok(MinioSse::Kms(KmsSealed {
            mode,
            key_id,
            kms_ciphertext,
            context,
            iv,
            sealed_key,
        }))
    }
}

impl KmsSealed {
    /// The object key of `bucket/object`: the data key from the KMS, then the sealed key opened.
    pub async fn unseal(
        &self,
        kms: &dyn Kms,
        bucket: &str,
        object: &str,
    ) -> Result<Zeroizing<[u8; 32]>, SseError> {
        let joined = path_join(bucket, object);
        let mut ctx = self.context.clone();
        ctx.entry(bucket.to_owned())
            .or_insert_with(|| joined.clone());
        let data_key = kms
            .decrypt_key(&self.key_id, &self.kms_ciphertext, &go_json(&ctx))
            .await
            .map_err(|source| SseError::Kms {
                key: self.key_id.clone(),
                source,
            })?;
        let mac = hmac::Key::new(hmac::HMAC_SHA256, &data_key);
        let mut c = hmac::Context::with_key(&mac);
        c.update(&self.iv);
        c.update(self.mode.domain().as_bytes());
        c.update(SEAL_ALGORITHM.as_bytes());
        c.update(joined.as_bytes());
        let sealing: Zeroizing<[u8; 32]> =
            Zeroizing::new(c.sign().as_ref().try_into().expect("32 bytes"));
        let key = Zeroizing::new(
            dare::decrypt(&sealing, &self.sealed_key).map_err(|_| SseError::Unseal)?,
        );
        let key: [u8; 32] = key.as_slice().try_into().map_err(|_| SseError::Unseal)?;
        Ok(Zeroizing::new(key))
    }
}

fn hmac32(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut c = hmac::Context::with_key(&k);
    for p in parts {
        c.update(p);
    }
    Zeroizing::new(c.sign().as_ref().try_into().expect("32 bytes"))
}

/// The key of part `number`'s stream of a multipart object.
pub fn part_key(object_key: &[u8; 32], number: u32) -> Zeroizing<[u8; 32]> {
    hmac32(object_key, &[&number.to_le_bytes()])
}

/// The MD5 ETag (hex) of a single-part object whose stored ETag is sealed; `None` when the stored
/// ETag is not a sealed one (a multipart ETag, or one MinIO kept plain).
pub fn unseal_etag(object_key: &[u8; 32], stored: &str) -> Option<String> {
    let raw = hex::decode(stored).ok().filter(|r| r.len() > 16)?;
    let k = hmac32(object_key, &[b"SSE-etag"]);
    dare::decrypt(&k, &raw).ok().map(hex::encode)
}

/// Go's `path.Join(bucket, object)`: the lexically cleaned path (MinIO binds keys to it).
pub fn path_join(bucket: &str, object: &str) -> String {
    let joined = format!("{bucket}/{object}");
    let rooted = joined.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

/// A map of strings as MinIO's KMS context marshals it: sorted keys, Go's JSON escaping
/// (`<`, `>`, `&`, U+2028, U+2029 and control characters as `\u00xx`).
pub fn go_json(map: &BTreeMap<String, String>) -> Vec<u8> {
    fn escape(out: &mut String, s: &str) {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                    out.push_str(&format!("\\u00{:02x}", c as u32));
                }
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        }
    }
    let mut out = String::from("{");
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        escape(&mut out, k);
        out.push_str("\":\"");
        escape(&mut out, v);
        out.push('"');
    }
    out.push('}');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_as_go_does() {
        for (b, o, want) in [
            ("b", "o", "b/o"),
            ("b", "dir/", "b/dir"),
            ("b", "a//b/./c", "b/a/b/c"),
            ("b", "../x", "x"),
            ("b", "../../x", "../x"),
        ] {
            assert_eq!(path_join(b, o), want, "{o}");
        }
    }

    #[test]
    fn context_escapes_as_go_does() {
        let mut m = BTreeMap::new();
        m.insert("b".to_owned(), "b/a<&>\"\u{1}".to_owned());
        m.insert("a".to_owned(), "x".to_owned());
        assert_eq!(
            String::from_utf8(go_json(&m)).unwrap(),
            r#"{"a":"x","b":"b/a\u003c\u0026\u003e\"\u0001"}"#
        );
    }
}
