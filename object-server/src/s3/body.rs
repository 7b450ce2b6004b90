//! Reading an object's body: where each plaintext byte lives on disk, and a stream that reads
//! big chunks (16 packages, 1 MiB) with positioned reads into reused buffers
//! ([`super::read_buffers`]), decrypting only the packages a range needs. An encrypted chunk is
//! decrypted out of place into one contiguous buffer, so every chunk leaves as one slice: hyper
//! then writes it with one iovec, not one per package (twice the `writev` calls, and more
//! wake-ups, when the payloads sat between their tags).
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use super::read_buffers::ReadBuffer;
use crate::sse::package::{Decryptor, PAYLOAD, TAG, encrypted_size};
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
    /// The storage engine failed the read (a gateway backend away, or the object replaced).
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// One stored run of the body (the whole body, or one multipart part): a package stream opened
/// by `decryptor` (its key set up once per GET, not per chunk), or plaintext without one.
struct Segment {
    file: Arc<std::fs::File>,
    decryptor: Option<Decryptor>,
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
                .map(|p| (p.size, Some(p.stream_key(k))))
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
                decryptor: key.map(|k| Decryptor::new(&k, size)),
                size,
                plain_start: plain,
                disk_start,
            });
            // Sizes from damaged metadata may add up past u64: a wrong size, never a wrapped one.
            plain = plain.checked_add(size).ok_or(ReadError::WrongSize)?;
            disk = disk.checked_add(stored).ok_or(ReadError::WrongSize)?;
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

    /// Reads and decrypts the next chunk; `None` at the end of the range. The chunk is one slice
    /// of one read buffer.
    fn next_chunk(&mut self) -> Result<Option<Bytes>, ReadError> {
        self.read_chunk(Wait::Yes)
            .map(|c| c.expect("a waiting read is never refused"))
    }

    /// [`Self::next_chunk`]; with `Wait::No` only if the page cache holds the whole chunk
    /// (`Ok(None)` otherwise, nothing read), so it may run on the async runtime.
    fn read_chunk(&mut self, wait: Wait) -> Result<Option<Option<Bytes>>, ReadError> {
        if self.pos >= self.end {
            return Ok(Some(None));
        }
        let seg = self
            .segments
            .iter()
            .find(|s| self.pos >= s.plain_start && self.pos < s.plain_start + s.size)
            .ok_or(ReadError::WrongSize)?;
        let local = self.pos - seg.plain_start;
        let (buf, range) = match &seg.decryptor {
            None => {
                let n = (self.end - self.pos).min(seg.size - local).min(CHUNK) as usize;
                let mut buf = ReadBuffer::take(n);
                let at = seg.disk_start + local;
                if !read_at(&seg.file, &mut buf.as_mut_slice()[..n], at, wait)? {
                    return Ok(None);
                }
                (buf, 0..n)
            }
            Some(d) => {
                let local_end = (self.end - seg.plain_start)
                    .min(seg.size)
                    .min((local / PAYLOAD as u64) * PAYLOAD as u64 + CHUNK);
                let (first, last) = d.packages_for(local, local_end);
                let (off0, _) = d.package_span(first);
                let (offn, lenn) = d.package_span(last);
                let stored = (offn + lenn as u64 - off0) as usize;
                // The ciphertext buffer goes back to the pool as soon as the chunk is decrypted
                // (the next chunk reuses it while the cache still holds it).
                let mut cipher = ReadBuffer::take(stored);
                let cipher = &mut cipher.as_mut_slice()[..stored];
                if !read_at(&seg.file, cipher, seg.disk_start + off0, wait)? {
                    return Ok(None);
                }
                // Every package but the stream's last is a full payload, so the payloads of
                // `first..=last` lie side by side from `first * PAYLOAD` on.
                let plain_start = first * PAYLOAD as u64;
                let mut plain = ReadBuffer::take((last - first) as usize * PAYLOAD + lenn - TAG);
                let out = plain.as_mut_slice();
                for seq in first..=last {
                    let (off, len) = d.package_span(seq);
                    let at = (off - off0) as usize;
                    let to = (seq - first) as usize * PAYLOAD;
                    d.open_into(seq, &cipher[at..at + len], &mut out[to..])?;
                }
                let from = (local - plain_start) as usize;
                (plain, from..(local_end - plain_start) as usize)
            }
        };
        self.pos += range.len() as u64;
        Ok(Some(Some(buf.freeze().slice(range))))
    }

    /// Reads (and decrypts) the next chunk from a task. A chunk the page cache holds is read
    /// right here, as a socket write copies bytes on the runtime too; only a chunk that needs
    /// the disk is read on the blocking pool, whose round trip (two thread wake-ups per chunk)
    /// costs a GET more than the read of a cached chunk itself.
    pub(crate) async fn read_next(mut self) -> Result<(Self, Option<Bytes>), ReadError> {
        if let Some(chunk) = self.read_chunk(Wait::No)? {
            return Ok((self, chunk));
        }
        let (r, chunk) = tokio::task::spawn_blocking(move || {
            let c = self.next_chunk();
            (self, c)
        })
        .await
        .map_err(|e| ReadError::Io(std::io::Error::other(e)))?;
        Ok((r, chunk?))
    }

    /// The rest of the range as a stream.
    pub(crate) fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        futures::stream::try_unfold(self, |r| async move {
            let (r, chunk) = r.read_next().await?;
            Ok::<_, ReadError>(chunk.map(|c| (c, r)))
        })
    }
}

/// Whether a read may wait for the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Yes,
    No,
}

/// Fills `buf` from `offset`. With `Wait::No`, only if every byte is in the page cache
/// (`preadv2` with `RWF_NOWAIT`); `Ok(false)` when not (or when the file system cannot say),
/// and the caller reads again, waiting.
fn read_at(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
    wait: Wait,
) -> Result<bool, ReadError> {
    if wait == Wait::No {
        #[cfg(target_os = "linux")]
        {
            let len = buf.len();
            let mut bufs = [std::io::IoSliceMut::new(buf)];
            let flags = rustix::io::ReadWriteFlags::NOWAIT;
            // A short read (partly cached, or the end of a truncated file) is left to the
            // waiting read, which tells the two apart.
            return Ok(rustix::io::preadv2(file, &mut bufs, offset, flags).is_ok_and(|n| n == len));
        }
        #[cfg(not(target_os = "linux"))]
        return Ok(false);
    }
    file.read_exact_at(buf, offset).map_err(short)?;
    Ok(true)
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
    use crate::sse::PartSalt;
    use crate::sse::package::{Encryptor, PACKAGE};
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
        // Part 2 as the earlier format wrote parts (no salt), the others salted: an upload begun
        // before an upgrade and completed after it holds both.
        let salts: Vec<Option<PartSalt>> =
            vec![Some(PartSalt::generate()), None, Some(PartSalt::generate())];
        let meta = |part_dir: Option<&str>| ObjectMeta {
            size: whole.len() as u64,
            parts: (1..)
                .zip(&parts)
                .zip(&salts)
                .map(|((number, p), salt)| PartMeta {
                    number,
                    size: p.len() as u64,
                    etag: String::new(),
                    key_salt: salt.clone(),
                    checksums: Default::default(),
                })
                .collect(),
            part_dir: part_dir.map(str::to_owned),
            ..Default::default()
        };
        let key = ObjectKey::generate();
        for encrypted in [false, true] {
            let stored: Vec<Vec<u8>> = (1..)
                .zip(&parts)
                .zip(&salts)
                .map(|((n, p), salt)| {
                    if encrypted {
                        let part_key = match salt {
                            Some(s) => key.part_key(n, s),
                            None => key.legacy_part_key(n),
                        };
                        sealed(&part_key, p)
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

    /// Part sizes from damaged metadata that add up past u64 (as the overflow fuzzing found in
    /// `encrypted_size`, here in the sum) are a wrong size, not a panic or a wrapped sum.
    #[test]
    fn part_sizes_adding_up_past_u64_are_a_wrong_size() {
        let half = 1u64 << 63;
        let obj = OpenObject {
            file: file_of(b""),
            meta: ObjectMeta {
                size: 0,
                parts: (1..=2)
                    .map(|number| PartMeta {
                        number,
                        size: half,
                        etag: String::new(),
                        key_salt: None,
                        checksums: Default::default(),
                    })
                    .collect(),
                ..Default::default()
            },
            body_len: 0,
            parts: Vec::new(),
            path: Default::default(),
        };
        assert!(matches!(
            BodyReader::new(&obj, Some(&ObjectKey::generate()), 0, 1),
            Err(ReadError::WrongSize)
        ));
    }

    /// An encrypted single-part object in a file of its own (the file kept to change it).
    fn encrypted(size: usize) -> (tempfile::NamedTempFile, OpenObject, ObjectKey, Vec<u8>) {
        let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let key = ObjectKey::generate();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&sealed(&key, &plain)).unwrap();
        let obj = OpenObject {
            file: Arc::new(f.reopen().unwrap()),
            meta: ObjectMeta {
                size: size as u64,
                ..Default::default()
            },
            body_len: f.as_file().metadata().unwrap().len(),
            parts: Vec::new(),
            path: Default::default(),
        };
        (f, obj, key, plain)
    }

    async fn stream(
        obj: &OpenObject,
        key: &ObjectKey,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, ReadError> {
        let r = BodyReader::new(obj, Some(key), start, end)?;
        let chunks: Vec<Bytes> = futures::TryStreamExt::try_collect(r.into_stream()).await?;
        Ok(chunks.concat())
    }

    /// Through the stream a GET answers with: ranges across packages and chunks.
    #[tokio::test]
    async fn ranges_across_packages_and_chunks_stream_back() {
        let size = 2 * CHUNK as usize + 3 * PAYLOAD + 17;
        let (_f, obj, key, plain) = encrypted(size);
        let (p, n) = (PAYLOAD as u64, size as u64);
        for (lo, hi) in [
            (0, n),
            (1, 2),
            (p - 1, p + 1),
            (CHUNK - 5, CHUNK + p + 9),
            (n - 1, n),
        ] {
            let got = stream(&obj, &key, lo, hi).await.unwrap();
            assert!(got == plain[lo as usize..hi as usize], "{lo}-{hi}");
        }
    }

    /// An encrypted chunk is one slice: the payloads of up to 16 packages side by side, without
    /// their tags; a range starting inside a package ends its first chunk 16 packages on.
    #[test]
    fn encrypted_chunks_are_runs_of_payloads_in_one_slice() {
        let size = 2 * CHUNK as usize + 3 * PAYLOAD + 17;
        let (_f, obj, key, plain) = encrypted(size);
        let (p, n) = (PAYLOAD as u64, size as u64);
        let mut r = BodyReader::new(&obj, Some(&key), p + 5, n).unwrap();
        let mut lens = Vec::new();
        let mut at = p + 5;
        while let Some(c) = r.next_chunk().unwrap() {
            assert!(
                c[..] == plain[at as usize..at as usize + c.len()],
                "at {at}"
            );
            at += c.len() as u64;
            lens.push(c.len() as u64);
        }
        assert_eq!(at, n);
        assert_eq!(lens, [CHUNK - 5, CHUNK, n - 2 * CHUNK - p]);
    }

    #[tokio::test]
    async fn a_changed_byte_or_a_file_cut_while_read_is_an_error() {
        use std::os::unix::fs::FileExt as _;
        let (f, obj, key, plain) = encrypted(CHUNK as usize + 100);
        let (len, n) = (obj.body_len, obj.meta.size);
        // A ciphertext byte inside the first chunk: the chunk fails as a whole, and ranges
        // that stop before that package still read.
        let inside = 3 * PACKAGE as u64 + 7;
        let mut byte = [0u8];
        f.as_file().read_exact_at(&mut byte, inside).unwrap();
        f.as_file().write_all_at(&[byte[0] ^ 1], inside).unwrap();
        assert!(matches!(
            stream(&obj, &key, 0, n).await,
            Err(ReadError::Package(PackageError::NotAuthentic(3)))
        ));
        let p = PAYLOAD as u64;
        assert!(
            stream(&obj, &key, p + 1, 3 * p).await.unwrap()
                == plain[p as usize + 1..3 * p as usize]
        );
        f.as_file().write_all_at(&byte, inside).unwrap();
        // The last package's tag, flipped (not overwritten: the byte may already be 0xff once
        // in 256 runs, which made this test flaky).
        f.as_file().read_exact_at(&mut byte, len - 1).unwrap();
        f.as_file().write_all_at(&[byte[0] ^ 1], len - 1).unwrap();
        assert!(matches!(
            stream(&obj, &key, 0, n).await,
            Err(ReadError::Package(PackageError::NotAuthentic(_)))
        ));
        // Only the packages a range needs are opened.
        assert!(stream(&obj, &key, 0, 10).await.is_ok());
        // Cut after it was opened: an error at the cut, never short data.
        f.as_file().set_len(len - 1).unwrap();
        assert!(matches!(
            stream(&obj, &key, 0, n).await,
            Err(ReadError::Package(PackageError::Truncated))
        ));
    }
}
