//! A filesystem keystore: one file per key (named like the key, mode 0600), created
//! atomically (written to a temporary file, then hard-linked into place, so a reader
//! never sees a partial key and an existing key is never overwritten). Same layout as KES's.
//!
//! A rotation replaces a key file: under an exclusive `flock` of the current file, it checks
//! that the path still names that file (a rotation that won the lock first renamed another
//! file into place) and that it still holds what the rotation read, then renames a complete
//! temporary file over it. So of two concurrent rotations (in any processes) one wins and the
//! other reads again, and a reader sees the old key file or the new one, never a mix.

use super::{Keystore, StoreError};
use futures::future::{BoxFuture, FutureExt};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const MAX_SIZE: u64 = 1 << 20;

/// Keys as files in a directory.
pub struct FsStore {
    dir: PathBuf,
}

fn valid_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.contains(['/', '\\', '.']) {
        return Err(StoreError::InvalidName);
    }
    Ok(())
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Other(e.kind().to_string())
}

impl FsStore {
    /// Opens (and creates) the directory.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::Other(format!("{}: {e}", dir.display())))?;
        if !dir.is_dir() {
            return Err(StoreError::Other(format!(
                "'{}' is not a directory",
                dir.display()
            )));
        }
        Ok(FsStore { dir })
    }

    fn create_sync(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        valid_name(name)?;
        let target = self.dir.join(name);
        if target.exists() {
            return Err(StoreError::Exists);
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)
            .map_err(io_err)?;
        tmp.write_all(value).map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        match std::fs::hard_link(tmp.path(), &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Exists),
            Err(e) => Err(io_err(e)),
        }
        // `tmp` is removed on drop.
    }

    fn replace_sync(&self, name: &str, old: &[u8], new: &[u8]) -> Result<(), StoreError> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        valid_name(name).map_err(|_| StoreError::NotFound)?;
        let target = self.dir.join(name);
        let mut file = match std::fs::File::open(&target) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(io_err(e)),
        };
        // An exclusive lock (flock on Unix), released when `file` is closed.
        file.lock().map_err(io_err)?;
        let locked = file.metadata().map_err(io_err)?;
        match std::fs::metadata(&target) {
            Ok(m) if m.ino() == locked.ino() && m.dev() == locked.dev() => {}
            Ok(_) => return Err(StoreError::Changed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(io_err(e)),
        }
        let mut current = Zeroizing::new(Vec::new());
        (&mut file)
            .take(MAX_SIZE)
            .read_to_end(&mut current)
            .map_err(io_err)?;
        if current[..] != *old {
            return Err(StoreError::Changed);
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)
            .map_err(io_err)?;
        tmp.write_all(new).map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(&target).map_err(|e| io_err(e.error))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
        Ok(())
    }

    fn get_sync(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        use std::io::Read;
        valid_name(name).map_err(|_| StoreError::NotFound)?;
        let file = match std::fs::File::open(self.dir.join(name)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(io_err(e)),
        };
        let mut buf = Zeroizing::new(Vec::new());
        file.take(MAX_SIZE).read_to_end(&mut buf).map_err(io_err)?;
        Ok(buf)
    }
}

impl Keystore for FsStore {
    fn describe(&self) -> String {
        format!("Filesystem: {}", self.dir.display())
    }

    fn status(&self) -> BoxFuture<'_, Result<Duration, StoreError>> {
        async move {
            let start = Instant::now();
            std::fs::metadata(&self.dir)
                .map_err(|e| StoreError::Unreachable(e.kind().to_string()))?;
            Ok(start.elapsed())
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        // Creates are rare and small: plain blocking I/O (works on any runtime flavour).
        async move { self.create_sync(name, value) }.boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, StoreError>> {
        async move { self.get_sync(name) }.boxed()
    }

    fn replace<'a>(
        &'a self,
        name: &'a str,
        old: &'a [u8],
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        // Rare and small, as creates: plain blocking I/O.
        async move { self.replace_sync(name, old, new) }.boxed()
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            valid_name(name).map_err(|_| StoreError::NotFound)?;
            match std::fs::remove_file(self.dir.join(name)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
                Err(e) => Err(io_err(e)),
            }
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&self.dir).map_err(io_err)? {
                let entry = entry.map_err(io_err)?;
                if let Some(n) = entry.file_name().to_str()
                    && !n.starts_with('.')
                    && entry.file_type().map(|t| t.is_file()).unwrap_or(false)
                {
                    names.push(n.to_string());
                }
            }
            Ok(names)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn conformance_and_file_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("keys")).unwrap();
        super::super::conformance::check(&store).await;
        let mode = std::fs::metadata(dir.path().join("keys/k2"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary files are left behind.
        let n = std::fs::read_dir(dir.path().join("keys")).unwrap().count();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn rejects_path_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path()).unwrap();
        assert_eq!(
            store.create("../x", b"v").await.unwrap_err(),
            StoreError::InvalidName
        );
        assert_eq!(
            store.create("a.b", b"v").await.unwrap_err(),
            StoreError::InvalidName
        );
        assert_eq!(store.get("../etc").await.unwrap_err(), StoreError::NotFound);
    }
}
