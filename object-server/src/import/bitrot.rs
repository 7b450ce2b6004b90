//! MinIO's streaming bitrot protection of a shard file (`part.N`, or a version's inline data).
//!
//! A shard is cut into blocks of `shard_size = ceil(erasure block size / data shards)` bytes (the
//! last one shorter); each block is stored after its 32-byte HighwayHash-256, keyed with MinIO's
//! fixed key (the hash of the first 100 decimals of π), so the file is
//! `hash(b₀) ‖ b₀ ‖ hash(b₁) ‖ b₁ ‖ …`. Facts from MinIO's public `cmd/bitrot.go` and
//! `cmd/bitrot-streaming.go`; [`super::erasure`] reads and checks the blocks.
use highway::{HighwayHash, HighwayHasher, Key};

/// MinIO's HighwayHash-256 key for bitrot hashes.
const MAGIC_KEY: [u8; 32] = [
    0x4b, 0xe7, 0x34, 0xfa, 0x8e, 0x23, 0x8a, 0xcd, 0x26, 0x3e, 0x83, 0xe6, 0xbb, 0x96, 0x85, 0x52,
    0x04, 0x0f, 0x93, 0x5d, 0xa3, 0x9f, 0x44, 0x14, 0x97, 0xe0, 0x9d, 0x13, 0x22, 0xde, 0x36, 0xa0,
];

/// Bytes of a block's hash.
pub const HASH: usize = 32;

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

#[cfg(test)]
mod tests {
    /// The hash MinIO stored before the inline shard `hello` of a real single-drive xl.meta.
    #[test]
    fn matches_minio() {
        assert_eq!(
            hex::encode(super::hash(b"hello")),
            "7ca89f8fe6fe306d589992f0526c4b36c4684f43f7c7383da2ed0bc599b7595f"
        );
    }
}
