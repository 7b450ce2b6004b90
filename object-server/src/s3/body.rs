//! Reading an object's body: where each plaintext byte lives on disk, and a stream that reads
//! big chunks (16 packages, 1 MiB) with positioned reads and decrypts only the packages a range
//! needs.
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use crate::sse::package::{Decryptor, PAYLOAD, encrypted_size};
use crate::sse::{ObjectKey, PackageError};
use crate::storage::OpenObject;

/// Plaintext bytes per read.
const CHUNK: u64 = 16 * PAYLOAD as u64;

/// A body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// A package did not authenticate or the stream is short.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// I/O.
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    /// The stored body does not have the size its metadata implies.
    #[error("object body has the wrong size")]
    WrongSize,
}

/// One stored run of the body (the whole body, or one multipart part): a package stream under
/// `key`, or plaintext without one.
struct Segment {
    file: Arc<std::fs::File>,
    key: Option<ObjectKey>,
    size: u64,
    plain_start: u64,
    disk_start: u64,
}

/// Reads a plaintext range of one object's body.
pub(crate) struct BodyReader {
    segments: Arc<Vec<Segment>>,
    pos: u64,
    end: u64,
}

impl BodyReader {
    /// A reader of `[start, end)` of the body of `obj` (its part files opened, if it has them);
    /// `key` is the opened object key of an encrypted object.
    pub(crate) fn new(
        obj: &OpenObject,
        key: Option<&ObjectKey>,
        start: u64,
        end: u64,
    ) -> Result<Self, ReadError> {
        let meta = &obj.meta;
        // (plaintext size, key) of each run: encrypted multipart objects have one package
        // stream per part, and parts in files of their own are one run each.
        let runs: Vec<(u64, Option<ObjectKey>)> = match key {
            None if meta.part_dir.is_some() => meta.parts.iter().map(|p| (p.size, None)).collect(),
            None => vec![(meta.size, None)],
            Some(k) if meta.parts.is_empty() => vec![(meta.size, Some(k.clone()))],
            Some(k) => meta
                .parts
                .iter()
                .map(|p| (p.size, Some(k.part_key(p.number))))
                .collect(),
        };
        let own_files = meta.part_dir.is_some();
        if own_files && (obj.parts.len() != runs.len() || obj.body_len != 0) {
            return Err(ReadError::WrongSize);
        }
        let mut segments = Vec::with_capacity(runs.len());
        let (mut plain, mut disk) = (0u64, 0u64);
        for (i, (size, key)) in runs.into_iter().enumerate() {
            let stored = if key.is_some() {
                encrypted_size(size)
            } else {
                size
            };
            let (file, disk_start) = if own_files {
                if obj.parts[i].body_len != stored {
                    return Err(ReadError::WrongSize);
                }
                (obj.parts[i].file.clone(), 0)
            } else {
                (obj.file.clone(), disk)
            };
            segments.push(Segment {
                file,
                key,
                size,
                plain_start: plain,
                disk_start,
            });
            plain += size;
            disk += stored;
        }
        if plain != meta.size || (!own_files && disk != obj.body_len) {
            return Err(ReadError::WrongSize);
        }
        Ok(Self {
            segments: Arc::new(segments),
            pos: start,
            end,
        })
    }

    /// Reads and decrypts the next chunk; `None` at the end of the range.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Bytes>, ReadError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let seg = self
            .segments
            .iter()
            .find(|s| self.pos >= s.plain_start && self.pos < s.plain_start + s.size)
            .ok_or(ReadError::WrongSize)?;
        let local = self.pos - seg.plain_start;
        let out = match &seg.key {
            None => {
                let n = (self.end - self.pos).min(seg.size - local).min(CHUNK) as usize;
                let mut buf = vec![0u8; n];
                seg.file
                    .read_exact_at(&mut buf, seg.disk_start + local)
                    .map_err(short)?;
                buf
            }
            Some(key) => {
                let local_end = (self.end - seg.plain_start)
                    .min(seg.size)
                    .min((local / PAYLOAD as u64) * PAYLOAD as u64 + CHUNK);
                let d = Decryptor::new(key, seg.size);
                let (first, last) = d.packages_for(local, local_end);
                let (off0, _) = d.package_span(first);
                let (offn, lenn) = d.package_span(last);
                let mut buf = vec![0u8; (offn + lenn as u64 - off0) as usize];
                seg.file
                    .read_exact_at(&mut buf, seg.disk_start + off0)
                    .map_err(short)?;
                let mut out = Vec::with_capacity((local_end - local) as usize);
                for seq in first..=last {
                    let (off, len) = d.package_span(seq);
                    let at = (off - off0) as usize;
                    let pkg = &mut buf[at..at + len];
                    let n = d.open(seq, pkg)?;
                    let pkg_start = seq * PAYLOAD as u64;
                    let from = local.saturating_sub(pkg_start) as usize;
                    let to = ((local_end - pkg_start) as usize).min(n);
                    out.extend_from_slice(&pkg[from..to]);
                }
                out
            }
        };
        self.pos += out.len() as u64;
        Ok(Some(Bytes::from(out)))
    }

    /// The rest of the range as a stream (reads run on the blocking pool).
    pub(crate) fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        futures::stream::try_unfold(self, |mut r| async move {
            let (r, chunk) = tokio::task::spawn_blocking(move || {
                let c = r.next_chunk();
                (r, c)
            })
            .await
            .map_err(|e| ReadError::Io(std::io::Error::other(e)))?;
            Ok(chunk?.map(|c| (c, r)))
        })
    }
}

fn short(e: std::io::Error) -> ReadError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ReadError::Package(PackageError::Truncated)
    } else {
        ReadError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::sse::package::Encryptor;
    use crate::storage::{ObjectMeta, PartFile, PartMeta};

    fn file_of(bytes: &[u8]) -> Arc<std::fs::File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        Arc::new(f)
    }

    fn sealed(key: &ObjectKey, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encryptor::new(key);
        e.update(plain, &mut out);
        e.finish(&mut out);
        out
    }

    fn read(obj: &OpenObject, key: Option<&ObjectKey>, start: u64, end: u64) -> Vec<u8> {
        let mut r = BodyReader::new(obj, key, start, end).unwrap();
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            out.extend_from_slice(&c);
        }
        out
    }

    /// A multipart object as earlier versions stored it (the parts' stored bytes one after
    /// another in its own file) and as it is stored now (each part in its own file) reads the
    /// same, plain and encrypted, across part boundaries.
    #[test]
    fn both_multipart_layouts_read_the_same() {
        let parts: Vec<Vec<u8>> = [1_500_000usize, 70_000, 3]
            .iter()
            .enumerate()
            .map(|(i, n)| (0..*n).map(|j| (j * 7 + i * 13) as u8).collect())
            .collect();
        let whole: Vec<u8> = parts.concat();
        let meta = |part_dir: Option<&str>| ObjectMeta {
            size: whole.len() as u64,
            parts: (1..)
                .zip(&parts)
                .map(|(number, p)| PartMeta {
                    number,
                    size: p.len() as u64,
                    etag: String::new(),
                })
                .collect(),
            part_dir: part_dir.map(str::to_owned),
            ..Default::default()
        };
        let key = ObjectKey::generate();
        for encrypted in [false, true] {
            let stored: Vec<Vec<u8>> = (1..)
                .zip(&parts)
                .map(|(n, p)| {
                    if encrypted {
                        sealed(&key.part_key(n), p)
                    } else {
                        p.clone()
                    }
                })
                .collect();
            let concatenated = stored.concat();
            let old = OpenObject {
                file: file_of(&concatenated),
                meta: meta(None),
                body_len: concatenated.len() as u64,
                parts: Vec::new(),
                path: Default::default(),
            };
            let new = OpenObject {
                file: file_of(b""),
                meta: meta(Some("x")),
                body_len: 0,
                parts: stored
                    .iter()
                    .map(|s| PartFile {
                        file: file_of(s),
                        body_len: s.len() as u64,
                    })
                    .collect(),
                path: Default::default(),
            };
            let k = encrypted.then_some(&key);
            let b1 = parts[0].len() as u64;
            let n = whole.len() as u64;
            for (lo, hi) in [
                (0, n),
                (b1 - 5, b1 + 5),
                (b1 - 1, n - 1),
                (n - 2, n),
                (7, 8),
            ] {
                let want = &whole[lo as usize..hi as usize];
                assert_eq!(read(&old, k, lo, hi), want, "old {encrypted} {lo}-{hi}");
                assert_eq!(read(&new, k, lo, hi), want, "new {encrypted} {lo}-{hi}");
            }
            // A part file of the wrong size is refused before anything is read.
            let mut short = new;
            short.parts[1].body_len -= 1;
            assert!(matches!(
                BodyReader::new(&short, k, 0, n),
                Err(ReadError::WrongSize)
            ));
        }
    }
}
