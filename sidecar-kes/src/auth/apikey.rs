//! KES API keys (`kes:v1:` + base64(0x00 ‖ Ed25519 seed)) and the self-signed
//! client certificate KES derives from them.

use super::Identity;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::{Engine, engine::general_purpose::STANDARD};
use zeroize::Zeroizing;

const HEADER: &str = "kes:v1:";
const ED25519_TYPE: u8 = 0;
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why an API key was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiKeyError {
    /// Not base64 after the `kes:v1:` header.
    #[error("invalid API key: not base64")]
    Encoding,
    /// Wrong number of bytes.
    #[error("invalid API key: invalid length")]
    Length,
    /// Unknown key type byte.
    #[error("invalid API key: unsupported type")]
    Type,
    /// The crypto library refused the key or the certificate.
    #[error("invalid API key: {0}")]
    Crypto(String),
}

/// An Ed25519 API key. The seed is zeroized on drop and never printed.
pub struct ApiKey {
    seed: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("identity", &self.identity())
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// A fresh random API key.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::Rng::fill(&mut rand::rng(), &mut seed[..]);
        Self::from_seed(seed).expect("32-byte seed is always a valid Ed25519 key")
    }

    /// Parses `kes:v1:<base64>` (the header is optional, as in KES).
    pub fn parse(s: &str) -> Result<Self, ApiKeyError> {
        let b64 = s.trim();
        let b64 = b64.strip_prefix(HEADER).unwrap_or(b64);
        let raw = Zeroizing::new(STANDARD.decode(b64).map_err(|_| ApiKeyError::Encoding)?);
        if raw.len() != 33 {
            return Err(ApiKeyError::Length);
        }
        if raw[0] != ED25519_TYPE {
            return Err(ApiKeyError::Type);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&raw[1..]);
        Self::from_seed(seed)
    }

    fn from_seed(seed: Zeroizing<[u8; 32]>) -> Result<Self, ApiKeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed[..])
            .map_err(|e| ApiKeyError::Crypto(e.to_string()))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(ApiKey { seed, public })
    }

    /// The textual form `kes:v1:...` (a secret).
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(33));
        raw.push(ED25519_TYPE);
        raw.extend_from_slice(&self.seed[..]);
        Zeroizing::new(format!("{HEADER}{}", STANDARD.encode(&raw[..])))
    }

    /// DER SubjectPublicKeyInfo of the public key.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut v = ED25519_SPKI_PREFIX.to_vec();
        v.extend_from_slice(&self.public);
        v
    }

    /// The identity of this key.
    pub fn identity(&self) -> Identity {
        Identity::from_spki_der(&self.spki_der())
    }

    /// PKCS#8 DER of the private key (a secret).
    pub fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, ApiKeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&self.seed[..])
            .map_err(|e| ApiKeyError::Crypto(e.to_string()))?;
        let doc = pair
            .to_pkcs8()
            .map_err(|e| ApiKeyError::Crypto(e.to_string()))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// A self-signed client certificate for this key, as KES makes it: subject CN =
    /// identity, valid 90 days, digital signature, client auth. Returns (cert DER, key PKCS#8 DER).
    pub fn certificate(&self) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), ApiKeyError> {
        let pkcs8 = self.pkcs8_der()?;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.to_vec());
        let kp = rcgen::KeyPair::try_from(&der).map_err(|e| ApiKeyError::Crypto(e.to_string()))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.identity().to_string());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::days(90);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        let cert = params
            .self_signed(&kp)
            .map_err(|e| ApiKeyError::Crypto(e.to_string()))?;
        Ok((cert.der().to_vec(), pkcs8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_identity_matches_certificate() {
        let key = ApiKey::generate();
        let s = key.to_secret_string();
        assert!(s.starts_with("kes:v1:"));
        let parsed = ApiKey::parse(&s).unwrap();
        assert_eq!(parsed.identity(), key.identity());
        let (cert, _) = parsed.certificate().unwrap();
        assert_eq!(Identity::from_cert_der(&cert).unwrap(), key.identity());
    }

    #[test]
    fn known_vector_from_rfc8032() {
        // RFC 8032 test 1: seed 9d61b1..., public key d75a98...
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let mut raw = vec![0u8];
        raw.extend_from_slice(&seed);
        let key = ApiKey::parse(&format!("kes:v1:{}", STANDARD.encode(&raw))).unwrap();
        assert_eq!(
            hex::encode(&key.spki_der()[12..]),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(
            ApiKey::parse("kes:v1:!!").unwrap_err(),
            ApiKeyError::Encoding
        );
        assert_eq!(
            ApiKey::parse("kes:v1:AAAA").unwrap_err(),
            ApiKeyError::Length
        );
        let mut raw = vec![1u8];
        raw.extend_from_slice(&[0; 32]);
        assert_eq!(
            ApiKey::parse(&format!("kes:v1:{}", STANDARD.encode(&raw))).unwrap_err(),
            ApiKeyError::Type
        );
    }

    #[test]
    fn debug_does_not_leak_the_seed() {
        let key = ApiKey::generate();
        let dbg = format!("{key:?}");
        assert!(!dbg.contains(&key.to_secret_string()[7..]));
    }
}
