//! MD5 of object bodies (ETags, Content-MD5) through aws-lc's assembly implementation.
//!
//! MD5 is the most expensive per-byte step of a PUT (a third of its CPU; it cannot be
//! parallelized within one stream); aws-lc's assembly is about a quarter faster than the
//! pure-Rust `md-5` crate (870 vs 695 MiB/s on the 2-core AMD EPYC dev machine, see the
//! `md5_speed` measurement below). aws-lc is already linked for TLS and AES-GCM.
//! This is the crate's only `unsafe`: FFI calls on a context this module owns, and the
//! AVX-512 kernel of [`x16`].
//!
//! Concurrent uploads are hashed together by [`lanes`]: one thread runs up to 16 streams
//! through the AVX-512 kernel in lockstep, which costs a fraction of hashing each alone.
#![allow(unsafe_code)]

pub mod lanes;
#[cfg(target_arch = "x86_64")]
pub mod x16;

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

/// MD5's initial state (RFC 1321).
const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// Runs whole 64-byte blocks through `state` with aws-lc's assembly.
pub fn compress_blocks(state: &mut [u32; 4], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % 64, 0);
    if blocks.is_empty() {
        return;
    }
    let mut ctx = Md5::new();
    ctx.0.h = *state;
    // With no buffered bytes (`num` 0) and whole blocks, MD5_Update runs the block function over
    // the input and leaves `h` as the new state; the bit counters it also keeps are not used.
    ctx.update(blocks);
    *state = ctx.0.h;
}

/// An MD5 in progress kept as plain words, so that either the scalar block function or a lane of
/// the AVX-512 kernel can continue it.
#[derive(Clone)]
pub struct Partial {
    pub state: [u32; 4],
    /// Bytes hashed so far, including `tail`.
    pub total: u64,
    /// Bytes of an incomplete block.
    pub tail: [u8; 64],
    pub tail_len: usize,
}

impl Default for Partial {
    fn default() -> Self {
        Self {
            state: INIT,
            total: 0,
            tail: [0; 64],
            tail_len: 0,
        }
    }
}

impl Partial {
    /// Moves bytes from the front of `data` into the tail; when the tail becomes a whole block
    /// it is compressed. Returns how many bytes were taken.
    pub fn fill_tail(&mut self, data: &[u8]) -> usize {
        let take = (64 - self.tail_len).min(data.len());
        self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
        self.tail_len += take;
        self.total += take as u64;
        if self.tail_len == 64 {
            let block = self.tail;
            compress_blocks(&mut self.state, &block);
            self.tail_len = 0;
        }
        take
    }

    /// Adds bytes with the scalar block function.
    pub fn update(&mut self, mut data: &[u8]) {
        if self.tail_len > 0 {
            data = &data[self.fill_tail(data)..];
        }
        let whole = data.len() / 64 * 64;
        compress_blocks(&mut self.state, &data[..whole]);
        self.total += whole as u64;
        self.fill_tail(&data[whole..]);
    }

    /// The digest: the tail padded with 0x80, zeros and the bit length.
    pub fn finalize(&self) -> [u8; 16] {
        let mut state = self.state;
        let mut last = [0u8; 128];
        last[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        last[self.tail_len] = 0x80;
        let len = if self.tail_len < 56 { 64 } else { 128 };
        last[len - 8..len].copy_from_slice(&(self.total.wrapping_mul(8)).to_le_bytes());
        compress_blocks(&mut state, &last[..len]);
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// An incremental MD5.
pub struct Md5(MD5_CTX);

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    /// A fresh hash.
    pub fn new() -> Self {
        let mut ctx = std::mem::MaybeUninit::<MD5_CTX>::uninit();
        // SAFETY: MD5_Init fully initializes the context it is given (and always returns 1).
        unsafe {
            MD5_Init(ctx.as_mut_ptr());
            Self(ctx.assume_init())
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: the context is initialized and the pointer/length pair is a valid slice.
        unsafe {
            MD5_Update(&mut self.0, data.as_ptr().cast(), data.len());
        }
    }

    /// The digest.
    pub fn finalize(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` has the 16 bytes MD5_Final writes; the context is initialized.
        unsafe {
            MD5_Final(out.as_mut_ptr(), &mut self.0);
        }
        out
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut m = Self::new();
        m.update(data);
        m.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_and_pieces() {
        // RFC 1321 test suite.
        assert_eq!(
            hex::encode(Md5::digest(b"")),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            hex::encode(Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let whole = Md5::digest(&data);
        let mut m = Md5::new();
        for c in data.chunks(777) {
            m.update(c);
        }
        assert_eq!(m.finalize(), whole);
        let reference = <s3s::crypto::Md5 as s3s::crypto::Checksum>::checksum(&data);
        assert_eq!(&whole[..], reference.as_ref());
    }

    #[test]
    fn partial_matches_in_any_pieces() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 5000] {
            let want = Md5::digest(&data[..len]);
            let mut whole = Partial::default();
            whole.update(&data[..len]);
            assert_eq!(whole.finalize(), want, "length {len}");
            for piece in [1, 3, 63, 64, 100] {
                let mut p = Partial::default();
                for c in data[..len].chunks(piece) {
                    p.update(c);
                }
                assert_eq!(p.finalize(), want, "length {len} in pieces of {piece}");
            }
        }
    }

    /// `cargo test --release -p object-server --lib -- --ignored --nocapture md5_speed`
    #[test]
    #[ignore = "a measurement, not a test"]
    fn md5_speed() {
        let data = vec![7u8; 64 << 20];
        for round in 0..3 {
            let t = std::time::Instant::now();
            let mut m = Md5::new();
            for c in data.chunks(64 * 1024) {
                m.update(c);
            }
            let _ = m.finalize();
            let ours = t.elapsed();
            let t = std::time::Instant::now();
            let mut m = <s3s::crypto::Md5 as s3s::crypto::Checksum>::new();
            for c in data.chunks(64 * 1024) {
                s3s::crypto::Checksum::update(&mut m, c);
            }
            let _ = s3s::crypto::Checksum::finalize(m);
            let rust = t.elapsed();
            #[cfg(target_arch = "x86_64")]
            if let Some(k) = x16::Avx512::detect() {
                // 16 lanes of 4 MiB each: 64 MiB in all.
                let t = std::time::Instant::now();
                let mut states = [INIT; x16::LANES];
                let lanes: Vec<&[u8]> = data.chunks(4 << 20).collect();
                k.compress(&mut states, &lanes, (4 << 20) / 64);
                println!(
                    "round {round}: AVX-512 16 lanes {:.0} MiB/s in all",
                    64.0 / t.elapsed().as_secs_f64()
                );
            }
            println!(
                "round {round}: aws-lc md5 {:.0} MiB/s, md-5 crate {:.0} MiB/s",
                64.0 / ours.as_secs_f64(),
                64.0 / rust.as_secs_f64()
            );
        }
    }
}
