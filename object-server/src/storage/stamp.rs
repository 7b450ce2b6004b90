//! A file's identity (inode, size, mtime): every writer of a file the server re-reads renames a
//! new file into place, so a changed identity means a changed file, whichever process wrote it.
//! Caches of small files check it on every use (one `stat`) instead of re-reading the file.
use std::path::Path;
use std::time::SystemTime;

/// Identity of a file's current version: changes whenever a writer renames a new file in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
    exists: bool,
}

/// The stamp of `path` now (that of a missing file when it cannot be read).
pub fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .map(|m| Stamp::of(&m))
        .unwrap_or_default()
}

impl Stamp {
    /// Whether the file existed.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The stamp of an existing file's metadata.
    pub fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            inode: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
            exists: true,
        }
    }
}
