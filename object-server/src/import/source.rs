//! The plaintext of one stored MinIO version: its bytes put back together from the shards of
//! its erasure set ([`super::erasure`], each shard checked against its bitrot hash) and, for
//! SSE-S3/SSE-KMS objects, decrypted ([`super::dare`]) under the object key or each part's key.
//! Runs on a blocking thread and hands the plaintext on in chunks, one part at a time, through a
//! channel; the first error ends the stream and is what the thread returns.
use bytes::Bytes;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::dare::{self, DareError};
use super::erasure::{self, ErasureError, ReadStats, ShardSource};
use super::minio_sse;
use super::xl_meta::ObjectVersion;

/// What the reader hands on.
#[derive(Debug)]
pub enum Chunk {
    /// Plaintext bytes of the current part.
    Data(Bytes),
    /// The current part ended (its number).
    PartEnd(u32),
}

/// Why a version's data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Too few intact shards.
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    /// An encrypted package did not decrypt.
    #[error("part {part}: {source}")]
    Decrypt {
        /// Part number.
        part: u32,
        /// What failed.
        source: DareError,
    },
    /// The part's plaintext is not as long as MinIO recorded.
    #[error("part {0}: plaintext size differs from the recorded size")]
    Size(u32),
    /// The receiver went away (the import of this version failed on the Coffer side).
    #[error("the writer stopped")]
    Closed,
}

/// How a version's parts are encrypted.
pub enum PartKeys {
    /// Plaintext.
    None,
    /// One stream under the object key (a single-part object).
    Object(Zeroizing<[u8; 32]>),
    /// One stream per part, under keys derived from the object key (a multipart object).
    PerPart(Zeroizing<[u8; 32]>),
}

/// Reads `version`'s parts from `shards` and sends their plaintext to `tx` (blocking).
pub fn read_version(
    version: &ObjectVersion,
    shards: &[Option<ShardSource>],
    keys: PartKeys,
    tx: mpsc::Sender<Chunk>,
) -> Result<ReadStats, SourceError> {
    let mut current: Option<(u32, Option<dare::Decryptor>, u64)> = None;
    let mut out = Vec::new();
    let start = |n: u32| {
        let key = match &keys {
            PartKeys::None => None,
            PartKeys::Object(k) => Some(k.clone()),
            PartKeys::PerPart(k) => Some(minio_sse::part_key(k, n)),
        };
        (n, key.map(|k| dare::Decryptor::new(&k)), 0u64)
    };
    let tx2 = tx.clone();
    let cur = std::cell::RefCell::new(&mut current);
    erasure::read_parts::<SourceError>(
        version,
        shards,
        |n, block| {
            let mut c = cur.borrow_mut();
            let (_, dec, len) = c.get_or_insert_with(|| start(n));
            let bytes = match dec {
                Some(d) => {
                    out.clear();
                    d.update(block, &mut out)
                        .map_err(|source| SourceError::Decrypt { part: n, source })?;
                    Bytes::copy_from_slice(&out)
                }
                None => Bytes::copy_from_slice(block),
            };
            *len += bytes.len() as u64;
            if !bytes.is_empty() {
                tx.blocking_send(Chunk::Data(bytes))
                    .map_err(|_| SourceError::Closed)?;
            }
            Ok(())
        },
        |n| {
            let (_, dec, len) = cur.borrow_mut().take().unwrap_or_else(|| start(n));
            if let Some(d) = dec {
                d.finish()
                    .map_err(|source| SourceError::Decrypt { part: n, source })?;
            }
            let recorded = version.parts.iter().find(|p| p.number == n);
            if recorded.is_some_and(|p| p.actual_size >= 0 && p.actual_size as u64 != len) {
                return Err(SourceError::Size(n));
            }
            tx2.blocking_send(Chunk::PartEnd(n))
                .map_err(|_| SourceError::Closed)
        },
    )
}
