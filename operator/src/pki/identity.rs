//! KES identities: the lowercase hex SHA-256 of the DER SubjectPublicKeyInfo of a certificate,
//! computed by the same code `kes` uses to recognise its clients (`sidecar_kes::auth`), so the
//! identity the operator writes into a KES policy is the one KES will see.

use sidecar_kes::auth::identity::Identity;

use super::PkiError;

/// The KES identity of a DER certificate.
pub fn identity_of_der(der: &[u8]) -> Result<String, PkiError> {
    Identity::from_cert_der(der)
        .map(|id| id.as_str().to_string())
        .map_err(|e| PkiError::Parse(e.to_string()))
}

/// The KES identity of the first certificate in a PEM string.
pub fn identity_of_pem(pem: &str) -> Result<String, PkiError> {
    identity_of_der(&super::leaf::first_der(pem)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn identity_is_hash_of_spki() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let want = hex::encode(Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&key),
        ));
        assert_eq!(identity_of_pem(&cert.pem()).unwrap(), want);
        assert_eq!(want.len(), 64);
        assert!(
            want.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(identity_of_pem("not a cert").is_err());
    }
}
