//! Conditional writes (`If-Match`, `If-None-Match`) and the locks a commit holds while it checks
//! one and puts its object in place.
//!
//! Clients build locks on conditional writes (`If-None-Match: *` succeeds for exactly one of
//! many writers of a new key), so the condition is decided at the commit, against the key's
//! latest version as it is then, under a lock that every commit of that key holds from the check
//! to the rename, in every process serving the directory: the `versions/` lock of a versioned key,
//! the key's stripe lock ([`KeyStripeLock`]) of an unversioned one. A check before the body is
//! read only answers early; it decides nothing.
//!
//! **The bucket guard.** Every change inside a bucket directory holds a shared `flock` of that
//! directory ([`BucketGuard`]) and `DeleteBucket` an exclusive one while it checks emptiness and
//! removes it. A writer that finds the directory gone, or another directory at its name (a
//! bucket deleted and made again), fails with [`StorageError::NoSuchBucket`]; so a bucket
//! deleted during an upload never comes back (without its settings) through the commit's
//! creation of missing parent directories, and a delete never removes an object committed
//! after its emptiness check.
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{StorageError, not_found};

/// One side of a write condition: any object at all (`*`) or one ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    /// `*`.
    Any,
    /// An ETag value, without quotes.
    Tag(String),
}

impl EtagMatch {
    fn matches(&self, etag: &str) -> bool {
        match self {
            EtagMatch::Any => true,
            EtagMatch::Tag(t) => t == etag,
        }
    }
}

/// The preconditions of a write (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// `If-Match`: the key's latest version must exist and match.
    pub if_match: Option<EtagMatch>,
    /// `If-None-Match`: the key's latest version must not match (with `*`: must not exist).
    pub if_none_match: Option<EtagMatch>,
}

impl WriteCondition {
    /// Whether there is nothing to check.
    pub fn is_none(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Decides the condition against the ETag of the key's latest version (`None`: no object,
    /// or a delete marker). [`StorageError::PreconditionFailed`], or
    /// [`StorageError::NoSuchKey`] for `If-Match` on a key without an object (as AWS answers).
    pub fn check(&self, current: Option<&str>) -> Result<(), StorageError> {
        if let (Some(c), Some(cur)) = (&self.if_none_match, current)
            && c.matches(cur)
        {
            return Err(StorageError::PreconditionFailed);
        }
        if let Some(c) = &self.if_match {
            match current {
                None => return Err(StorageError::NoSuchKey),
                Some(cur) if !c.matches(cur) => return Err(StorageError::PreconditionFailed),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// A shared (writers) or exclusive (`DeleteBucket`) `flock` of a bucket's directory.
#[derive(Debug)]
pub(crate) struct BucketGuard {
    _dir: File,
}

impl BucketGuard {
    /// Takes the lock of the bucket directory `dir` (blocking) and checks that `dir` still names
    /// the directory locked; [`StorageError::NoSuchBucket`] if it does not.
    pub(crate) fn take(dir: &Path, shared: bool) -> Result<Self, StorageError> {
        let f = match File::open(dir) {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Err(StorageError::NoSuchBucket),
            Err(e) => return Err(e.into()),
        };
        if shared {
            f.lock_shared()?;
        } else {
            f.lock()?;
        }
        let held = f.metadata()?;
        match std::fs::metadata(dir) {
            Ok(now) if now.is_dir() && now.ino() == held.ino() && now.dev() == held.dev() => {
                Ok(Self { _dir: f })
            }
            Ok(_) => Err(StorageError::NoSuchBucket),
            Err(e) if not_found(&e) => Err(StorageError::NoSuchBucket),
            Err(e) => Err(e.into()),
        }
    }
}

/// Lock files unversioned keys are spread over (by a hash of bucket and key): files that are
/// never removed, so no holder ever locks a file a waiter no longer finds, and two keys share
/// one only by chance (then their commits take turns, nothing worse).
const KEY_STRIPES: u32 = 4096;

/// The lock every commit and delete of an unversioned key holds (an exclusive `flock` of one
/// of [`KEY_STRIPES`] files under `DIR/.coffer/locks/`).
#[derive(Debug)]
pub(crate) struct KeyStripeLock {
    _file: File,
}

impl KeyStripeLock {
    /// Takes the stripe lock of `bucket/key` in the locks directory `locks` (blocking).
    pub(crate) fn take(locks: &Path, bucket: &str, key: &str) -> io::Result<Self> {
        let name = format!("key-{:03x}", stripe_of(bucket, key));
        let path = locks.join(name);
        let f = match open_lock_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                super::create_dirs_durably(locks)?;
                open_lock_file(&path)?
            }
            other => other?,
        };
        f.lock()?;
        Ok(Self { _file: f })
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// The stripe of `bucket/key`: the same in every process (a digest, not a seeded hash).
fn stripe_of(bucket: &str, key: &str) -> u32 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(bucket.as_bytes());
    ctx.update(b"/");
    ctx.update(key.as_bytes());
    let d = ctx.finish();
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % KEY_STRIPES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(if_match: Option<EtagMatch>, if_none_match: Option<EtagMatch>) -> WriteCondition {
        WriteCondition {
            if_match,
            if_none_match,
        }
    }

    #[test]
    fn conditions_decide_as_aws() {
        let tag = |t: &str| Some(EtagMatch::Tag(t.to_owned()));
        let any = Some(EtagMatch::Any);
        let failed =
            |r: Result<(), StorageError>| matches!(r, Err(StorageError::PreconditionFailed));
        assert!(WriteCondition::default().check(Some("a")).is_ok());
        assert!(WriteCondition::default().check(None).is_ok());
        // If-None-Match: * is "create only".
        assert!(cond(None, any.clone()).check(None).is_ok());
        assert!(failed(cond(None, any.clone()).check(Some("a"))));
        assert!(failed(cond(None, tag("a")).check(Some("a"))));
        assert!(cond(None, tag("a")).check(Some("b")).is_ok());
        // If-Match: the object must be there, and match.
        assert!(matches!(
            cond(tag("a"), None).check(None),
            Err(StorageError::NoSuchKey)
        ));
        assert!(matches!(
            cond(any.clone(), None).check(None),
            Err(StorageError::NoSuchKey)
        ));
        assert!(cond(tag("a"), None).check(Some("a")).is_ok());
        assert!(cond(any, None).check(Some("a")).is_ok());
        assert!(failed(cond(tag("a"), None).check(Some("b"))));
    }

    #[test]
    fn stripes_are_stable_and_spread() {
        // The same in every process and build: the lock must be shared across processes.
        assert_eq!(stripe_of("b", "k"), stripe_of("b", "k"));
        assert_ne!(stripe_of("b", "k"), stripe_of("b/k", ""));
        let distinct: std::collections::HashSet<u32> =
            (0..200).map(|i| stripe_of("b", &format!("k{i}"))).collect();
        assert!(distinct.len() > 190);
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
