//! An object's metadata and how it is stored: the object file is
//! `body ‖ metadata JSON ‖ u32 LE length of the JSON ‖ MAGIC`, written once and renamed into place,
//! so body and metadata always change together.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sse::{ObjectKey, PartSalt, SealedKey};

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
    /// The random value the part's key was derived with (encrypted parts written since it
    /// exists); absent: a part of the earlier format, or of a plaintext object. See
    /// [`PartMeta::stream_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_salt: Option<PartSalt>,
    /// The part's checksums by algorithm, base64 (parts written since they are kept; absent in
    /// parts of earlier objects).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
}

/// How an object's checksum in [`ObjectMeta::checksums`] was formed (S3's `ChecksumType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumKind {
    /// A checksum of every byte of the object: every single-part object, and multipart objects
    /// whose part CRCs were combined. Also what an object file without the field means.
    #[default]
    #[serde(rename = "FULL_OBJECT")]
    FullObject,
    /// A multipart object's checksum of its parts' checksums, written `base64-N`.
    #[serde(rename = "COMPOSITE")]
    Composite,
}

impl ChecksumKind {
    /// S3's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumKind::FullObject => "FULL_OBJECT",
            ChecksumKind::Composite => "COMPOSITE",
        }
    }

    fn is_full_object(&self) -> bool {
        *self == ChecksumKind::FullObject
    }
}

impl PartMeta {
    /// The key of this part's package stream, from the object's key: salted if the part was
    /// written with a salt, else the earlier derivation its writer used (read only).
    pub fn stream_key(&self, object_key: &ObjectKey) -> ObjectKey {
        match &self.key_salt {
            Some(salt) => object_key.part_key(self.number, salt),
            None => object_key.legacy_part_key(self.number),
        }
    }
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
    /// Checksums of the plaintext by algorithm (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`,
    /// `SHA256`), base64; formed as [`Self::checksum_kind`] says.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
    /// How [`Self::checksums`] was formed; absent (every object written before it existed, whose
    /// checksums are all full-object ones) means [`ChecksumKind::FullObject`].
    #[serde(default, skip_serializing_if = "ChecksumKind::is_full_object")]
    pub checksum_kind: ChecksumKind,
    /// Encryption, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionMeta>,
    /// In the file of an encrypted multipart part (under the upload's directory, later the
    /// object's `parts/`): the salt of its key, copied into the object's [`PartMeta`] at
    /// completion. Absent in every other object file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_salt: Option<PartSalt>,
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
        Self::parse(total, |buf, at| file.read_exact_at(buf, at))
    }

    /// [`Self::read_from`] of an object file held in memory.
    pub fn from_bytes(data: &[u8]) -> Result<(ObjectMeta, u64), MetaError> {
        Self::parse(data.len() as u64, |buf, at| {
            // `parse` asks only for ranges inside `total`.
            let at = at as usize;
            buf.copy_from_slice(&data[at..at + buf.len()]);
            Ok(())
        })
    }

    /// The trailer parse of an object of `total` bytes, read through `read_at(buf, offset)`.
    pub(crate) fn parse(
        total: u64,
        mut read_at: impl FnMut(&mut [u8], u64) -> std::io::Result<()>,
    ) -> Result<(ObjectMeta, u64), MetaError> {
        if total < TRAILER as u64 {
            return Err(MetaError::Damaged);
        }
        let mut t = [0u8; TRAILER];
        read_at(&mut t, total - TRAILER as u64)?;
        if &t[4..] != MAGIC {
            return Err(MetaError::Damaged);
        }
        let len = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as u64;
        let body = total
            .checked_sub(TRAILER as u64 + len)
            .ok_or(MetaError::Damaged)?;
        let mut json = vec![0u8; len as usize];
        read_at(&mut json, body)?;
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
    fn from_bytes_reads_what_read_from_reads() {
        let m = ObjectMeta {
            size: 5,
            etag: "e".into(),
            ..Default::default()
        };
        let mut bytes = b"hello".to_vec();
        bytes.extend_from_slice(&m.to_trailer());
        let (back, body) = ObjectMeta::from_bytes(&bytes).unwrap();
        assert_eq!((back.size, back.etag.as_str(), body), (5, "e", 5));
        // Only the end of the file, or the file without its end.
        for keep in [0, 1, TRAILER - 1, TRAILER] {
            assert!(matches!(
                ObjectMeta::from_bytes(&bytes[bytes.len() - keep..]),
                Err(MetaError::Damaged)
            ));
        }
        for cut in [1, TRAILER] {
            assert!(matches!(
                ObjectMeta::from_bytes(&bytes[..bytes.len() - cut]),
                Err(MetaError::Damaged)
            ));
        }
    }

    /// A part without `key_salt` is one the earlier format wrote and opens under the earlier
    /// derivation; one with it under the salted one. Writing never drops or invents the field.
    #[test]
    fn part_key_salt_says_which_derivation() {
        let key = ObjectKey::generate();
        let old: PartMeta = serde_json::from_str(r#"{"number":2,"size":3,"etag":"x"}"#).unwrap();
        assert_eq!(old.key_salt, None);
        assert_eq!(
            old.stream_key(&key).as_bytes(),
            key.legacy_part_key(2).as_bytes()
        );
        assert!(!serde_json::to_string(&old).unwrap().contains("key_salt"));
        let salt = PartSalt::generate();
        let new = PartMeta {
            key_salt: Some(salt.clone()),
            ..old
        };
        assert_eq!(
            new.stream_key(&key).as_bytes(),
            key.part_key(2, &salt).as_bytes()
        );
        let back: PartMeta = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
        // A damaged salt is a damaged object file, not a silent fall back to the old derivation.
        let mut bytes = serde_json::to_vec(&ObjectMeta {
            parts: vec![new],
            ..Default::default()
        })
        .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let at = text.find("\"key_salt\":\"").unwrap() + 12;
        bytes[at] = b'!';
        let len = bytes.len() as u32;
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(MAGIC);
        assert!(matches!(
            ObjectMeta::from_bytes(&bytes),
            Err(MetaError::Damaged)
        ));
    }

    /// Object files written before checksum types and part checksums were kept read as
    /// full-object checksums and parts without checksums; a full-object object writes neither
    /// field, so its file is what the earlier format wrote.
    #[test]
    fn checksum_fields_are_optional_on_disk() {
        let old: ObjectMeta = serde_json::from_str(
            r#"{"size":1,"etag":"e","modified_ms":0,"checksums":{"CRC32":"AAAAAA=="},"parts":[{"number":1,"size":1,"etag":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(old.checksum_kind, ChecksumKind::FullObject);
        assert!(old.parts[0].checksums.is_empty());
        let written = serde_json::to_value(&old).unwrap();
        assert!(written.get("checksum_kind").is_none());
        assert!(written["parts"][0].get("checksums").is_none());
        let mut composite = old.clone();
        composite.checksum_kind = ChecksumKind::Composite;
        composite.parts[0]
            .checksums
            .insert("CRC32".into(), "AAAAAA==".into());
        let text = serde_json::to_string(&composite).unwrap();
        assert!(text.contains(r#""checksum_kind":"COMPOSITE""#), "{text}");
        let back: ObjectMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(back.checksum_kind, ChecksumKind::Composite);
        assert_eq!(back.parts, composite.parts);
    }

    #[test]
    fn damaged() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"not an object file at all").unwrap();
        assert!(matches!(ObjectMeta::read_from(&f), Err(MetaError::Damaged)));
    }
}
