//! The encryption of admin API bodies, as MinIO's madmin library does it (facts from the public
//! madmin-go `encrypt.go` and secure-io `sio-go`; our own code).
//!
//! `salt[32] ‖ id[1] ‖ nonce[8] ‖ stream`. The key is derived from the caller's secret key and
//! the salt: id 0 = Argon2id (t=1, m=64 MiB, p=4) with AES-256-GCM, id 1 = Argon2id with
//! ChaCha20-Poly1305, id 2 = PBKDF2-SHA256 (8192 rounds) with AES-256-GCM. The stream is
//! sio's: 16 KiB fragments, each sealed with nonce `nonce ‖ seq` (u32 little endian, from 1)
//! and associated data `flag ‖ tag`, where flag is 0x80 on the final fragment and 0 otherwise,
//! and tag is the AEAD tag of an empty message sealed under nonce `nonce ‖ 0`.
//!
//! This is not the object package format of `crate::sse::package` (64 KiB payloads, a 64-bit
//! sequence number and the flag in the nonce): the two cannot share code.
use aws_lc_rs::aead::{
    AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use zeroize::Zeroizing;

/// Salt length.
pub const SALT: usize = 32;
/// Nonce base length.
pub const NONCE: usize = 8;
const HEADER: usize = SALT + 1 + NONCE;
const FRAGMENT: usize = 16 * 1024;
const TAG: usize = 16;

const ARGON2ID_AES_GCM: u8 = 0x00;
const ARGON2ID_CHACHA20: u8 = 0x01;
const PBKDF2_AES_GCM: u8 = 0x02;

/// Why a body does not decrypt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptError {
    /// Shorter than its header, or an unknown algorithm id.
    #[error("the request body is not an encrypted admin payload")]
    Malformed,
    /// Wrong secret key, or tampered.
    #[error("the request body could not be decrypted with the caller's secret key")]
    NotAuthentic,
}

fn derive(
    id: u8,
    password: &str,
    salt: &[u8],
) -> Result<(Zeroizing<[u8; 32]>, &'static Algorithm), CryptError> {
    let mut key = Zeroizing::new([0u8; 32]);
    let alg = match id {
        ARGON2ID_AES_GCM | ARGON2ID_CHACHA20 => {
            let params = argon2::Params::new(64 * 1024, 1, 4, Some(32)).expect("valid params");
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password.as_bytes(), salt, &mut key[..])
                .map_err(|_| CryptError::Malformed)?;
            if id == ARGON2ID_AES_GCM {
                &AES_256_GCM
            } else {
                &CHACHA20_POLY1305
            }
        }
        PBKDF2_AES_GCM => {
            aws_lc_rs::pbkdf2::derive(
                aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
                std::num::NonZeroU32::new(8192).expect("non-zero"),
                salt,
                password.as_bytes(),
                &mut key[..],
            );
            &AES_256_GCM
        }
        _ => return Err(CryptError::Malformed),
    };
    Ok((key, alg))
}

fn nonce(base: &[u8], seq: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..NONCE].copy_from_slice(base);
    n[NONCE..].copy_from_slice(&seq.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

struct Stream {
    key: LessSafeKey,
    base: [u8; NONCE],
    /// `flag ‖ tag`.
    ad: [u8; 1 + TAG],
}

impl Stream {
    fn new(alg: &'static Algorithm, key: &[u8], base: &[u8]) -> Self {
        let key = LessSafeKey::new(UnboundKey::new(alg, key).expect("32-byte key"));
        let mut b = [0u8; NONCE];
        b.copy_from_slice(base);
        let tag = key
            .seal_in_place_separate_tag(nonce(&b, 0), Aad::empty(), &mut [])
            .expect("seal");
        let mut ad = [0u8; 1 + TAG];
        ad[1..].copy_from_slice(tag.as_ref());
        Self { key, base: b, ad }
    }

    fn ad(&self, last: bool) -> [u8; 1 + TAG] {
        let mut ad = self.ad;
        ad[0] = if last { 0x80 } else { 0 };
        ad
    }
}

/// Encrypts `data` for a caller whose secret key is `password` (Argon2id + AES-256-GCM, as
/// madmin does on machines with AES instructions).
pub fn encrypt(password: &str, data: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; SALT];
    rand::fill(&mut salt);
    let mut base = [0u8; NONCE];
    rand::fill(&mut base);
    let (key, _) = derive(ARGON2ID_AES_GCM, password, &salt).expect("known algorithm");
    seal(&key, ARGON2ID_AES_GCM, &salt, &base, data)
}

/// The AEAD of algorithm id `id` (the key derivation aside).
fn aead(id: u8) -> Result<&'static Algorithm, CryptError> {
    match id {
        ARGON2ID_AES_GCM | PBKDF2_AES_GCM => Ok(&AES_256_GCM),
        ARGON2ID_CHACHA20 => Ok(&CHACHA20_POLY1305),
        _ => Err(CryptError::Malformed),
    }
}

/// Seals `data` under an already derived `key`. Each call takes a fresh random `base` nonce
/// from its caller and a fresh salt (so a fresh key): no (key, nonce) pair is used twice.
#[doc(hidden)]
pub fn seal(key: &[u8; 32], id: u8, salt: &[u8; SALT], base: &[u8; NONCE], data: &[u8]) -> Vec<u8> {
    let s = Stream::new(aead(id).expect("known algorithm"), &key[..], base);
    let mut out = Vec::with_capacity(HEADER + data.len() + (data.len() / FRAGMENT + 1) * TAG);
    out.extend_from_slice(salt);
    out.push(id);
    out.extend_from_slice(base);
    // Full fragments while more data follows; the last one (possibly full, possibly empty)
    // is final.
    let count = data.len().div_ceil(FRAGMENT).max(1);
    for (i, seq) in (0..count).zip(1u32..) {
        let chunk = &data[i * FRAGMENT..((i + 1) * FRAGMENT).min(data.len())];
        let last = i + 1 == count;
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = s
            .key
            .seal_in_place_separate_tag(
                nonce(&s.base, seq),
                Aad::from(s.ad(last)),
                &mut out[start..],
            )
            .expect("seal");
        out.extend_from_slice(tag.as_ref());
    }
    out
}

/// The parts of an encrypted body.
struct Parts<'a> {
    salt: &'a [u8],
    id: u8,
    base: &'a [u8],
    stream: &'a [u8],
}

fn split(data: &[u8]) -> Result<Parts<'_>, CryptError> {
    if data.len() < HEADER + TAG {
        return Err(CryptError::Malformed);
    }
    let (salt, rest) = data.split_at(SALT);
    let (id, rest) = (rest[0], &rest[1..]);
    let (base, stream) = rest.split_at(NONCE);
    Ok(Parts {
        salt,
        id,
        base,
        stream,
    })
}

/// Decrypts a body madmin encrypted with the caller's secret key `password`.
pub fn decrypt(password: &str, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    let p = split(data)?;
    let (key, alg) = derive(p.id, password, p.salt)?;
    open(alg, &key[..], p.base, p.stream)
}

/// [`decrypt`] with the key already derived (the salt is ignored): the fuzz target's way past
/// the deliberately slow Argon2id.
#[doc(hidden)]
pub fn decrypt_with_key(key: &[u8; 32], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    let p = split(data)?;
    open(aead(p.id)?, &key[..], p.base, p.stream)
}

fn open(
    alg: &'static Algorithm,
    key: &[u8],
    base: &[u8],
    body: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    let s = Stream::new(alg, key, base);
    let mut out = Zeroizing::new(Vec::with_capacity(body.len()));
    let chunks: Vec<&[u8]> = body.chunks(FRAGMENT + TAG).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if chunk.len() < TAG {
            return Err(CryptError::NotAuthentic);
        }
        let last = i + 1 == chunks.len();
        let seq = u32::try_from(i + 1).map_err(|_| CryptError::Malformed)?;
        let mut buf = chunk.to_vec();
        let plain = s
            .key
            .open_in_place(nonce(&s.base, seq), Aad::from(s.ad(last)), &mut buf)
            .map_err(|_| CryptError::NotAuthentic)?;
        out.extend_from_slice(plain);
        zeroize::Zeroize::zeroize(&mut buf);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_fragment_edges() {
        for len in [
            0,
            1,
            FRAGMENT - 1,
            FRAGMENT,
            FRAGMENT + 1,
            2 * FRAGMENT,
            40_000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let c = encrypt("secret-key", &data);
            assert_eq!(c.len(), HEADER + len + len.div_ceil(FRAGMENT).max(1) * TAG);
            assert_eq!(&decrypt("secret-key", &c).unwrap()[..], &data[..], "{len}");
            assert_eq!(
                decrypt("other-key", &c).unwrap_err(),
                CryptError::NotAuthentic
            );
        }
    }

    #[test]
    fn truncation_and_reordering_fail() {
        let data = vec![7u8; 3 * FRAGMENT];
        let c = encrypt("k", &data);
        // Dropping the final fragment leaves a non-final one at the end.
        assert!(decrypt("k", &c[..c.len() - (FRAGMENT + TAG)]).is_err());
        let mut swapped = c.clone();
        let (a, b) = (HEADER, HEADER + FRAGMENT + TAG);
        let first: Vec<u8> = swapped[a..b].to_vec();
        let second: Vec<u8> = swapped[b..b + FRAGMENT + TAG].to_vec();
        swapped[a..b].copy_from_slice(&second);
        swapped[b..b + FRAGMENT + TAG].copy_from_slice(&first);
        assert!(decrypt("k", &swapped).is_err());
        assert_eq!(decrypt("k", &c[..10]).unwrap_err(), CryptError::Malformed);
    }

    #[test]
    fn pbkdf2_and_chacha_variants_decrypt() {
        // Build the other two variants by hand with the same framing.
        for id in [ARGON2ID_CHACHA20, PBKDF2_AES_GCM] {
            let salt = [3u8; SALT];
            let base = [9u8; NONCE];
            let (key, alg) = derive(id, "pw", &salt).unwrap();
            let s = Stream::new(alg, &key[..], &base);
            let mut c = salt.to_vec();
            c.push(id);
            c.extend_from_slice(&base);
            let mut body = b"{\"policies\":[\"readonly\"]}".to_vec();
            let tag = s
                .key
                .seal_in_place_separate_tag(nonce(&base, 1), Aad::from(s.ad(true)), &mut body)
                .unwrap();
            c.extend_from_slice(&body);
            c.extend_from_slice(tag.as_ref());
            assert_eq!(
                &decrypt("pw", &c).unwrap()[..],
                b"{\"policies\":[\"readonly\"]}"
            );
        }
    }
}
