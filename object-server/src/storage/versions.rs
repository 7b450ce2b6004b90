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
//! Every change of a key's versions happens under an exclusive `flock` of its `versions/`
//! directory (several processes may serve one directory; a lock dies with its process, kill -9
//! included) and in an order in which every intermediate state, seen by a reader or left by a
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
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::layout::{self, NULL_VERSION, OBJECT_FILE, VERSIONS_DIR};
use super::{
    ObjectMeta, ObjectWriter, OpenObject, StorageError, Store, blocking, create_dirs_durably,
    fsync_dir, open_file, random_name,
};

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

/// A key's directory while its versions are locked.
struct LockedKey {
    dir: PathBuf,
    vdir: PathBuf,
    _lock: std::fs::File,
}

impl LockedKey {
    /// Creates `versions/` if needed and takes its lock (blocking).
    fn lock(dir: PathBuf) -> io::Result<Self> {
        let vdir = dir.join(VERSIONS_DIR);
        loop {
            create_dirs_durably(&vdir)?;
            let f = match std::fs::File::open(&vdir) {
                Ok(f) => f,
                // Removed with its bucket meanwhile: create it again.
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            f.lock()?;
            return Ok(Self {
                dir,
                vdir,
                _lock: f,
            });
        }
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
                let tmp = self.vdir.join(format!(".tmp-{}", random_name()));
                std::fs::hard_link(src, &tmp)?;
                std::fs::rename(&tmp, &dest)?;
            }
            Err(e) => return Err(e),
        }
        fsync_dir(&self.vdir)
    }

    /// Every version in `versions/` plus `obj`, newest first; `obj` is first when present.
    fn versions(&self) -> Result<Vec<VersionInfo>, StorageError> {
        list_dir_versions(&self.dir)
    }

    /// A new version id newer than every version of this key.
    fn next_id(&self) -> Result<String, StorageError> {
        let newest = self
            .versions()?
            .iter()
            .map(|v| order_of(&v.version_id, &v.meta))
            .max()
            .unwrap_or(0);
        Ok(new_version_id(now_micros().max(newest + 1)))
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
    list_dir_versions(dir)
        .ok()
        .and_then(|v| v.first().map(|v| !v.meta.delete_marker))
        .unwrap_or(false)
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

#[derive(serde::Serialize, serde::Deserialize)]
struct VersioningFile {
    status: String,
}

impl Store {
    /// The bucket's versioning state (read from disk: every process sees a change at once).
    pub async fn versioning(&self, bucket: &str) -> Result<Versioning, StorageError> {
        let Some(raw) = self.read_bucket_config(bucket, VERSIONING_CONFIG).await? else {
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
        let status = if enabled { "Enabled" } else { "Suspended" };
        let data = serde_json::to_vec(&VersioningFile {
            status: status.to_owned(),
        })
        .expect("serializes");
        self.write_bucket_config(bucket, VERSIONING_CONFIG, Some(data))
            .await
    }

    fn key_path(&self, bucket: &str, key: &str) -> Result<PathBuf, StorageError> {
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
            // Versions only: the newest (a concurrent change may remove it: look again).
            for _ in 0..3 {
                let versions = list_dir_versions(&dir)?;
                let Some(v) = versions.first() else {
                    return Err(StorageError::NoSuchKey);
                };
                match open_file(&dir.join(VERSIONS_DIR).join(&v.version_id)) {
                    Err(StorageError::NoSuchKey) => continue,
                    other => return other,
                }
            }
            Err(StorageError::NoSuchKey)
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
    ) -> Result<String, StorageError> {
        let dir = self.key_path(bucket, key)?;
        let locked = blocking(move || LockedKey::lock(dir)).await?;
        let locked = std::sync::Arc::new(locked);
        let id = match mode {
            Versioning::Suspended => NULL_VERSION.to_owned(),
            _ => {
                let l = locked.clone();
                blocking(move || l.next_id()).await?
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
        drop(locked);
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
        let dir = self.key_path(bucket, key)?;
        let locked = std::sync::Arc::new(blocking(move || LockedKey::lock(dir)).await?);
        let suspended = mode == Versioning::Suspended;
        let l = locked.clone();
        let id = blocking(move || -> Result<String, StorageError> {
            if let Some(want) = expect_latest {
                let latest = l.versions()?.into_iter().next();
                if latest.is_none_or(|v| v.version_id != want || v.meta.delete_marker) {
                    return Err(StorageError::Refused);
                }
            }
            let id = if suspended {
                NULL_VERSION.to_owned()
            } else {
                l.next_id()?
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
        blocking(move || -> Result<Option<ObjectMeta>, StorageError> {
            let l = LockedKey::lock(dir)?;
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
            Ok(removed)
        })
        .await
    }

    /// Deletes the `obj` of an unversioned key if it is still the object that was seen (same
    /// ETag and modification time), else [`StorageError::Refused`]. Unversioned writes take no
    /// lock, so a write that lands between the check and the unlink can still be lost, as with
    /// any two concurrent writers of an unversioned key (last writer wins).
    pub async fn delete_object_if_unchanged(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        modified_ms: i64,
    ) -> Result<(), StorageError> {
        match self.open_object_file_meta(bucket, key).await? {
            Some(m) if m.etag == etag && m.modified_ms == modified_ms && m.version_id.is_none() => {
                self.delete_object(bucket, key).await
            }
            _ => Err(StorageError::Refused),
        }
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
            let d = dir.clone();
            Some(blocking(move || LockedKey::lock(d)).await?)
        } else {
            None
        };
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
                let (l_vdir, id2, obj2) = (l.vdir.clone(), id.clone(), obj.clone());
                blocking(move || -> io::Result<()> {
                    let tmp = l_vdir.join(format!(".tmp-{}", random_name()));
                    std::fs::hard_link(&obj2, &tmp)?;
                    std::fs::rename(&tmp, l_vdir.join(&id2))?;
                    fsync_dir(&l_vdir)
                })
                .await?;
            }
        } else {
            w.commit(&meta, vpath).await?;
        }
        drop(locked);
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn write(s: &Store, body: &[u8]) -> (ObjectWriter, ObjectMeta) {
        let mut w = s.writer().await.unwrap();
        w.write(body).await.unwrap();
        let m = ObjectMeta {
            size: body.len() as u64,
            etag: hex::encode(body),
            modified_ms: 1,
            ..Default::default()
        };
        (w, m)
    }

    async fn body_of(s: &Store, o: OpenObject) -> Vec<u8> {
        let _ = s;
        use std::os::unix::fs::FileExt;
        let mut b = vec![0u8; o.body_len as usize];
        o.file.read_exact_at(&mut b, 0).unwrap();
        b
    }

    #[tokio::test]
    async fn versions_markers_and_the_null_version() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.create_bucket("b").await.unwrap();
        // Written before versioning: the null version, plain layout.
        let (w, m) = write(&s, b"old").await;
        w.commit(&m, s.object_path("b", "k").unwrap())
            .await
            .unwrap();
        let mut ids = Vec::new();
        for body in [b"one", b"two"] {
            let (w, mut m) = write(&s, body).await;
            ids.push(
                s.commit_version(w, &mut m, "b", "k", Versioning::Enabled)
                    .await
                    .unwrap(),
            );
        }
        assert!(ids[1] < ids[0], "newer ids sort first");
        let v = s.key_versions("b", "k").await.unwrap();
        let listed: Vec<_> = v.iter().map(|v| v.version_id.as_str()).collect();
        assert_eq!(listed, vec![ids[1].as_str(), ids[0].as_str(), "null"]);
        assert!(v[0].is_latest && !v[1].is_latest);
        assert_eq!(
            body_of(&s, s.open_object("b", "k").await.unwrap()).await,
            b"two"
        );
        assert_eq!(
            body_of(&s, s.open_version("b", "k", "null").await.unwrap()).await,
            b"old"
        );
        assert_eq!(
            body_of(&s, s.open_version("b", "k", &ids[0]).await.unwrap()).await,
            b"one"
        );
        // A delete marker hides the key; removing it brings the newest version back.
        let marker = s
            .put_delete_marker("b", "k", Versioning::Enabled, 5)
            .await
            .unwrap();
        assert!(matches!(
            s.open_object("b", "k").await,
            Err(StorageError::NoSuchKey)
        ));
        assert!(s.open_latest("b", "k").await.unwrap().meta.delete_marker);
        assert_eq!(
            s.key_versions("b", "k").await.unwrap()[0].version_id,
            marker
        );
        assert!(s.list_keys("b", "", false).await.unwrap().is_empty());
        s.delete_version("b", "k", &marker, |_| true).await.unwrap();
        assert_eq!(
            body_of(&s, s.open_object("b", "k").await.unwrap()).await,
            b"two"
        );
        // Deleting the latest version by id promotes the previous one.
        s.delete_version("b", "k", &ids[1], |_| true).await.unwrap();
        assert_eq!(
            body_of(&s, s.open_object("b", "k").await.unwrap()).await,
            b"one"
        );
        // Suspended: writes replace the null version, other versions stay.
        let (w, mut m) = write(&s, b"n1").await;
        let id = s
            .commit_version(w, &mut m, "b", "k", Versioning::Suspended)
            .await
            .unwrap();
        assert_eq!(id, "null");
        let listed: Vec<_> = s
            .key_versions("b", "k")
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.version_id)
            .collect();
        assert_eq!(listed, vec!["null".to_owned(), ids[0].clone()]);
        assert_eq!(
            body_of(&s, s.open_version("b", "k", "null").await.unwrap()).await,
            b"n1"
        );
        assert!(matches!(
            s.open_version("b", "k", "../../x").await,
            Err(StorageError::NoSuchVersion)
        ));
        assert!(matches!(
            s.delete_bucket("b").await,
            Err(StorageError::BucketNotEmpty)
        ));
        for v in s.key_versions("b", "k").await.unwrap() {
            s.delete_version("b", "k", &v.version_id, |_| true)
                .await
                .unwrap();
        }
        assert!(s.key_versions("b", "k").await.unwrap().is_empty());
        s.delete_bucket("b").await.unwrap();
    }

    #[tokio::test]
    async fn a_crash_before_the_link_still_resolves() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.create_bucket("b").await.unwrap();
        let (w, mut m) = write(&s, b"v1").await;
        let v1 = s
            .commit_version(w, &mut m, "b", "k", Versioning::Enabled)
            .await
            .unwrap();
        // As if a writer died after renaming its file to `obj` but before linking it.
        let (w, mut m) = write(&s, b"v2").await;
        m.version_id = Some(new_version_id(now_micros() + 10));
        let obj = s.object_path("b", "k").unwrap();
        std::fs::remove_file(&obj).unwrap();
        w.commit(&m, obj).await.unwrap();
        let v = s.key_versions("b", "k").await.unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].version_id, v1);
        // The next write preserves it.
        let (w, mut m) = write(&s, b"v3").await;
        s.commit_version(w, &mut m, "b", "k", Versioning::Enabled)
            .await
            .unwrap();
        assert_eq!(s.key_versions("b", "k").await.unwrap().len(), 3);
    }
}
