//! Reading an object's body from a gateway backend ([`BodySource`]): the plaintext range asked
//! for, decrypted package by package, fetching only the packages that hold it, in ranged reads
//! of up to 16 packages (1 MiB) each.
//!
//! The layout is the one [`super::body`] reads from a local file: the body is one package
//! stream (or plaintext), or for a multipart object the parts' package streams one after
//! another, each under its part's stream key. Every read goes to the stored version opened
//! ([`BodySource::read_at`] fails with [`crate::storage::StorageError::Changed`] otherwise), so a
//! response never mixes two versions of an object.
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::Stream;

use super::body::ReadError;
use crate::sse::ObjectKey;
use crate::sse::package::{Decryptor, PAYLOAD, TAG, encrypted_size};
use crate::storage::ObjectMeta;
use crate::storage::engine::BodySource;

/// Plaintext bytes per backend read.
const CHUNK: u64 = 16 * PAYLOAD as u64;
/// Chunks read ahead of the client.
const READ_AHEAD: usize = 2;

/// One run of the body: a package stream (with its decryptor) or plaintext.
struct Segment {
    decryptor: Option<Decryptor>,
    size: u64,
    plain_start: u64,
    stored_start: u64,
}

/// Reads a plaintext range of one object's body from the backend.
pub(crate) struct RemoteReader {
    body: Arc<dyn BodySource>,
    segments: Arc<Vec<Segment>>,
    pos: u64,
    end: u64,
}

impl RemoteReader {
    /// A reader of `[start, end)` of the body described by `meta` (`body_len` stored bytes);
    /// `key` is the opened object key of an encrypted object.
    pub(crate) fn new(
        meta: &ObjectMeta,
        body_len: u64,
        body: Arc<dyn BodySource>,
        key: Option<&ObjectKey>,
        start: u64,
        end: u64,
    ) -> Result<Self, ReadError> {
        let runs: Vec<(u64, Option<ObjectKey>)> = match key {
            None => vec![(meta.size, None)],
            Some(k) if meta.parts.is_empty() => vec![(meta.size, Some(k.clone()))],
            Some(k) => meta
                .parts
                .iter()
                .map(|p| (p.size, Some(p.stream_key(k))))
                .collect(),
        };
        let mut segments = Vec::with_capacity(runs.len());
        let (mut plain, mut stored) = (0u64, 0u64);
        for (size, key) in runs {
            let len = if key.is_some() {
                encrypted_size(size)
            } else {
                size
            };
            segments.push(Segment {
                decryptor: key.map(|k| Decryptor::new(&k, size)),
                size,
                plain_start: plain,
                stored_start: stored,
            });
            plain = plain.checked_add(size).ok_or(ReadError::WrongSize)?;
            stored = stored.checked_add(len).ok_or(ReadError::WrongSize)?;
        }
        if plain != meta.size || stored != body_len {
            return Err(ReadError::WrongSize);
        }
        Ok(Self {
            body,
            segments: Arc::new(segments),
            pos: start,
            end,
        })
    }

    /// The next chunk of the range (`None` at its end).
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ReadError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let segments = self.segments.clone();
        let seg = segments
            .iter()
            .find(|s| self.pos >= s.plain_start && self.pos < s.plain_start + s.size)
            .ok_or(ReadError::WrongSize)?;
        let local = self.pos - seg.plain_start;
        let chunk = match &seg.decryptor {
            None => {
                let n = (self.end - self.pos).min(seg.size - local).min(CHUNK);
                self.body.read_at(seg.stored_start + local, n).await?
            }
            Some(d) => {
                let local_end = (self.end - seg.plain_start)
                    .min(seg.size)
                    .min((local / PAYLOAD as u64) * PAYLOAD as u64 + CHUNK);
                let (first, last) = d.packages_for(local, local_end);
                let (off0, _) = d.package_span(first);
                let (offn, lenn) = d.package_span(last);
                let cipher = self
                    .body
                    .read_at(seg.stored_start + off0, offn + lenn as u64 - off0)
                    .await?;
                let mut plain = BytesMut::zeroed((last - first) as usize * PAYLOAD + lenn - TAG);
                for seq in first..=last {
                    let (off, len) = d.package_span(seq);
                    let at = (off - off0) as usize;
                    let to = (seq - first) as usize * PAYLOAD;
                    d.open_into(seq, &cipher[at..at + len], &mut plain[to..])?;
                }
                let plain_start = first * PAYLOAD as u64;
                plain
                    .freeze()
                    .slice((local - plain_start) as usize..(local_end - plain_start) as usize)
            }
        };
        self.pos += chunk.len() as u64;
        Ok(Some(chunk))
    }

    /// The range as a stream. A task reads ahead of the client by up to [`READ_AHEAD`] chunks
    /// (a backend read is a round trip: the next one is on its way while a chunk is sent), and
    /// stops at the first error, which it passes on, or when the stream is dropped.
    pub(crate) fn into_stream(
        mut self,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + Sync + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        tokio::spawn(async move {
            loop {
                let next = self.next_chunk().await;
                let last = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(c)) => Ok(c),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() || last {
                    break;
                }
            }
        });
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }
}
