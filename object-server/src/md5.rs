//! MD5 of object bodies (ETags, Content-MD5) through aws-lc's assembly implementation.
//!
//! MD5 is the most expensive per-byte step of a PUT (a third of its CPU; it cannot be
//! parallelized within one stream); aws-lc's assembly is about a quarter faster than the
//! pure-Rust `md-5` crate (870 vs 695 MiB/s on the 2-core AMD EPYC dev machine, see the
//! `md5_speed` measurement below). aws-lc is already linked for TLS and AES-GCM.
//! This is the crate's only `unsafe`: three FFI calls on a context this type owns.
#![allow(unsafe_code)]

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

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
            println!(
                "round {round}: aws-lc md5 {:.0} MiB/s, md-5 crate {:.0} MiB/s",
                64.0 / ours.as_secs_f64(),
                64.0 / rust.as_secs_f64()
            );
        }
    }
}
