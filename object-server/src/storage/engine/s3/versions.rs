//! A versioned backend bucket: what the gateway's own writes and deletes leave behind there is
//! purged, so an unversioned Coffer bucket keeps no old ciphertext (see "A versioned backend
//! bucket" in [`super`]).
use reqwest::StatusCode;
use rusty_s3::S3Action;

use super::client::Body;
use super::{S3Store, unexpected, url_decode, xml_text};
use crate::console::xml::{ListVersions, Versioning, parse};
use crate::storage::StorageError;

/// One version or delete marker of a backend key, as ListObjectVersions lists it.
struct BackendVersion {
    id: String,
    /// The backend's `LastModified` (ISO 8601, one format per backend: comparable as text).
    modified: String,
    marker: bool,
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
        let c = &self.client;
        let mut out = Vec::new();
        let mut next: Option<(String, String)> = None;
        loop {
            let mut action = c.bucket.get_object(Some(&c.creds), "");
            let q = action.query_mut();
            q.insert("versions", "");
            q.insert("prefix", k.to_owned());
            q.insert("encoding-type", "url");
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
                // The prefix also finds longer keys: only `k` itself counts.
                if decode(&e.key).as_deref() == Some(k) {
                    out.push(BackendVersion {
                        id: e.version_id.clone(),
                        modified: e.last_modified.clone(),
                        marker,
                    });
                }
            }
            let (Some(key), Some(version)) = (page.next_key_marker, page.next_version_id_marker)
            else {
                break;
            };
            let key: String =
                decode(key.as_str()).ok_or_else(|| unreadable("list versions", &key))?;
            if !page.is_truncated || key != k {
                break;
            }
            next = Some((key, version));
        }
        // Versions newest first as listed; markers too, but they came in their own list.
        out.sort_by_key(|v| v.marker);
        Ok(out)
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
