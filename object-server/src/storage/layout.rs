//! Where things live in a data directory.
//!
//! ```text
//! DIR/.coffer/            server state: master key, temp files, multipart uploads
//! DIR/<bucket>/           one directory per bucket (bucket names never start with '.')
//! DIR/<bucket>/.encryption.json   the bucket's default encryption
//! DIR/<bucket>/_a/_b/obj  object "a/b": each key segment is a directory named '_' + segment,
//!                         the object itself is the file `obj` in its directory
//! DIR/<bucket>/.versioning.json   Enabled / Suspended (absent: never versioned)
//! DIR/<bucket>/_a/_b/versions/<id>  in a versioned bucket, one object file per version of "a/b"
//!                         (delete markers too), named by version id (`null`: the null version);
//!                         `obj` is a hard link to the latest one, absent when it is a delete marker
//! DIR/<bucket>/_a/_b/parts/<upload id>/part.<n>  the part files of a multipart object of "a/b":
//!                         its `obj` (or version file) holds only the metadata and names the
//!                         directory (`part_dir`); the parts are the upload's own files, moved here
//!                         by CompleteMultipartUpload, never copied
//! ```
//! A bucket that was never versioned has no `versions/` directories: its objects are read and
//! written exactly as before versioning existed, and an object written then is the null version
//! once versioning is enabled. See [`super::versions`] for how versions change crash-safely.
//! A multipart object completed before `parts/` existed has its parts' bytes concatenated in
//! its `obj` and is read as before. See [`super::parts`] for when part files are moved in and
//! reclaimed.
//! Because every segment directory starts with `_`, a segment can never be `.`, `..`, empty or
//! `obj`, so no key escapes its bucket, and objects `a` and `a/b` coexist (`_a/obj`, `_a/_b/obj`).
use std::path::{Path, PathBuf};

/// Name of the file that holds an object (body and metadata) inside its key directory.
pub const OBJECT_FILE: &str = "obj";
/// Directory of a key's versions, next to its `obj`.
pub const VERSIONS_DIR: &str = "versions";
/// Directory of a key's multipart part data, next to its `obj`.
pub const PARTS_DIR: &str = "parts";
/// The id of the null version.
pub const NULL_VERSION: &str = "null";
/// Name of the server's own directory in the data directory.
pub const SYSTEM_DIR: &str = ".coffer";
/// Directory of the multipart uploads, in the server's own directory.
pub const MULTIPART_DIR: &str = "multipart";
/// An upload's state, in its directory; while a Complete is under way (and after a crash in
/// one), in the part directory the upload was moved to.
pub const UPLOAD_FILE: &str = "upload.json";
/// Longest segment name a file system takes.
const MAX_NAME: usize = 255;

/// A key that cannot be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Empty key.
    #[error("the object key is empty")]
    Empty,
    /// Longer than 1024 bytes, or one segment longer than the file system allows.
    #[error("the object key is too long")]
    TooLong,
    /// Contains a NUL byte.
    #[error("the object key contains a NUL character")]
    Nul,
}

/// The directory of multipart upload `id` of `bucket` in the data directory `root`.
pub fn upload_dir(root: &Path, bucket: &str, id: &str) -> PathBuf {
    root.join(SYSTEM_DIR)
        .join(MULTIPART_DIR)
        .join(bucket)
        .join(id)
}

/// The data directory and the bucket of the key directory `dir` (`DIR/<bucket>/_a/_b`): key
/// segment directories start with `_`, bucket names never do.
pub fn bucket_of_key_dir(dir: &Path) -> Option<(&Path, &str)> {
    let mut d = dir;
    loop {
        let name = d.file_name()?.to_str()?;
        if !name.starts_with('_') {
            return Some((d.parent()?, name));
        }
        d = d.parent()?;
    }
}

/// The directory (relative to the bucket directory) of `key`.
pub fn key_dir(key: &str) -> Result<PathBuf, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > 1024 {
        return Err(KeyError::TooLong);
    }
    if key.contains('\0') {
        return Err(KeyError::Nul);
    }
    let mut p = PathBuf::new();
    for seg in key.split('/') {
        if seg.len() + 1 > MAX_NAME {
            return Err(KeyError::TooLong);
        }
        p.push(format!("_{seg}"));
    }
    Ok(p)
}

/// The segment name of a directory entry, or `None` for entries that are not key segments.
pub fn segment_of(name: &str) -> Option<&str> {
    name.strip_prefix('_')
}

/// The bucket directory of `bucket` under `root`.
pub fn bucket_dir(root: &Path, bucket: &str) -> PathBuf {
    root.join(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Component;

    #[test]
    fn hostile_keys_stay_inside() {
        for key in [
            "..",
            "../x",
            "a/../../b",
            "/",
            "/abs",
            ".",
            "a//b",
            "ü/日本/..",
            "obj",
            "a/obj",
        ] {
            let p = key_dir(key).unwrap();
            for c in p.components() {
                match c {
                    Component::Normal(n) => assert!(n.to_str().unwrap().starts_with('_'), "{key}"),
                    other => panic!("{key}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn nested_keys_coexist() {
        assert_eq!(key_dir("a").unwrap(), PathBuf::from("_a"));
        assert_eq!(key_dir("a/b").unwrap(), PathBuf::from("_a/_b"));
        assert_eq!(key_dir("a/").unwrap(), PathBuf::from("_a/_"));
    }

    #[test]
    fn bad_keys() {
        assert_eq!(key_dir(""), Err(KeyError::Empty));
        assert_eq!(key_dir(&"x".repeat(1025)), Err(KeyError::TooLong));
        assert_eq!(key_dir(&"x".repeat(300)), Err(KeyError::TooLong));
        assert_eq!(key_dir("a\0b"), Err(KeyError::Nul));
        assert_eq!(segment_of("_x"), Some("x"));
        assert_eq!(segment_of("obj"), None);
    }
}
