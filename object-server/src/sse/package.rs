//! A DARE-2.0-style stream of authenticated packages.
//!
//! The plaintext is cut into payloads of [`PAYLOAD`] bytes (the last one may be shorter, and an
//! empty body is one empty package). Each payload is sealed with AES-256-GCM under the object (or
//! part) key; the 96-bit nonce is the package's sequence number (64-bit big endian) followed by a
//! final-package flag. On disk every package is `ciphertext ‖ tag`, so the package holding any
//! plaintext offset is found by arithmetic and a ranged read decrypts only the packages it needs.
//!
//! Guarantees: a package moved to another position fails (the sequence number is in the nonce);
//! dropping the end of the stream fails (the new last package was not sealed as final); a changed
//! byte fails (GCM tag).
//!
//! # No key and nonce are ever used twice
//!
//! Within one stream the nonces are the sequence numbers 0, 1, 2, … (each sealed once, as final
//! or not), so they never repeat. Across streams the nonces do repeat, so **every stream must have
//! a key of its own**: a key is always drawn at random or derived from a value drawn at random
//! for that very stream, never derived from names or numbers alone. A second plaintext under a
//! stream's key and nonces would give away the XOR of the two plaintexts and GCM's
//! authentication key. How each stream comes to exist, and why its key is new:
//!
//! - PutObject: a fresh random object key ([`ObjectKey::generate`], `new_object_key`).
//! - CopyObject — also onto itself (SSE-C key rotation, metadata replacement) and to a new
//!   version: the source is decrypted and written again under a fresh random object key.
//! - New versions of a key: each is a PutObject, CopyObject or CompleteMultipartUpload.
//! - CreateMultipartUpload: draws a fresh object key and encrypts no stream with it directly.
//! - UploadPart and UploadPartCopy (also of a part number uploaded before, as retrying clients
//!   do): `HMAC-SHA256(object key, "coffer-part-key-v2" ‖ n ‖ salt)` ([`ObjectKey::part_key`])
//!   with a 32-byte [`PartSalt`] drawn for this request, stored in the part file's metadata and
//!   carried into the object's at completion (`key_salt`).
//! - CompleteMultipartUpload: moves the part files as they are; encrypts nothing.
//! - Tags, retention, legal hold (`rewrite_meta`): the stored ciphertext is copied byte for byte
//!   with the same sealed key; the same plaintext under the same key and nonces is the same
//!   ciphertext, so nothing new is encrypted.
//! - Delete, lifecycle expiration, the start-up sweep: encrypt nothing.
//!
//! Parts written before the salt existed (no `key_salt` in their metadata) were encrypted under
//! `HMAC-SHA256(object key, "coffer-part-key-v1" ‖ n)` ([`ObjectKey::legacy_part_key`]), which a
//! re-upload of part n repeated. They are still read; nothing is written that way any more.
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

/// Plaintext bytes per package.
pub const PAYLOAD: usize = 64 * 1024;
/// Authentication tag bytes per package.
pub const TAG: usize = 16;
/// Bytes of one full package on disk.
pub const PACKAGE: usize = PAYLOAD + TAG;

/// Why a package could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    /// The package's tag did not verify: tampered, reordered, truncated or the wrong key.
    #[error("encrypted package {0} is not authentic")]
    NotAuthentic(u64),
    /// The stored stream is shorter than its metadata says.
    #[error("encrypted stream is truncated")]
    Truncated,
}

/// A 256-bit key that encrypts one object (or one part); wiped from memory on drop.
#[derive(Clone)]
pub struct ObjectKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectKey(..)")
    }
}

impl ObjectKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::fill(&mut k[..]);
        Self(k)
    }

    /// Wraps existing key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key of one write of part `part_number` of a multipart object:
    /// `HMAC-SHA256(object key, "coffer-part-key-v2" ‖ n ‖ salt)`. `salt` is drawn anew for each
    /// write ([`PartSalt::generate`]), so a part uploaded again gets a key of its own.
    pub fn part_key(&self, part_number: u32, salt: &PartSalt) -> ObjectKey {
        self.derive(b"coffer-part-key-v2", part_number, &salt.0)
    }

    /// The key parts were written with before [`PartSalt`] existed (the same for every write of
    /// part n): only to read those parts.
    pub fn legacy_part_key(&self, part_number: u32) -> ObjectKey {
        self.derive(b"coffer-part-key-v1", part_number, &[])
    }

    fn derive(&self, label: &[u8], part_number: u32, salt: &[u8]) -> ObjectKey {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0[..]);
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&k);
        ctx.update(label);
        ctx.update(&part_number.to_be_bytes());
        ctx.update(salt);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        ObjectKey::from_bytes(out)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0[..]).expect("32-byte key"))
    }
}

/// The random value that gives one write of a multipart part its own key (see the module doc).
/// Not secret: it is stored in the part's metadata as base64, and without the object key it
/// derives nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct PartSalt([u8; 32]);

impl PartSalt {
    /// A fresh random salt.
    pub fn generate() -> Self {
        let mut s = [0u8; 32];
        rand::fill(&mut s);
        Self(s)
    }
}

impl std::fmt::Debug for PartSalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartSalt({})", B64.encode(self.0))
    }
}

impl serde::Serialize for PartSalt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for PartSalt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(|_| serde::de::Error::custom("a part's key salt is not base64"))?;
        let salt = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::custom("a part's key salt is not 32 bytes"))?;
        Ok(Self(salt))
    }
}

fn nonce(seq: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&seq.to_be_bytes());
    n[8] = if last { 0x80 } else { 0 };
    Nonce::assume_unique_for_key(n)
}

/// Number of packages for a plaintext of `size` bytes (an empty body is one package).
pub fn package_count(size: u64) -> u64 {
    if size == 0 {
        1
    } else {
        size.div_ceil(PAYLOAD as u64)
    }
}

/// Bytes on disk of the package stream of a plaintext of `size` bytes. Saturates at
/// `u64::MAX`, a length no stored stream has, so that a damaged size in metadata is refused as
/// a wrong length (it wrapped, or panicked in debug builds, before fuzzing found it).
pub fn encrypted_size(size: u64) -> u64 {
    size.saturating_add(package_count(size).saturating_mul(TAG as u64))
}

/// Seals a plaintext stream into packages, fed in pieces of any size.
pub struct Encryptor {
    key: LessSafeKey,
    seq: u64,
    pending: Vec<u8>,
}

impl Encryptor {
    /// Starts a stream under `key`.
    pub fn new(key: &ObjectKey) -> Self {
        Self {
            key: key.aead(),
            seq: 0,
            pending: Vec::with_capacity(PAYLOAD),
        }
    }

    /// Adds plaintext; appends every package that is now complete (and known not to be the last)
    /// to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.pending.len() == PAYLOAD {
                self.flush(false, out);
            }
            // A whole payload with more data after it is sealed straight from the input
            // (one copy fewer than through `pending`).
            if self.pending.is_empty() && data.len() > PAYLOAD {
                self.seal(&data[..PAYLOAD], false, out);
                data = &data[PAYLOAD..];
                continue;
            }
            let take = (PAYLOAD - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Seals the last package and appends it to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.flush(true, out);
    }

    fn flush(&mut self, last: bool, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        self.seal(&pending, last, out);
        self.pending = pending;
        self.pending.clear();
    }

    /// Appends `payload ‖ tag` of the next package to `out`.
    fn seal(&mut self, payload: &[u8], last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(payload);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(self.seq, last), Aad::empty(), &mut out[start..])
            .expect("AES-GCM seal");
        out.extend_from_slice(tag.as_ref());
        self.seq += 1;
    }
}

/// Opens packages of a stream whose plaintext is `size` bytes.
pub struct Decryptor {
    key: LessSafeKey,
    size: u64,
}

impl Decryptor {
    /// A decryptor for a stream of `size` plaintext bytes under `key`.
    pub fn new(key: &ObjectKey, size: u64) -> Self {
        Self {
            key: key.aead(),
            size,
        }
    }

    /// The stored byte range `(offset, len)` of package `seq`.
    /// Saturates, as [`encrypted_size`] does: an offset past any stored stream fails its read.
    pub fn package_span(&self, seq: u64) -> (u64, usize) {
        let start = seq.saturating_mul(PAYLOAD as u64);
        let payload = self.size.saturating_sub(start).min(PAYLOAD as u64) as usize;
        (seq.saturating_mul(PACKAGE as u64), payload + TAG)
    }

    /// The packages `[first, last]` that hold the plaintext range `[start, end)` (`end > start`).
    pub fn packages_for(&self, start: u64, end: u64) -> (u64, u64) {
        let first = start / PAYLOAD as u64;
        let last = (end.max(start + 1) - 1) / PAYLOAD as u64;
        (first, last.min(package_count(self.size) - 1))
    }

    /// Opens package `seq` from `stored` (exactly the stored package, ciphertext and tag) into
    /// the front of `out`, which must have room for its payload. Returns the plaintext length
    /// (the plaintext is `out[..len]`). Out of place, so the payloads of consecutive packages
    /// can be laid side by side without the tags between them; on error `out` holds garbage.
    pub fn open_into(
        &self,
        seq: u64,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<usize, PackageError> {
        let (_, want) = self.package_span(seq);
        if stored.len() != want {
            return Err(PackageError::Truncated);
        }
        let len = want - TAG;
        let (ciphertext, tag) = stored.split_at(len);
        let last = seq + 1 == package_count(self.size);
        self.key
            .open_separate_gather(
                nonce(seq, last),
                Aad::empty(),
                ciphertext,
                tag,
                &mut out[..len],
            )
            .map(|()| len)
            .map_err(|_| PackageError::NotAuthentic(seq))
    }
}

/// Decrypts a whole in-memory stream (used by tests and small reads).
pub fn decrypt_all(key: &ObjectKey, size: u64, stream: &[u8]) -> Result<Vec<u8>, PackageError> {
    let d = Decryptor::new(key, size);
    if stream.len() as u64 != encrypted_size(size) {
        return Err(PackageError::Truncated);
    }
    let mut out = vec![0; size as usize];
    for seq in 0..package_count(size) {
        let (off, len) = d.package_span(seq);
        let at = seq as usize * PAYLOAD;
        d.open_into(
            seq,
            &stream[off as usize..off as usize + len],
            &mut out[at..],
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt(key: &ObjectKey, data: &[u8], piece: usize) -> Vec<u8> {
        let mut e = Encryptor::new(key);
        let mut out = Vec::new();
        for c in data.chunks(piece.max(1)) {
            e.update(c, &mut out);
        }
        e.finish(&mut out);
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_sizes() {
        let key = ObjectKey::generate();
        for size in [
            0,
            1,
            100,
            PAYLOAD - 1,
            PAYLOAD,
            PAYLOAD + 1,
            3 * PAYLOAD,
            3 * PAYLOAD + 17,
        ] {
            let data = sample(size);
            for piece in [1000, 4096, PAYLOAD, 1 << 20] {
                let ct = encrypt(&key, &data, piece);
                assert_eq!(ct.len() as u64, encrypted_size(size as u64), "size {size}");
                assert_eq!(decrypt_all(&key, size as u64, &ct).unwrap(), data);
            }
        }
    }

    #[test]
    fn ciphertext_hides_plaintext() {
        let key = ObjectKey::generate();
        let data = vec![b'A'; 3 * PAYLOAD];
        let ct = encrypt(&key, &data, 5000);
        assert!(!ct.windows(16).any(|w| w == &data[..16]));
    }

    #[test]
    fn tamper_detected() {
        let key = ObjectKey::generate();
        let data = sample(2 * PAYLOAD + 10);
        let mut ct = encrypt(&key, &data, 9999);
        ct[PACKAGE + 5] ^= 1;
        assert_eq!(
            decrypt_all(&key, data.len() as u64, &ct),
            Err(PackageError::NotAuthentic(1))
        );
    }

    #[test]
    fn reorder_detected() {
        let key = ObjectKey::generate();
        let data = sample(3 * PAYLOAD);
        let ct = encrypt(&key, &data, PAYLOAD);
        let mut swapped = ct.clone();
        swapped[..PACKAGE].copy_from_slice(&ct[PACKAGE..2 * PACKAGE]);
        swapped[PACKAGE..2 * PACKAGE].copy_from_slice(&ct[..PACKAGE]);
        assert!(matches!(
            decrypt_all(&key, data.len() as u64, &swapped),
            Err(PackageError::NotAuthentic(0))
        ));
    }

    #[test]
    fn truncation_detected() {
        let key = ObjectKey::generate();
        let data = sample(3 * PAYLOAD);
        let ct = encrypt(&key, &data, PAYLOAD);
        // Dropping the last package and claiming a shorter size: package 1 was not sealed as final.
        let cut = &ct[..2 * PACKAGE];
        assert_eq!(
            decrypt_all(&key, 2 * PAYLOAD as u64, cut),
            Err(PackageError::NotAuthentic(1))
        );
        // Dropping bytes without changing the size.
        assert_eq!(
            decrypt_all(&key, data.len() as u64, &ct[..ct.len() - 1]),
            Err(PackageError::Truncated)
        );
    }

    #[test]
    fn packages_open_out_of_place_side_by_side() {
        let key = ObjectKey::generate();
        let data = sample(2 * PAYLOAD + 10);
        let ct = encrypt(&key, &data, 777);
        let d = Decryptor::new(&key, data.len() as u64);
        let mut out = vec![0u8; data.len()];
        // In any order, each package's payload lands where the caller puts it.
        for seq in [2u64, 0, 1] {
            let (off, len) = d.package_span(seq);
            let at = seq as usize * PAYLOAD;
            let stored = &ct[off as usize..off as usize + len];
            assert_eq!(d.open_into(seq, stored, &mut out[at..]), Ok(len - TAG));
        }
        assert!(out == data);
        // A stored package of the wrong length, or opened as another one, is refused.
        assert_eq!(
            d.open_into(0, &ct[..PACKAGE - 1], &mut out),
            Err(PackageError::Truncated)
        );
        assert_eq!(
            d.open_into(1, &ct[..PACKAGE], &mut out),
            Err(PackageError::NotAuthentic(1))
        );
    }

    /// Fuzzing (`fuzz/fuzz_targets/package_stream.rs`) found `encrypted_size` overflowing on a
    /// size no stream can have (a damaged or forged size in metadata): a panic in debug builds,
    /// a wrapped length in release ones. Such a size is now a wrong length.
    #[test]
    fn sizes_no_stream_can_have_are_refused_not_wrapped() {
        // The fuzzer's input: a 49-byte plaintext, its stream claimed to hold this many bytes.
        let crash: &[u8] = &[
            0x07, 0x3a, 0x30, 0x00, 0x00, 0x00, 0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let claimed = u64::from_le_bytes(crash[1..9].try_into().unwrap());
        let plain = &crash[17..];
        let key = ObjectKey::generate();
        let stream = encrypt(&key, plain, 1);
        assert_eq!(
            decrypt_all(&key, claimed, &stream),
            Err(PackageError::Truncated)
        );
        for size in [
            claimed,
            u64::MAX,
            u64::MAX - 1,
            u64::MAX - 15 * PAYLOAD as u64,
        ] {
            assert_eq!(encrypted_size(size), u64::MAX, "{size:#x}");
            let d = Decryptor::new(&key, size);
            let last = package_count(size) - 1;
            assert_eq!(d.package_span(last).0, u64::MAX);
            assert_eq!(d.packages_for(size - 1, size), (last, last));
        }
        // The largest sizes that still fit are exact.
        let fits = u64::MAX - package_count(u64::MAX) * TAG as u64;
        assert!(encrypted_size(fits) < u64::MAX);
        assert_eq!(
            encrypted_size(fits),
            fits + package_count(fits) * TAG as u64
        );
    }

    #[test]
    fn wrong_key_fails() {
        let data = sample(10);
        let ct = encrypt(&ObjectKey::generate(), &data, 10);
        assert!(decrypt_all(&ObjectKey::generate(), 10, &ct).is_err());
    }

    #[test]
    fn range_packages() {
        let d = Decryptor::new(&ObjectKey::generate(), 3 * PAYLOAD as u64 + 5);
        assert_eq!(d.packages_for(0, 1), (0, 0));
        assert_eq!(
            d.packages_for(PAYLOAD as u64 - 1, PAYLOAD as u64 + 1),
            (0, 1)
        );
        assert_eq!(
            d.packages_for(3 * PAYLOAD as u64, 3 * PAYLOAD as u64 + 5),
            (3, 3)
        );
        assert_eq!(d.package_span(3), (3 * PACKAGE as u64, 5 + TAG));
    }

    #[test]
    fn part_keys_differ() {
        let k = ObjectKey::generate();
        let s = PartSalt::generate();
        assert_ne!(k.part_key(1, &s).as_bytes(), k.part_key(2, &s).as_bytes());
        assert_eq!(k.part_key(1, &s).as_bytes(), k.part_key(1, &s).as_bytes());
        assert_ne!(
            k.legacy_part_key(1).as_bytes(),
            k.legacy_part_key(2).as_bytes()
        );
    }

    /// Two writes of one part number never share a key (the flaw of the v1 derivation, which a
    /// re-upload of part n repeated), nor does a write share the key of a legacy part.
    #[test]
    fn each_write_of_a_part_has_its_own_key() {
        let k = ObjectKey::generate();
        let (a, b) = (PartSalt::generate(), PartSalt::generate());
        assert_ne!(a, b);
        assert_ne!(k.part_key(1, &a).as_bytes(), k.part_key(1, &b).as_bytes());
        assert_ne!(
            k.part_key(1, &a).as_bytes(),
            k.legacy_part_key(1).as_bytes()
        );
        // Observable in the streams: under a shared key and nonces the XOR of the ciphertexts
        // would be the XOR of the plaintexts.
        let (p1, p2) = (sample(PAYLOAD + 9), vec![0x5a; PAYLOAD + 9]);
        let c1 = encrypt(&k.part_key(1, &a), &p1, 4096);
        let c2 = encrypt(&k.part_key(1, &b), &p2, 4096);
        let xor = |x: &[u8], y: &[u8]| x.iter().zip(y).map(|(a, b)| a ^ b).collect::<Vec<u8>>();
        assert_ne!(
            xor(&c1[..PAYLOAD], &c2[..PAYLOAD]),
            xor(&p1[..PAYLOAD], &p2[..PAYLOAD])
        );
    }

    /// The derivations are fixed: parts on disk must keep opening after any change of this code.
    #[test]
    fn part_key_derivations_are_stable() {
        let k = ObjectKey::from_bytes([7; 32]);
        let salt: PartSalt =
            serde_json::from_str(&format!("\"{}\"", B64.encode([9u8; 32]))).unwrap();
        let hmac = |msg: &[u8]| {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7; 32]);
            aws_lc_rs::hmac::sign(&key, msg).as_ref().to_vec()
        };
        assert_eq!(
            k.legacy_part_key(3).as_bytes().to_vec(),
            hmac(b"coffer-part-key-v1\0\0\0\x03")
        );
        let mut v2 = b"coffer-part-key-v2\0\0\0\x03".to_vec();
        v2.extend_from_slice(&[9; 32]);
        assert_eq!(k.part_key(3, &salt).as_bytes().to_vec(), hmac(&v2));
    }

    #[test]
    fn part_salt_round_trips_and_refuses_bad_values() {
        let s = PartSalt::generate();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PartSalt>(&json).unwrap(), s);
        for bad in ["\"!!\"", "\"AAAA\"", "3", "null"] {
            assert!(serde_json::from_str::<PartSalt>(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release -p object-server -- --ignored --nocapture package_speed`
    #[test]
    #[ignore = "a measurement, not a test"]
    fn package_speed() {
        let key = ObjectKey::generate();
        let data = vec![7u8; 64 << 20];
        let t = std::time::Instant::now();
        let mut e = Encryptor::new(&key);
        let mut out = Vec::with_capacity(data.len() + (1 << 20));
        for c in data.chunks(16 * 1024) {
            e.update(c, &mut out);
            if out.len() > 1 << 20 {
                out.clear();
            }
        }
        e.finish(&mut out);
        let enc = t.elapsed();
        let t = std::time::Instant::now();
        let mut md5 = <s3s::crypto::Md5 as s3s::crypto::Checksum>::new();
        for c in data.chunks(16 * 1024) {
            s3s::crypto::Checksum::update(&mut md5, c);
        }
        let _ = s3s::crypto::Checksum::finalize(md5);
        let md5t = t.elapsed();
        println!(
            "encrypt {:.0} MiB/s, md5 {:.0} MiB/s",
            64.0 / enc.as_secs_f64(),
            64.0 / md5t.as_secs_f64()
        );
    }
}
