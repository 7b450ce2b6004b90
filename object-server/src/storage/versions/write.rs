//! Changes of a key's versions, each under the key's lock and in the order the parent module
//! documents.
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{
    VersionInfo, Versioning, id_of, list_dir_versions, new_version_id, not_found, now_micros,
    order_of, remove_if_exists, valid_version_id,
};
use crate::storage::layout::{NULL_VERSION, OBJECT_FILE, VERSIONS_DIR};
use crate::storage::parts::{PartsLock, UploadParts, sweep};
use crate::storage::{
    BucketGuard, ObjectMeta, ObjectWriter, StorageError, Store, WriteCondition, blocking,
    fsync_dir, lock_dir, open_file, random_name,
};

/// A key's directory while its versions are locked.
struct LockedKey {
    dir: PathBuf,
    vdir: PathBuf,
    /// The store's temp directory: a second name for a file is made there and renamed into
    /// place, so a crash leaves nothing behind in `versions/` (the start-up sweep removes it).
    tmp: PathBuf,
    _lock: std::fs::File,
    /// Held first and released last: the bucket is not deleted meanwhile.
    _bucket: BucketGuard,
}

impl LockedKey {
    /// Creates `versions/` if needed and takes its lock (blocking), after the guard of the
    /// bucket directory `bucket` ([`StorageError::NoSuchBucket`] if it was deleted).
    fn lock(bucket: &Path, dir: PathBuf, tmp: PathBuf) -> Result<Self, StorageError> {
        let guard = BucketGuard::take(bucket, true)?;
        let vdir = dir.join(VERSIONS_DIR);
        let lock = lock_dir(&vdir, true)?.expect("created");
        Ok(Self {
            dir,
            vdir,
            tmp,
            _lock: lock,
            _bucket: guard,
        })
    }

    /// The ETag of the key's latest version, `None` if it has none or it is a delete marker
    /// (what a write condition is decided against).
    fn latest_etag(&self) -> Result<Option<String>, StorageError> {
        let latest = match open_file(&self.obj()) {
            Ok(o) => Some(o.meta),
            Err(StorageError::NoSuchKey) => self.versions()?.into_iter().next().map(|v| v.meta),
            Err(e) => return Err(e),
        };
        Ok(latest.filter(|m| !m.delete_marker).map(|m| m.etag))
    }

    fn obj(&self) -> PathBuf {
        self.dir.join(OBJECT_FILE)
    }

    /// The current `obj`, if any, with its link count.
    fn current(&self) -> Result<Option<(ObjectMeta, u64)>, StorageError> {
        match open_file(&self.obj()) {
            Ok(o) => {
                let links = o.file.metadata()?.nlink();
                Ok(Some((o.meta, links)))
            }
            Err(StorageError::NoSuchKey) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes sure the current `obj` also lives in `versions/` (an object written before the
    /// bucket was versioned, a null version of a suspended bucket, or a version whose link a
    /// crash prevented), unless it is the null version and `drop_null` says it is being replaced.
    fn preserve_current(&self, drop_null: bool) -> Result<(), StorageError> {
        let Some((meta, links)) = self.current()? else {
            return Ok(());
        };
        let id = id_of(&meta);
        if links > 1 || (drop_null && id == NULL_VERSION) {
            return Ok(());
        }
        self.link_in(&self.obj(), &id)?;
        Ok(())
    }

    /// Links `src` as `versions/<id>`, replacing what is there.
    fn link_in(&self, src: &Path, id: &str) -> io::Result<()> {
        let dest = self.vdir.join(id);
        match std::fs::hard_link(src, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.replace_with_link(src, &dest)?;
            }
            Err(e) => return Err(e),
        }
        fsync_dir(&self.vdir)
    }

    /// Atomically makes `dest` another name of `src` (replacing what `dest` was).
    fn replace_with_link(&self, src: &Path, dest: &Path) -> io::Result<()> {
        let tmp = self.tmp.join(random_name());
        std::fs::hard_link(src, &tmp)?;
        std::fs::rename(&tmp, dest).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// Every version in `versions/` plus `obj`, newest first; `obj` is first when present.
    fn versions(&self) -> Result<Vec<VersionInfo>, StorageError> {
        list_dir_versions(&self.dir)
    }

    /// A new version id newer than every version of this key, made from the time `at`
    /// (microseconds; now when `None`) unless an existing version is as new.
    fn next_id(&self, at: Option<u64>) -> Result<String, StorageError> {
        let newest = self
            .versions()?
            .iter()
            .map(|v| order_of(&v.version_id, &v.meta))
            .max()
            .unwrap_or(0);
        Ok(new_version_id(
            at.unwrap_or_else(now_micros).max(newest + 1),
        ))
    }

    /// When the key has no version left, removes `versions/` (while locked: a waiter finds its
    /// lock stale and starts over) and then every key directory up to `stop` (the bucket's)
    /// that is left empty, so nothing of a fully deleted key remains.
    fn prune_if_empty(&self, stop: &Path) -> io::Result<()> {
        if self.obj().exists() {
            return Ok(());
        }
        // Only version files live in `versions/` (second names are made in the temp
        // directory), so an empty directory means no version: `remove_dir` refuses otherwise.
        match std::fs::remove_dir(&self.vdir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty || not_found(&e) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let mut dir = Some(self.dir.as_path());
        while let Some(d) = dir {
            if d == stop || !d.starts_with(stop) || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        if let Some(d) = dir {
            match fsync_dir(d) {
                // Pruned meanwhile by the removal of a sibling key (which fsynced its parent).
                Err(e) if not_found(&e) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Links the newest data version to `obj` if the newest version is not a delete marker.
    fn promote_newest(&self) -> Result<(), StorageError> {
        if self.obj().exists() {
            return Ok(());
        }
        let versions = self.versions()?;
        if let Some(v) = versions.first()
            && !v.meta.delete_marker
        {
            std::fs::hard_link(self.vdir.join(&v.version_id), self.obj())?;
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl Store {
    /// Takes the lock of a versioned key (after the bucket's guard).
    async fn lock_key(&self, bucket: &str, key: &str) -> Result<LockedKey, StorageError> {
        let dir = self.key_path(bucket, key)?;
        let (tmp, bucket_dir) = (
            self.tmp_dir(),
            crate::storage::layout::bucket_dir(self.root(), bucket),
        );
        blocking(move || LockedKey::lock(&bucket_dir, dir, tmp)).await
    }

    /// Commits a written body as a new version: a fresh id when `mode` is
    /// [`Versioning::Enabled`], the null version (replacing the old one) when it is
    /// [`Versioning::Suspended`]. Sets `meta.version_id` and returns the id.
    pub async fn commit_version(
        &self,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        bucket: &str,
        key: &str,
        mode: Versioning,
        upload: Option<UploadParts>,
    ) -> Result<String, StorageError> {
        let unconditional = WriteCondition::default();
        self.commit_version_if(writer, meta, bucket, key, mode, upload, &unconditional)
            .await
    }

    /// [`Store::commit_version`] if `condition` holds for the key's latest version, decided
    /// under the key's lock (see [`crate::storage::WriteCondition::check`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_version_if(
        &self,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        bucket: &str,
        key: &str,
        mode: Versioning,
        upload: Option<UploadParts>,
        condition: &WriteCondition,
    ) -> Result<String, StorageError> {
        self.commit_version_at(writer, meta, bucket, key, mode, upload, condition, None)
            .await
    }

    /// Commits a version imported from another store (`crate::import`), keeping the order of
    /// its versions: its id is made from `id_micros` (its modification time there) rather than
    /// now, so versions imported oldest first keep their order, also against a null version
    /// (which sorts by its modification time).
    pub async fn commit_imported_version(
        &self,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        bucket: &str,
        key: &str,
        mode: Versioning,
        id_micros: u64,
    ) -> Result<Option<String>, StorageError> {
        if mode == Versioning::Unversioned {
            return self
                .commit_object(bucket, key, writer, meta, mode, None)
                .await;
        }
        let unconditional = WriteCondition::default();
        self.commit_version_at(
            writer,
            meta,
            bucket,
            key,
            mode,
            None,
            &unconditional,
            Some(id_micros),
        )
        .await
        .map(Some)
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_version_at(
        &self,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        bucket: &str,
        key: &str,
        mode: Versioning,
        upload: Option<UploadParts>,
        condition: &WriteCondition,
        id_micros: Option<u64>,
    ) -> Result<String, StorageError> {
        let locked = self.lock_key(bucket, key).await?;
        let locked = std::sync::Arc::new(locked);
        if !condition.is_none() {
            let l = locked.clone();
            let current = blocking(move || l.latest_etag()).await?;
            condition.check(current.as_deref())?;
        }
        let parts = match &upload {
            Some(up) => {
                let lock = self.move_in(&locked.dir, up).await?;
                meta.part_dir = Some(up.id.clone());
                Some(std::sync::Arc::new(lock))
            }
            None => None,
        };
        let suspended = mode == Versioning::Suspended;
        let committed = self
            .commit_locked_version(&locked, writer, meta, mode, id_micros)
            .await;
        // Only a suspended bucket's write drops a version (the null one it replaces).
        match (parts, upload) {
            (Some(lock), Some(up)) => {
                self.settle(lock, up, committed.is_ok(), suspended).await;
            }
            _ if suspended && committed.is_ok() => {
                let d = locked.dir.clone();
                blocking(move || sweep(&d)).await;
            }
            _ => {}
        }
        drop(locked);
        committed
    }

    async fn commit_locked_version(
        &self,
        locked: &std::sync::Arc<LockedKey>,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        mode: Versioning,
        id_micros: Option<u64>,
    ) -> Result<String, StorageError> {
        let id = match mode {
            Versioning::Suspended => NULL_VERSION.to_owned(),
            _ => {
                let l = locked.clone();
                blocking(move || l.next_id(id_micros)).await?
            }
        };
        meta.version_id = Some(id.clone());
        let obj = locked.obj();
        let l = locked.clone();
        let suspended = mode == Versioning::Suspended;
        blocking(move || l.preserve_current(suspended)).await?;
        writer.commit(meta, obj.clone()).await?;
        let l = locked.clone();
        let link_id = id.clone();
        blocking(move || -> Result<(), StorageError> {
            if suspended {
                // The old null version is the one being replaced.
                if remove_if_exists(&l.vdir.join(NULL_VERSION))? {
                    fsync_dir(&l.vdir)?;
                }
                Ok(())
            } else {
                l.link_in(&obj, &link_id)?;
                Ok(())
            }
        })
        .await?;
        Ok(id)
    }

    /// A DELETE without a version id in a versioned bucket: a new delete marker becomes the
    /// latest version (in a suspended bucket it is the null version, replacing the old one).
    pub async fn put_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        mode: Versioning,
        modified_ms: i64,
    ) -> Result<String, StorageError> {
        self.put_delete_marker_if(bucket, key, mode, modified_ms, None)
            .await
    }

    /// [`Store::put_delete_marker`], only if the key's latest version is still `expect_latest`
    /// (checked under the key's lock), else [`StorageError::Refused`]. The lifecycle scanner
    /// expires with it, so a version written after its decision is never hidden.
    pub async fn put_delete_marker_if(
        &self,
        bucket: &str,
        key: &str,
        mode: Versioning,
        modified_ms: i64,
        expect_latest: Option<String>,
    ) -> Result<String, StorageError> {
        self.put_delete_marker_checked(bucket, key, mode, modified_ms, None, move |l| {
            if let Some(want) = expect_latest {
                let latest = l.versions()?.into_iter().next();
                if latest.is_none_or(|v| v.version_id != want || v.meta.delete_marker) {
                    return Err(StorageError::Refused);
                }
            }
            Ok(())
        })
        .await
    }

    /// A DELETE without a version id under a write condition (`If-Match`), decided against the
    /// key's latest version under the key's lock, as a conditional PUT is
    /// ([`crate::storage::condition`]): a PUT committed after a stale ETag was seen is never
    /// deleted or hidden. Unversioned, the object goes (`None`); versioned, a delete marker is
    /// put (its id). [`StorageError::PreconditionFailed`] or [`StorageError::NoSuchKey`] (no
    /// object to match) change nothing.
    pub async fn delete_latest_if(
        &self,
        bucket: &str,
        key: &str,
        mode: Versioning,
        modified_ms: i64,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError> {
        let condition = condition.clone();
        if mode == Versioning::Unversioned {
            self.delete_object_if(bucket, key, move |m| {
                let current = m.filter(|m| !m.delete_marker).map(|m| m.etag.as_str());
                condition.check(current)
            })
            .await?;
            return Ok(None);
        }
        self.put_delete_marker_checked(bucket, key, mode, modified_ms, None, move |l| {
            if condition.is_none() {
                return Ok(());
            }
            condition.check(l.latest_etag()?.as_deref())
        })
        .await
        .map(Some)
    }

    /// A delete marker imported from another store (`crate::import`), its id made from
    /// `id_micros` as [`Store::commit_imported_version`] does.
    pub async fn put_imported_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        mode: Versioning,
        modified_ms: i64,
        id_micros: u64,
    ) -> Result<String, StorageError> {
        self.put_delete_marker_checked(bucket, key, mode, modified_ms, Some(id_micros), |_| Ok(()))
            .await
    }

    /// Puts a delete marker (its id from `id_micros`, or now) if `check`, shown the locked key,
    /// agrees.
    async fn put_delete_marker_checked(
        &self,
        bucket: &str,
        key: &str,
        mode: Versioning,
        modified_ms: i64,
        id_micros: Option<u64>,
        check: impl FnOnce(&LockedKey) -> Result<(), StorageError> + Send + 'static,
    ) -> Result<String, StorageError> {
        let locked = std::sync::Arc::new(self.lock_key(bucket, key).await?);
        let suspended = mode == Versioning::Suspended;
        let l = locked.clone();
        let id = blocking(move || -> Result<String, StorageError> {
            check(&l)?;
            let id = if suspended {
                NULL_VERSION.to_owned()
            } else {
                l.next_id(id_micros)?
            };
            l.preserve_current(suspended)?;
            if remove_if_exists(&l.obj())? {
                fsync_dir(&l.dir)?;
            }
            Ok(id)
        })
        .await?;
        let mut meta = ObjectMeta {
            modified_ms,
            version_id: Some(id.clone()),
            delete_marker: true,
            ..Default::default()
        };
        meta.etag = String::new();
        let w = self.writer().await?;
        w.commit(&meta, locked.vdir.join(&id)).await?;
        if suspended {
            // The null version replaced may have been a multipart object.
            let d = locked.dir.clone();
            blocking(move || sweep(&d)).await;
        }
        drop(locked);
        Ok(id)
    }

    /// Removes one version for good if `allow` (shown its metadata under the key's lock, so no
    /// concurrent retention or legal hold change slips in between) agrees, else fails with
    /// [`StorageError::Refused`]; the newest remaining data version becomes `obj` when the latest
    /// was removed. Returns what was removed (`None` if the version did not exist).
    pub async fn delete_version<F>(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        allow: F,
    ) -> Result<Option<ObjectMeta>, StorageError>
    where
        F: FnOnce(&ObjectMeta) -> bool + Send + 'static,
    {
        if !valid_version_id(version_id) {
            return Err(StorageError::NoSuchVersion);
        }
        let dir = self.key_path(bucket, key)?;
        let tmp = self.tmp_dir();
        if !dir.join(VERSIONS_DIR).is_dir() {
            // An unversioned key: only its null version, `obj`, can be named.
            if version_id != NULL_VERSION {
                return Ok(None);
            }
            return match self.open_object_file_meta(bucket, key).await? {
                Some(m) if m.version_id.is_none() => {
                    if !allow(&m) {
                        return Err(StorageError::Refused);
                    }
                    self.delete_object(bucket, key).await?;
                    Ok(Some(m))
                }
                _ => Ok(None),
            };
        }
        let id = version_id.to_owned();
        let bucket_dir = crate::storage::layout::bucket_dir(self.root(), bucket);
        blocking(move || -> Result<Option<ObjectMeta>, StorageError> {
            let l = LockedKey::lock(&bucket_dir, dir, tmp)?;
            let vpath = l.vdir.join(&id);
            let current = l.current()?.map(|(m, _)| m).filter(|m| id_of(m) == id);
            let is_latest = current.is_some();
            let removed = match current {
                Some(m) => Some(m),
                None => match open_file(&vpath) {
                    Ok(o) => Some(o.meta),
                    Err(StorageError::NoSuchKey) => None,
                    Err(e) => return Err(e),
                },
            };
            let Some(meta) = removed else {
                return Ok(None);
            };
            if !allow(&meta) {
                return Err(StorageError::Refused);
            }
            if is_latest {
                std::fs::remove_file(l.obj())?;
                fsync_dir(&l.dir)?;
            }
            let removed = Some(meta);
            if remove_if_exists(&vpath)? {
                fsync_dir(&l.vdir)?;
            }
            l.promote_newest()?;
            sweep(&l.dir);
            l.prune_if_empty(&bucket_dir)?;
            Ok(removed)
        })
        .await
    }

    /// Deletes the `obj` of an unversioned key if it is still the object that was seen (same
    /// ETag and modification time), else [`StorageError::Refused`]: checked under the key's
    /// lock, so a write committed after the lifecycle scanner's decision is never lost.
    pub async fn delete_object_if_unchanged(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        modified_ms: i64,
    ) -> Result<(), StorageError> {
        if self.open_object_file_meta(bucket, key).await?.is_none() {
            return Err(StorageError::Refused);
        }
        let etag = etag.to_owned();
        self.delete_object_if(bucket, key, move |m| match m {
            None => Ok(()),
            Some(m) if m.etag == etag && m.modified_ms == modified_ms && m.version_id.is_none() => {
                Ok(())
            }
            Some(_) => Err(StorageError::Refused),
        })
        .await
    }

    /// The metadata of `obj` of a key, if it exists.
    async fn open_object_file_meta(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectMeta>, StorageError> {
        match self.open_object(bucket, key).await {
            Ok(o) => Ok(Some(o.meta)),
            Err(StorageError::NoSuchKey) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the metadata of one version (tags, retention, legal hold), keeping its body:
    /// the file is copied with the new trailer and put in place of every name it has, under the
    /// key's lock in a versioned bucket. `change` sees the current metadata and may refuse.
    /// In an unversioned bucket it holds the key's stripe lock, as every commit there does.
    pub async fn rewrite_meta<F>(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: F,
    ) -> Result<ObjectMeta, StorageError>
    where
        F: FnOnce(&mut ObjectMeta) -> Result<(), StorageError> + Send + 'static,
    {
        let dir = self.key_path(bucket, key)?;
        let versioned = dir.join(VERSIONS_DIR).is_dir();
        let locked = if versioned {
            Some(self.lock_key(bucket, key).await?)
        } else {
            None
        };
        // (An unversioned rewrite holds the bucket's guard itself, then the key's stripe lock
        // that its commits and the re-wrap job hold; a locked key holds the guard.)
        let _bucket = match &locked {
            Some(_) => None,
            None => Some((
                self.guard_bucket(bucket).await?,
                self.lock_unversioned_key(bucket, key).await?,
            )),
        };
        // The rewrite of a multipart object names its part files anew: it holds the parts lock
        // from its read to its commit, so that no sweep removes them in between.
        let mut parts_lock = None;
        let mut tries = 0;
        let src = loop {
            let src = match version_id {
                Some(v) => self.open_version(bucket, key, v).await?,
                None => {
                    let o = self.open_latest(bucket, key).await?;
                    if o.meta.delete_marker {
                        return Err(StorageError::NoSuchKey);
                    }
                    o
                }
            };
            if src.meta.part_dir.is_none() || parts_lock.is_some() {
                break src;
            }
            tries += 1;
            if tries > 3 {
                return Err(StorageError::Damaged);
            }
            // Read it again under the lock (without `parts/` it was replaced meanwhile).
            let d = dir.clone();
            parts_lock = blocking(move || PartsLock::take(&d, false)).await?;
        };
        if src.meta.delete_marker {
            return Err(StorageError::MethodNotAllowed);
        }
        let mut meta = src.meta.clone();
        change(&mut meta)?;
        let id = id_of(&meta);
        let src_ino = src.file.metadata()?.ino();
        let mut w = self.writer().await?;
        w.append_from(src.file.clone(), 0, src.body_len).await?;
        let obj = dir.join(OBJECT_FILE);
        // Which names the old file has: `obj` (if it is that file) and `versions/<id>`.
        let at_obj = std::fs::metadata(&obj).is_ok_and(|m| m.ino() == src_ino);
        let vpath = dir.join(VERSIONS_DIR).join(&id);
        let at_version = std::fs::metadata(&vpath).is_ok_and(|m| m.ino() == src_ino);
        if at_obj || !at_version {
            w.commit(&meta, obj.clone()).await?;
            if at_version && let Some(l) = &locked {
                let (l_vdir, id2, obj2, tmp) =
                    (l.vdir.clone(), id.clone(), obj.clone(), self.tmp_dir());
                blocking(move || -> io::Result<()> {
                    let t = tmp.join(random_name());
                    std::fs::hard_link(&obj2, &t)?;
                    std::fs::rename(&t, l_vdir.join(&id2))?;
                    fsync_dir(&l_vdir)
                })
                .await?;
            }
        } else {
            w.commit(&meta, vpath).await?;
        }
        drop(parts_lock);
        drop(locked);
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer waiting for the lock of a `versions/` that its holder prunes ends up holding the
    /// lock of that path, with the directory made again.
    #[test]
    fn a_waiter_of_a_pruned_lock_starts_over() {
        let d = tempfile::tempdir().unwrap();
        let bucket = d.path().join("b");
        let dir = bucket.join("_k");
        let tmp = d.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(&bucket).unwrap();
        let held = LockedKey::lock(&bucket, dir.clone(), tmp.clone()).unwrap();
        let waiter = {
            let (bucket, dir, tmp) = (bucket.clone(), dir.clone(), tmp.clone());
            std::thread::spawn(move || LockedKey::lock(&bucket, dir, tmp).unwrap())
        };
        // Let the waiter open the directory and block on its lock.
        std::thread::sleep(std::time::Duration::from_millis(300));
        held.prune_if_empty(&bucket).unwrap();
        assert!(!dir.exists());
        drop(held);
        let got = waiter.join().unwrap();
        assert!(got.vdir.is_dir(), "the waiter made versions/ again");
        // And it holds the key's lock: a third taker waits until it lets go.
        let third = std::thread::spawn(move || LockedKey::lock(&bucket, dir, tmp).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!third.is_finished(), "two hold the lock of one versions/");
        drop(got);
        third.join().unwrap();
    }
}
