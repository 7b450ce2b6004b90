//! KES's older ciphertext encodings (JSON and msgpack), normalized to the current
//! binary layout `sealed ‖ iv[16] ‖ nonce[12]`; and the version tag of a rotated key's
//! ciphertexts.
//!
//! **Version tags.** A ciphertext under version 1 of a key (every key never rotated) is the
//! binary layout, byte for byte what KES makes. A ciphertext under a later version
//! ([`crate::crypto::ring`]) is KES's msgpack layout `[algorithm, id, iv, nonce, bytes]` with
//! `id` = `coffer:v<version>`: every KES (MinIO's v0.24 included) still parses that layout
//! and ignores `id`, so MinIO's KES decrypts it when it holds that version's key. The tag is
//! not authenticated and needs not be: a changed tag only selects another key, under which
//! the AEAD fails.

use base64::{Engine, engine::general_purpose::STANDARD};
use std::borrow::Cow;

const ALGORITHMS: [&str; 6] = [
    "AES-256-GCM-HMAC-SHA-256",
    "ChaCha20Poly1305",
    "AES256",
    "ChaCha20",
    "AES256-GCM_SHA256",
    "XCHACHA20-POLY1305",
];

/// The algorithm name a version-tagged ciphertext carries: the older spelling, the one every
/// KES's msgpack parser accepts (MinIO's v0.24.0 refuses `AES256`/`ChaCha20` there).
pub fn tag_algorithm(cipher: crate::crypto::Cipher) -> &'static str {
    match cipher {
        crate::crypto::Cipher::Aes256 => "AES256-GCM_SHA256",
        crate::crypto::Cipher::ChaCha20 => "XCHACHA20-POLY1305",
    }
}

/// Returns the current binary layout of a ciphertext. Input that is not a valid
/// legacy encoding is returned unchanged (and then fails authentication if it is junk).
pub fn normalize(b: &[u8]) -> Cow<'_, [u8]> {
    let parsed = match b.first() {
        Some(0x95) => parse_msgpack(b),
        Some(b'{') => parse_json(b),
        _ => None,
    };
    match parsed {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(b),
    }
}

/// The `id` prefix of a version-tagged ciphertext.
const VERSION_TAG: &str = "coffer:v";

/// `binary` (the current layout, from [`crate::crypto::SecretKey::encrypt`]) re-encoded as
/// the msgpack layout with `id` naming `version`.
pub fn tag_version(binary: &[u8], algorithm: &str, version: u32) -> Vec<u8> {
    let n = binary.len();
    assert!(n >= 28, "a ciphertext ends with iv and nonce");
    let (bytes, iv, nonce) = (
        &binary[..n - 28],
        &binary[n - 28..n - 12],
        &binary[n - 12..],
    );
    let id = format!("{VERSION_TAG}{version}");
    let mut m = Vec::with_capacity(n + 48);
    m.push(0x95);
    for s in [algorithm, &id] {
        debug_assert!(s.len() < 32);
        m.push(0xa0 | s.len() as u8);
        m.extend_from_slice(s.as_bytes());
    }
    for b in [iv, nonce, bytes] {
        match b.len() {
            l if l <= 0xff => m.extend_from_slice(&[0xc4, l as u8]),
            l if l <= 0xffff => {
                m.push(0xc5);
                m.extend_from_slice(&(l as u16).to_be_bytes());
            }
            l => {
                m.push(0xc6);
                m.extend_from_slice(&(l as u32).to_be_bytes());
            }
        }
        m.extend_from_slice(b);
    }
    m
}

/// The version a ciphertext names ([`tag_version`]), or `None` for an untagged one (KES's
/// binary, JSON or msgpack layouts without our tag).
pub fn tagged_version(b: &[u8]) -> Option<u32> {
    if b.first() != Some(&0x95) {
        return None;
    }
    let mut r = Msgpack(&b[1..]);
    r.str()?;
    let digits = r.str()?.strip_prefix(VERSION_TAG)?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

fn join(bytes: &[u8], iv: &[u8], nonce: &[u8]) -> Option<Vec<u8>> {
    if iv.len() != 16 || nonce.len() != 12 {
        return None;
    }
    let mut v = Vec::with_capacity(bytes.len() + 28);
    v.extend_from_slice(bytes);
    v.extend_from_slice(iv);
    v.extend_from_slice(nonce);
    Some(v)
}

fn parse_json(b: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Json {
        aead: String,
        iv: String,
        nonce: String,
        bytes: String,
    }
    let j: Json = serde_json::from_slice(b).ok()?;
    if !ALGORITHMS[..2].contains(&j.aead.as_str()) {
        return None;
    }
    join(
        &STANDARD.decode(j.bytes).ok()?,
        &STANDARD.decode(j.iv).ok()?,
        &STANDARD.decode(j.nonce).ok()?,
    )
}

/// A reader of the few msgpack types the legacy format uses.
struct Msgpack<'a>(&'a [u8]);

impl<'a> Msgpack<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }

    fn len(&mut self, width: usize) -> Option<usize> {
        let b = self.take(width)?;
        Some(b.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize))
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = match *self.take(1)?.first()? {
            t @ 0xa0..=0xbf => (t & 0x1f) as usize,
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return None,
        };
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn bin(&mut self) -> Option<&'a [u8]> {
        let n = match *self.take(1)?.first()? {
            0xc4 => self.len(1)?,
            0xc5 => self.len(2)?,
            0xc6 => self.len(4)?,
            _ => return None,
        };
        self.take(n)
    }
}

fn parse_msgpack(b: &[u8]) -> Option<Vec<u8>> {
    let mut r = Msgpack(b);
    if r.take(1)? != [0x95] {
        return None;
    }
    let alg = r.str()?;
    let _id = r.str()?;
    let iv = r.bin()?;
    let nonce = r.bin()?;
    let bytes = r.bin()?;
    if !r.0.is_empty() || !ALGORITHMS.contains(&alg) {
        return None;
    }
    join(bytes, iv, nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Cipher, SecretKey};

    fn split(ct: &[u8]) -> (&[u8], &[u8], &[u8]) {
        let n = ct.len();
        (&ct[..n - 28], &ct[n - 28..n - 12], &ct[n - 12..])
    }

    #[test]
    fn legacy_json_decrypts() {
        let k = SecretKey::generate(Cipher::Aes256);
        let ct = k.encrypt(b"secret", b"ctx").unwrap();
        let (bytes, iv, nonce) = split(&ct);
        let json = serde_json::json!({
            "aead": "AES-256-GCM-HMAC-SHA-256", "id": "abc",
            "iv": STANDARD.encode(iv), "nonce": STANDARD.encode(nonce), "bytes": STANDARD.encode(bytes),
        })
        .to_string();
        assert_eq!(&k.decrypt(json.as_bytes(), b"ctx").unwrap()[..], b"secret");
    }

    #[test]
    fn legacy_msgpack_decrypts() {
        let k = SecretKey::generate(Cipher::ChaCha20);
        let ct = k.encrypt(b"secret", b"").unwrap();
        let (bytes, iv, nonce) = split(&ct);
        let mut m = vec![0x95, 0xa0 | 8];
        m.extend_from_slice(b"ChaCha20");
        m.push(0xa0); // empty id
        m.extend_from_slice(&[0xc4, 16]);
        m.extend_from_slice(iv);
        m.extend_from_slice(&[0xc4, 12]);
        m.extend_from_slice(nonce);
        m.extend_from_slice(&[0xc4, bytes.len() as u8]);
        m.extend_from_slice(bytes);
        assert_eq!(&k.decrypt(&m, b"").unwrap()[..], b"secret");
        // Trailing junk makes it not a msgpack ciphertext.
        m.push(0);
        assert!(k.decrypt(&m, b"").is_err());
    }

    #[test]
    fn version_tag_round_trips_and_decrypts_as_kes_msgpack() {
        for cipher in [Cipher::Aes256, Cipher::ChaCha20] {
            let k = SecretKey::generate(cipher);
            let ct = k.encrypt(b"secret", b"ctx").unwrap();
            assert_eq!(tagged_version(&ct), None);
            let tagged = tag_version(&ct, tag_algorithm(cipher), 7);
            assert_eq!(tagged_version(&tagged), Some(7));
            assert_eq!(&normalize(&tagged)[..], &ct[..]);
            assert_eq!(&k.decrypt(&tagged, b"ctx").unwrap()[..], b"secret");
        }
        // A legacy msgpack id is no tag; nor is a malformed number.
        let k = SecretKey::generate(Cipher::Aes256);
        let ct = k.encrypt(b"x", b"").unwrap();
        let mut other = tag_version(&ct, "AES256", 1);
        let at = other.windows(9).position(|w| w == b"coffer:v1").unwrap();
        other[at] = b'k';
        assert_eq!(tagged_version(&other), None);
        for bad in [
            "coffer:v",
            "coffer:v01",
            "coffer:v-1",
            "coffer:v99999999999",
        ] {
            let mut m = vec![0x95, 0xa6];
            m.extend_from_slice(b"AES256");
            m.push(0xa0 | bad.len() as u8);
            m.extend_from_slice(bad.as_bytes());
            assert_eq!(tagged_version(&m), None, "{bad}");
        }
    }

    #[test]
    fn junk_is_left_alone() {
        assert!(matches!(normalize(b"{not json"), Cow::Borrowed(_)));
        assert!(matches!(normalize(&[0x95, 0x01]), Cow::Borrowed(_)));
    }
}
