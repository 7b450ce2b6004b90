//! The background scanner: every [`super::scan_interval`] it walks the buckets that have a
//! lifecycle configuration and applies it.
//!
//! Safe with several processes on one data directory: a scan runs only while its process holds
//! `DIR/.coffer/lifecycle.lock` (a non-blocking `flock`, so the others skip that round), and
//! every action re-checks its condition under the key's lock at the moment it acts — an
//! expiration only if the version it decided on is still the latest, a removal only if the
//! version is still unprotected — so a write, a retention or a legal hold set after the decision
//! always wins. A version under retention or legal hold is never removed.
use std::io;

use serde::Deserialize;

use super::{Action, LifecycleConfig, decide, protected};
use crate::storage::{StorageError, Store, Versioning};

/// The bucket configuration file of lifecycle rules.
pub const CONFIG: &str = "lifecycle";

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    /// Current versions expired (delete markers added, or unversioned objects deleted).
    pub expired: usize,
    /// Versions (noncurrent ones, lone delete markers) removed.
    pub removed: usize,
    /// Multipart uploads aborted.
    pub aborted: usize,
    /// Whether another process held the scan lock (nothing was done).
    pub skipped: bool,
}

/// What the scanner reads of a multipart upload's `upload.json`.
#[derive(Deserialize)]
struct UploadStart {
    key: String,
    created_ms: i64,
}

/// Starts the scanner on the current runtime.
pub fn spawn(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = super::scan_interval();
        loop {
            tokio::time::sleep(every).await;
            match scan_once(&store, now_ms()).await {
                Ok(r) if r.expired + r.removed + r.aborted > 0 => tracing::info!(
                    expired = r.expired,
                    removed = r.removed,
                    aborted = r.aborted,
                    "lifecycle scan"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lifecycle scan failed"),
            }
        }
    })
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// One scan of every bucket at time `now` (Unix milliseconds).
pub async fn scan_once(store: &Store, now: i64) -> Result<ScanReport, StorageError> {
    let lease_path = store.system_dir().join("lifecycle.lock");
    let lease = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lease_path)?;
    match lease.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Ok(ScanReport {
                skipped: true,
                ..Default::default()
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    let mut report = ScanReport::default();
    let day_ms = super::day_seconds() as i64 * 1000;
    for (bucket, _) in store.list_buckets().await? {
        let config: LifecycleConfig = match store.read_bucket_json(&bucket, CONFIG).await {
            Ok(Some(c)) => c,
            Err(StorageError::Damaged) => {
                tracing::warn!(bucket, "lifecycle configuration is damaged; skipped");
                continue;
            }
            Ok(None) | Err(StorageError::NoSuchBucket) => continue,
            Err(e) => return Err(e),
        };
        let rules: Vec<_> = config.rules.into_iter().filter(|r| r.enabled).collect();
        if rules.is_empty() {
            continue;
        }
        let mode = match store.versioning(&bucket).await {
            Ok(m) => m,
            Err(StorageError::NoSuchBucket) => continue,
            Err(e) => return Err(e),
        };
        let keys = match store.list_version_keys(&bucket, "", false).await {
            Ok(k) => k,
            Err(StorageError::NoSuchBucket) => continue,
            Err(e) => return Err(e),
        };
        for key in keys {
            let versions = match store.key_versions(&bucket, &key).await {
                Ok(v) => v,
                Err(StorageError::NoSuchBucket) => break,
                Err(e) => return Err(e),
            };
            let versioned = mode != Versioning::Unversioned;
            for action in decide(&rules, &key, &versions, versioned, now, day_ms) {
                let done = match action {
                    Action::ExpireCurrent {
                        version_id: Some(id),
                    } => store
                        .put_delete_marker_if(&bucket, &key, mode, now, Some(id))
                        .await
                        .map(|_| &mut report.expired),
                    Action::ExpireCurrent { version_id: None } => {
                        let m = &versions[0].meta;
                        store
                            .delete_object_if_unchanged(&bucket, &key, &m.etag, m.modified_ms)
                            .await
                            .map(|_| &mut report.expired)
                    }
                    Action::RemoveVersion(id) => store
                        .delete_version(&bucket, &key, &id, move |m| !protected(m, now))
                        .await
                        .map(|_| &mut report.removed),
                };
                match done {
                    Ok(counter) => *counter += 1,
                    // Changed since the decision: the next scan decides again.
                    Err(StorageError::Refused | StorageError::NoSuchKey) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if rules.iter().any(|r| r.abort_multipart_days.is_some()) {
            report.aborted += abort_uploads(store, &bucket, &rules, now, day_ms)?;
        }
    }
    drop(lease);
    Ok(report)
}

/// Aborts the bucket's multipart uploads that a rule says are too old.
fn abort_uploads(
    store: &Store,
    bucket: &str,
    rules: &[super::Rule],
    now: i64,
    day_ms: i64,
) -> io::Result<usize> {
    let rd = match std::fs::read_dir(store.uploads_dir(bucket)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut aborted = 0;
    for e in rd.flatten() {
        let Ok(raw) = std::fs::read(e.path().join("upload.json")) else {
            continue;
        };
        let Ok(u) = serde_json::from_slice::<UploadStart>(&raw) else {
            continue;
        };
        let old = |days: i32| u.created_ms + i64::from(days) * day_ms <= now;
        if rules
            .iter()
            .any(|r| r.matches_key(&u.key) && r.abort_multipart_days.is_some_and(old))
            && store.remove_upload_dir(&e.path()).unwrap_or(false)
        {
            aborted += 1;
        }
    }
    Ok(aborted)
}
