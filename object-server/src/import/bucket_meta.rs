//! A bucket's settings as MinIO keeps them: `.minio.sys/buckets/<bucket>/.metadata.bin`, itself
//! stored as an object (an `xl.meta` with the file inline or in a part). The file is
//! `format u16 LE (1) ‖ version u16 LE (1) ‖ MessagePack map` whose fields hold each
//! configuration as the XML (or JSON) the S3 API took (MinIO's public `cmd/bucket-metadata.go`).
//! The XML is read with s3s's own types, and object lock goes through the same validation as
//! PutObjectLockConfiguration.
use std::path::PathBuf;

use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::s3::lock::{LockConfig, validate_lock_configuration};
use crate::storage::Versioning;

/// What of a bucket's MinIO settings the importer understood.
#[derive(Debug, Default)]
pub struct BucketSettings {
    /// `Enabled` or `Suspended`, if versioning was ever configured.
    pub versioning: Option<String>,
    /// Object lock (with its default retention), if the bucket has it.
    pub object_lock: Option<LockConfig>,
    /// The bucket policy (JSON), lifecycle, default encryption and tagging (XML) as MinIO took
    /// them: given to Coffer's own PutBucket* operations, which check them as for a client.
    pub policy: Option<String>,
    /// `LifecycleConfiguration` XML.
    pub lifecycle: Option<Vec<u8>>,
    /// `ServerSideEncryptionConfiguration` XML.
    pub encryption: Option<Vec<u8>>,
    /// `Tagging` XML.
    pub tagging: Option<Vec<u8>>,
    /// Configurations present in MinIO that are not imported yet, by name.
    pub not_imported: Vec<&'static str>,
}

impl BucketSettings {
    /// The versioning state Coffer's bucket gets.
    pub fn versioning(&self) -> Versioning {
        match self.versioning.as_deref() {
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            _ if self.object_lock.is_some() => Versioning::Enabled,
            _ => Versioning::Unversioned,
        }
    }

    /// What was imported and what was left out.
    pub fn summary(&self) -> (Vec<String>, Vec<&'static str>) {
        let mut applied = Vec::new();
        if let Some(v) = &self.versioning {
            applied.push(format!("versioning {v}"));
        }
        if let Some(l) = &self.object_lock {
            applied.push(match &l.default {
                Some(d) => format!(
                    "object lock (default {} {})",
                    d.mode.as_str(),
                    match (d.days, d.years) {
                        (Some(n), _) => format!("{n} days"),
                        (_, Some(n)) => format!("{n} years"),
                        _ => String::new(),
                    }
                ),
                None => "object lock".to_owned(),
            });
        }
        (applied, self.not_imported.clone())
    }
}

#[derive(Deserialize)]
struct RawBucketMetadata {
    #[serde(rename = "LockEnabled", default)]
    lock_enabled: bool,
    #[serde(rename = "PolicyConfigJSON", default)]
    policy: Option<ByteBuf>,
    #[serde(rename = "NotificationConfigXML", default)]
    notification: Option<ByteBuf>,
    #[serde(rename = "LifecycleConfigXML", default)]
    lifecycle: Option<ByteBuf>,
    #[serde(rename = "ObjectLockConfigXML", default)]
    object_lock: Option<ByteBuf>,
    #[serde(rename = "VersioningConfigXML", default)]
    versioning: Option<ByteBuf>,
    #[serde(rename = "EncryptionConfigXML", default)]
    encryption: Option<ByteBuf>,
    #[serde(rename = "TaggingConfigXML", default)]
    tagging: Option<ByteBuf>,
    #[serde(rename = "QuotaConfigJSON", default)]
    quota: Option<ByteBuf>,
    #[serde(rename = "ReplicationConfigXML", default)]
    replication: Option<ByteBuf>,
}

fn present(b: &Option<ByteBuf>) -> Option<&[u8]> {
    b.as_ref().map(|b| b.as_slice()).filter(|b| !b.is_empty())
}

/// Parses one of MinIO's stored XML configurations with s3s's types.
pub fn xml<T: for<'x> s3s::xml::Deserialize<'x>>(raw: &[u8], what: &str) -> Result<T, String> {
    let mut d = s3s::xml::Deserializer::new(raw);
    T::deserialize(&mut d).map_err(|_| format!("unreadable {what} configuration"))
}

/// Reads the settings of `bucket` from the drives; a bucket without a metadata file has none.
pub fn read(drives: &[PathBuf], bucket: &str) -> Result<BucketSettings, String> {
    let rel = format!("buckets/{bucket}/.metadata.bin");
    let Some(data) = super::system::read(drives, &rel)? else {
        return Ok(BucketSettings::default());
    };
    if data.len() < 4 || data[..2] != [1, 0] {
        return Err("unknown bucket metadata format".to_owned());
    }
    let m: RawBucketMetadata =
        rmp_serde::from_slice(&data[4..]).map_err(|_| "unreadable bucket metadata".to_owned())?;
    let mut s = BucketSettings::default();
    if let Some(raw) = present(&m.versioning) {
        let c: s3s::dto::VersioningConfiguration = xml(raw, "versioning")?;
        s.versioning = c.status.map(|s| s.as_str().to_owned());
    }
    if let Some(raw) = present(&m.object_lock) {
        let c: s3s::dto::ObjectLockConfiguration = xml(raw, "object lock")?;
        s.object_lock = Some(
            validate_lock_configuration(Some(c))
                .map_err(|_| "invalid object lock configuration".to_owned())?,
        );
    } else if m.lock_enabled {
        s.object_lock = Some(LockConfig::default());
    }
    s.policy = present(&m.policy).map(|p| String::from_utf8_lossy(p).into_owned());
    s.lifecycle = present(&m.lifecycle).map(<[u8]>::to_vec);
    s.encryption = present(&m.encryption).map(<[u8]>::to_vec);
    s.tagging = present(&m.tagging).map(<[u8]>::to_vec);
    for (name, field) in [
        ("notification", &m.notification),
        ("quota", &m.quota),
        ("replication", &m.replication),
    ] {
        if present(field).is_some() {
            s.not_imported.push(name);
        }
    }
    Ok(s)
}
