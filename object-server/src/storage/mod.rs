//! Objects on local disk: the layout ([`layout`]), object files with their metadata ([`meta`]),
//! and atomic writes (temp file, fsync, rename, fsync of the directory).
//!
//! Nothing is kept in memory between requests that a `stat` does not check first (bucket
//! configuration files, [`bucket_config`]), so several processes can serve one directory:
//! a reader holds an open file and sees one complete version even while a writer renames a new
//! one over it (last writer wins, never a torn object).
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncWriteExt;

mod bucket_config;
mod condition;
pub mod create_once;
pub mod engine;
pub mod layout;
mod locks;
pub mod meta;
pub mod parts;
pub mod replace;
pub mod stamp;
pub mod versions;

pub use condition::{EtagMatch, WriteCondition};
pub use layout::KeyError;
pub(crate) use locks::{BucketGuard, KeyStripeLock, lock_dir, take_lock, try_lock_named};
pub use locks::{DEFAULT_LOCK_WAIT, LockBusy, lock_wait, set_lock_wait};
pub use meta::{
    ChecksumKind, EncryptionMeta, LockMode, MetaError, ObjectMeta, PartMeta, Retention, SseMode,
};
pub use parts::{PartFile, UploadParts};
pub use versions::{DeleteOutcome, VersionInfo, Versioning};

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket does not exist.
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// The bucket exists already.
    #[error("the bucket already exists")]
    BucketExists,
    /// The bucket still holds objects.
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    /// The object does not exist.
    #[error("the object does not exist")]
    NoSuchKey,
    /// The version does not exist (or the id is not one this server makes).
    #[error("the version does not exist")]
    NoSuchVersion,
    /// The version is a delete marker, which has no body or metadata to act on.
    #[error("the version is a delete marker")]
    MethodNotAllowed,
    /// A change that the caller's check refused (the caller knows why).
    #[error("the change was refused")]
    Refused,
    /// The key cannot be stored.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// The object file is damaged.
    #[error("the object file is damaged")]
    Damaged,
    /// A write's `If-Match`/`If-None-Match` did not hold at its commit.
    #[error("a precondition of the write did not hold")]
    PreconditionFailed,
    /// The multipart upload does not exist (any more: completed or aborted meanwhile).
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    /// An encrypted object's metadata cannot be read or written before the metadata key is
    /// loaded ([`crate::sse::metadata_key`]).
    #[error(transparent)]
    MetadataKeyUnavailable(#[from] crate::sse::metadata_key::KeyUnavailable),
    /// The object was replaced or deleted since it was opened: open it again.
    #[error("the object changed while it was read")]
    Changed,
    /// The storage engine cannot be reached or refused to work (the S3 backend down, throttling,
    /// its credentials refused); nothing was changed. Detail for the log, never for the client.
    #[error("the storage backend is unavailable: {0}")]
    Unavailable(String),
    /// The storage engine cannot do this (e.g. versioning on a backend without it).
    #[error("the storage backend does not support {0}")]
    NotSupported(&'static str),
    /// Other I/O.
    #[error("storage I/O: {0}")]
    Io(io::Error),
}

impl From<io::Error> for StorageError {
    /// A writer's commit reports through `io::Result`: an error of the storage layer's own that
    /// it carries (the metadata key not loaded) comes back out as itself.
    fn from(e: io::Error) -> Self {
        use crate::sse::metadata_key::KeyUnavailable;
        let inner = e.get_ref();
        if let Some(k) = inner.and_then(|i| i.downcast_ref::<KeyUnavailable>()) {
            return StorageError::MetadataKeyUnavailable(*k);
        }
        // A lock that stayed taken: nothing was changed, the client may retry (503 SlowDown).
        if let Some(busy) = inner.and_then(|i| i.downcast_ref::<LockBusy>()) {
            return StorageError::Unavailable(busy.to_string());
        }
        StorageError::Io(e)
    }
}

impl From<MetaError> for StorageError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Io(e) => StorageError::Io(e),
            MetaError::Damaged => StorageError::Damaged,
            MetaError::KeyUnavailable(e) => StorageError::MetadataKeyUnavailable(e),
        }
    }
}

/// An object opened for reading: the file stays valid even if the key is overwritten meanwhile.
pub struct OpenObject {
    /// The file.
    pub file: Arc<std::fs::File>,
    /// Its metadata.
    pub meta: ObjectMeta,
    /// Stored body bytes (ciphertext length for encrypted objects) in `file`.
    pub body_len: u64,
    /// The part files of a multipart object whose parts are files of their own
    /// (`meta.part_dir`), in order, once [`Store::open_parts`] opened them; empty otherwise.
    pub parts: Vec<PartFile>,
    /// The name the file was opened by.
    pub(crate) path: PathBuf,
}

/// One data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Bucket configuration files as last read (shared by the clones of one store).
    configs: Arc<bucket_config::ConfigCache>,
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing ancestors, fsyncing each parent that gained an entry, so a
/// new object's directory survives a crash as surely as the object file in it.
pub(crate) fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    let mut tries = 0;
    loop {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            create_dirs_durably(parent)?;
        }
        match std::fs::create_dir(dir) {
            Ok(()) => {
                if let Some(parent) = dir.parent() {
                    fsync_dir(parent)?;
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            // A concurrent delete pruned the (empty) parent just made: make it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 10 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Opens (creating) `path` and takes an exclusive `flock` of it (polled and bounded, see
/// [`locks`]), held until the file is dropped (or its process dies).
fn lock_file(path: &Path) -> io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    take_lock(&f, &path.to_string_lossy(), false)?;
    Ok(f)
}

pub(crate) fn random_name() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    hex::encode(b)
}

impl Store {
    /// Opens (and creates) a data directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        let s = Self {
            root: root.to_path_buf(),
            configs: Arc::default(),
        };
        std::fs::create_dir_all(s.tmp_dir())?;
        std::fs::create_dir_all(s.system_dir().join("multipart"))?;
        std::fs::create_dir_all(locks::locks_dir(&s.root))?;
        Ok(s)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DIR/.coffer`.
    pub fn system_dir(&self) -> PathBuf {
        self.root.join(layout::SYSTEM_DIR)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.system_dir().join("tmp")
    }

    /// Holds the bucket's directory for a change inside it (see [`locks`]): fails with
    /// [`StorageError::NoSuchBucket`] if it was deleted, and keeps it from being deleted while
    /// the guard lives.
    pub(crate) async fn guard_bucket(&self, bucket: &str) -> Result<BucketGuard, StorageError> {
        if bucket.starts_with('.') {
            return Err(StorageError::NoSuchBucket);
        }
        let dir = self.bucket_path(bucket);
        blocking(move || BucketGuard::take(&dir, true)).await
    }

    /// Takes the lock of the unversioned key `bucket/key` (see [`condition`]).
    pub(crate) async fn lock_unversioned_key(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<KeyStripeLock, StorageError> {
        let (root, bucket, key) = (self.root.clone(), bucket.to_owned(), key.to_owned());
        Ok(blocking(move || KeyStripeLock::take(&root, &bucket, &key)).await?)
    }

    /// Removes temp files older than `age` (left by a crashed writer of any process).
    pub fn clean_temp(&self, age: std::time::Duration) {
        let Ok(rd) = std::fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d > age);
            if old {
                // Files of crashed writers; directories of crashed bucket creations.
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir_all(e.path());
                } else {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    fn bucket_path(&self, bucket: &str) -> PathBuf {
        layout::bucket_dir(&self.root, bucket)
    }

    /// Whether the bucket exists.
    pub fn bucket_exists(&self, bucket: &str) -> bool {
        !bucket.starts_with('.') && self.bucket_path(bucket).is_dir()
    }

    /// Fails with [`StorageError::NoSuchBucket`] unless the bucket exists.
    pub fn require_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        if self.bucket_exists(bucket) {
            Ok(())
        } else {
            Err(StorageError::NoSuchBucket)
        }
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        let p = self.bucket_path(bucket);
        let root = self.root.clone();
        let lock = self.bucket_creation_lock_path();
        blocking(move || {
            let _lock = lock_file(&lock)?;
            match std::fs::create_dir(&p) {
                Ok(()) => fsync_dir(&root).map_err(StorageError::from),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    Err(StorageError::BucketExists)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// The file every bucket creation (of every process on this directory) holds an exclusive
    /// `flock` of: a bucket created with its configuration is staged and renamed into place,
    /// and a rename onto an empty directory replaces it, so without one lock a plain and a
    /// configured creation of one name could both succeed.
    fn bucket_creation_lock_path(&self) -> PathBuf {
        self.system_dir().join("bucket-creation.lock")
    }

    /// Creates a bucket that has configuration files from its first moment (object lock and
    /// versioning): they are written into a directory under the temp directory that is then
    /// renamed into place, so no crash leaves the bucket without them.
    pub async fn create_bucket_with(
        &self,
        bucket: &str,
        configs: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let dest = self.bucket_path(bucket);
        let staged = self.tmp_dir().join(random_name());
        let root = self.root.clone();
        let lock = self.bucket_creation_lock_path();
        blocking(move || {
            let _lock = lock_file(&lock)?;
            if dest.exists() {
                return Err(StorageError::BucketExists);
            }
            std::fs::create_dir(&staged)?;
            let result = (|| -> io::Result<()> {
                for (name, data) in configs {
                    let f = staged.join(format!(".{name}.json"));
                    std::fs::write(&f, data)?;
                    std::fs::File::open(&f)?.sync_all()?;
                }
                fsync_dir(&staged)?;
                // Under the creation lock nobody else creates `dest` meanwhile.
                std::fs::rename(&staged, &dest)?;
                fsync_dir(&root)
            })();
            result.map_err(|e| {
                let _ = std::fs::remove_dir_all(&staged);
                match e.kind() {
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists => {
                        StorageError::BucketExists
                    }
                    _ => e.into(),
                }
            })
        })
        .await
    }

    /// Deletes an empty bucket (its configuration files go with it), under the exclusive
    /// bucket guard: no write is between its check and its commit meanwhile, and every write
    /// that waited finds the bucket gone.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        self.require_bucket(bucket)?;
        let p = self.bucket_path(bucket);
        blocking(move || {
            let _guard = BucketGuard::take(&p, false)?;
            for e in std::fs::read_dir(&p)? {
                let e = e?;
                let is_segment = e
                    .file_name()
                    .to_str()
                    .and_then(layout::segment_of)
                    .is_some();
                if is_segment && has_objects(&e.path(), true)? {
                    return Err(StorageError::BucketNotEmpty);
                }
            }
            std::fs::remove_dir_all(&p)?;
            Ok(())
        })
        .await?;
        self.configs.forget_under(&self.bucket_path(bucket));
        Ok(())
    }

    /// Every bucket and when it was created, sorted by name.
    pub async fn list_buckets(&self) -> Result<Vec<(String, SystemTime)>, StorageError> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&root)? {
                let e = e?;
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with('.') || !e.file_type()?.is_dir() {
                    continue;
                }
                let md = e.metadata()?;
                let t = md
                    .created()
                    .or_else(|_| md.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((name, t));
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    /// Reads a bucket configuration file (e.g. `encryption`), `None` if absent; cached by its
    /// stamp, so a change by any process is seen by the next read.
    pub async fn read_bucket_config(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.require_bucket(bucket)?;
        let p = self.bucket_path(bucket).join(format!(".{name}.json"));
        Ok(self.configs.read(p).await?.map(|b| b.to_vec()))
    }

    /// Atomically replaces (or with `None` removes) a bucket configuration file.
    pub async fn write_bucket_config(
        &self,
        bucket: &str,
        name: &str,
        data: Option<Vec<u8>>,
    ) -> Result<(), StorageError> {
        self.require_bucket(bucket)?;
        let dest = self.bucket_path(bucket).join(format!(".{name}.json"));
        match data {
            None => match tokio::fs::remove_file(&dest).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            },
            Some(d) => {
                let mut w = self.writer().await?;
                w.write(&d).await?;
                // A bucket deleted meanwhile is not made again for its configuration file.
                let _guard = self.guard_bucket(bucket).await?;
                w.commit_plain(dest).await?;
                Ok(())
            }
        }
    }

    /// The object file of `bucket/key`.
    pub fn object_path(&self, bucket: &str, key: &str) -> Result<PathBuf, StorageError> {
        Ok(self
            .bucket_path(bucket)
            .join(layout::key_dir(key)?)
            .join(layout::OBJECT_FILE))
    }

    /// Opens an object for reading.
    pub async fn open_object(&self, bucket: &str, key: &str) -> Result<OpenObject, StorageError> {
        self.require_bucket(bucket)?;
        let p = self.object_path(bucket, key)?;
        blocking(move || open_file(&p)).await
    }

    /// Opens any object file by path (multipart parts use the same format).
    pub async fn open_path(&self, p: PathBuf) -> Result<OpenObject, StorageError> {
        blocking(move || open_file(&p)).await
    }

    /// Deletes an object (absent is fine) and prunes the directories it leaves empty.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.delete_object_if(bucket, key, |_| Ok(())).await
    }

    /// [`Store::delete_object`] if `still` accepts the metadata of the object there (`None`:
    /// there is none), seen under the key's lock, so no commit lands between the look and the
    /// unlink; else `still`'s error, and nothing changes. Absent and accepted is a no-op.
    pub(crate) async fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        still: impl FnOnce(Option<&ObjectMeta>) -> Result<(), StorageError> + Send + 'static,
    ) -> Result<(), StorageError> {
        self.require_bucket(bucket)?;
        let p = self.object_path(bucket, key)?;
        let stop = self.bucket_path(bucket);
        // Serialised with the key's commits, which check their conditions under this lock.
        let key_lock = self.lock_unversioned_key(bucket, key).await?;
        blocking(move || {
            let _key_lock = key_lock;
            match open_file(&p) {
                Ok(o) => still(Some(&o.meta))?,
                Err(StorageError::NoSuchKey) => still(None)?,
                Err(e) => return Err(e),
            }
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let mut dir = p.parent().map(Path::to_path_buf);
            if let Some(d) = &dir {
                let _ = fsync_dir(d);
                // A multipart object's part files go with it.
                parts::sweep(d);
            }
            while let Some(d) = dir {
                if d == stop || std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
            Ok(())
        })
        .await
    }

    /// Every key in `bucket` that starts with `prefix`, sorted by UTF-8 bytes. With
    /// `slash_delimited`, a subtree below the prefix is reported once as `dir/` (the common
    /// prefix a `/` delimiter makes of it) instead of key by key.
    pub async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        slash_delimited: bool,
    ) -> Result<Vec<String>, StorageError> {
        self.walk_keys(bucket, prefix, slash_delimited, false).await
    }

    /// Like [`Store::list_keys`], but every key that has any version (for ListObjectVersions:
    /// keys whose latest version is a delete marker too).
    pub async fn list_version_keys(
        &self,
        bucket: &str,
        prefix: &str,
        slash_delimited: bool,
    ) -> Result<Vec<String>, StorageError> {
        self.walk_keys(bucket, prefix, slash_delimited, true).await
    }

    async fn walk_keys(
        &self,
        bucket: &str,
        prefix: &str,
        slash_delimited: bool,
        any_version: bool,
    ) -> Result<Vec<String>, StorageError> {
        self.require_bucket(bucket)?;
        // Start at the deepest directory the prefix's complete segments name.
        let (dir_part, key_base) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[..=i]),
            None => ("", ""),
        };
        let mut start = self.bucket_path(bucket);
        if !dir_part.is_empty() || key_base == "/" {
            match layout::key_dir(if dir_part.is_empty() { "" } else { dir_part }) {
                Ok(p) => start.push(p),
                Err(KeyError::Empty) => start.push("_"),
                Err(_) => return Ok(Vec::new()),
            }
        }
        let prefix = prefix.to_owned();
        let key_base = key_base.to_owned();
        blocking(move || {
            let mut out = Vec::new();
            let w = Walk {
                prefix: &prefix,
                collapse: slash_delimited,
                any_version,
            };
            w.walk(&start, &key_base, &mut out)?;
            out.sort();
            Ok(out)
        })
        .await
    }

    /// A new temp file to write an object into.
    pub async fn writer(&self) -> io::Result<ObjectWriter> {
        let path = self.tmp_dir().join(random_name());
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(ObjectWriter {
            file: Some(file),
            path,
            written: 0,
            dup: None,
            in_flight: None,
        })
    }

    /// The directory of multipart upload `id` of `bucket`.
    pub fn upload_dir(&self, bucket: &str, id: &str) -> PathBuf {
        layout::upload_dir(&self.root, bucket, id)
    }

    /// Removes a multipart upload's directory (or a bucket's directory of them) after renaming
    /// it into the temp directory, so that a Complete moving it at that moment either gets it
    /// whole or finds it gone, never half removed (blocking). Whether it existed.
    pub fn remove_upload_dir(&self, dir: &Path) -> io::Result<bool> {
        let claimed = self.tmp_dir().join(random_name());
        match std::fs::rename(dir, &claimed) {
            Ok(()) => {}
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
        std::fs::remove_dir_all(&claimed)?;
        Ok(true)
    }

    /// The directory holding every multipart upload of `bucket`.
    pub fn uploads_dir(&self, bucket: &str) -> PathBuf {
        self.system_dir().join("multipart").join(bucket)
    }
}

pub(crate) fn open_file(p: &Path) -> Result<OpenObject, StorageError> {
    let file = match std::fs::File::open(p) {
        Ok(f) => f,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            return Err(StorageError::NoSuchKey);
        }
        Err(e) => return Err(e.into()),
    };
    let (meta, body_len) = ObjectMeta::read_from(&file)?;
    Ok(OpenObject {
        file: Arc::new(file),
        meta,
        body_len,
        parts: Vec::new(),
        path: p.to_path_buf(),
    })
}

/// Whether the key directory `dir` or one below it holds an object: a live one, or with
/// `any_version` any version at all (delete markers included: they keep a bucket non-empty).
fn has_objects(dir: &Path, any_version: bool) -> io::Result<bool> {
    let here = if any_version {
        versions::has_any_version(dir)
    } else {
        versions::has_live_object(dir)
    };
    if here {
        return Ok(true);
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if layout::segment_of(name).is_some()
            && e.file_type()?.is_dir()
            && has_objects(&e.path(), any_version)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A walk of a bucket's key directories.
struct Walk<'a> {
    prefix: &'a str,
    /// Report a subtree below the prefix once as `dir/` (delimiter `/`).
    collapse: bool,
    /// Count keys with any version (delete markers too), not only live objects.
    any_version: bool,
}

impl Walk<'_> {
    fn holds(&self, dir: &Path) -> bool {
        if self.any_version {
            versions::has_any_version(dir)
        } else {
            versions::has_live_object(dir)
        }
    }

    /// Collects keys under `dir` (whose keys start with `base`) that start with the prefix.
    fn walk(&self, dir: &Path, base: &str, out: &mut Vec<String>) -> io::Result<()> {
        let prefix = self.prefix;
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let name = e.file_name();
            let Some(seg) = name.to_str().and_then(layout::segment_of) else {
                continue;
            };
            let key = format!("{base}{seg}");
            // Prune subtrees that cannot match: the key and all below it share `key` as a prefix.
            let common = key.len().min(prefix.len());
            if key.as_bytes()[..common] != prefix.as_bytes()[..common] {
                continue;
            }
            let path = e.path();
            if key.starts_with(prefix) && self.holds(&path) {
                out.push(key.clone());
            }
            if self.collapse && key.starts_with(prefix) {
                // With delimiter "/", everything below `key/` is one common prefix: report it
                // once (as the key `key/`) if the subtree holds any object, without walking it all.
                if has_descendants(&path, self.any_version)? {
                    out.push(format!("{key}/"));
                }
                continue;
            }
            self.walk(&path, &format!("{key}/"), out)?;
        }
        Ok(())
    }
}

/// Whether any object lies strictly below the key directory `dir`.
fn has_descendants(dir: &Path, any_version: bool) -> io::Result<bool> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        if name.to_str().and_then(layout::segment_of).is_some()
            && e.file_type()?.is_dir()
            && has_objects(&e.path(), any_version)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A temp file being written; renamed into place by a commit, removed if dropped uncommitted.
pub struct ObjectWriter {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    written: u64,
    /// A dup of `file`'s descriptor (sharing its offset) that [`Self::write_owned`] writes
    /// through on the blocking pool.
    dup: Option<Arc<std::fs::File>>,
    /// The write [`Self::write_owned`] started last: its result and its buffer, handed back.
    in_flight: Option<tokio::task::JoinHandle<(io::Result<()>, Vec<u8>)>>,
}

impl ObjectWriter {
    /// Appends `buf` without copying it: the write runs on the blocking pool while the caller
    /// fills the returned (empty) buffer, the one the previous call wrote. A failed write is
    /// reported by the next call on this writer, and every other call (and `commit`) waits for
    /// it first, so nothing is committed before its bytes are written.
    pub async fn write_owned(&mut self, buf: Vec<u8>) -> io::Result<Vec<u8>> {
        let spare = self.settle().await?;
        let f = self.file.as_mut().expect("writer open");
        // Anything written through the tokio file lands before these bytes.
        f.flush().await?;
        let dup = match &self.dup {
            Some(d) => d.clone(),
            None => {
                let d = Arc::new(f.try_clone().await?.into_std().await);
                self.dup = Some(d.clone());
                d
            }
        };
        let capacity = buf.capacity();
        self.written += buf.len() as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let r = (&*dup).write_all(&buf);
            (r, buf)
        }));
        let mut spare = spare.unwrap_or_else(|| Vec::with_capacity(capacity));
        spare.clear();
        Ok(spare)
    }

    /// Waits for the write [`Self::write_owned`] started; its buffer back.
    async fn settle(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(h) = self.in_flight.take() else {
            return Ok(None);
        };
        let (r, buf) = h.await.map_err(io::Error::other)?;
        r?;
        Ok(Some(buf))
    }

    /// Appends bytes.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.settle().await?;
        self.file
            .as_mut()
            .expect("writer open")
            .write_all(data)
            .await?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Appends `len` bytes of `src` from offset `start`, copied by the kernel
    /// (`copy_file_range`: no trip through user space; a reflink where the file system has them).
    pub async fn append_from(
        &mut self,
        src: Arc<std::fs::File>,
        start: u64,
        len: u64,
    ) -> io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        self.settle().await?;
        let f = self.file.as_mut().expect("writer open");
        f.flush().await?;
        // A dup of the descriptor shares its offset, so the copy lands at the end.
        let dst = f.try_clone().await?.into_std().await;
        let copied = blocking(move || {
            let mut r = &*src;
            r.seek(SeekFrom::Start(start))?;
            let mut d = &dst;
            std::io::copy(&mut r.take(len), &mut d)
        })
        .await?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "source is shorter than expected",
            ));
        }
        self.written += len;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends the metadata trailer and atomically puts the file at `dest`.
    pub async fn commit(mut self, meta: &ObjectMeta, dest: PathBuf) -> io::Result<()> {
        let t = meta.to_trailer().map_err(io::Error::other)?;
        self.write(&t).await?;
        self.commit_plain(dest).await
    }

    /// fsyncs the file, renames it to `dest` (creating directories) and fsyncs the directory.
    pub async fn commit_plain(mut self, dest: PathBuf) -> io::Result<()> {
        self.settle().await?;
        self.dup = None;
        let mut file = self.file.take().expect("writer open");
        file.flush().await?;
        let std_file = file.into_std().await;
        let tmp = self.path.clone();
        blocking(move || {
            std_file.sync_data()?;
            drop(std_file);
            let parent = dest
                .parent()
                .expect("object path has a parent")
                .to_path_buf();
            let mut tries = 0;
            loop {
                create_dirs_durably(&parent)?;
                match std::fs::rename(&tmp, &dest) {
                    Ok(()) => break,
                    // A concurrent delete pruned the directory between the two calls: retry.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 10 => tries += 1,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
            }
            fsync_dir(&parent)
        })
        .await?;
        self.path = PathBuf::new();
        Ok(())
    }
}

/// A staged body handed to an engine that uploads it ([`ObjectWriter::into_staged`]); the temp
/// file goes when this is dropped.
pub struct StagedFile {
    path: PathBuf,
    /// Its length.
    pub len: u64,
}

impl StagedFile {
    /// Opens it for reading (again for every attempt of an upload).
    pub async fn open(&self) -> io::Result<tokio::fs::File> {
        tokio::fs::File::open(&self.path).await
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ObjectWriter {
    /// Finishes the temp file (with `meta`'s trailer appended, if given) for an engine that
    /// uploads it instead of renaming it into place. Not fsynced: the upload is the commit, and
    /// a crash before it leaves nothing but the temp file.
    pub async fn into_staged(mut self, meta: Option<&ObjectMeta>) -> io::Result<StagedFile> {
        if let Some(m) = meta {
            self.write(&m.to_trailer().map_err(io::Error::other)?)
                .await?;
        }
        self.settle().await?;
        self.dup = None;
        let mut file = self.file.take().expect("writer open");
        file.flush().await?;
        drop(file);
        let path = std::mem::take(&mut self.path);
        Ok(StagedFile {
            path,
            len: self.written,
        })
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit that could not seal its digests (no metadata key yet) is that error, which S3
    /// answers 503, not a storage I/O failure (500).
    #[test]
    fn a_commit_without_the_metadata_key_is_that_error_not_io() {
        use crate::sse::metadata_key::KeyUnavailable;
        let carried = io::Error::other(KeyUnavailable);
        assert!(matches!(
            StorageError::from(carried),
            StorageError::MetadataKeyUnavailable(KeyUnavailable)
        ));
        let disk = io::Error::new(io::ErrorKind::StorageFull, "full");
        assert!(matches!(StorageError::from(disk), StorageError::Io(_)));
    }

    async fn put(s: &Store, b: &str, k: &str, body: &[u8]) {
        let mut w = s.writer().await.unwrap();
        w.write(body).await.unwrap();
        let m = ObjectMeta {
            size: body.len() as u64,
            ..Default::default()
        };
        w.commit(&m, s.object_path(b, k).unwrap()).await.unwrap();
    }

    /// Handed-over buffers, borrowed writes and the trailer land in order, and the buffers
    /// come back empty for reuse.
    #[tokio::test]
    async fn owned_and_borrowed_writes_keep_their_order() {
        use std::os::unix::fs::FileExt;
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.create_bucket("b").await.unwrap();
        let mut w = s.writer().await.unwrap();
        let mut want = Vec::new();
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..5u8 {
            buf.extend(std::iter::repeat_n(i, 300_000 + i as usize));
            want.extend_from_slice(&buf);
            buf = w.write_owned(buf).await.unwrap();
            assert!(buf.is_empty() && buf.capacity() >= 1 << 20);
            if i == 2 {
                w.write(b"borrowed").await.unwrap();
                want.extend_from_slice(b"borrowed");
            }
        }
        let m = ObjectMeta {
            size: want.len() as u64,
            ..Default::default()
        };
        w.commit(&m, s.object_path("b", "k").unwrap())
            .await
            .unwrap();
        let o = s.open_object("b", "k").await.unwrap();
        assert_eq!(o.body_len, want.len() as u64);
        let mut got = vec![0u8; want.len()];
        o.file.read_exact_at(&mut got, 0).unwrap();
        assert!(got == want);
    }

    #[tokio::test]
    async fn nested_keys_and_listing() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.create_bucket("b").await.unwrap();
        assert!(matches!(
            s.create_bucket("b").await,
            Err(StorageError::BucketExists)
        ));
        for k in ["a", "a/b", "a-b", "a/", "../x", "ü/日本", "z/y/x"] {
            put(&s, "b", k, k.as_bytes()).await;
        }
        let all = s.list_keys("b", "", false).await.unwrap();
        let mut want = vec!["../x", "a", "a-b", "a/", "a/b", "z/y/x", "ü/日本"];
        want.sort();
        assert_eq!(all, want);
        assert_eq!(
            s.list_keys("b", "a/", false).await.unwrap(),
            vec!["a/", "a/b"]
        );
        assert_eq!(
            s.list_keys("b", "a", false).await.unwrap(),
            vec!["a", "a-b", "a/", "a/b"]
        );
        assert_eq!(
            s.list_keys("b", "z/y/", false).await.unwrap(),
            vec!["z/y/x"]
        );
        assert!(s.list_keys("b", "q", false).await.unwrap().is_empty());
        let mut grouped = vec!["../", "a", "a-b", "a/", "z/", "ü/"];
        grouped.sort();
        assert_eq!(s.list_keys("b", "", true).await.unwrap(), grouped);
        assert_eq!(s.list_keys("b", "z/", true).await.unwrap(), vec!["z/y/"]);
        // Nothing was written outside the bucket.
        assert!(!d.path().join("x").exists());
        let o = s.open_object("b", "a/b").await.unwrap();
        assert_eq!(o.body_len, 3);
        assert!(matches!(
            s.delete_bucket("b").await,
            Err(StorageError::BucketNotEmpty)
        ));
        for k in &want {
            s.delete_object("b", k).await.unwrap();
        }
        assert!(matches!(
            s.open_object("b", "a").await,
            Err(StorageError::NoSuchKey)
        ));
        s.delete_bucket("b").await.unwrap();
        assert!(!s.bucket_exists("b"));
    }

    #[tokio::test]
    async fn dropped_writer_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        {
            let mut w = s.writer().await.unwrap();
            w.write(b"partial").await.unwrap();
        }
        assert_eq!(std::fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }
}
