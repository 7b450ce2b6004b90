//! A KMS with one static 256-bit master key (`MINIO_KMS_SECRET_KEY`, legacy
//! `MINIO_KMS_MASTER_KEY`, or the key the server generates in its data directory for trying out).
//!
//! Data-key ciphertexts use the KES layout: `AES-256-GCM(subkey, plaintext, aad = context) ‖ iv[16]
//! ‖ nonce[12]` with `subkey = HMAC-SHA256(master, iv)`.
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::{DataKey, Kms, KmsError};

/// Why a static key could not be parsed. Never echoes the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StaticKeyError {
    /// Not `name:value`.
    #[error("a static KMS key must be NAME:KEY")]
    Format,
    /// The value does not decode to 32 bytes.
    #[error("the static KMS key must be 32 bytes ({0})")]
    Length(&'static str),
}

/// One named 256-bit master key.
pub struct StaticKms {
    name: String,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for StaticKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKms")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn to_key(raw: Vec<u8>, what: &'static str) -> Result<Zeroizing<[u8; 32]>, StaticKeyError> {
    let raw = Zeroizing::new(raw);
    if raw.len() != 32 {
        return Err(StaticKeyError::Length(what));
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&raw);
    Ok(k)
}

impl StaticKms {
    /// Parses `MINIO_KMS_SECRET_KEY`: `name:base64`.
    pub fn from_secret_key(s: &str) -> Result<Self, StaticKeyError> {
        let (name, v) = s.trim().split_once(':').ok_or(StaticKeyError::Format)?;
        if name.is_empty() {
            return Err(StaticKeyError::Format);
        }
        let raw = B64
            .decode(v)
            .map_err(|_| StaticKeyError::Length("base64"))?;
        Ok(Self {
            name: name.to_owned(),
            key: to_key(raw, "base64")?,
        })
    }

    /// Parses legacy `MINIO_KMS_MASTER_KEY`: `name:hex`.
    pub fn from_master_key(s: &str) -> Result<Self, StaticKeyError> {
        let (name, v) = s.trim().split_once(':').ok_or(StaticKeyError::Format)?;
        if name.is_empty() {
            return Err(StaticKeyError::Format);
        }
        let raw = hex::decode(v).map_err(|_| StaticKeyError::Length("hex"))?;
        Ok(Self {
            name: name.to_owned(),
            key: to_key(raw, "hex")?,
        })
    }

    /// A fresh random key named `name`, and its `name:base64` form.
    pub fn generate(name: &str) -> (Self, Zeroizing<String>) {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::fill(&mut k[..]);
        let text = Zeroizing::new(format!("{name}:{}", B64.encode(&k[..])));
        (
            Self {
                name: name.to_owned(),
                key: k,
            },
            text,
        )
    }

    fn check_name(&self, name: &str) -> Result<(), KmsError> {
        if name == self.name {
            Ok(())
        } else {
            Err(KmsError::KeyNotFound)
        }
    }

    fn subkey(&self, iv: &[u8]) -> LessSafeKey {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.key[..]);
        let tag = hmac::sign(&k, iv);
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, tag.as_ref()).expect("32-byte key"))
    }

    /// Encrypts `plaintext` bound to `context`.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; 16];
        let mut nonce = [0u8; 12];
        rand::fill(&mut iv);
        rand::fill(&mut nonce);
        let mut buf = plaintext.to_vec();
        self.subkey(&iv)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .expect("AES-GCM seal");
        buf.extend_from_slice(&iv);
        buf.extend_from_slice(&nonce);
        buf
    }

    /// Decrypts what [`StaticKms::encrypt`] produced with the same context.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if ciphertext.len() < 16 + 16 + 12 {
            return Err(KmsError::DecryptionFailed);
        }
        let (rest, nonce) = ciphertext.split_at(ciphertext.len() - 12);
        let (sealed, iv) = rest.split_at(rest.len() - 16);
        let mut n = [0u8; 12];
        n.copy_from_slice(nonce);
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self
            .subkey(iv)
            .open_in_place(
                Nonce::assume_unique_for_key(n),
                Aad::from(context),
                &mut buf[..],
            )
            .map_err(|_| KmsError::DecryptionFailed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[async_trait::async_trait]
impl Kms for StaticKms {
    fn default_key(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("static key '{}'", self.name)
    }

    async fn create_key(&self, name: &str) -> Result<(), KmsError> {
        self.check_name(name)?;
        Err(KmsError::KeyExists)
    }

    async fn generate_key(&self, name: &str, context: &[u8]) -> Result<DataKey, KmsError> {
        self.check_name(name)?;
        let mut pt = Zeroizing::new(vec![0u8; 32]);
        rand::fill(&mut pt[..]);
        let ciphertext = self.encrypt(&pt, context);
        Ok(DataKey {
            plaintext: pt,
            ciphertext,
        })
    }

    async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.check_name(name)?;
        self.decrypt(ciphertext, context)
    }

    async fn encrypt_key(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.check_name(name)?;
        Ok(self.encrypt(plaintext, context))
    }

    async fn ready(&self) -> Result<(), KmsError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let b64 = B64.encode([3u8; 32]);
        let k = StaticKms::from_secret_key(&format!("my-key:{b64}")).unwrap();
        assert_eq!(k.default_key(), "my-key");
        let h = hex::encode([3u8; 32]);
        let legacy = StaticKms::from_master_key(&format!("old:{h}")).unwrap();
        assert_eq!(legacy.default_key(), "old");
        assert_eq!(
            StaticKms::from_secret_key("nokey").unwrap_err(),
            StaticKeyError::Format
        );
        assert_eq!(
            StaticKms::from_secret_key("k:AAAA").unwrap_err(),
            StaticKeyError::Length("base64")
        );
        let err = StaticKms::from_master_key("k:zz").unwrap_err().to_string();
        assert!(!err.contains("zz"));
    }

    #[tokio::test]
    async fn generate_and_decrypt_with_context() {
        let (k, text) = StaticKms::generate("dflt");
        assert!(text.starts_with("dflt:"));
        let dk = k.generate_key("dflt", b"ctx").await.unwrap();
        assert_eq!(dk.plaintext.len(), 32);
        assert_eq!(
            k.decrypt_key("dflt", &dk.ciphertext, b"ctx").await.unwrap(),
            dk.plaintext
        );
        assert!(matches!(
            k.decrypt_key("dflt", &dk.ciphertext, b"other").await,
            Err(KmsError::DecryptionFailed)
        ));
        assert!(matches!(
            k.generate_key("nope", b"").await,
            Err(KmsError::KeyNotFound)
        ));
        let reparsed = StaticKms::from_secret_key(&text).unwrap();
        assert_eq!(
            reparsed
                .decrypt_key("dflt", &dk.ciphertext, b"ctx")
                .await
                .unwrap(),
            dk.plaintext
        );
    }
}

/// Name of the key generated for trying the server out.
pub const EMBEDDED_KEY_NAME: &str = "coffer-default-key";

/// Loads the key kept in `dir/master.key`, generating it on first use (mode 0600). Safe when
/// several processes start at once: the file appears atomically (hard link of a complete temp
/// file) and everyone reads the one that won.
pub fn load_or_create_embedded(dir: &std::path::Path) -> std::io::Result<StaticKms> {
    let path = dir.join("master.key");
    if !path.exists() {
        let (_, text) = StaticKms::generate(EMBEDDED_KEY_NAME);
        crate::storage::create_once::create_file_once(&path, text.as_bytes())?;
    }
    let text = Zeroizing::new(std::fs::read_to_string(&path)?);
    StaticKms::from_secret_key(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod embedded_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create_embedded(d.path()).unwrap();
        let b = load_or_create_embedded(d.path()).unwrap();
        assert_eq!(a.key[..], b.key[..]);
        let mode = std::fs::metadata(d.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
