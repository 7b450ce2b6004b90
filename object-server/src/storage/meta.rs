//! An object's metadata and how it is stored: the object file is
//! `body ‖ metadata JSON ‖ u32 LE length of the JSON ‖ MAGIC`, written once and renamed into place,
//! so body and metadata always change together.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sse::SealedKey;

/// Trailer magic of an object file.
pub const MAGIC: &[u8; 8] = b"COFFER\x00\x01";
/// Bytes after the metadata JSON.
pub const TRAILER: usize = 4 + MAGIC.len();

/// The SSE mode an object was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseMode {
    /// SSE-S3 (KMS default key).
    S3,
    /// SSE-KMS (named key, optional context).
    Kms,
    /// SSE-C (customer key).
    C,
}

impl SseMode {
    /// The sealing domain of this mode.
    pub fn domain(self) -> &'static str {
        match self {
            SseMode::S3 => "SSE-S3",
            SseMode::Kms => "SSE-KMS",
            SseMode::C => "SSE-C",
        }
    }
}

/// How an object's key is protected. Contains nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptionMeta {
    /// SSE mode.
    pub mode: SseMode,
    /// The object key, sealed for this bucket/object.
    pub sealed_key: SealedKey,
    /// KMS key name (SSE-S3, SSE-KMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    /// Base64 of the KMS ciphertext of the data key (SSE-S3, SSE-KMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_ciphertext: Option<String>,
    /// The client's extra SSE-KMS context.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kms_context: BTreeMap<String, String>,
}

/// One part of a multipart object, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartMeta {
    /// The client's part number (the part key is derived from it).
    pub number: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// The part's ETag (no quotes).
    pub etag: String,
}

/// Everything stored about an object besides its body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Plaintext size.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Last-Modified, Unix milliseconds.
    pub modified_ms: i64,
    /// Content-Type and the other standard headers, by lower-case name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` user metadata (names without the prefix).
    #[serde(default)]
    pub user: BTreeMap<String, String>,
    /// Full-object checksums by algorithm (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`), base64.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
    /// Encryption, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionMeta>,
    /// Parts, for multipart objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartMeta>,
    /// Where the parts' bytes are: the directory under the key's `parts/` holding one file per
    /// part (the object file then has an empty body). Absent: the body is in the object file
    /// itself (every single-part object, and multipart objects completed by earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_dir: Option<String>,
    /// The version id in a versioned bucket (`null` for the null version written while
    /// versioning was suspended); absent for objects of unversioned buckets (also the null version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// A delete marker: no body, no object, only a version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// Object tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Object lock retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Object lock legal hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
}

/// Object lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    /// Removable early by a caller allowed to bypass governance retention.
    #[serde(rename = "GOVERNANCE")]
    Governance,
    /// Nobody can delete the version or shorten the retention, the root user included.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

impl LockMode {
    /// The S3 name.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// A version's retention: locked until `until_ms` (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The mode.
    pub mode: LockMode,
    /// Retain-until date, Unix milliseconds.
    pub until_ms: i64,
}

/// Why an object file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// I/O.
    #[error("object file: {0}")]
    Io(#[from] std::io::Error),
    /// Not an object file, or a damaged one.
    #[error("object file is damaged")]
    Damaged,
}

impl ObjectMeta {
    /// The trailer to append after the body.
    pub fn to_trailer(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("metadata serializes");
        let len = out.len() as u32;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(MAGIC);
        out
    }

    /// Reads the metadata of an object file; returns it and the body length.
    pub fn read_from(file: &std::fs::File) -> Result<(ObjectMeta, u64), MetaError> {
        use std::os::unix::fs::FileExt;
        let total = file.metadata()?.len();
        if total < TRAILER as u64 {
            return Err(MetaError::Damaged);
        }
        let mut t = [0u8; TRAILER];
        file.read_exact_at(&mut t, total - TRAILER as u64)?;
        if &t[4..] != MAGIC {
            return Err(MetaError::Damaged);
        }
        let len = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as u64;
        let body = total
            .checked_sub(TRAILER as u64 + len)
            .ok_or(MetaError::Damaged)?;
        let mut json = vec![0u8; len as usize];
        file.read_exact_at(&mut json, body)?;
        let meta = serde_json::from_slice(&json).map_err(|_| MetaError::Damaged)?;
        Ok((meta, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn trailer_round_trip() {
        let mut m = ObjectMeta {
            size: 3,
            etag: "abc".into(),
            ..Default::default()
        };
        m.user.insert("k".into(), "v".into());
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"xyz").unwrap();
        f.write_all(&m.to_trailer()).unwrap();
        let (back, body) = ObjectMeta::read_from(&f).unwrap();
        assert_eq!(body, 3);
        assert_eq!(back.etag, "abc");
        assert_eq!(back.user["k"], "v");
    }

    #[test]
    fn damaged() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"not an object file at all").unwrap();
        assert!(matches!(ObjectMeta::read_from(&f), Err(MetaError::Damaged)));
    }
}
