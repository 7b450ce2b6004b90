//! MinIO's streaming bitrot protection of a shard file (`part.N`, or a version's inline data).
//!
//! A shard is cut into blocks of `shard_size = ceil(erasure block size / data shards)` bytes (the
//! last one shorter); each block is stored after its 32-byte HighwayHash-256, keyed with MinIO's
//! fixed key (the hash of the first 100 decimals of π), so the file is
//! `hash(b₀) ‖ b₀ ‖ hash(b₁) ‖ b₁ ‖ …`. Facts from MinIO's public `cmd/bitrot.go` and
//! `cmd/bitrot-streaming.go`. Every block is checked before a byte of it is handed on.
use std::io::Read;

use highway::{HighwayHash, HighwayHasher, Key};

/// MinIO's HighwayHash-256 key for bitrot hashes.
const MAGIC_KEY: [u8; 32] = [
    0x4b, 0xe7, 0x34, 0xfa, 0x8e, 0x23, 0x8a, 0xcd, 0x26, 0x3e, 0x83, 0xe6, 0xbb, 0x96, 0x85, 0x52,
    0x04, 0x0f, 0x93, 0x5d, 0xa3, 0x9f, 0x44, 0x14, 0x97, 0xe0, 0x9d, 0x13, 0x22, 0xde, 0x36, 0xa0,
];

/// Bytes of a block's hash.
pub const HASH: usize = 32;

/// Why a shard could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BitrotError {
    /// A block's hash does not match its bytes.
    #[error("shard block {0} fails its bitrot hash")]
    Mismatch(u64),
    /// The shard ends before its size.
    #[error("shard file is truncated")]
    Truncated,
    /// Reading failed.
    #[error("reading shard: {0}")]
    Io(#[from] std::io::Error),
}

/// HighwayHash-256 of `data` under MinIO's bitrot key, as the bytes MinIO stores.
pub fn hash(data: &[u8]) -> [u8; HASH] {
    let mut words = [0u64; 4];
    for (w, c) in words.iter_mut().zip(MAGIC_KEY.chunks_exact(8)) {
        *w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
    }
    let mut h = HighwayHasher::new(Key(words));
    h.append(data);
    let mut out = [0u8; HASH];
    for (c, w) in out.chunks_exact_mut(8).zip(h.finalize256()) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The bytes a shard of `len` data bytes takes on disk with its hashes.
pub fn stored_len(len: u64, shard_size: u64) -> u64 {
    len + len.div_ceil(shard_size) * HASH as u64
}

/// Reads a shard of `len` data bytes from `src`, checks every block and hands each to `sink`
/// in order. Nothing after the shard's end is read.
pub fn read_shard(
    mut src: impl Read,
    len: u64,
    shard_size: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), BitrotError>,
) -> Result<(), BitrotError> {
    let mut buf = vec![0u8; HASH + shard_size];
    let mut left = len;
    let mut block = 0u64;
    while left > 0 {
        let n = (shard_size as u64).min(left) as usize;
        let b = &mut buf[..HASH + n];
        src.read_exact(b).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => BitrotError::Truncated,
            _ => BitrotError::Io(e),
        })?;
        let (want, data) = b.split_at(HASH);
        if hash(data) != want {
            return Err(BitrotError::Mismatch(block));
        }
        sink(data)?;
        left -= n as u64;
        block += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(data: &[u8], shard: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for c in data.chunks(shard) {
            out.extend_from_slice(&hash(c));
            out.extend_from_slice(c);
        }
        out
    }

    #[test]
    fn blocks_come_back_checked() {
        let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let s = stored(&data, 1000);
        assert_eq!(s.len() as u64, stored_len(2500, 1000));
        let mut got = Vec::new();
        read_shard(&s[..], 2500, 1000, |b| {
            got.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, data);
        let mut bad = s.clone();
        bad[HASH + 1000 + HASH + 5] ^= 1;
        assert!(matches!(
            read_shard(&bad[..], 2500, 1000, |_| Ok(())),
            Err(BitrotError::Mismatch(1))
        ));
        assert!(matches!(
            read_shard(&s[..s.len() - 1], 2500, 1000, |_| Ok(())),
            Err(BitrotError::Truncated)
        ));
    }
}
