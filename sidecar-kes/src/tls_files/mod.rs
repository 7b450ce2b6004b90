//! TLS material read from files and read again when the files change, so that a renewed
//! certificate, key or CA takes effect at the next handshake without a restart (as MinIO and
//! KES do). One implementation for every TLS file this workspace reads: the `kes` server's
//! certificate, key and client CA, its Vault client TLS, and the KES client identity and CA of
//! the object server (see [`rustls`] for the rustls adapters).
//!
//! How a change is seen: a [`Watched`] value remembers the identity of its files (device,
//! inode, size, modification time, following symlinks; for a directory, that of every regular
//! file in it). When it is used, and at most once every [`CHECK_EVERY`], it compares them with
//! the files on disk and reads the files again only when they differ. Kubernetes renews a
//! Secret volume by writing a new directory and swapping the `..data` symlink atomically: the
//! files then resolve to new inodes, which this sees at once, and a certificate and its key
//! change together. Why polling on use rather than a file watcher: the check is a few `stat`
//! calls a second at most, it needs no thread, runtime or inotify watch (inotify on a symlinked
//! Secret volume sees the swap of `..data`, not the files a path names), and an idle server
//! does nothing. A handshake never reads a file unless one changed, and at most one handshake
//! at a time runs the check: the others go on with the value in effect.
//!
//! What is refused: a change that does not load (a half-written or unparsable PEM, a
//! certificate that does not match its key, a missing file) keeps the previous value in
//! effect and logs one warning naming the file and the reason, never key material; the files
//! are tried again when they change again. Established connections are not touched: only
//! handshakes that start after the change use the new value.

pub mod rustls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// The longest a changed file goes unnoticed by a server or client in use.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why files could not be loaded. Names the file; never holds key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct LoadError {
    /// The file (or files) at fault.
    pub file: String,
    /// What is wrong with it.
    pub reason: String,
}

impl LoadError {
    /// An error about `file`.
    pub fn new(file: &Path, reason: impl Into<String>) -> Self {
        LoadError {
            file: file.display().to_string(),
            reason: reason.into(),
        }
    }
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| LoadError::new(path, e.to_string()))
}

/// Reads a PEM file, or every regular file of a directory (a CA directory such as
/// `--certs-dir/CAs`, or a Secret volume: its `..data` entries are directories and skipped),
/// in name order.
pub fn read_file_or_dir(path: &Path) -> Result<Vec<Vec<u8>>, LoadError> {
    if !path.is_dir() {
        return Ok(vec![read(path)?]);
    }
    dir_files(path)?.iter().map(|p| read(p)).collect()
}

/// The regular files of a directory (symlinks followed), in name order.
fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError::new(dir, e.to_string()))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// What identifies one version of a file: a replaced file (new inode), a rewritten one (size,
/// time) and a swapped symlink all differ.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

/// The stamps of `paths` (a directory stands for its regular files); a missing file is `None`.
fn stamps(paths: &[PathBuf]) -> Vec<(PathBuf, Option<FileStamp>)> {
    use std::os::unix::fs::MetadataExt;
    let stamp = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        })
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            for f in dir_files(p).unwrap_or_default() {
                let s = stamp(&f);
                out.push((f, s));
            }
        } else {
            out.push((p.clone(), stamp(p)));
        }
    }
    out
}

type Loader<T> = Box<dyn Fn(&[PathBuf]) -> Result<T, LoadError> + Send + Sync>;

/// When the files were last compared, and the version last tried (loaded or refused).
struct Check {
    at: Instant,
    seen: Vec<(PathBuf, Option<FileStamp>)>,
}

/// A value loaded from files, loaded again when they change (see the module doc).
pub struct Watched<T> {
    what: &'static str,
    paths: Vec<PathBuf>,
    load: Loader<T>,
    current: RwLock<Arc<T>>,
    check: Mutex<Check>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl<T> Watched<T> {
    /// Loads `what` from `paths` with `load`; fails if the files do not load now.
    pub fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        load: impl Fn(&[PathBuf]) -> Result<T, LoadError> + Send + Sync + 'static,
    ) -> Result<Self, LoadError> {
        let seen = stamps(&paths);
        let value = load(&paths)?;
        Ok(Watched {
            what,
            paths,
            load: Box::new(load),
            current: RwLock::new(Arc::new(value)),
            check: Mutex::new(Check {
                at: Instant::now(),
                seen,
            }),
        })
    }

    /// The value in effect, after loading the files again if they changed (checked at most
    /// once every [`CHECK_EVERY`]; never waits for a check another caller is running).
    pub fn current(&self) -> Arc<T> {
        if let Ok(mut check) = self.check.try_lock()
            && check.at.elapsed() >= CHECK_EVERY
        {
            check.at = Instant::now();
            self.refresh(&mut check);
        }
        self.current.read().expect("not poisoned").clone()
    }

    fn refresh(&self, check: &mut Check) {
        let before = stamps(&self.paths);
        if before == check.seen {
            return;
        }
        let loaded = (self.load)(&self.paths);
        // A file that changed while it was read is read again at the next check.
        if stamps(&self.paths) != before {
            return;
        }
        check.seen = before;
        match loaded {
            Ok(value) => {
                *self.current.write().expect("not poisoned") = Arc::new(value);
                tracing::info!(what = self.what, files = %self.describe(), "reloaded TLS files");
            }
            Err(e) => tracing::warn!(
                what = self.what,
                file = %e.file,
                reason = %e.reason,
                "changed TLS files refused; keeping the previous ones in effect"
            ),
        }
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_number(paths: &[PathBuf]) -> Result<u32, LoadError> {
        let text = read(&paths[0])?;
        std::str::from_utf8(&text)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| LoadError::new(&paths[0], "not a number"))
    }

    /// Waits out the check interval so the next `current` looks at the files.
    fn after_interval() {
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
    }

    #[test]
    fn a_change_is_loaded_and_a_bad_one_keeps_the_previous_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("n");
        std::fs::write(&file, "1").unwrap();
        let w = Watched::new("number", vec![file.clone()], parse_number).unwrap();
        assert_eq!(*w.current(), 1);
        std::fs::write(&file, "22").unwrap();
        assert_eq!(*w.current(), 1, "not looked at before the interval");
        after_interval();
        assert_eq!(*w.current(), 22);
        std::fs::write(&file, "garbage").unwrap();
        after_interval();
        assert_eq!(*w.current(), 22, "a bad file keeps the previous value");
        std::fs::write(&file, "333").unwrap();
        after_interval();
        assert_eq!(*w.current(), 333, "a later good change is loaded");
    }

    #[test]
    fn a_symlink_swap_as_the_kubelet_does_it_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let version = |n: &str| {
            let v = dir.path().join(format!("..v{n}"));
            std::fs::create_dir(&v).unwrap();
            std::fs::write(v.join("n"), n).unwrap();
            v
        };
        let v1 = version("1");
        std::os::unix::fs::symlink(&v1, dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/n", dir.path().join("n")).unwrap();
        let w = Watched::new("number", vec![dir.path().join("n")], parse_number).unwrap();
        let v2 = version("2");
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&v2, &tmp).unwrap();
        std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
        after_interval();
        assert_eq!(*w.current(), 2);
    }

    #[test]
    fn a_directory_stands_for_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let sum = |paths: &[PathBuf]| -> Result<usize, LoadError> {
            Ok(read_file_or_dir(&paths[0])?.len())
        };
        let w = Watched::new("files", vec![dir.path().to_path_buf()], sum).unwrap();
        assert_eq!(*w.current(), 1);
        std::fs::write(dir.path().join("b"), "2").unwrap();
        after_interval();
        assert_eq!(*w.current(), 2);
    }

    #[test]
    fn files_that_do_not_load_at_start_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            Watched::new("number", vec![dir.path().join("missing")], parse_number).unwrap_err();
        assert!(err.file.ends_with("missing"), "{err}");
    }
}
