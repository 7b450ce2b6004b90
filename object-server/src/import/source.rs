//! The plaintext of one stored MinIO version, read from a single drive: its shards checked
//! against their bitrot hashes ([`super::bitrot`]) and, for SSE-S3/SSE-KMS objects, decrypted
//! ([`super::dare`]) under the object key or each part's key. Runs on a blocking thread and
//! hands the plaintext on in chunks, one part at a time, through a channel; the first error
//! ends the stream and is what the thread returns.
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::bitrot::{self, BitrotError};
use super::dare::{self, DareError};
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
    /// A shard failed its bitrot check or ended early.
    #[error("part {part}: {source}")]
    Bitrot {
        /// Part number.
        part: u32,
        /// What failed.
        source: BitrotError,
    },
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
    /// A part file is missing or unreadable.
    #[error("part {part}: {source}")]
    Open {
        /// Part number.
        part: u32,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The receiver went away (the import of this version failed on the Coffer side).
    #[error("the writer stopped")]
    Closed,
}

/// Where a version's shards are.
pub enum Shards {
    /// The whole (single-part) shard inline in xl.meta.
    Inline(Vec<u8>),
    /// `part.N` files in this data directory.
    Dir(PathBuf),
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

/// Reads `version`'s parts and sends their plaintext to `tx` (blocking).
pub fn read_version(
    version: &ObjectVersion,
    shards: Shards,
    keys: PartKeys,
    tx: mpsc::Sender<Chunk>,
) -> Result<(), SourceError> {
    let shard_size = version
        .erasure
        .block_size
        .div_ceil(version.erasure.data as u64) as usize;
    for part in &version.parts {
        let n = part.number;
        let key = match &keys {
            PartKeys::None => None,
            PartKeys::Object(k) => Some(k.clone()),
            PartKeys::PerPart(k) => Some(minio_sse::part_key(k, n)),
        };
        let mut dec = key.as_ref().map(|k| dare::Decryptor::new(k));
        let mut plain_len = 0u64;
        let mut out = Vec::with_capacity(shard_size);
        let sink = |block: &[u8]| -> Result<(), BitrotError> {
            out.clear();
            let bytes = match &mut dec {
                Some(d) => {
                    d.update(block, &mut out)
                        .map_err(|e| BitrotError::Io(std::io::Error::other(DecryptFailed(e))))?;
                    Bytes::copy_from_slice(&out)
                }
                None => Bytes::copy_from_slice(block),
            };
            plain_len += bytes.len() as u64;
            if !bytes.is_empty() {
                tx.blocking_send(Chunk::Data(bytes))
                    .map_err(|_| BitrotError::Io(std::io::Error::other(WriterGone)))?;
            }
            Ok(())
        };
        let result = match &shards {
            Shards::Inline(data) => bitrot::read_shard(&data[..], part.size, shard_size, sink),
            Shards::Dir(dir) => {
                let path = dir.join(format!("part.{n}"));
                let f = std::fs::File::open(&path)
                    .map_err(|source| SourceError::Open { part: n, source })?;
                bitrot::read_shard(std::io::BufReader::new(f), part.size, shard_size, sink)
            }
        };
        result.map_err(|e| unwrap_sink_error(n, e))?;
        if let Some(d) = dec {
            d.finish()
                .map_err(|source| SourceError::Decrypt { part: n, source })?;
        }
        if i64::try_from(plain_len).ok() != Some(part.actual_size) && part.actual_size >= 0 {
            return Err(SourceError::Size(n));
        }
        tx.blocking_send(Chunk::PartEnd(n))
            .map_err(|_| SourceError::Closed)?;
    }
    Ok(())
}

/// Carries a decryption error through the bitrot reader's sink.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DecryptFailed(DareError);

/// The receiver was dropped.
#[derive(Debug, thiserror::Error)]
#[error("the writer stopped")]
struct WriterGone;

fn unwrap_sink_error(part: u32, e: BitrotError) -> SourceError {
    if let BitrotError::Io(io) = &e
        && let Some(inner) = io.get_ref()
    {
        if let Some(d) = inner.downcast_ref::<DecryptFailed>() {
            return SourceError::Decrypt {
                part,
                source: d.0.clone(),
            };
        }
        if inner.downcast_ref::<WriterGone>().is_some() {
            return SourceError::Closed;
        }
    }
    SourceError::Bitrot { part, source: e }
}
