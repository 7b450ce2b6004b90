//! MinIO's own files under `.minio.sys/` (bucket metadata, IAM): each is stored as an object, an
//! `xl.meta` with the file inline or in a part, erasure-coded across the drives like any other.
//! Read with the same vote over the drives' copies and the same shard checks as user objects.
use std::path::{Path, PathBuf};

use super::erasure::{self, Copy};
use super::xl_meta::{Version, XlMeta};
use super::{MINIO_SYS, read_source};

/// The latest version of the system file `rel` (a path under `.minio.sys/`), or `None` when no
/// drive has it.
pub fn read(drives: &[PathBuf], rel: &str) -> Result<Option<Vec<u8>>, String> {
    let mut copies = Vec::new();
    let mut first_error = None;
    for drive in drives {
        let dir = drive.join(MINIO_SYS).join(rel);
        match read_source(&dir.join("xl.meta")) {
            Ok(raw) => match XlMeta::parse(&raw) {
                Ok(meta) => copies.push(Copy { dir, meta }),
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let Some(reference) = erasure::reference(&copies) else {
        return match first_error {
            Some(e) => Err(e),
            None => Ok(None),
        };
    };
    let Some(Version::Object(v)) = reference.meta.versions.first() else {
        return Err("no stored version".to_owned());
    };
    let shards = erasure::shard_sources(&copies, v).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    erasure::read_parts::<erasure::ErasureError>(
        v,
        &shards,
        |_, b| {
            data.extend_from_slice(b);
            Ok(())
        },
        |_| Ok(()),
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(data))
}

/// The system files below the directory `rel` of `.minio.sys/` on any drive, as paths relative
/// to `rel`, sorted and without duplicates.
pub fn list(drives: &[PathBuf], rel: &str) -> Result<Vec<String>, String> {
    let mut out = std::collections::BTreeSet::new();
    for drive in drives {
        let dir: PathBuf = Path::new(drive).join(MINIO_SYS).join(rel);
        if !dir.is_dir() {
            continue;
        }
        let mut found = Vec::new();
        super::find_objects(&dir, "", &mut found)
            .map_err(|e| format!("listing {}: {e}", dir.display()))?;
        out.extend(found.into_iter().map(|(k, _)| k));
    }
    Ok(out.into_iter().collect())
}
