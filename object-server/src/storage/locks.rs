//! The locks that every process serving one data directory takes: exclusive or shared `flock`s
//! of regular files under `DIR/.coffer/locks/`, which die with their process.
//!
//! **Files, never directories.** The processes may run on different machines that mount one
//! shared filesystem (a CephFS volume mounted by every pod of a Tenant). There an `flock` of a
//! regular file is the filesystem's and holds across every client, but on a FUSE mount
//! (`ceph-fuse`, the CephFS client Rook uses by default) an `flock` of a directory never reaches
//! the filesystem: the kernel keeps it in that mount's own inode, so a process on another mount
//! takes "the same" lock at once (seen with Ceph 16.2.15, and asserted by
//! `e2e/tests/peer_ceph.rs`). So every lock here is a file named after what it protects.
//!
//! **Lock files are never removed**, so a waiter never holds the lock of a file its holder
//! unlinked meanwhile, and a holder may remove the directory it protects: a waiter that gets the
//! lock afterwards finds the directory gone (or makes it again).
//!
//! | lock | file | held by |
//! |---|---|---|
//! | bucket guard ([`BucketGuard`]) | `bucket-<name>` | shared: every change inside the bucket; exclusive: `DeleteBucket` |
//! | key stripe ([`KeyStripeLock`]) | `key-<stripe>` | every commit and delete of an unversioned key |
//! | a key's `versions/` or `parts/` ([`lock_dir`]) | `versions-<stripe>`, `parts-<stripe>` | see `versions` and `parts` |
//!
//! **Never a blocking `flock`: polled, and bounded.** A lock is taken with `LOCK_NB` and tried
//! again after a short pause that grows to [`MAX_PAUSE`], until [`lock_wait`] has passed; then
//! the request fails with [`LockBusy`] (`503 SlowDown`, nothing changed). A blocking `flock`
//! on `ceph-fuse` leaks: when a process is killed (`kill -9`, the OOM killer) while one of its
//! threads waits in `flock`, the kernel interrupts the wait, `ceph-fuse` cancels it at the MDS,
//! and if the MDS granted the lock at that very moment the cancel is too late, `ceph-fuse`
//! answers `EINTR` without recording the lock, and its release at the file's close skips it:
//! the MDS keeps the lock for that client (the mount, alive) as long as its session lives, and
//! every process on every mount then waits for it forever (seen with Ceph 16.2.15: a commit
//! after `kill -9` hung; the MDS named the killed process's mount as the holder of a lock file
//! no process had open, and `ceph-fuse`'s log showed the interrupt and cancel 4 ms after the
//! grant, `_flock … result=-4`, then the file's release without an unlock). A non-blocking
//! request is never interrupted that way: the kernel waits for its answer, `ceph-fuse` records
//! the lock, and the close releases it. What a shared filesystem must give us: `flock` of a
//! regular file across clients, released when its holder's file is closed (also by the death of
//! its process), and non-blocking requests; the bound turns any other stuck lock (a node that
//! died holding one, until the MDS evicts its session) into `503 SlowDown` instead of a request
//! that never ends. [`take_lock`] also takes the data
//! directory's other locks (bucket creation's, the IAM store's).
//!
//! Stripes (4096 files per kind, by a digest of the bucket and key, or of the directory's path
//! in the data directory) keep the number of files bounded; two keys share one only by chance,
//! and their commits then take turns. No thread ever holds two locks of one kind, and every
//! thread takes the kinds in one order (bucket guard, then a key's lock, then its `parts/`), so
//! sharing a stripe never deadlocks.
use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::layout::{self, SYSTEM_DIR};
use super::{StorageError, create_dirs_durably, not_found};

/// Lock files per striped kind.
const STRIPES: u32 = 4096;

/// How long a request waits for a lock by default (`COFFER_LOCK_WAIT_SECONDS`): far longer
/// than any holder keeps one (a commit's renames and fsyncs), shorter than a client's timeout.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);
/// The longest pause between two tries of a lock: a waiter notices a released lock this late
/// at most (a blocking `flock` would be woken at once, see the module doc for why not).
const MAX_PAUSE: Duration = Duration::from_millis(20);
/// The first pause: about one round trip to the MDS, so an uncontended lock costs nothing more.
const FIRST_PAUSE: Duration = Duration::from_micros(250);

/// [`lock_wait`] in milliseconds (0: the default).
static LOCK_WAIT_MS: AtomicU64 = AtomicU64::new(0);

/// Sets how long a request waits for a lock in this process (from the configuration).
pub fn set_lock_wait(wait: Duration) {
    LOCK_WAIT_MS.store(wait.as_millis().max(1) as u64, Ordering::Relaxed);
}

/// How long a request waits for a lock before it fails with [`LockBusy`].
pub fn lock_wait() -> Duration {
    match LOCK_WAIT_MS.load(Ordering::Relaxed) {
        0 => DEFAULT_LOCK_WAIT,
        ms => Duration::from_millis(ms),
    }
}

/// A lock stayed taken for [`lock_wait`]: the request changed nothing and may be retried
/// (`503 SlowDown`).
#[derive(Debug, thiserror::Error)]
#[error("the lock file {file} stayed taken for {waited:?}")]
pub struct LockBusy {
    /// The lock file: its name in `.coffer/locks/`, or its path.
    pub file: String,
    /// How long the request waited.
    pub waited: Duration,
}

/// Takes `lock` (exclusive, or shared if `shared`) without ever blocking in `flock` (see the
/// module doc): tries, pauses, tries again until [`lock_wait`] has passed.
pub(crate) fn take_lock(lock: &File, name: &str, shared: bool) -> io::Result<()> {
    take_lock_within(lock, name, shared, lock_wait())
}

/// [`take_lock`], giving up after `wait`.
fn take_lock_within(lock: &File, name: &str, shared: bool, wait: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let tried = if shared {
            lock.try_lock_shared()
        } else {
            lock.try_lock()
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) => {}
        }
        let waited = start.elapsed();
        if waited >= wait {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                LockBusy {
                    file: name.to_owned(),
                    waited,
                },
            ));
        }
        std::thread::sleep(pause.min(wait - waited));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The locks directory of the data directory `root`.
pub(crate) fn locks_dir(root: &Path) -> PathBuf {
    root.join(SYSTEM_DIR).join("locks")
}

/// Opens (creating it, and the locks directory, if needed) the lock file `name` of the data
/// directory `root`.
fn open_lock_file(root: &Path, name: &str) -> io::Result<File> {
    let dir = locks_dir(root);
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(name))
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_dirs_durably(&dir)?;
            open()
        }
        other => other,
    }
}

/// A shared (writers) or exclusive (`DeleteBucket`) lock of a bucket.
#[derive(Debug)]
pub(crate) struct BucketGuard {
    /// The bucket's directory, open: its inode cannot be reused for another directory while
    /// the guard lives, so the identity check below cannot be fooled.
    _dir: File,
    _lock: File,
}

impl BucketGuard {
    /// Takes the lock of the bucket whose directory is `dir` (blocking) and checks that `dir`
    /// still names the directory it found; [`StorageError::NoSuchBucket`] if it does not (the
    /// bucket was deleted, or deleted and made again, while this waited).
    pub(crate) fn take(dir: &Path, shared: bool) -> Result<Self, StorageError> {
        let (Some(root), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str()))
        else {
            return Err(StorageError::NoSuchBucket);
        };
        let f = match File::open(dir) {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Err(StorageError::NoSuchBucket),
            Err(e) => return Err(e.into()),
        };
        let lock_name = format!("bucket-{name}");
        let lock = open_lock_file(root, &lock_name)?;
        take_lock(&lock, &lock_name, shared)?;
        let held = f.metadata()?;
        match std::fs::metadata(dir) {
            Ok(now) if now.is_dir() && now.ino() == held.ino() && now.dev() == held.dev() => {
                Ok(Self {
                    _dir: f,
                    _lock: lock,
                })
            }
            Ok(_) => Err(StorageError::NoSuchBucket),
            Err(e) if not_found(&e) => Err(StorageError::NoSuchBucket),
            Err(e) => Err(e.into()),
        }
    }
}

/// The lock every commit and delete of an unversioned key holds.
#[derive(Debug)]
pub(crate) struct KeyStripeLock {
    _file: File,
}

impl KeyStripeLock {
    /// Takes the stripe lock of `bucket/key` in the data directory `root` (blocking).
    pub(crate) fn take(root: &Path, bucket: &str, key: &str) -> io::Result<Self> {
        let name = format!(
            "key-{:03x}",
            stripe_of(&[bucket.as_bytes(), b"/", key.as_bytes()])
        );
        let f = open_lock_file(root, &name)?;
        take_lock(&f, &name, false)?;
        Ok(Self { _file: f })
    }
}

/// Takes the lock of a key's `versions/` or `parts/` directory `dir` (blocking), creating the
/// directory (and its ancestors) first if `create`; `None` when it does not exist and `create`
/// is false. The lock is by name: its holder may remove the directory, and whoever holds it
/// next finds it gone.
pub(crate) fn lock_dir(dir: &Path, create: bool) -> io::Result<Option<File>> {
    let (root, name) = dir_lock_name(dir).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is no key's directory", dir.display()),
        )
    })?;
    let lock = open_lock_file(root, &name)?;
    take_lock(&lock, &name, false)?;
    if create {
        create_dirs_durably(dir)?;
    } else if !dir.is_dir() {
        return Ok(None);
    }
    Ok(Some(lock))
}

/// Takes the lock of a key's `versions/` or `parts/` directory `dir` (blocking) whether the
/// directory exists or not: what holds off a writer that would create it meanwhile.
pub(crate) fn lock_dir_name(dir: &Path) -> io::Result<File> {
    let (root, name) = dir_lock_name(dir).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is no key's directory", dir.display()),
        )
    })?;
    let lock = open_lock_file(root, &name)?;
    take_lock(&lock, &name, false)?;
    Ok(lock)
}

/// Takes the exclusive lock file `name` of the data directory `root` if nobody holds it;
/// `None` if another holds it (a lease that dies with its holder's process).
pub(crate) fn try_lock_named(root: &Path, name: &str) -> io::Result<Option<File>> {
    let f = open_lock_file(root, name)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The data directory and the lock file name of the directory `dir` of a key
/// (`DIR/<bucket>/_a/_b/versions`): its kind (the directory's name) and the stripe of its path
/// in the data directory, which is the same in every process whatever path it mounts `DIR` at.
fn dir_lock_name(dir: &Path) -> Option<(&Path, String)> {
    let kind = dir.file_name()?.to_str()?;
    let key_dir = dir.parent()?;
    layout::segment_of(key_dir.file_name()?.to_str()?)?;
    let (root, _) = layout::bucket_of_key_dir(key_dir)?;
    let rel = dir.strip_prefix(root).ok()?;
    Some((
        root,
        format!(
            "{kind}-{:03x}",
            stripe_of(&[rel.as_os_str().as_encoded_bytes()])
        ),
    ))
}

/// The stripe of some bytes: the same in every process and build (a digest, not a seeded hash).
fn stripe_of(parts: &[&[u8]]) -> u32 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let d = ctx.finish();
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % STRIPES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(bucket: &str, key: &str) -> u32 {
        stripe_of(&[bucket.as_bytes(), b"/", key.as_bytes()])
    }

    #[test]
    fn stripes_are_stable_and_spread() {
        // The same in every process and build: the lock must be shared across processes.
        assert_eq!(stripe("b", "k"), stripe("b", "k"));
        assert_ne!(stripe("b", "k"), stripe("b/k", ""));
        let distinct: std::collections::HashSet<u32> =
            (0..200).map(|i| stripe("b", &format!("k{i}"))).collect();
        assert!(distinct.len() > 190);
    }

    /// The lock of a key's directory is named by its path inside the data directory, so two
    /// processes that reach one data directory by different paths (two mounts) take one lock;
    /// `versions/` and `parts/` of one key never share a file.
    #[test]
    fn a_key_directory_lock_is_the_same_from_every_mount() {
        let (a, name_a) = dir_lock_name(Path::new("/mnt/a/data/bkt/_x/_y/versions")).unwrap();
        let (b, name_b) = dir_lock_name(Path::new("/other/mount/data/bkt/_x/_y/versions")).unwrap();
        assert_eq!(
            (a, b),
            (Path::new("/mnt/a/data"), Path::new("/other/mount/data"))
        );
        assert_eq!(name_a, name_b);
        assert!(name_a.starts_with("versions-"), "{name_a}");
        let (_, parts) = dir_lock_name(Path::new("/mnt/a/data/bkt/_x/_y/parts")).unwrap();
        assert!(parts.starts_with("parts-"), "{parts}");
        let (_, other) = dir_lock_name(Path::new("/mnt/a/data/bkt/_x/_z/versions")).unwrap();
        assert_ne!(name_a, other);
        assert!(dir_lock_name(Path::new("/mnt/a/data/bkt")).is_none());
    }

    /// Every lock is a regular file in the locks directory, never the directory it protects
    /// (on FUSE a directory's flock holds only within one mount).
    #[test]
    fn locks_are_regular_files_that_exclude_each_other() {
        let d = tempfile::tempdir().unwrap();
        let vdir = d.path().join("b/_k/versions");
        std::fs::create_dir_all(d.path().join("b")).unwrap();
        let held = lock_dir(&vdir, true).unwrap().unwrap();
        assert!(held.metadata().unwrap().is_file());
        assert!(vdir.is_dir(), "created under the lock");
        let (_, name) = dir_lock_name(&vdir).unwrap();
        let other = File::open(locks_dir(d.path()).join(&name)).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
        drop(other);
        // Without `create`, a missing directory is no lock.
        assert!(
            lock_dir(&d.path().join("b/_k/parts"), false)
                .unwrap()
                .is_none()
        );
        let guard = BucketGuard::take(&d.path().join("b"), false).unwrap();
        let bucket_lock = File::open(locks_dir(d.path()).join("bucket-b")).unwrap();
        assert!(matches!(
            bucket_lock.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(guard);
    }

    /// A lock held elsewhere is waited for, without a blocking `flock`, and given up after the
    /// wait with [`LockBusy`], which the S3 layer answers `503 SlowDown`; a lock released while
    /// waiting is taken.
    #[test]
    fn a_lock_is_polled_until_free_or_the_wait_has_passed() {
        let d = tempfile::tempdir().unwrap();
        let name = "key-abc";
        let held = open_lock_file(d.path(), name).unwrap();
        held.lock().unwrap();
        let mine = open_lock_file(d.path(), name).unwrap();
        let t0 = Instant::now();
        let e = take_lock_within(&mine, name, true, Duration::from_millis(300)).unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let busy = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<LockBusy>())
            .unwrap();
        assert_eq!(busy.file, name);
        match StorageError::from(e) {
            StorageError::Unavailable(detail) => assert!(detail.contains(name), "{detail}"),
            other => panic!("{other:?}"),
        }
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            drop(held);
        });
        let t0 = Instant::now();
        take_lock_within(&mine, name, false, Duration::from_secs(10)).unwrap();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );
        release.join().unwrap();
        // Taken now: another open file of it cannot have it.
        let other = open_lock_file(d.path(), name).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
    }

    /// A writer's guard of a bucket deleted (or deleted and made again) meanwhile fails; a
    /// delete waits for the writers that hold the guard.
    #[test]
    fn the_bucket_guard_sees_a_deleted_bucket() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("b");
        std::fs::create_dir(&b).unwrap();
        let writer = BucketGuard::take(&b, true).unwrap();
        let deleter = {
            let b = b.clone();
            std::thread::spawn(move || {
                let _g = BucketGuard::take(&b, false).unwrap();
                std::fs::remove_dir(&b).unwrap();
                std::fs::create_dir(&b).unwrap();
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!deleter.is_finished(), "the delete waits for the writer");
        drop(writer);
        deleter.join().unwrap();
        assert!(BucketGuard::take(&b, true).is_ok());
        std::fs::remove_dir(&b).unwrap();
        assert!(matches!(
            BucketGuard::take(&b, true),
            Err(StorageError::NoSuchBucket)
        ));
    }
}
