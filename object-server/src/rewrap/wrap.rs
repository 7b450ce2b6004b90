//! Re-wrapping one KMS ciphertext of a data key: decrypt it (old key, its version), encrypt the
//! same plaintext under the target key's newest version with the same context. The data key
//! does not change, so nothing sealed under it (an object key, a user's secret key, the digests
//! sealed under the metadata key) needs to be touched; the plaintext lives in memory for the two
//! calls only, wiped on drop. No key and nonce are chosen here: the KMS draws a fresh IV and
//! nonce for each encryption ([`sidecar_kes::crypto::ring`], Vault Transit).
//!
//! Which version is the newest is learnt by encrypting a random probe under the key and
//! reading the version its ciphertext names ([`crate::kms::ciphertext_version`]); that needs no
//! right beyond the encrypt the re-wrap needs anyway. It is asked again every [`NEWEST_TTL`]:
//! a rotation during a job may leave some ciphertexts one version behind until the next job.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::kms::{Kms, KmsError, ciphertext_version};

/// How long a key's newest version, once learnt, is trusted.
pub const NEWEST_TTL: Duration = Duration::from_secs(30);

/// The context of the probe encryptions (a context no stored ciphertext has).
const PROBE_CONTEXT: &[u8] = br#"{"coffer":"rewrap-probe"}"#;

/// Re-wraps ciphertexts through one KMS.
pub struct Wrapper<'a> {
    kms: &'a dyn Kms,
    newest: Mutex<HashMap<String, (u32, Instant)>>,
}

/// What a re-wrap of one ciphertext did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Already under the target key's newest version.
    Current,
    /// The new ciphertext (under `key`).
    Rewrapped { key: String, ciphertext: Vec<u8> },
}

impl<'a> Wrapper<'a> {
    /// Re-wraps through `kms`.
    pub fn new(kms: &'a dyn Kms) -> Self {
        Self {
            kms,
            newest: Mutex::new(HashMap::new()),
        }
    }

    /// The newest version of key `name`.
    pub async fn newest_version(&self, name: &str) -> Result<u32, KmsError> {
        if let Some((v, at)) = self.newest.lock().expect("not poisoned").get(name)
            && at.elapsed() < NEWEST_TTL
        {
            return Ok(*v);
        }
        let mut probe = Zeroizing::new([0u8; 32]);
        rand::fill(&mut probe[..]);
        let ct = self
            .kms
            .encrypt_key(name, &probe[..], PROBE_CONTEXT)
            .await?;
        let v = ciphertext_version(&ct);
        self.newest
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), (v, Instant::now()));
        Ok(v)
    }

    /// Moves `ciphertext` (of key `key`, bound to `context`) onto the newest version of
    /// `target` (or of `key` itself), unless it is there already and `force` is false.
    pub async fn rewrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &[u8],
        target: Option<&str>,
        force: bool,
    ) -> Result<Outcome, KmsError> {
        let target = target.unwrap_or(key);
        if !force
            && target == key
            && ciphertext_version(ciphertext) >= self.newest_version(key).await?
        {
            return Ok(Outcome::Current);
        }
        let plaintext = self.kms.decrypt_key(key, ciphertext, context).await?;
        let ciphertext = self.kms.encrypt_key(target, &plaintext, context).await?;
        Ok(Outcome::Rewrapped {
            key: target.to_owned(),
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::static_key::StaticKms;

    #[tokio::test]
    async fn the_data_key_stays_the_same() {
        let (kms, _) = StaticKms::generate("k");
        let w = Wrapper::new(&kms);
        let dk = kms.generate_key("k", b"ctx").await.unwrap();
        // A static key has one version: everything is current unless forced.
        assert_eq!(
            w.rewrap("k", &dk.ciphertext, b"ctx", None, false)
                .await
                .unwrap(),
            Outcome::Current
        );
        let Outcome::Rewrapped { key, ciphertext } = w
            .rewrap("k", &dk.ciphertext, b"ctx", Some("k"), true)
            .await
            .unwrap()
        else {
            panic!("forced")
        };
        assert_eq!(key, "k");
        assert_ne!(ciphertext, dk.ciphertext);
        assert_eq!(
            kms.decrypt_key("k", &ciphertext, b"ctx").await.unwrap(),
            dk.plaintext
        );
        // Another target key this KMS does not have: the KMS's error, nothing made.
        assert!(matches!(
            w.rewrap("k", &dk.ciphertext, b"ctx", Some("other"), false)
                .await,
            Err(KmsError::KeyNotFound)
        ));
        // A wrong context does not decrypt.
        assert!(matches!(
            w.rewrap("k", &dk.ciphertext, b"other", None, true).await,
            Err(KmsError::DecryptionFailed)
        ));
    }
}
