//! Bucket configuration files (`DIR/<bucket>/.<name>.json`), cached by their [`Stamp`], and
//! [`Store::read_bucket_json`] / [`Store::write_bucket_json`], the one way the S3 settings kept
//! as JSON (CORS, tagging, lifecycle, default encryption, object lock) are read and written.
//!
//! Every object request asks for some of them (a PUT for the versioning state and the default
//! encryption, a GET for the versioning state), and each read was a trip to the blocking pool.
//! The cache answers after one `stat` on the calling thread; the file is read again only when
//! its stamp changed. Every writer renames a new file into place, so a change made by any process
//! on the directory changes the stamp and is seen by the next request.
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::stamp::Stamp;
use super::{StorageError, Store};

impl Store {
    /// The bucket configuration file `name` as a `T`: `None` if it does not exist,
    /// [`StorageError::Damaged`] if it does not parse (never taken for "not set": a damaged
    /// setting must not silently weaken what the bucket's owner asked for).
    pub async fn read_bucket_json<T: DeserializeOwned>(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        let Some(raw) = self.read_bucket_config(bucket, name).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| StorageError::Damaged)
    }

    /// Atomically replaces the bucket configuration file `name` with `value` as JSON
    /// (remove one with [`Store::write_bucket_config`] and `None`).
    pub async fn write_bucket_json<T: Serialize>(
        &self,
        bucket: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StorageError> {
        let data = serde_json::to_vec(value).expect("configuration values serialize");
        self.write_bucket_config(bucket, name, Some(data)).await
    }
}

/// A file's content as of a stamp (`None`: the file did not exist).
type Cached = (Stamp, Option<Arc<[u8]>>);

/// The last read of each configuration file, by path.
#[derive(Debug, Default)]
pub(crate) struct ConfigCache(RwLock<HashMap<PathBuf, Cached>>);

impl ConfigCache {
    /// The content of `path` (`None` if it does not exist).
    pub(crate) async fn read(&self, path: PathBuf) -> io::Result<Option<Arc<[u8]>>> {
        let now = match std::fs::metadata(&path) {
            Ok(m) => Stamp::of(&m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Stamp::default(),
            // Not cached: the read below reports the error.
            Err(_) => return read_file(&path).await,
        };
        if let Some((stamp, content)) = self.0.read().expect("lock").get(&path)
            && *stamp == now
        {
            return Ok(content.clone());
        }
        // Stamped before the read: a file replaced in between is read again next time, never
        // cached as if it were the older one.
        let content = if now.exists() {
            read_file(&path).await?
        } else {
            None
        };
        self.0
            .write()
            .expect("lock")
            .insert(path, (now, content.clone()));
        Ok(content)
    }

    /// Forgets every file of the bucket directory `dir` (it was deleted).
    pub(crate) fn forget_under(&self, dir: &std::path::Path) {
        self.0
            .write()
            .expect("lock")
            .retain(|p, _| !p.starts_with(dir));
    }
}

async fn read_file(path: &std::path::Path) -> io::Result<Option<Arc<[u8]>>> {
    match tokio::fs::read(path).await {
        Ok(b) => Ok(Some(b.into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_replaced_or_removed_file_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".versioning.json");
        let cache = ConfigCache::default();
        assert_eq!(cache.read(path.clone()).await.unwrap(), None);
        // Written the way every writer writes: a new file renamed into place.
        let replace = |content: &str| {
            let tmp = dir.path().join("tmp");
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        replace("{\"status\":\"Enabled\"}");
        assert_eq!(
            cache.read(path.clone()).await.unwrap().as_deref(),
            Some(&b"{\"status\":\"Enabled\"}"[..])
        );
        // Same length, a new file: still seen.
        replace("{\"status\":\"Enablex\"}");
        assert_eq!(
            cache.read(path.clone()).await.unwrap().as_deref(),
            Some(&b"{\"status\":\"Enablex\"}"[..])
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(cache.read(path.clone()).await.unwrap(), None);
    }
}
