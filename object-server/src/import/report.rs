//! What an import did (or, in a dry run, would do): counts, the version ids it gave, and every
//! item it could not import with the reason. Printed as text, or as JSON for scripts.
use std::collections::BTreeMap;

use serde::Serialize;

/// An item left out, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// The bucket (empty for IAM items).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bucket: String,
    /// The IAM item (`user NAME`, `policy NAME`, `group NAME`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iam: Option<String>,
    /// The object key (`None`: the whole bucket or its configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// MinIO's version id (`None`: the null version, or the whole object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// A version's MinIO id and the id Coffer gave it (Coffer's ids keep the order of versions
/// and are not UUIDs).
#[derive(Debug, Clone, Serialize)]
pub struct VersionIdMap {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub object: String,
    /// MinIO's version id.
    pub minio: String,
    /// Coffer's version id.
    pub coffer: String,
}

/// The outcome of an import.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Buckets imported (created, or found and filled).
    pub buckets: Vec<String>,
    /// Keys with at least one version imported.
    pub objects: u64,
    /// Object versions imported (delete markers not counted).
    pub versions: u64,
    /// Delete markers imported.
    pub delete_markers: u64,
    /// Plaintext bytes imported.
    pub bytes: u64,
    /// Versions and delete markers a previous run had already copied, left as they are (the
    /// online migration's resume).
    #[serde(skip_serializing_if = "is_zero")]
    pub resumed: u64,
    /// Shard blocks that were missing, short or failed their bitrot hash, rebuilt from parity.
    pub healed_shards: u64,
    /// Versions MinIO had encrypted, by mode (`SSE-S3`, `SSE-KMS`, `SSE-C`), imported or not.
    pub encrypted: BTreeMap<String, u64>,
    /// Bucket settings imported, by bucket.
    pub bucket_settings: BTreeMap<String, Vec<String>>,
    /// Users imported (access keys), with their secret keys and policies.
    pub users: Vec<String>,
    /// Policies imported (MinIO's built-ins are Coffer's built-ins and not counted).
    pub policies: Vec<String>,
    /// Everything left out.
    pub skipped: Vec<Skipped>,
    /// New version ids.
    pub version_ids: Vec<VersionIdMap>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Report {
    pub(crate) fn skip(
        &mut self,
        bucket: &str,
        object: Option<&str>,
        version_id: Option<&str>,
        reason: impl std::fmt::Display,
    ) {
        self.skipped.push(Skipped {
            bucket: bucket.to_owned(),
            iam: None,
            object: object.map(str::to_owned),
            version_id: version_id.map(str::to_owned),
            reason: reason.to_string(),
        });
    }

    /// Adds the counts and lists of `other` (an import of other objects) to this report.
    pub(crate) fn merge(&mut self, other: Report) {
        self.buckets.extend(other.buckets);
        self.objects += other.objects;
        self.versions += other.versions;
        self.delete_markers += other.delete_markers;
        self.bytes += other.bytes;
        self.resumed += other.resumed;
        self.healed_shards += other.healed_shards;
        for (mode, n) in other.encrypted {
            *self.encrypted.entry(mode).or_default() += n;
        }
        self.bucket_settings.extend(other.bucket_settings);
        self.users.extend(other.users);
        self.policies.extend(other.policies);
        self.skipped.extend(other.skipped);
        self.version_ids.extend(other.version_ids);
    }

    pub(crate) fn skip_iam(&mut self, what: &str, reason: impl std::fmt::Display) {
        self.skipped.push(Skipped {
            bucket: String::new(),
            iam: Some(what.to_owned()),
            object: None,
            version_id: None,
            reason: reason.to_string(),
        });
    }

    /// The report as text for a person.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        let mib = self.bytes as f64 / (1024.0 * 1024.0);
        s.push_str(&format!(
            "{verb}: {} buckets, {} objects, {} versions, {} delete markers, {} bytes ({mib:.1} MiB) in {:.1} s",
            self.buckets.len(),
            self.objects,
            self.versions,
            self.delete_markers,
            self.bytes,
            self.seconds
        ));
        if self.seconds > 0.0 && !self.dry_run {
            s.push_str(&format!(
                " ({:.1} MiB/s, {:.1} versions/s)",
                mib / self.seconds,
                self.versions as f64 / self.seconds
            ));
        }
        s.push('\n');
        if self.resumed > 0 {
            s.push_str(&format!(
                "already copied by a previous run, left as they are: {} versions and delete markers\n",
                self.resumed
            ));
        }
        if self.healed_shards > 0 {
            s.push_str(&format!(
                "shard blocks missing or damaged, rebuilt from parity: {}\n",
                self.healed_shards
            ));
        }
        for (mode, n) in &self.encrypted {
            s.push_str(&format!("encrypted by MinIO with {mode}: {n} versions\n"));
        }
        for (bucket, settings) in self.bucket_settings.iter().filter(|(_, s)| !s.is_empty()) {
            s.push_str(&format!("bucket {bucket}: {}\n", settings.join(", ")));
        }
        s.push_str(&format!(
            "users: {} ({}); policies: {} ({})\n",
            self.users.len(),
            self.users.join(", "),
            self.policies.len(),
            self.policies.join(", ")
        ));
        s.push_str(&format!("skipped: {}\n", self.skipped.len()));
        for k in &self.skipped {
            let mut what = k.iam.clone().unwrap_or_else(|| k.bucket.clone());
            if let Some(o) = &k.object {
                what = format!("{what}/{o}");
            }
            if let Some(v) = &k.version_id {
                what = format!("{what} (version {v})");
            }
            s.push_str(&format!("  {what}: {}\n", k.reason));
        }
        s
    }
}
