//! Multipart objects whose parts stay in their own files (see [`super::layout`] for the picture).
//!
//! CompleteMultipartUpload copies nothing: under the key's parts lock it renames the upload's
//! directory (`DIR/.coffer/multipart/<bucket>/<id>/`, one object file per part, each fsynced
//! when it was uploaded) to `parts/<id>/` in the key's directory, fsyncs both parents, and then
//! commits an object file with an empty body whose metadata lists the parts and names the
//! directory (`part_dir`). Its cost is a rename and one small file, whatever the object's size.
//! A crash before the object file is in place leaves the key as it was; the next sweep of the key
//! (at the latest at start-up) moves the upload back, so the client's retried Complete succeeds.
//!
//! **References.** Only a key's own `obj` and `versions/` entries name its part directories
//! (hard links of one file are one reference, found by any of its names); a copy rewrites the
//! bytes, so nothing else shares them.
//!
//! **The parts lock**, an exclusive `flock` of the lock file of the key's `parts/` ([`super::locks`]; taken after the versions lock
//! where both are held; it dies with its process), is held by everything that makes a new
//! reference — Complete from the move until its object file is in place, a metadata rewrite of
//! a multipart object from its read to its commit — and by every sweep. A sweep reads the
//! `part_dir` of `obj` and of every version file and removes each part directory none names,
//! then `parts/` itself once empty. A part directory none names that still holds `upload.json`
//! is an upload whose Complete never committed (a successful one removes it before the lock is
//! released), and is moved back to the uploads instead. So a sweep never removes a directory a commit is about to
//! name, whichever process runs either.
//!
//! **Sweeps run** after every change that can drop a reference — an unversioned write or delete,
//! in a versioned bucket a write or delete marker replacing the null version and the removal of
//! a version — when the key has `parts/` (one `stat` for a key that has none: single-part writes
//! pay nothing more). A crash between a change and its sweep, or inside a Complete between the
//! move and the commit, leaves unreferenced part directories: every server sweeps every key
//! that has `parts/` at start-up, in the background ([`Store::reclaim_orphaned_parts`]).
//!
//! **Readers** open every part file together with the object ([`Store::open_parts`]), so an
//! overwrite or a delete, which unlinks them, never changes what an open reader reads. A part
//! missing while the object file is still at its name is damage; if the name meanwhile names
//! another file (or none), the object changed and the caller opens it again. Each part file's
//! trailer must carry the size and ETag the object lists, its body the size they imply.
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::layout::{self, OBJECT_FILE, PARTS_DIR, UPLOAD_FILE, VERSIONS_DIR};
use super::versions::valid_version_id;
use super::{
    ObjectMeta, ObjectWriter, OpenObject, StorageError, Store, Versioning, WriteCondition,
    blocking, fsync_dir, lock_dir, not_found, open_file,
};

/// One part file of a multipart object, opened.
pub struct PartFile {
    /// The file (the part's package stream, or plaintext, then its trailer).
    pub file: Arc<std::fs::File>,
    /// Stored body bytes in it.
    pub body_len: u64,
}

/// The name of part `n`'s file, in an upload's directory and in a part directory.
pub fn part_file_name(n: u32) -> String {
    format!("part.{n}")
}

/// Whether `name` can be a part directory's name (an upload id: 32 hex digits), so that no
/// metadata, however damaged, names a path outside `parts/`.
fn valid_part_dir(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A multipart upload being completed: its directory and the parts it is completed with, each
/// with the file (device, inode) it was checked as.
#[derive(Debug, Clone)]
pub struct UploadParts {
    upload_dir: PathBuf,
    pub(crate) id: String,
    files: Vec<(u32, (u64, u64))>,
}

impl UploadParts {
    /// Upload `id`, in `upload_dir`.
    pub fn new(upload_dir: PathBuf, id: &str) -> Self {
        Self {
            upload_dir,
            id: id.to_owned(),
            files: Vec::new(),
        }
    }

    /// Records that part `n` was checked as the opened `file`.
    pub fn add(&mut self, n: u32, file: &std::fs::File) -> io::Result<()> {
        let m = file.metadata()?;
        self.files.push((n, (m.dev(), m.ino())));
        Ok(())
    }
}

/// A key directory whose `parts/` is locked.
pub(crate) struct PartsLock {
    dir: PathBuf,
    pdir: PathBuf,
    _lock: std::fs::File,
}

impl PartsLock {
    /// Locks the `parts/` of the key directory `dir` (blocking); `None` if it has none and
    /// `create` is false.
    pub(crate) fn take(dir: &Path, create: bool) -> io::Result<Option<Self>> {
        let pdir = dir.join(PARTS_DIR);
        Ok(lock_dir(&pdir, create)?.map(|lock| Self {
            dir: dir.to_path_buf(),
            pdir,
            _lock: lock,
        }))
    }

    /// Moves the upload's directory in as `parts/<id>/`, after which no request changes it.
    /// [`StorageError::NoSuchUpload`] if the upload is gone (completed or aborted meanwhile);
    /// [`StorageError::Refused`] (moved back) if a part was uploaded again since it was checked.
    pub(crate) fn move_in(&self, up: &UploadParts) -> Result<(), StorageError> {
        let dest = self.pdir.join(&up.id);
        match std::fs::rename(&up.upload_dir, &dest) {
            Ok(()) => {}
            Err(e)
                if not_found(&e)
                    || e.kind() == io::ErrorKind::DirectoryNotEmpty
                    || e.kind() == io::ErrorKind::AlreadyExists =>
            {
                return Err(StorageError::NoSuchUpload);
            }
            Err(e) => return Err(e.into()),
        }
        // Durable before any object file names it.
        fsync_dir(&self.pdir)?;
        if let Some(p) = up.upload_dir.parent() {
            fsync_dir(p)?;
        }
        let unchanged = up.files.iter().all(|(n, id)| {
            std::fs::metadata(dest.join(part_file_name(*n)))
                .is_ok_and(|m| (m.dev(), m.ino()) == *id)
        });
        if !unchanged {
            self.move_back(up);
            return Err(StorageError::Refused);
        }
        Ok(())
    }

    /// After a failed commit: puts the upload back if no object names its parts (best effort:
    /// an UploadPart racing with the Complete may hold the upload's path for a moment; what
    /// cannot be put back is left to the next sweep).
    pub(crate) fn abandon(&self, up: &UploadParts) {
        match referenced(&self.dir) {
            Ok(used) if !used.contains(&up.id) => self.move_back(up),
            _ => {}
        }
    }

    fn move_back(&self, up: &UploadParts) {
        let src = self.pdir.join(&up.id);
        for _ in 0..50 {
            match std::fs::rename(&src, &up.upload_dir) {
                Ok(()) => {
                    let _ = fsync_dir(&self.pdir);
                    if let Some(p) = up.upload_dir.parent() {
                        let _ = fsync_dir(p);
                    }
                    return;
                }
                Err(e)
                    if e.kind() == io::ErrorKind::DirectoryNotEmpty
                        || e.kind() == io::ErrorKind::AlreadyExists =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
    }

    /// After the commit: removes what of the upload the object does not use (`upload.json`
    /// first, which marks an upload not yet completed, and parts uploaded but not completed
    /// with). A crash before leaves them with the parts, to go when they go.
    pub(crate) fn finish(&self, up: &UploadParts) {
        let dir = self.pdir.join(&up.id);
        let _ = std::fs::remove_file(dir.join(UPLOAD_FILE));
        let keep: HashSet<String> = up.files.iter().map(|(n, _)| part_file_name(*n)).collect();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            if !e.file_name().to_str().is_some_and(|n| keep.contains(n)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = fsync_dir(&dir);
    }

    /// Puts the unreferenced part directory `id`, if it still holds `upload.json`, back where
    /// its upload lived; whether it did.
    fn restore_upload(&self, id: &str) -> bool {
        let src = self.pdir.join(id);
        if !valid_part_dir(id) || !src.join(UPLOAD_FILE).is_file() {
            return false;
        }
        let Some((root, bucket)) = layout::bucket_of_key_dir(&self.dir) else {
            return false;
        };
        let dest = layout::upload_dir(root, bucket, id);
        let Some(uploads) = dest.parent() else {
            return false;
        };
        if std::fs::create_dir_all(uploads).is_err() || std::fs::rename(&src, &dest).is_err() {
            return false;
        }
        let _ = fsync_dir(uploads);
        let _ = fsync_dir(&self.pdir);
        tracing::warn!(
            bucket,
            upload_id = id,
            "a CompleteMultipartUpload was interrupted before it committed: the upload is back"
        );
        true
    }

    /// Removes every part directory that neither `obj` nor a version file names (or moves it
    /// back to the uploads: see the module), then `parts/` if it is left empty (while locked: a waiter finds its lock stale and starts
    /// over). Returns how many directories it removed.
    pub(crate) fn sweep(&self) -> Result<usize, StorageError> {
        let used = referenced(&self.dir)?;
        let (mut removed, mut kept) = (0, 0);
        for e in std::fs::read_dir(&self.pdir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_str();
            if name.is_some_and(|n| used.contains(n)) {
                kept += 1;
                continue;
            }
            if name.is_some_and(|n| self.restore_upload(n)) {
                continue;
            }
            if e.file_type()?.is_dir() {
                std::fs::remove_dir_all(e.path())?;
            } else {
                std::fs::remove_file(e.path())?;
            }
            removed += 1;
        }
        if kept == 0 {
            match std::fs::remove_dir(&self.pdir) {
                // (The key directory, left empty, may be pruned at once by a delete.)
                Ok(()) => match fsync_dir(&self.dir) {
                    Err(e) if not_found(&e) => {}
                    other => other?,
                },
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty || not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }
}

/// The part directories that the key directory `dir`'s `obj` and version files name.
fn referenced(dir: &Path) -> Result<HashSet<String>, StorageError> {
    let mut used = HashSet::new();
    let mut add = |p: &Path| -> Result<(), StorageError> {
        match open_file(p) {
            Ok(o) => {
                used.extend(o.meta.part_dir);
                Ok(())
            }
            Err(StorageError::NoSuchKey) => Ok(()),
            Err(e) => Err(e),
        }
    };
    add(&dir.join(OBJECT_FILE))?;
    match std::fs::read_dir(dir.join(VERSIONS_DIR)) {
        Ok(rd) => {
            for e in rd {
                let e = e?;
                if e.file_name().to_str().is_some_and(valid_version_id) {
                    add(&e.path())?;
                }
            }
        }
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(used)
}

/// Sweeps the key directory `dir` if it has `parts/` (blocking). A failure is logged, not
/// returned: the change that asked is done, and a later sweep (at the latest at the next
/// start-up) tries again.
pub(crate) fn sweep(dir: &Path) {
    if !dir.join(PARTS_DIR).exists() {
        return;
    }
    let swept = PartsLock::take(dir, false)
        .map_err(StorageError::from)
        .and_then(|l| l.map(|l| l.sweep()).transpose());
    if let Err(e) = swept {
        tracing::warn!(error = %e, dir = %dir.display(), "reclaiming multipart part files failed");
    }
}

/// The key directory of an object file: `obj`'s directory, or the one of `versions/`.
fn key_dir_of(path: &Path) -> Option<&Path> {
    let parent = path.parent()?;
    if parent.file_name().is_some_and(|n| n == VERSIONS_DIR) {
        parent.parent()
    } else {
        Some(parent)
    }
}

fn open_parts(mut obj: OpenObject) -> Result<Option<OpenObject>, StorageError> {
    let Some(name) = obj.meta.part_dir.clone() else {
        return Ok(Some(obj));
    };
    if !valid_part_dir(&name) || obj.body_len != 0 || obj.meta.parts.is_empty() {
        return Err(StorageError::Damaged);
    }
    let dir = key_dir_of(&obj.path)
        .ok_or(StorageError::Damaged)?
        .join(PARTS_DIR)
        .join(name);
    let mut files = Vec::with_capacity(obj.meta.parts.len());
    for p in &obj.meta.parts {
        let part = match open_file(&dir.join(part_file_name(p.number))) {
            Ok(o) => o,
            Err(StorageError::NoSuchKey) => {
                let opened = obj.file.metadata()?;
                let still_there = std::fs::metadata(&obj.path)
                    .is_ok_and(|m| m.ino() == opened.ino() && m.dev() == opened.dev());
                return if still_there {
                    Err(StorageError::Damaged)
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(e),
        };
        if part.meta.size != p.size || part.meta.etag != p.etag || part.meta.key_salt != p.key_salt
        {
            return Err(StorageError::Damaged);
        }
        files.push(PartFile {
            file: part.file,
            body_len: part.body_len,
        });
    }
    obj.parts = files;
    Ok(Some(obj))
}

impl Store {
    /// Opens the part files of an opened multipart object whose parts are files of their own
    /// (any other object comes back as it is), for reading its body. `Ok(None)`: the object was
    /// overwritten or deleted since it was opened; open it again.
    pub async fn open_parts(&self, obj: OpenObject) -> Result<Option<OpenObject>, StorageError> {
        if obj.meta.part_dir.is_none() {
            return Ok(Some(obj));
        }
        blocking(move || open_parts(obj)).await
    }

    /// Commits a written object file as `bucket/key`: in an unversioned bucket it replaces
    /// `obj`, else it is a new version ([`Store::commit_version`]). With `upload`, the object is
    /// that multipart upload completed: its part files are moved in and `meta` names them.
    /// Returns the version id (versioned buckets).
    pub async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        mode: Versioning,
        upload: Option<UploadParts>,
    ) -> Result<Option<String>, StorageError> {
        let unconditional = WriteCondition::default();
        self.commit_object_if(bucket, key, writer, meta, mode, upload, &unconditional)
            .await
    }

    /// [`Store::commit_object`] if `condition` holds for the key's latest version, decided under
    /// the key's lock (else [`StorageError::PreconditionFailed`] or
    /// [`StorageError::NoSuchKey`], and nothing changes). Fails with
    /// [`StorageError::NoSuchBucket`] if the bucket was deleted since the request began.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_object_if(
        &self,
        bucket: &str,
        key: &str,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        mode: Versioning,
        upload: Option<UploadParts>,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError> {
        if mode != Versioning::Unversioned {
            return self
                .commit_version_if(writer, meta, bucket, key, mode, upload, condition)
                .await
                .map(Some);
        }
        let dir = layout::bucket_dir(self.root(), bucket).join(layout::key_dir(key)?);
        let obj = dir.join(OBJECT_FILE);
        let _bucket = self.guard_bucket(bucket).await?;
        let _key = self.lock_unversioned_key(bucket, key).await?;
        if !condition.is_none() {
            let o = obj.clone();
            let current = blocking(move || match open_file(&o) {
                Ok(f) => Ok(Some(f.meta.etag)),
                Err(StorageError::NoSuchKey) => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
            condition.check(current.as_deref())?;
        }
        let Some(up) = upload else {
            writer.commit(meta, obj).await?;
            // The object replaced may have been a multipart one whose part files nothing
            // names now. (A stat when the key has none.)
            if dir.join(PARTS_DIR).exists() {
                blocking(move || sweep(&dir)).await;
            }
            return Ok(None);
        };
        let lock = Arc::new(self.move_in(&dir, &up).await?);
        meta.part_dir = Some(up.id.clone());
        let committed = writer.commit(meta, obj).await;
        self.settle(lock, up, committed.is_ok(), true).await;
        committed?;
        Ok(None)
    }

    /// Locks the key directory `dir`'s `parts/` and moves the upload's part files in.
    pub(crate) async fn move_in(
        &self,
        dir: &Path,
        up: &UploadParts,
    ) -> Result<PartsLock, StorageError> {
        let (dir, up) = (dir.to_path_buf(), up.clone());
        blocking(move || {
            let lock = PartsLock::take(&dir, true)?.expect("created");
            if let Err(e) = lock.move_in(&up) {
                // Nothing was moved in: leave no empty `parts/` behind.
                let _ = lock.sweep();
                return Err(e);
            }
            Ok(lock)
        })
        .await
    }

    /// After the commit of a completed upload (under the lock [`Store::move_in`] took): drops
    /// what the object does not use and, with `sweep`, the part files of the object it
    /// replaced; after a failed commit puts the upload back.
    pub(crate) async fn settle(
        &self,
        lock: Arc<PartsLock>,
        up: UploadParts,
        committed: bool,
        sweep: bool,
    ) {
        blocking(move || {
            if !committed {
                lock.abandon(&up);
                return;
            }
            lock.finish(&up);
            if sweep && let Err(e) = lock.sweep() {
                tracing::warn!(error = %e, "reclaiming multipart part files failed");
            }
        })
        .await
    }

    /// Sweeps every key that has part files (blocking; at start-up, in the background): what a
    /// crash between a change and its sweep, or inside a Complete, left unreferenced goes.
    /// Returns how many part directories were removed.
    pub fn reclaim_orphaned_parts(&self) -> usize {
        let mut removed = 0;
        let Ok(rd) = std::fs::read_dir(self.root()) else {
            return 0;
        };
        for e in rd.flatten() {
            let is_bucket = e.file_name().to_str().is_some_and(|n| !n.starts_with('.'))
                && e.file_type().is_ok_and(|t| t.is_dir());
            if is_bucket {
                removed += reclaim_under(&e.path());
            }
        }
        removed
    }
}

/// Sweeps every key directory below `dir` (a bucket's or a key's) that has `parts/`.
fn reclaim_under(dir: &Path) -> usize {
    let mut removed = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if name.to_str().and_then(layout::segment_of).is_none()
            || !e.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let key_dir = e.path();
        if key_dir.join(PARTS_DIR).is_dir() {
            match PartsLock::take(&key_dir, false)
                .map_err(StorageError::from)
                .and_then(|l| l.map(|l| l.sweep()).transpose())
            {
                Ok(n) => removed += n.unwrap_or(0),
                Err(e) => {
                    tracing::warn!(error = %e, dir = %key_dir.display(), "reclaiming multipart part files failed");
                }
            }
        }
        removed += reclaim_under(&key_dir);
    }
    removed
}

#[cfg(test)]
mod tests;
