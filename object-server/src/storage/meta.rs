//! An object's metadata and how it is stored: the object file is
//! `body ‖ metadata JSON ‖ u32 LE length of the JSON ‖ MAGIC`, written once and renamed into place,
//! so body and metadata always change together. In an encrypted object's file, what the metadata
//! says about the plaintext (ETags and checksums) is sealed under the metadata key
//! ([`crate::sse::metadata_key`], which says why); in memory an [`ObjectMeta`] always holds it open.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sse::metadata_key::{self, KeyUnavailable};
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
    /// The id of the bucket key the object key is sealed under (SSE-S3, SSE-KMS with S3 Bucket
    /// Keys, [`crate::sse::bucket_key`]); then there is no `kms_ciphertext`, and `kms_key` says
    /// which KMS key the bucket key was made under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_key: Option<String>,
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
    /// Not an object file, or a damaged one (sealed digests that do not open included).
    #[error("object file is damaged")]
    Damaged,
    /// The object's digests are sealed and the metadata key is not loaded.
    #[error(transparent)]
    KeyUnavailable(#[from] KeyUnavailable),
}

/// The object file's JSON: the metadata, and in the file of encrypted content (an object or an
/// upload's part) its [`Digests`] sealed (the fields they fill are then empty).
#[derive(Serialize)]
struct OnDisk<'a> {
    #[serde(flatten)]
    meta: &'a ObjectMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_digests: Option<String>,
}

/// [`OnDisk`] as read.
#[derive(Deserialize)]
struct FromDisk {
    #[serde(flatten)]
    meta: ObjectMeta,
    #[serde(default)]
    sealed_digests: Option<String>,
}

/// What an object's metadata says about its plaintext.
#[derive(Serialize, Deserialize)]
struct Digests {
    etag: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    checksums: BTreeMap<String, String>,
    /// One per part, in the order of [`ObjectMeta::parts`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<PartDigests>,
}

#[derive(Serialize, Deserialize)]
struct PartDigests {
    etag: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    checksums: BTreeMap<String, String>,
}

/// The associated data of a file's sealed digests, if its content is encrypted: an object's
/// sealed object key, or an encrypted upload part's key salt (the upload's key is in its
/// `upload.json`). Both are unique per stream, so sealed digests do not open on another file.
fn digests_aad(meta: &ObjectMeta) -> Option<Vec<u8>> {
    if let Some(enc) = &meta.encryption {
        let mut aad = b"coffer-object-digests-v1\0".to_vec();
        aad.extend_from_slice(enc.sealed_key.iv.as_bytes());
        aad.push(0);
        aad.extend_from_slice(enc.sealed_key.sealed.as_bytes());
        Some(aad)
    } else {
        let salt = meta.key_salt.as_ref()?;
        let mut aad = b"coffer-part-digests-v1\0".to_vec();
        aad.extend_from_slice(&serde_json::to_vec(salt).expect("a salt serializes"));
        Some(aad)
    }
}

impl Digests {
    /// Moves the digests out of `meta`, leaving its fields empty.
    fn take(meta: &mut ObjectMeta) -> Self {
        Digests {
            etag: std::mem::take(&mut meta.etag),
            checksums: std::mem::take(&mut meta.checksums),
            parts: meta
                .parts
                .iter_mut()
                .map(|p| PartDigests {
                    etag: std::mem::take(&mut p.etag),
                    checksums: std::mem::take(&mut p.checksums),
                })
                .collect(),
        }
    }

    /// Puts the digests back into `meta`; `None` if they are not `meta`'s (another part count).
    fn restore(self, meta: &mut ObjectMeta) -> Option<()> {
        if self.parts.len() != meta.parts.len() {
            return None;
        }
        meta.etag = self.etag;
        meta.checksums = self.checksums;
        for (p, d) in meta.parts.iter_mut().zip(self.parts) {
            p.etag = d.etag;
            p.checksums = d.checksums;
        }
        Some(())
    }
}

impl ObjectMeta {
    /// The trailer to append after the body; an encrypted object's digests need the metadata key.
    pub fn to_trailer(&self) -> Result<Vec<u8>, KeyUnavailable> {
        let mut out = match digests_aad(self) {
            None => serde_json::to_vec(self),
            Some(aad) => {
                let key = metadata_key::current()?;
                let mut meta = self.clone();
                let digests = Digests::take(&mut meta);
                let plain = serde_json::to_vec(&digests).expect("digests serialize");
                let sealed_digests = Some(key.seal(&plain, &aad));
                serde_json::to_vec(&OnDisk {
                    meta: &meta,
                    sealed_digests,
                })
            }
        }
        .expect("metadata serializes");
        let len = out.len() as u32;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(MAGIC);
        Ok(out)
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
        read_at: impl FnMut(&mut [u8], u64) -> std::io::Result<()>,
    ) -> Result<(ObjectMeta, u64), MetaError> {
        Self::parse_stored(total, read_at).map(|(meta, body, _)| (meta, body))
    }

    /// [`Self::read_from`], and whether the file's digests are sealed (`false` for plaintext
    /// content, and for encrypted content written before digests were sealed).
    pub fn read_stored(file: &std::fs::File) -> Result<(ObjectMeta, u64, bool), MetaError> {
        use std::os::unix::fs::FileExt;
        let total = file.metadata()?.len();
        Self::parse_stored(total, |buf, at| file.read_exact_at(buf, at))
    }

    fn parse_stored(
        total: u64,
        mut read_at: impl FnMut(&mut [u8], u64) -> std::io::Result<()>,
    ) -> Result<(ObjectMeta, u64, bool), MetaError> {
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
        let FromDisk {
            mut meta,
            sealed_digests,
        } = serde_json::from_slice(&json).map_err(|_| MetaError::Damaged)?;
        let sealed = sealed_digests.is_some();
        match (sealed_digests, digests_aad(&meta)) {
            (Some(sealed), Some(aad)) => {
                let plain = metadata_key::current()?
                    .open(&sealed, &aad)
                    .map_err(|_| MetaError::Damaged)?;
                let digests: Digests =
                    serde_json::from_slice(&plain).map_err(|_| MetaError::Damaged)?;
                digests.restore(&mut meta).ok_or(MetaError::Damaged)?;
            }
            // Sealed digests are written only with the key they are bound to.
            (Some(_), None) => return Err(MetaError::Damaged),
            // Plaintext content, or encrypted content written before digests were sealed.
            (None, _) => {}
        }
        Ok((meta, body, sealed))
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
        f.write_all(&m.to_trailer().unwrap()).unwrap();
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
        bytes.extend_from_slice(&m.to_trailer().unwrap());
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

    fn encrypted(sealed: &str) -> ObjectMeta {
        let mut m = ObjectMeta {
            size: 8,
            etag: "9e107d9d372bb6826bd81d3542a419d6".into(),
            encryption: Some(EncryptionMeta {
                mode: SseMode::S3,
                sealed_key: SealedKey {
                    iv: "aXY=".into(),
                    sealed: sealed.into(),
                },
                kms_key: Some("k".into()),
                kms_ciphertext: Some("Y3Q=".into()),
                kms_context: BTreeMap::new(),
                bucket_key: None,
            }),
            parts: vec![PartMeta {
                number: 1,
                size: 8,
                etag: "0cc175b9c0f1b6a831c399e269772661".into(),
                key_salt: None,
                checksums: [("CRC32".to_string(), "6JJa9Q==".to_string())].into(),
            }],
            ..Default::default()
        };
        m.checksums
            .insert("CRC64NVME".into(), "tGiW8I8oYWQ=".into());
        m.user.insert("colour".into(), "blue".into());
        m
    }

    fn json_of(trailer: &[u8]) -> serde_json::Value {
        serde_json::from_slice(&trailer[..trailer.len() - TRAILER]).unwrap()
    }

    /// An encrypted object's ETag and checksums (a CRC of a short object is the object) are not on
    /// disk in plain; they read back as written.
    #[test]
    fn an_encrypted_objects_digests_are_sealed_on_disk() {
        let m = encrypted("c2VhbGVk");
        let t = m.to_trailer().unwrap();
        let text = String::from_utf8_lossy(&t).into_owned();
        for digest in [
            "9e107d9d372bb6826bd81d3542a419d6",
            "0cc175b9c0f1b6a831c399e269772661",
            "6JJa9Q==",
            "tGiW8I8oYWQ=",
        ] {
            assert!(!text.contains(digest), "{digest} is on disk: {text}");
        }
        let json = json_of(&t);
        assert!(json["sealed_digests"].is_string());
        assert_eq!(json["user"]["colour"], "blue");
        let (back, body) = ObjectMeta::from_bytes(&t).unwrap();
        assert_eq!(body, 0);
        assert_eq!(back.etag, m.etag);
        assert_eq!(back.checksums, m.checksums);
        assert_eq!(back.parts, m.parts);
        // What is not a digest of the plaintext stays readable without the key.
        assert_eq!(back.user, m.user);
        // A plaintext object's metadata is written as before.
        let plain = ObjectMeta {
            encryption: None,
            ..m.clone()
        };
        let json = json_of(&plain.to_trailer().unwrap());
        assert_eq!(json["etag"], "9e107d9d372bb6826bd81d3542a419d6");
        assert!(json.get("sealed_digests").is_none());
    }

    fn trailer_of(json: &serde_json::Value) -> Vec<u8> {
        let mut out = serde_json::to_vec(json).unwrap();
        let len = out.len() as u32;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(MAGIC);
        out
    }

    /// Sealed digests changed on disk, moved onto another object, or left without the key they
    /// are bound to are a damaged file, never another ETag.
    #[test]
    fn sealed_digests_changed_or_moved_are_damage() {
        let a = json_of(&encrypted("YQ==").to_trailer().unwrap());
        let b = json_of(&encrypted("Yg==").to_trailer().unwrap());
        let mut moved = b.clone();
        moved["sealed_digests"] = a["sealed_digests"].clone();
        assert!(matches!(
            ObjectMeta::from_bytes(&trailer_of(&moved)),
            Err(MetaError::Damaged)
        ));
        let mut changed = a.clone();
        let s = changed["sealed_digests"].as_str().unwrap().to_owned();
        let flipped = if s.starts_with('A') { "B" } else { "A" };
        changed["sealed_digests"] = format!("{flipped}{}", &s[1..]).into();
        assert!(matches!(
            ObjectMeta::from_bytes(&trailer_of(&changed)),
            Err(MetaError::Damaged)
        ));
        let mut unencrypted = a.clone();
        unencrypted.as_object_mut().unwrap().remove("encryption");
        assert!(matches!(
            ObjectMeta::from_bytes(&trailer_of(&unencrypted)),
            Err(MetaError::Damaged)
        ));
        // A part dropped from the list no longer matches the sealed parts.
        let mut fewer = a.clone();
        fewer["parts"] = serde_json::json!([]);
        assert!(matches!(
            ObjectMeta::from_bytes(&trailer_of(&fewer)),
            Err(MetaError::Damaged)
        ));
        // The untouched file reads.
        assert!(ObjectMeta::from_bytes(&trailer_of(&a)).is_ok());
    }

    /// An encrypted upload's part file has no encryption of its own (the upload's key is in its
    /// `upload.json`): its key salt says it is encrypted, and binds its sealed digests.
    #[test]
    fn an_encrypted_parts_digests_are_sealed_too() {
        let part = |salt: Option<PartSalt>| ObjectMeta {
            size: 4,
            etag: "81dc9bdb52d04dc20036dbd8313ed055".into(),
            checksums: [("CRC32".to_string(), "m+kYzg==".to_string())].into(),
            key_salt: salt,
            ..Default::default()
        };
        let a = part(Some(PartSalt::generate()));
        let t = a.to_trailer().unwrap();
        let text = String::from_utf8_lossy(&t).into_owned();
        assert!(
            !text.contains("81dc9bdb") && !text.contains("m+kYzg=="),
            "{text}"
        );
        let (back, _) = ObjectMeta::from_bytes(&t).unwrap();
        assert_eq!(
            (back.etag, back.checksums),
            (a.etag.clone(), a.checksums.clone())
        );
        // Onto another part's file: does not open.
        let b = json_of(&part(Some(PartSalt::generate())).to_trailer().unwrap());
        let mut moved = b.clone();
        moved["sealed_digests"] = json_of(&t)["sealed_digests"].clone();
        assert!(matches!(
            ObjectMeta::from_bytes(&trailer_of(&moved)),
            Err(MetaError::Damaged)
        ));
        // A plaintext upload's part (no salt) is written as before.
        let plain = json_of(&part(None).to_trailer().unwrap());
        assert_eq!(plain["etag"], "81dc9bdb52d04dc20036dbd8313ed055");
    }

    /// Encrypted objects written before digests were sealed keep reading.
    #[test]
    fn an_encrypted_object_from_before_sealed_digests_reads() {
        let m = encrypted("c2VhbGVk");
        let old = serde_json::to_value(&m).unwrap();
        let (back, _) = ObjectMeta::from_bytes(&trailer_of(&old)).unwrap();
        assert_eq!(back.etag, m.etag);
        assert_eq!(back.parts, m.parts);
    }

    #[test]
    fn damaged() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"not an object file at all").unwrap();
        assert!(matches!(ObjectMeta::read_from(&f), Err(MetaError::Damaged)));
    }
}
