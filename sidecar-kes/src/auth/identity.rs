//! KES identities: the lowercase hex SHA-256 of a certificate's DER SubjectPublicKeyInfo.

use sha2::{Digest, Sha256};
use std::fmt;

/// A KES identity: 64 lowercase hex characters, the SHA-256 of a public key's
/// DER-encoded SubjectPublicKeyInfo.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Identity(String);

/// Why an identity could not be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The certificate is not valid DER X.509.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// The PEM input holds no certificate.
    #[error("no certificate found in PEM input")]
    NoCertificate,
}

impl Identity {
    /// Identity of a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Self {
        Identity(hex::encode(Sha256::digest(spki)))
    }

    /// Identity of a DER X.509 certificate (hash of its SubjectPublicKeyInfo).
    pub fn from_cert_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::InvalidCertificate(e.to_string()))?;
        Ok(Self::from_spki_der(cert.public_key().raw))
    }

    /// Identity of the first certificate of a PEM file.
    pub fn from_cert_pem(pem: &[u8]) -> Result<Self, IdentityError> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or(IdentityError::NoCertificate)?
            .map_err(|e| IdentityError::InvalidCertificate(e.to_string()))?;
        Self::from_cert_der(&cert)
    }

    /// Wraps an identity string as given (e.g. from a config file), lowercased and trimmed.
    pub fn new(s: &str) -> Self {
        Identity(s.trim().to_ascii_lowercase())
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the empty identity (used to disable the admin).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty() || self.0 == "_"
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_of_generated_cert_hashes_its_spki() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let id = Identity::from_cert_der(cert.der()).unwrap();
        assert_eq!(
            id,
            Identity::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key))
        );
        assert_eq!(id.as_str().len(), 64);
        assert_eq!(Identity::from_cert_pem(cert.pem().as_bytes()).unwrap(), id);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Identity::from_cert_der(b"nope").is_err());
        assert_eq!(
            Identity::from_cert_pem(b"nope"),
            Err(IdentityError::NoCertificate)
        );
    }
}
