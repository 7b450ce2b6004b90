//! Reading an object's body: where each plaintext byte lives on disk, and a stream that reads
//! big chunks (16 packages, 1 MiB) with positioned reads and decrypts only the packages a range
//! needs.
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use crate::sse::package::{Decryptor, PAYLOAD, encrypted_size};
use crate::sse::{ObjectKey, PackageError};
use crate::storage::ObjectMeta;

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

/// One package stream inside the body (the whole body, or one multipart part).
struct Segment {
    key: ObjectKey,
    size: u64,
    plain_start: u64,
    disk_start: u64,
}

/// How the body is laid out.
enum Layout {
    Plain,
    Encrypted(Vec<Segment>),
}

/// Reads a plaintext range of one object file.
pub(crate) struct BodyReader {
    file: Arc<std::fs::File>,
    layout: Arc<Layout>,
    pos: u64,
    end: u64,
}

impl BodyReader {
    /// A reader of `[start, end)` of the body; `key` is the opened object key of an encrypted
    /// object. `base` is where the body starts in the file.
    pub(crate) fn new(
        file: Arc<std::fs::File>,
        meta: &ObjectMeta,
        body_len: u64,
        key: Option<&ObjectKey>,
        start: u64,
        end: u64,
    ) -> Result<Self, ReadError> {
        let layout = match key {
            None => {
                if body_len != meta.size {
                    return Err(ReadError::WrongSize);
                }
                Layout::Plain
            }
            Some(k) => {
                let mut segs = Vec::new();
                let (mut plain, mut disk) = (0u64, 0u64);
                if meta.parts.is_empty() {
                    segs.push(Segment {
                        key: k.clone(),
                        size: meta.size,
                        plain_start: 0,
                        disk_start: 0,
                    });
                    disk = encrypted_size(meta.size);
                    plain = meta.size;
                } else {
                    for p in &meta.parts {
                        segs.push(Segment {
                            key: k.part_key(p.number),
                            size: p.size,
                            plain_start: plain,
                            disk_start: disk,
                        });
                        plain += p.size;
                        disk += encrypted_size(p.size);
                    }
                }
                if disk != body_len || plain != meta.size {
                    return Err(ReadError::WrongSize);
                }
                Layout::Encrypted(segs)
            }
        };
        Ok(Self {
            file,
            layout: Arc::new(layout),
            pos: start,
            end,
        })
    }

    /// Reads and decrypts the next chunk; `None` at the end of the range.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Bytes>, ReadError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let out = match &*self.layout {
            Layout::Plain => {
                let n = (self.end - self.pos).min(CHUNK) as usize;
                let mut buf = vec![0u8; n];
                self.file.read_exact_at(&mut buf, self.pos).map_err(short)?;
                buf
            }
            Layout::Encrypted(segs) => {
                let seg = segs
                    .iter()
                    .find(|s| self.pos >= s.plain_start && self.pos < s.plain_start + s.size)
                    .ok_or(ReadError::WrongSize)?;
                let local = self.pos - seg.plain_start;
                let local_end = (self.end - seg.plain_start)
                    .min(seg.size)
                    .min((local / PAYLOAD as u64) * PAYLOAD as u64 + CHUNK);
                let d = Decryptor::new(&seg.key, seg.size);
                let (first, last) = d.packages_for(local, local_end);
                let (off0, _) = d.package_span(first);
                let (offn, lenn) = d.package_span(last);
                let mut buf = vec![0u8; (offn + lenn as u64 - off0) as usize];
                self.file
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
