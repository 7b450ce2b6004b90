//! Object versions on disk (see [`super::layout`] for the picture).
//!
//! A key of a versioned bucket keeps, next to its `obj`, a directory `versions/` with one object
//! file per version, named by its version id (`null` for the null version). `obj`, when present,
//! is the latest version and a hard link to the same file in `versions/`, so a GET without a
//! version id opens one file exactly as in an unversioned bucket. When the latest version is a
//! delete marker there is no `obj`.
//!
//! **Rule of resolution** (what every reader applies, with no lock): the latest version is `obj`
//! if it exists, otherwise the newest entry of `versions/`. Where `obj` and `versions/<id>` carry
//! the same version id but are different files, `obj` is the true one.
//!
//! Every change of a key's versions happens under the lock of its `versions/` directory (an
//! exclusive `flock` of a lock file named after it, [`super::locks`]: several processes, on one
//! machine or several sharing a filesystem, may serve one directory; a lock dies with its
//! process, kill -9 included) and in an order in which every intermediate state, seen by a reader or left by a
//! crash, resolves by the rule above to either the state before the change or the one after:
//! - a new version: its file is renamed to `obj` first (so it is the latest at once), then linked
//!   into `versions/`; a crash in between leaves `obj` with one link, which the rule still reads
//!   as the latest and the next change links into `versions/` ("preserving" it);
//! - a delete marker: `obj` is preserved and unlinked first (the previous version, newest of
//!   `versions/`, is still the latest), then the marker is written into `versions/`;
//! - deleting the latest version: `obj` is unlinked, then its `versions/` entry, then the newest
//!   data version left is linked back to `obj`.
//!
//! Version ids are 24 lower-case hex digits: 16 of `u64::MAX −` the version's microsecond time
//! (newest sorts first), 8 random. Under the lock a new id is always newer than every existing
//! version of its key, so the order of ids is the order of writes. The null version sorts by its
//! modification time.
use std::io;
use std::path::{Path, PathBuf};

use super::layout::{self, NULL_VERSION, OBJECT_FILE, VERSIONS_DIR};
use super::{ObjectMeta, OpenObject, StorageError, Store, blocking, open_file};

/// How the bucket treats new writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Never versioned: one file per key, no `versions/` (the layout of every bucket before
    /// versioning existed).
    Unversioned,
    /// Every write makes a new version with a fresh id.
    Enabled,
    /// Writes replace the null version; other versions stay.
    Suspended,
}

/// One version of a key, as listed.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// Its id (`null` for the null version).
    pub version_id: String,
    /// Its metadata (a delete marker has `delete_marker` set and no body).
    pub meta: ObjectMeta,
    /// Whether it is the key's latest version.
    pub is_latest: bool,
}

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version id written (a new delete marker) or removed.
    pub version_id: Option<String>,
    /// Whether that version is (was) a delete marker.
    pub delete_marker: bool,
}

/// Whether `id` is a version id this server can have made (or `null`); anything else never
/// names a file.
pub fn valid_version_id(id: &str) -> bool {
    id == NULL_VERSION
        || (id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Microsecond time a version sorts by (newer is larger).
fn order_of(id: &str, meta: &ObjectMeta) -> u64 {
    if id != NULL_VERSION
        && let Ok(inv) = u64::from_str_radix(&id[..16.min(id.len())], 16)
    {
        return u64::MAX - inv;
    }
    (meta.modified_ms.max(0) as u64).saturating_mul(1000)
}

/// The id a version is known by.
fn id_of(meta: &ObjectMeta) -> String {
    meta.version_id
        .clone()
        .unwrap_or_else(|| NULL_VERSION.to_owned())
}

fn new_version_id(micros: u64) -> String {
    let mut r = [0u8; 4];
    rand::fill(&mut r);
    format!("{:016x}{}", u64::MAX - micros, hex::encode(r))
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

fn remove_if_exists(p: &Path) -> io::Result<bool> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The versions of the key directory `dir`, newest first (the latest first of all).
fn list_dir_versions(dir: &Path) -> Result<Vec<VersionInfo>, StorageError> {
    let vdir = dir.join(VERSIONS_DIR);
    let mut out: Vec<VersionInfo> = Vec::new();
    match std::fs::read_dir(&vdir) {
        Ok(rd) => {
            for e in rd {
                let e = e?;
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if !valid_version_id(&name) {
                    continue;
                }
                match open_file(&e.path()) {
                    Ok(o) => out.push(VersionInfo {
                        version_id: name,
                        meta: o.meta,
                        is_latest: false,
                    }),
                    Err(StorageError::NoSuchKey) => continue, // removed meanwhile
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let current = match open_file(&dir.join(OBJECT_FILE)) {
        Ok(o) => Some(o.meta),
        Err(StorageError::NoSuchKey) => None,
        Err(e) => return Err(e),
    };
    out.sort_by(|a, b| {
        order_of(&b.version_id, &b.meta)
            .cmp(&order_of(&a.version_id, &a.meta))
            .then_with(|| a.version_id.cmp(&b.version_id))
    });
    if let Some(meta) = current {
        let id = id_of(&meta);
        out.retain(|v| v.version_id != id);
        out.insert(
            0,
            VersionInfo {
                version_id: id,
                meta,
                is_latest: false,
            },
        );
    }
    if let Some(first) = out.first_mut() {
        first.is_latest = true;
    }
    Ok(out)
}

/// Whether the key directory `dir` names an object whose latest version holds data (by the rule
/// of resolution: `obj`, or the newest of `versions/`).
pub(crate) fn has_live_object(dir: &Path) -> bool {
    if dir.join(OBJECT_FILE).is_file() {
        return true;
    }
    if !dir.join(VERSIONS_DIR).is_dir() {
        return false;
    }
    newest_in_versions(dir)
        .ok()
        .flatten()
        .is_some_and(|o| !o.meta.delete_marker)
}

/// The newest entry of `versions/` of the key directory `dir`, opened: the order of every id
/// but `null` is in its name, so only the null version (if any) and the winner are opened.
fn newest_in_versions(dir: &Path) -> Result<Option<OpenObject>, StorageError> {
    let vdir = dir.join(VERSIONS_DIR);
    // A concurrent change may remove the winner between the listing and the open: look again.
    for _ in 0..3 {
        let rd = match std::fs::read_dir(&vdir) {
            Ok(rd) => rd,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut best: Option<(u64, String)> = None;
        let mut null: Option<OpenObject> = None;
        for e in rd {
            let e = e?;
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !valid_version_id(&name) {
                continue;
            }
            let order = if name == NULL_VERSION {
                match open_file(&e.path()) {
                    Ok(o) => {
                        let order = order_of(&name, &o.meta);
                        null = Some(o);
                        order
                    }
                    Err(StorageError::NoSuchKey) => continue,
                    Err(e) => return Err(e),
                }
            } else {
                order_of(&name, &ObjectMeta::default())
            };
            let better = best
                .as_ref()
                .is_none_or(|(o, n)| order > *o || (order == *o && name < *n));
            if better {
                best = Some((order, name));
            }
        }
        let Some((_, name)) = best else {
            return Ok(None);
        };
        if name == NULL_VERSION {
            return Ok(null);
        }
        match open_file(&vdir.join(&name)) {
            Err(StorageError::NoSuchKey) => continue,
            other => return other.map(Some),
        }
    }
    Ok(None)
}

/// Whether the key directory `dir` holds any version at all (delete markers included).
pub(crate) fn has_any_version(dir: &Path) -> bool {
    dir.join(OBJECT_FILE).is_file()
        || std::fs::read_dir(dir.join(VERSIONS_DIR))
            .map(|mut rd| {
                rd.any(|e| {
                    e.ok()
                        .and_then(|e| e.file_name().to_str().map(valid_version_id))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false)
}

/// The bucket configuration file of the versioning state: `{"status":"Enabled"|"Suspended"}`.
pub const VERSIONING_CONFIG: &str = "versioning";

/// The bucket configuration file of object lock (`s3::lock` owns its content); its presence
/// means the bucket was created with object lock.
pub const OBJECT_LOCK_CONFIG: &str = "object-lock";

#[derive(serde::Serialize, serde::Deserialize)]
struct VersioningFile {
    status: String,
}

/// The content of `.versioning.json` for a state.
pub fn versioning_file(enabled: bool) -> Vec<u8> {
    let status = if enabled { "Enabled" } else { "Suspended" };
    serde_json::to_vec(&VersioningFile {
        status: status.to_owned(),
    })
    .expect("serializes")
}

impl Store {
    /// The bucket's versioning state (read from disk: every process sees a change at once).
    /// A bucket with object lock is versioned from its creation (both files are renamed into
    /// place together): one whose versioning file is missing is damaged, and its writes fail
    /// rather than overwrite locked versions unversioned.
    pub async fn versioning(&self, bucket: &str) -> Result<Versioning, StorageError> {
        let Some(raw) = self.read_bucket_config(bucket, VERSIONING_CONFIG).await? else {
            if self
                .read_bucket_config(bucket, OBJECT_LOCK_CONFIG)
                .await?
                .is_some()
            {
                tracing::error!(%bucket, "an object lock bucket has no versioning file; writes refused");
                return Err(StorageError::Damaged);
            }
            return Ok(Versioning::Unversioned);
        };
        let f: VersioningFile = serde_json::from_slice(&raw).map_err(|_| StorageError::Damaged)?;
        Ok(if f.status == "Enabled" {
            Versioning::Enabled
        } else {
            Versioning::Suspended
        })
    }

    /// Sets the bucket's versioning state (`Enabled` or `Suspended`; never back to unversioned).
    pub async fn set_versioning(&self, bucket: &str, enabled: bool) -> Result<(), StorageError> {
        self.write_bucket_config(bucket, VERSIONING_CONFIG, Some(versioning_file(enabled)))
            .await
    }

    pub(crate) fn key_path(&self, bucket: &str, key: &str) -> Result<PathBuf, StorageError> {
        self.require_bucket(bucket)?;
        Ok(layout::bucket_dir(self.root(), bucket).join(layout::key_dir(key)?))
    }

    /// The latest version of a key, delete markers included (`meta.delete_marker`).
    pub async fn open_latest(&self, bucket: &str, key: &str) -> Result<OpenObject, StorageError> {
        let dir = self.key_path(bucket, key)?;
        blocking(move || {
            match open_file(&dir.join(OBJECT_FILE)) {
                Err(StorageError::NoSuchKey) => {}
                other => return other,
            }
            // No `obj`: the newest of `versions/` is the latest (a delete marker, or a version
            // a crash or a concurrent change left without its `obj` link).
            newest_in_versions(&dir)?.ok_or(StorageError::NoSuchKey)
        })
        .await
    }

    /// One version of a key by id (`null` for the null version).
    pub async fn open_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<OpenObject, StorageError> {
        if !valid_version_id(version_id) {
            return Err(StorageError::NoSuchVersion);
        }
        let dir = self.key_path(bucket, key)?;
        let id = version_id.to_owned();
        blocking(move || {
            // `obj` is the true copy of its version (see the rule of resolution).
            match open_file(&dir.join(OBJECT_FILE)) {
                Ok(o) if id_of(&o.meta) == id => return Ok(o),
                Ok(_) | Err(StorageError::NoSuchKey) => {}
                Err(e) => return Err(e),
            }
            match open_file(&dir.join(VERSIONS_DIR).join(&id)) {
                Err(StorageError::NoSuchKey) => Err(StorageError::NoSuchVersion),
                other => other,
            }
        })
        .await
    }

    /// Every version of one key, newest first (`is_latest` on the first).
    pub async fn key_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<VersionInfo>, StorageError> {
        let dir = self.key_path(bucket, key)?;
        blocking(move || list_dir_versions(&dir)).await
    }
}

mod write;

#[cfg(test)]
mod tests;
