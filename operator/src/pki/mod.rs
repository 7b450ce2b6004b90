//! The Tenant's own PKI: a CA per Tenant ([`ca`]), leaf certificates issued from it and the
//! rule for renewing them ([`leaf`]), and KES identities ([`identity`]).
//!
//! Keys are ECDSA P-256, written as PKCS#8 PEM. Private keys live only in the Tenant's Secrets:
//! no function here logs or formats them, and [`Pem`]'s `Debug` hides the key.

pub mod ca;
pub mod identity;
pub mod leaf;

pub use ca::Ca;
pub use identity::identity_of_pem;
pub use leaf::{CertInfo, LeafRequest, Usage};

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate (PEM `CERTIFICATE`).
    pub cert: String,
    /// The private key (PEM `PRIVATE KEY`, PKCS#8). Never logged.
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What can go wrong minting or reading certificates. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to generate a key or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate is not valid PEM/DER X.509.
    #[error("stored certificate cannot be parsed: {0}")]
    Parse(String),
    /// A stored private key cannot be parsed.
    #[error("stored private key cannot be parsed")]
    Key,
}
