//! A versioned backend bucket: what the gateway's own writes and deletes leave behind there is
//! purged, so an unversioned Coffer bucket keeps no old ciphertext; a Coffer bucket with
//! versioning Enabled keeps its versions as the backend's (see "A versioned backend bucket" and
//! "Versioning passed through" in [`super`]).
use std::sync::Arc;

use reqwest::StatusCode;
use rusty_s3::S3Action;

use super::client::Body;
use super::{KEY_END, OpenedAt, S3Store, names, unexpected, url_decode, xml_text};
use crate::console::xml::{ListVersions, Versioning, parse};
use crate::storage::engine::StoredObject;
use crate::storage::layout::NULL_VERSION;
use crate::storage::{DeleteOutcome, ObjectMeta, StorageError, VersionInfo, layout};

/// The `version_id` a version written into a versioned Coffer bucket carries in its trailer:
/// its id is the backend's, known only once it is stored, and put in its place when it is
/// opened. A trailer without one is the null version (written while the bucket kept none).
pub const BACKEND_VERSION: &str = "backend";

/// The name of the bucket configuration document that holds a Coffer bucket's versioning
/// state in the backend (its content: `Enabled`).
pub const VERSIONING_DOC: &str = "versioning";

/// One version or delete marker of a backend key, as ListObjectVersions lists it.
struct BackendVersion {
    /// The backend key (decoded).
    key: String,
    id: String,
    is_latest: bool,
    /// The backend's `LastModified` (ISO 8601, one format per backend: comparable as text).
    modified: String,
    marker: bool,
}

/// Milliseconds since the epoch of a listing's `LastModified`.
fn modified_ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or(0)
}

fn unreadable(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("{what}: unreadable answer: {e}"))
}

impl S3Store {
    /// Whether the backend bucket keeps versions (versioning Enabled or Suspended: either way
    /// writes can leave old versions), asked once per process.
    pub(super) async fn backend_versioned(&self) -> Result<bool, StorageError> {
        self.versioned
            .get_or_try_init(|| async {
                let c = &self.client;
                let mut action = c.bucket.get_object(Some(&c.creds), "");
                action.query_mut().insert("versioning", "");
                let a = c.send(action, &[], Body::Empty).await?;
                if a.status != StatusCode::OK {
                    return Err(unexpected("versioning", &a));
                }
                let v: Versioning = parse(&a.body).map_err(|e| unreadable("versioning", e))?;
                Ok(v.status.is_some_and(|s| !s.trim().is_empty()))
            })
            .await
            .copied()
    }

    /// Every version and delete marker of backend key `k`; the versions newest first, then
    /// the markers newest first.
    async fn versions_of(&self, k: &str) -> Result<Vec<BackendVersion>, StorageError> {
        let mut out = self.versions_under(k, Some(k), None).await?;
        out.sort_by_key(|v| v.marker);
        Ok(out)
    }

    /// Every version and delete marker of the backend keys under `prefix` (only of `only`, if
    /// given), in the backend's order per list.
    async fn versions_under(
        &self,
        prefix: &str,
        only: Option<&str>,
        first_page_of: Option<usize>,
    ) -> Result<Vec<BackendVersion>, StorageError> {
        let c = &self.client;
        let mut out = Vec::new();
        let mut next: Option<(String, String)> = None;
        loop {
            let mut action = c.bucket.get_object(Some(&c.creds), "");
            let q = action.query_mut();
            q.insert("versions", "");
            q.insert("prefix", prefix.to_owned());
            q.insert("encoding-type", "url");
            if let Some(n) = first_page_of {
                q.insert("max-keys", n.to_string());
            }
            if let Some((key, version)) = &next {
                q.insert("key-marker", key.clone());
                q.insert("version-id-marker", version.clone());
            }
            let a = c.send(action, &[], Body::Empty).await?;
            if a.status != StatusCode::OK {
                return Err(unexpected("list versions", &a));
            }
            let text = xml_text(&a).ok_or_else(|| unexpected("list versions", &a))?;
            let page: ListVersions =
                parse(text.as_bytes()).map_err(|e| unreadable("list versions", e))?;
            let encoded = page.encoding_type.as_deref() == Some("url");
            let decode = |s: &str| {
                if encoded {
                    url_decode(s)
                } else {
                    Some(s.to_owned())
                }
            };
            let entries = page.version.iter().map(|e| (e, false));
            for (e, marker) in entries.chain(page.delete_marker.iter().map(|e| (e, true))) {
                let Some(key) = decode(&e.key) else { continue };
                // The prefix also finds longer keys.
                if only.is_some_and(|k| k != key) {
                    continue;
                }
                out.push(BackendVersion {
                    key,
                    id: e.version_id.clone(),
                    is_latest: e.is_latest,
                    modified: e.last_modified.clone(),
                    marker,
                });
            }
            let (Some(key), Some(version)) = (page.next_key_marker, page.next_version_id_marker)
            else {
                break;
            };
            if first_page_of.is_some() {
                break;
            }
            let key: String =
                decode(key.as_str()).ok_or_else(|| unreadable("list versions", &key))?;
            if !page.is_truncated || only.is_some_and(|k| k != key) {
                break;
            }
            next = Some((key, version));
        }
        Ok(out)
    }

    /// Whether any version or delete marker is stored under `prefix`.
    pub(super) async fn any_version_under(&self, prefix: &str) -> Result<bool, StorageError> {
        Ok(!self.versions_under(prefix, None, Some(1)).await?.is_empty())
    }

    /// Whether Coffer bucket `bucket` (id `id`) keeps versions: its versioning document says
    /// Enabled (it is only ever written over a versioned backend bucket).
    pub(super) async fn keeps_versions_of(
        &self,
        bucket: &str,
        id: &str,
    ) -> Result<bool, StorageError> {
        if !self.backend_versioned().await? {
            return Ok(false);
        }
        let doc = self
            .get_doc(&Self::config_key(bucket, id, VERSIONING_DOC))
            .await?;
        Ok(doc.is_some_and(|d| d.as_ref() == b"Enabled"))
    }

    /// The backend id of the null version of backend key `k`, if it has one: its oldest
    /// version, if that one was written while the bucket kept no versions.
    async fn null_version(&self, k: &str) -> Result<Option<String>, StorageError> {
        let all = self.versions_of(k).await?;
        let Some(oldest) = all.iter().rev().find(|v| !v.marker) else {
            return Ok(None);
        };
        match self.open_version_at(k, Some(&oldest.id)).await? {
            OpenedAt::Object { meta, .. } if meta.version_id.is_none() => {
                Ok(Some(oldest.id.clone()))
            }
            _ => Ok(None),
        }
    }

    /// The backend version a Coffer version id names (`null`: the null version, if any).
    async fn resolve(&self, k: &str, version: &str) -> Result<Option<String>, StorageError> {
        if version == NULL_VERSION {
            self.null_version(k).await
        } else {
            Ok(Some(version.to_owned()))
        }
    }

    pub(super) async fn open_backend_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<StoredObject, StorageError> {
        layout::key_dir(key)?;
        let id = self.bucket_id(bucket).await?;
        let k = Self::object_key(bucket, &id, key);
        let version = match version {
            Some(v) => Some(
                self.resolve(&k, v)
                    .await?
                    .ok_or(StorageError::NoSuchVersion)?,
            ),
            None => None,
        };
        match self.open_version_at(&k, version.as_deref()).await? {
            OpenedAt::Object {
                mut meta,
                body_len,
                etag,
                version: stored,
            } => {
                // The null version keeps `None`: the handlers name it.
                if meta.version_id.is_some() {
                    meta.version_id = stored.clone();
                }
                Ok(StoredObject {
                    meta: *meta,
                    body_len,
                    body: Arc::new(self.body_of(k, etag, stored, body_len)),
                })
            }
            OpenedAt::DeleteMarker { version } => Ok(StoredObject {
                meta: ObjectMeta {
                    delete_marker: true,
                    version_id: version,
                    ..Default::default()
                },
                body_len: 0,
                body: Arc::new(self.body_of(k, String::new(), None, 0)),
            }),
        }
    }

    pub(super) async fn delete_backend_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<DeleteOutcome, StorageError> {
        layout::key_dir(key)?;
        let id = self.bucket_id(bucket).await?;
        let k = Self::object_key(bucket, &id, key);
        let c = &self.client;
        let mut action = c.bucket.delete_object(Some(&c.creds), &k);
        if let Some(v) = version {
            match self.resolve(&k, v).await? {
                Some(backend) => {
                    action.query_mut().insert("versionId", backend);
                }
                // No null version: nothing to delete, as S3 answers.
                None => {
                    return Ok(DeleteOutcome {
                        version_id: Some(v.to_owned()),
                        delete_marker: false,
                    });
                }
            }
        }
        let a = c.send(action, &[], Body::Empty).await?;
        match a.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(DeleteOutcome {
                version_id: match version {
                    Some(v) => Some(v.to_owned()),
                    None => a.version_id,
                },
                delete_marker: a.delete_marker,
            }),
            StatusCode::BAD_REQUEST if version.is_some() => Err(StorageError::NoSuchVersion),
            _ => Err(unexpected(&k, &a)),
        }
    }

    pub(super) async fn backend_key_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<VersionInfo>, StorageError> {
        layout::key_dir(key)?;
        let id = self.bucket_id(bucket).await?;
        let k = Self::object_key(bucket, &id, key);
        let mut all = self.versions_of(&k).await?;
        // Versions and markers come in two lists: newest first across both, the latest first
        // among equal times.
        all.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then(b.is_latest.cmp(&a.is_latest))
        });
        let mut out = Vec::with_capacity(all.len());
        for v in all {
            if v.marker {
                out.push(VersionInfo {
                    version_id: v.id.clone(),
                    meta: ObjectMeta {
                        delete_marker: true,
                        version_id: Some(v.id),
                        modified_ms: modified_ms(&v.modified),
                        ..Default::default()
                    },
                    is_latest: v.is_latest,
                });
                continue;
            }
            let mut meta = match self.open_version_at(&k, Some(&v.id)).await {
                Ok(OpenedAt::Object { meta, .. }) => *meta,
                // Deleted since it was listed.
                Ok(OpenedAt::DeleteMarker { .. }) | Err(StorageError::NoSuchVersion) => continue,
                Err(e) => return Err(e),
            };
            let version_id = match meta.version_id {
                Some(_) => v.id,
                None => NULL_VERSION.to_owned(),
            };
            meta.version_id = Some(version_id.clone());
            out.push(VersionInfo {
                version_id,
                meta,
                is_latest: v.is_latest,
            });
        }
        Ok(out)
    }

    pub(super) async fn backend_version_keys(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<String>, StorageError> {
        let id = self.bucket_id(bucket).await?;
        let base = format!("{bucket}/{id}/");
        let all = self
            .versions_under(&format!("{base}{}", names::encode(prefix)), None, None)
            .await?;
        let mut keys: Vec<String> = all
            .into_iter()
            .filter_map(|v| {
                let k = v.key.strip_prefix(&base)?.strip_suffix(KEY_END)?;
                Some(names::decode(k))
            })
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn delete_version(&self, k: &str, version: &str) -> Result<(), StorageError> {
        let c = &self.client;
        let mut action = c.bucket.delete_object(Some(&c.creds), k);
        action.query_mut().insert("versionId", version.to_owned());
        let a = c.send(action, &[], Body::Empty).await?;
        match a.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(unexpected(k, &a)),
        }
    }

    /// Deletes backend key `k` for good: every version and marker by id on a versioned backend
    /// bucket (a plain DELETE would only add a marker), else the object.
    pub(super) async fn remove_all_versions(&self, k: &str) -> Result<(), StorageError> {
        for v in self.versions_of(k).await? {
            self.delete_version(k, &v.id).await?;
        }
        Ok(())
    }

    /// After a write made version `kept` of backend key `k` (`None`: the backend keeps no
    /// versions): deletes the versions and markers of `k` older than it, never a newer one (a
    /// writer racing with us keeps its version). A failure only leaves an old version, which
    /// the key's next write purges: it is logged, and the write it follows stands.
    pub(super) async fn purge_older(&self, k: &str, kept: Option<&str>) {
        let Some(kept) = kept else { return };
        if let Err(e) = self.try_purge_older(k, kept).await {
            tracing::warn!(error = %e, "old backend versions of a key were not removed");
        }
    }

    async fn try_purge_older(&self, k: &str, kept: &str) -> Result<(), StorageError> {
        if !self.backend_versioned().await? {
            return Ok(());
        }
        let all = self.versions_of(k).await?;
        let Some(pos) = all.iter().position(|v| !v.marker && v.id == kept) else {
            // Gone already: a delete after our write removed it and what was older.
            return Ok(());
        };
        let written = all[pos].modified.clone();
        for (i, v) in all.iter().enumerate() {
            let older = if v.marker {
                v.modified < written
            } else {
                i > pos
            };
            if older {
                self.delete_version(k, &v.id).await?;
            }
        }
        Ok(())
    }
}
