//! Replacing the metadata of one object file of a key if, and only if, the file is still the
//! one that was read: what a background job that changes metadata behind the clients' backs
//! ([`crate::rewrap`]) needs, so that a write or delete committed since its read is never undone.
//!
//! The check and the replacement happen under every lock a change of the key holds, in their
//! order (bucket guard, the key's stripe lock, the lock of its `versions/` whether it exists or
//! not), so no commit, delete, version change or metadata rewrite of the key, in any process,
//! lands between them. The file is identified by device, inode, size and modification time: a
//! writer always renames a new file into place, so another content is another inode.
//!
//! The new file is the old file's stored body bytes (copied by the kernel, never decrypted, so
//! the body's ciphertext is byte for byte what it was) followed by the new trailer; it is
//! fsynced, then renamed over each name the old file had — `obj` first, then `versions/<id>`
//! (the rule of resolution in [`super::versions`] reads `obj` as the true copy while the two
//! differ). A crash leaves either name on the old or the new file, both complete and both
//! holding the same object key. The part files of a multipart object are not touched: the
//! object file keeps naming the same part directory.
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::layout::{self, NULL_VERSION, OBJECT_FILE, VERSIONS_DIR};
use super::locks::lock_dir_name;
use super::{
    BucketGuard, KeyStripeLock, ObjectMeta, StorageError, Store, blocking, fsync_dir, not_found,
    random_name,
};

/// What identifies one stored object file: another write is another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> Self {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        }
    }
}

/// One object file of a key (`obj` or a version; hard links of one file listed once).
#[derive(Debug)]
pub struct StoredFile {
    /// Where it was found.
    pub path: PathBuf,
    /// Which file it was.
    pub id: FileId,
    /// Its metadata.
    pub meta: ObjectMeta,
    /// Bytes of stored body before the trailer.
    pub body_len: u64,
    /// Whether its digests are sealed ([`crate::sse::metadata_key`]).
    pub digests_sealed: bool,
}

fn read_stored(path: &Path) -> Result<Option<StoredFile>, StorageError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let id = FileId::of(&f.metadata()?);
    let (meta, body_len, digests_sealed) = ObjectMeta::read_stored(&f)?;
    Ok(Some(StoredFile {
        path: path.to_owned(),
        id,
        meta,
        body_len,
        digests_sealed,
    }))
}

impl Store {
    /// Every object file of `bucket/key`: its `obj` and each file of its `versions/` (delete
    /// markers included), each file once. A file removed while listed is left out.
    pub async fn stored_files(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<StoredFile>, StorageError> {
        let dir = self.key_path(bucket, key)?;
        blocking(move || {
            let mut out: Vec<StoredFile> = Vec::new();
            let mut paths = vec![dir.join(OBJECT_FILE)];
            match std::fs::read_dir(dir.join(VERSIONS_DIR)) {
                Ok(rd) => {
                    let mut names: Vec<_> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect();
                    names.sort();
                    paths.extend(names);
                }
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
            for p in paths {
                if let Some(f) = read_stored(&p)?
                    && !out
                        .iter()
                        .any(|o| o.id.ino == f.id.ino && o.id.dev == f.id.dev)
                {
                    out.push(f);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Replaces the metadata of `file` (one of [`Store::stored_files`] of `bucket/key`) with
    /// `meta`, keeping its body, if it is still the file that was read, at every name it had
    /// (see the module doc); `Ok(false)` and nothing changed if it was replaced or removed
    /// meanwhile, or if it no longer is at the name it was found at.
    pub async fn replace_meta_if_unchanged(
        &self,
        bucket: &str,
        key: &str,
        file: &StoredFile,
        meta: &ObjectMeta,
    ) -> Result<bool, StorageError> {
        let dir = self.key_path(bucket, key)?;
        let bucket_dir = layout::bucket_dir(self.root(), bucket);
        let (root, tmp_dir) = (self.root().to_path_buf(), self.tmp_dir());
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let trailer = meta.to_trailer()?;
        let (path, expected, body_len) = (file.path.clone(), file.id, file.body_len);
        let version = meta
            .version_id
            .clone()
            .unwrap_or_else(|| NULL_VERSION.to_owned());
        blocking(move || {
            let _bucket = BucketGuard::take(&bucket_dir, true)?;
            let _key = KeyStripeLock::take(&root, &bucket, &key)?;
            let _versions = lock_dir_name(&dir.join(VERSIONS_DIR))?;
            let src = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if not_found(&e) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            if FileId::of(&src.metadata()?) != expected {
                return Ok(false);
            }
            // Each name the file has, `obj` first.
            let obj = dir.join(OBJECT_FILE);
            let vpath = dir.join(VERSIONS_DIR).join(&version);
            let mut names = Vec::new();
            for p in [&obj, &vpath, &path] {
                let same = std::fs::metadata(p).is_ok_and(|m| FileId::of(&m) == expected);
                if same && !names.contains(p) {
                    names.push(p.clone());
                }
            }
            let tmp = tmp_dir.join(random_name());
            let written = write_copy(&src, body_len, &trailer, &tmp);
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            let (first, rest) = names.split_first().expect("the file is at its path");
            if let Err(e) = std::fs::rename(&tmp, first) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            fsync_dir(first.parent().expect("a file in a directory"))?;
            for name in rest {
                let link = tmp_dir.join(random_name());
                std::fs::hard_link(first, &link)?;
                std::fs::rename(&link, name).inspect_err(|_| {
                    let _ = std::fs::remove_file(&link);
                })?;
                fsync_dir(name.parent().expect("a file in a directory"))?;
            }
            Ok(true)
        })
        .await
    }
}

/// Writes `src`'s first `body_len` bytes (copied in the kernel) and `trailer` to a new file
/// `dest`, durably.
fn write_copy(src: &std::fs::File, body_len: u64, trailer: &[u8], dest: &Path) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let mut r = src;
    r.seek(SeekFrom::Start(0))?;
    let copied = io::copy(&mut r.take(body_len), &mut out)?;
    if copied != body_len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the object file is shorter than its trailer says",
        ));
    }
    out.write_all(trailer)?;
    out.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(s: &Store, key: &str, body: &[u8], etag: &str) {
        let mut w = s.writer().await.unwrap();
        w.write(body).await.unwrap();
        let meta = ObjectMeta {
            size: body.len() as u64,
            etag: etag.into(),
            ..Default::default()
        };
        w.commit(&meta, s.object_path("b", key).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn replaces_only_the_file_that_was_read() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.create_bucket("b").await.unwrap();
        put(&s, "k", b"body-1", "e1").await;
        let files = s.stored_files("b", "k").await.unwrap();
        assert_eq!(files.len(), 1);
        let mut meta = files[0].meta.clone();
        meta.user.insert("x".into(), "y".into());
        assert!(
            s.replace_meta_if_unchanged("b", "k", &files[0], &meta)
                .await
                .unwrap()
        );
        let o = s.open_object("b", "k").await.unwrap();
        assert_eq!(o.meta.user["x"], "y");
        assert_eq!(o.body_len, 6);
        // Stale: the file was replaced since it was read; a second replace of the old read, or
        // one after an overwrite, changes nothing.
        assert!(
            !s.replace_meta_if_unchanged("b", "k", &files[0], &meta)
                .await
                .unwrap()
        );
        let fresh = s.stored_files("b", "k").await.unwrap().remove(0);
        put(&s, "k", b"body-2", "e2").await;
        assert!(
            !s.replace_meta_if_unchanged("b", "k", &fresh, &meta)
                .await
                .unwrap()
        );
        assert_eq!(s.open_object("b", "k").await.unwrap().meta.etag, "e2");
        // Deleted meanwhile: nothing comes back.
        let fresh = s.stored_files("b", "k").await.unwrap().remove(0);
        s.delete_object("b", "k").await.unwrap();
        assert!(
            !s.replace_meta_if_unchanged("b", "k", &fresh, &meta)
                .await
                .unwrap()
        );
        assert!(matches!(
            s.open_object("b", "k").await,
            Err(StorageError::NoSuchKey)
        ));
    }
}
