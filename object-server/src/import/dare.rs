//! The decrypting side of DARE 2.0, the package format of MinIO's `sio` library, in which MinIO
//! stores the bodies of SSE objects, its sealed object keys and its sealed ETags.
//!
//! (No maintained Rust crate reads it: the `sio` crate on crates.io is an unrelated 2019 release
//! on ring 0.14. The format, from the public `minio/sio` v0.4 source and its `DARE.md`:)
//!
//! A stream is a sequence of packages, each `header[16] ‖ ciphertext ‖ tag[16]`:
//!
//! ```text
//! header: version 0x20 ‖ cipher (0 AES-256-GCM, 1 ChaCha20-Poly1305) ‖ payload length − 1 (u16 LE)
//!         ‖ nonce[12]  (the first bit of the nonce is the final-package flag)
//! ```
//!
//! Every package but the last carries exactly 64 KiB of plaintext; the last one sets the final
//! flag. All packages of a stream share the nonce of the first one (the final flag aside) and
//! the cipher; the AEAD nonce of package `i` is that nonce with its last four bytes (u32 LE)
//! XORed with `i`, and the associated data is the header's first four bytes. So a package moved,
//! dropped, added after the final one, or cut short fails, as does a stream without a final
//! package. (Neither the sio-go stream of madmin's admin bodies, `crate::admin::crypt`, nor
//! Coffer's own package format, `crate::sse::package`: the three differ in sizes, nonces and
//! associated data.) This module only decrypts: the importer never writes DARE (Coffer re-encrypts in its
//! own format, `crate::sse::package`), so no key or nonce of ours is used here.
use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

const HEADER: usize = 16;
const TAG: usize = 16;
const MAX_PAYLOAD: usize = 1 << 16;
const VERSION_20: u8 = 0x20;

/// Why a DARE stream did not decrypt.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DareError {
    /// Not a DARE 2.0 package, or an unknown cipher.
    #[error("not a DARE 2.0 package (package {0})")]
    Format(u32),
    /// The package is not authentic: tampered, reordered, or the wrong key.
    #[error("DARE package {0} is not authentic")]
    NotAuthentic(u32),
    /// The stream ended without its final package, or went on after it.
    #[error("DARE stream is truncated or has data after its final package")]
    Truncated,
}

/// A streaming DARE 2.0 decryptor for one stream (sequence numbers from 0).
pub struct Decryptor {
    key: [u8; 32],
    aead: Option<(u8, LessSafeKey)>,
    seq: u32,
    reference: Option<[u8; 12]>,
    finished: bool,
    pending: Vec<u8>,
}

impl Drop for Decryptor {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl Decryptor {
    /// A decryptor of a stream sealed under `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: *key,
            aead: None,
            seq: 0,
            reference: None,
            finished: false,
            pending: Vec::new(),
        }
    }

    /// Feeds ciphertext; appends the plaintext of every package completed to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), DareError> {
        while !data.is_empty() {
            if self.finished {
                return Err(DareError::Truncated);
            }
            // Complete the package in `pending` (or take whole packages straight from `data`).
            if self.pending.len() < HEADER {
                let take = (HEADER - self.pending.len()).min(data.len());
                self.pending.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.pending.len() < HEADER {
                    return Ok(());
                }
            }
            let total = package_len(&self.pending);
            let take = (total - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == total {
                let package = std::mem::take(&mut self.pending);
                self.open(&package, out)?;
                self.pending = package;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Ends the stream: fails unless it ended with its final package. An empty stream is the
    /// empty plaintext (MinIO stores an empty SSE object as zero bytes): the caller checks the
    /// plaintext's length against the recorded one, so a stream cut to nothing is still caught.
    pub fn finish(self) -> Result<(), DareError> {
        if (self.finished || self.seq == 0) && self.pending.is_empty() {
            Ok(())
        } else {
            Err(DareError::Truncated)
        }
    }

    fn open(&mut self, package: &[u8], out: &mut Vec<u8>) -> Result<(), DareError> {
        let seq = self.seq;
        let header = &package[..HEADER];
        if header[0] != VERSION_20 || header[1] > 1 {
            return Err(DareError::Format(seq));
        }
        let payload = package.len() - HEADER - TAG;
        let final_flag = header[4] & 0x80 != 0;
        if !final_flag && payload != MAX_PAYLOAD {
            return Err(DareError::Format(seq));
        }
        let mut nonce: [u8; 12] = header[4..].try_into().expect("12 bytes");
        let reference = *self.reference.get_or_insert(nonce);
        let mut want = reference;
        want[0] = (want[0] & 0x7f) | (nonce[0] & 0x80);
        if nonce != want {
            return Err(DareError::NotAuthentic(seq));
        }
        let cipher = header[1];
        if self.aead.is_none() {
            let alg = if cipher == 0 {
                &AES_256_GCM
            } else {
                &CHACHA20_POLY1305
            };
            let k = UnboundKey::new(alg, &self.key).expect("32-byte key");
            self.aead = Some((cipher, LessSafeKey::new(k)));
        }
        let aead = match &self.aead {
            Some((c, k)) if *c == cipher => k,
            _ => return Err(DareError::NotAuthentic(seq)),
        };
        let counter = u32::from_le_bytes(nonce[8..].try_into().expect("4 bytes")) ^ seq;
        nonce[8..].copy_from_slice(&counter.to_le_bytes());
        let mut buf = package[HEADER..].to_vec();
        let plain = aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header[..4]),
                &mut buf,
            )
            .map_err(|_| DareError::NotAuthentic(seq))?;
        out.extend_from_slice(plain);
        zeroize::Zeroize::zeroize(&mut buf);
        self.seq = seq.checked_add(1).ok_or(DareError::Format(seq))?;
        self.finished = final_flag;
        Ok(())
    }
}

/// The length of the package whose header starts `header`.
fn package_len(header: &[u8]) -> usize {
    HEADER + u16::from_le_bytes([header[2], header[3]]) as usize + 1 + TAG
}

/// Decrypts a whole stream held in memory.
pub fn decrypt(key: &[u8; 32], stream: &[u8]) -> Result<Vec<u8>, DareError> {
    let mut d = Decryptor::new(key);
    let mut out = Vec::with_capacity(stream.len());
    d.update(stream, &mut out)?;
    d.finish()?;
    Ok(out)
}

/// The plaintext size of a DARE stream of `size` bytes (as MinIO's `sio.DecryptedSize`), `None`
/// when no stream has that size.
pub fn decrypted_size(size: u64) -> Option<u64> {
    let package = (HEADER + MAX_PAYLOAD + TAG) as u64;
    let full = size / package;
    let rest = size % package;
    if rest != 0 && rest <= (HEADER + TAG) as u64 {
        return None;
    }
    Some(full * MAX_PAYLOAD as u64 + rest.saturating_sub((HEADER + TAG) as u64))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A DARE 2.0 encryptor for tests only, written from the format above.
    pub(crate) fn encrypt(key: &[u8; 32], nonce: [u8; 12], cipher: u8, plain: &[u8]) -> Vec<u8> {
        let alg = if cipher == 0 {
            &AES_256_GCM
        } else {
            &CHACHA20_POLY1305
        };
        let k = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = if plain.is_empty() {
            vec![&[]]
        } else {
            plain.chunks(MAX_PAYLOAD).collect()
        };
        for (i, c) in chunks.iter().enumerate() {
            let last = i == chunks.len() - 1;
            let mut header = [0u8; HEADER];
            header[0] = VERSION_20;
            header[1] = cipher;
            header[2..4].copy_from_slice(&((c.len().max(1) - 1) as u16).to_le_bytes());
            header[4..].copy_from_slice(&nonce);
            header[4] = if last {
                nonce[0] | 0x80
            } else {
                nonce[0] & 0x7f
            };
            let mut n: [u8; 12] = header[4..].try_into().unwrap();
            let ctr = u32::from_le_bytes(n[8..].try_into().unwrap()) ^ i as u32;
            n[8..].copy_from_slice(&ctr.to_le_bytes());
            let mut buf = c.to_vec();
            k.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(n),
                Aad::from(&header[..4]),
                &mut buf,
            )
            .unwrap();
            out.extend_from_slice(&header);
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn round_trip_in_any_chunking() {
        let key = [7u8; 32];
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i * 31) as u8).collect();
        for cipher in [0, 1] {
            let s = encrypt(&key, [9; 12], cipher, &plain);
            assert_eq!(decrypted_size(s.len() as u64), Some(plain.len() as u64));
            assert_eq!(decrypt(&key, &s).unwrap(), plain);
            for step in [1, 15, 16, 17, 65_568, 100_000] {
                let mut d = Decryptor::new(&key);
                let mut out = Vec::new();
                for c in s.chunks(step) {
                    d.update(c, &mut out).unwrap();
                }
                d.finish().unwrap();
                assert!(out == plain, "chunks of {step}");
            }
        }
    }

    #[test]
    fn tampering_fails() {
        let key = [7u8; 32];
        let plain = vec![1u8; 150_000];
        let s = encrypt(&key, [3; 12], 0, &plain);
        let p = HEADER + MAX_PAYLOAD + TAG;
        // A changed byte, a wrong key, a dropped package, a cut end, swapped packages.
        let mut flipped = s.clone();
        flipped[p + 100] ^= 1;
        assert_eq!(decrypt(&key, &flipped), Err(DareError::NotAuthentic(1)));
        assert_eq!(decrypt(&[8; 32], &s), Err(DareError::NotAuthentic(0)));
        let mut dropped = s[..p].to_vec();
        dropped.extend_from_slice(&s[2 * p..]);
        assert_eq!(decrypt(&key, &dropped), Err(DareError::NotAuthentic(1)));
        assert_eq!(decrypt(&key, &s[..2 * p]), Err(DareError::Truncated));
        assert_eq!(decrypt(&key, &s[..p + 10]), Err(DareError::Truncated));
        assert_eq!(decrypt(&key, &[]), Ok(Vec::new()));
        let mut swapped = s[p..2 * p].to_vec();
        swapped.extend_from_slice(&s[..p]);
        swapped.extend_from_slice(&s[2 * p..]);
        assert!(decrypt(&key, &swapped).is_err());
        let mut extra = s.clone();
        extra.extend_from_slice(&s[..p]);
        assert_eq!(decrypt(&key, &extra), Err(DareError::Truncated));
    }
}
