//! Secret keys (AES256, ChaCha20) and HMAC keys, with KES's AEAD construction.
//!
//! Ciphertext = AEAD(plaintext, aad = context) ‖ iv[16] ‖ nonce[12]. The AEAD key is a
//! per-message subkey: HMAC-SHA256(key, iv) for AES-256-GCM, HChaCha20(key, iv) for
//! ChaCha20-Poly1305.

use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use zeroize::{Zeroize, Zeroizing};

/// Size of every secret key in bytes.
pub const KEY_SIZE: usize = 32;
const IV_SIZE: usize = 16;
const NONCE_SIZE: usize = 12;
const RAND_SIZE: usize = IV_SIZE + NONCE_SIZE;
const TAG_SIZE: usize = 16;

/// The AEAD a secret key is used with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-GCM with an HMAC-SHA256-derived subkey.
    Aes256,
    /// ChaCha20-Poly1305 with an HChaCha20-derived subkey.
    ChaCha20,
}

impl Cipher {
    /// KES's name: `AES256` or `ChaCha20`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cipher::Aes256 => "AES256",
            Cipher::ChaCha20 => "ChaCha20",
        }
    }

    /// Parses a KES algorithm name, including the legacy ones.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AES256" | "AES256-GCM_SHA256" => Some(Cipher::Aes256),
            "ChaCha20" | "XCHACHA20-POLY1305" => Some(Cipher::ChaCha20),
            _ => None,
        }
    }

    /// The protobuf type number KES uses (AES256 = 1, ChaCha20 = 2).
    pub fn pb_type(self) -> u32 {
        match self {
            Cipher::Aes256 => 1,
            Cipher::ChaCha20 => 2,
        }
    }

    /// Inverse of [`Self::pb_type`].
    pub fn from_pb_type(t: u32) -> Option<Self> {
        match t {
            1 => Some(Cipher::Aes256),
            2 => Some(Cipher::ChaCha20),
            _ => None,
        }
    }
}

/// Crypto failures. `NotAuthentic` is what a client sees as `decryption failed`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Wrong key, wrong context, or a tampered/truncated ciphertext.
    #[error("decryption failed: ciphertext is not authentic")]
    NotAuthentic,
    /// A key of the wrong size.
    #[error("invalid key length '{0}'")]
    KeyLength(usize),
    /// The crypto library failed.
    #[error("crypto failure")]
    Internal,
}

/// A 256-bit master key. Zeroized on drop; `Debug` never prints it.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Cipher,
    key: Zeroizing<[u8; KEY_SIZE]>,
    /// For AES256: the HMAC-SHA256 state keyed with `key` (its inner and outer pads already
    /// hashed), so that deriving a message's subkey costs two SHA-256 blocks instead of four.
    /// aws-lc wipes it on drop (`HMAC_CTX_cleanup`).
    subkey_mac: Option<hmac::Key>,
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.cipher == other.cipher && self.key == other.key
    }
}

impl Eq for SecretKey {}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A key from 32 bytes.
    pub fn new(cipher: Cipher, bytes: &[u8]) -> Result<Self, CryptoError> {
        let key: [u8; KEY_SIZE] = bytes
            .try_into()
            .map_err(|_| CryptoError::KeyLength(bytes.len()))?;
        Ok(Self::from_array(cipher, Zeroizing::new(key)))
    }

    /// A fresh random key.
    pub fn generate(cipher: Cipher) -> Self {
        Self::from_array(cipher, Zeroizing::new(super::rand::array()))
    }

    fn from_array(cipher: Cipher, key: Zeroizing<[u8; KEY_SIZE]>) -> Self {
        let subkey_mac =
            (cipher == Cipher::Aes256).then(|| hmac::Key::new(hmac::HMAC_SHA256, &key[..]));
        SecretKey {
            cipher,
            key,
            subkey_mac,
        }
    }

    /// The key's AEAD.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The raw key bytes (a secret).
    pub fn bytes(&self) -> &[u8; KEY_SIZE] {
        &self.key
    }

    fn aead(&self, iv: &[u8]) -> Result<LessSafeKey, CryptoError> {
        let mut sub = Zeroizing::new([0u8; KEY_SIZE]);
        let alg = match (self.cipher, &self.subkey_mac) {
            (Cipher::Aes256, Some(mac)) => {
                hmac::sign_to_buffer(mac, iv, &mut sub[..]).map_err(|_| CryptoError::Internal)?;
                &AES_256_GCM
            }
            (Cipher::Aes256, None) => return Err(CryptoError::Internal),
            (Cipher::ChaCha20, _) => {
                let key = chacha20::Key::from_slice(&self.key[..]);
                let mut out = chacha20::hchacha::<chacha20::cipher::consts::U10>(key, iv.into());
                sub.copy_from_slice(&out);
                out.zeroize();
                &CHACHA20_POLY1305
            }
        };
        let unbound = UnboundKey::new(alg, &sub[..]).map_err(|_| CryptoError::Internal)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Encrypts `plaintext` bound to `context` (the associated data).
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rand: [u8; RAND_SIZE] = super::rand::array();
        let (iv, nonce) = rand.split_at(IV_SIZE);
        let aead = self.aead(iv)?;
        let mut out = Vec::with_capacity(plaintext.len() + TAG_SIZE + RAND_SIZE);
        out.extend_from_slice(plaintext);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Internal)?;
        aead.seal_in_place_append_tag(nonce, Aad::from(context), &mut out)
            .map_err(|_| CryptoError::Internal)?;
        out.extend_from_slice(&rand);
        Ok(out)
    }

    /// Decrypts a ciphertext of [`Self::encrypt`], or of KES's older JSON / msgpack formats.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let raw = super::ciphertext::normalize(ciphertext);
        if raw.len() < RAND_SIZE + TAG_SIZE {
            return Err(CryptoError::NotAuthentic);
        }
        let (sealed, rand) = raw.split_at(raw.len() - RAND_SIZE);
        let (iv, nonce) = rand.split_at(IV_SIZE);
        let aead = self.aead(iv)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Internal)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let n = aead
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| CryptoError::NotAuthentic)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

/// A 256-bit HMAC-SHA256 key.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacKey(Zeroizing<[u8; KEY_SIZE]>);

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl HmacKey {
    /// An HMAC key from 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key: [u8; KEY_SIZE] = bytes
            .try_into()
            .map_err(|_| CryptoError::KeyLength(bytes.len()))?;
        Ok(HmacKey(Zeroizing::new(key)))
    }

    /// A fresh random HMAC key.
    pub fn generate() -> Self {
        HmacKey(Zeroizing::new(super::rand::array()))
    }

    /// The raw key bytes (a secret).
    pub fn bytes(&self) -> &[u8; KEY_SIZE] {
        &self.0
    }

    /// HMAC-SHA256 of `msg`.
    pub fn sum(&self, msg: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]), msg)
            .as_ref()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_ciphers() {
        for c in [Cipher::Aes256, Cipher::ChaCha20] {
            let k = SecretKey::generate(c);
            let ct = k.encrypt(b"hello", b"ctx").unwrap();
            assert_eq!(ct.len(), 5 + 16 + 28);
            assert_eq!(&k.decrypt(&ct, b"ctx").unwrap()[..], b"hello");
            assert_eq!(k.decrypt(&ct, b"other"), Err(CryptoError::NotAuthentic));
            let mut bad = ct.clone();
            bad[0] ^= 1;
            assert_eq!(k.decrypt(&bad, b"ctx"), Err(CryptoError::NotAuthentic));
            let mut bad = ct.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert_eq!(k.decrypt(&bad, b"ctx"), Err(CryptoError::NotAuthentic));
            assert_eq!(k.decrypt(&ct[..20], b"ctx"), Err(CryptoError::NotAuthentic));
            assert_eq!(
                SecretKey::generate(c).decrypt(&ct, b"ctx"),
                Err(CryptoError::NotAuthentic)
            );
        }
    }

    #[test]
    fn aes_construction_matches_manual_computation() {
        // Re-derive the AES-256-GCM subkey by hand and open the ciphertext with it.
        let k = SecretKey::new(Cipher::Aes256, &[7u8; 32]).unwrap();
        let ct = k.encrypt(b"data", b"").unwrap();
        let (sealed, rand) = ct.split_at(ct.len() - 28);
        let sub = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &rand[..16]);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, sub.as_ref()).unwrap());
        let mut buf = sealed.to_vec();
        let pt = key
            .open_in_place(
                Nonce::try_assume_unique_for_key(&rand[16..]).unwrap(),
                Aad::empty(),
                &mut buf,
            )
            .unwrap();
        assert_eq!(pt, b"data");
    }

    #[test]
    fn hchacha20_test_vector() {
        // draft-irtf-cfrg-xchacha-03, section 2.2.1.
        let key = hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .unwrap();
        let input = hex::decode("000000090000004a0000000031415927").unwrap();
        let out = chacha20::hchacha::<chacha20::cipher::consts::U10>(
            chacha20::Key::from_slice(&key),
            input.as_slice().into(),
        );
        assert_eq!(
            hex::encode(out),
            "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
        );
    }

    #[test]
    fn names_and_lengths() {
        assert_eq!(Cipher::parse("AES256-GCM_SHA256"), Some(Cipher::Aes256));
        assert_eq!(Cipher::parse("XCHACHA20-POLY1305"), Some(Cipher::ChaCha20));
        assert_eq!(Cipher::parse("DES"), None);
        assert_eq!(
            SecretKey::new(Cipher::Aes256, &[0; 16]),
            Err(CryptoError::KeyLength(16))
        );
        assert!(
            !format!("{:?}", SecretKey::new(Cipher::Aes256, &[0xab; 32]).unwrap()).contains("171")
        );
    }

    #[test]
    fn hmac_known_answer() {
        // Python: hmac.new(bytes([1]*32), b"m", sha256).hexdigest()
        let k = HmacKey::new(&[1u8; 32]).unwrap();
        assert_eq!(
            hex::encode(k.sum(b"m")),
            "57396a59edb35cb7926e4528a0fe73f1d3764c0d636c0ebb45c58fbf21ee06d9"
        );
    }
}
