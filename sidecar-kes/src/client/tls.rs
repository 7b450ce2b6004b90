//! The rustls client configuration of the KES client: trust roots, the client
//! certificate (PEM or derived from an API key), and the optional no-verify mode.

use super::{ClientConfig, ClientError, ClientIdentity};
use crate::auth::ApiKey;
use crate::tls_files::rustls::{ClientCertFiles, ServerCaFiles};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The crypto provider used everywhere in this crate.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parses every certificate of a PEM buffer.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Config(format!("invalid certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ClientError::Config("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// Parses a private key PEM (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ClientError> {
    // Never include the key bytes in the error.
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| ClientError::Config("invalid private key PEM".into()))
}

/// The client certificate chain and key of an identity, as it is now.
pub fn client_auth(
    identity: &ClientIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientError> {
    match identity {
        ClientIdentity::Certificate { cert_pem, key_pem } => {
            Ok((certs_from_pem(cert_pem)?, key_from_pem(key_pem)?))
        }
        ClientIdentity::CertificateFiles { cert, key } => {
            let read = |p: &std::path::Path| {
                crate::tls_files::read(p).map_err(|e| ClientError::Config(e.to_string()))
            };
            Ok((certs_from_pem(&read(cert)?)?, key_from_pem(&read(key)?)?))
        }
        ClientIdentity::ApiKey(s) => {
            let key = ApiKey::parse(s).map_err(|e| ClientError::Config(e.to_string()))?;
            let (cert, pkcs8) = key
                .certificate()
                .map_err(|e| ClientError::Config(e.to_string()))?;
            let key = PrivateKeyDer::Pkcs8(pkcs8.to_vec().into());
            Ok((vec![CertificateDer::from(cert)], key))
        }
    }
}

/// Builds the rustls client config of a [`ClientConfig`] (TLS 1.2 and 1.3, HTTP/1.1). CA
/// files and an identity given as files are read again when they change, so a renewal is
/// used from the next connection on.
pub fn rustls_config(cfg: &ClientConfig) -> Result<rustls::ClientConfig, ClientError> {
    let config_error = |e: crate::tls_files::LoadError| ClientError::Config(e.to_string());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let builder = if cfg.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else if !cfg.ca_files.is_empty() {
        let verifier =
            ServerCaFiles::new(cfg.ca_files.clone(), cfg.ca_pems.clone()).map_err(config_error)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        let mut trusted = Vec::new();
        for pem in &cfg.ca_pems {
            trusted.extend(certs_from_pem(pem)?);
        }
        let verifier = TrustedCertVerifier::new(trusted)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let mut config = match &cfg.identity {
        ClientIdentity::CertificateFiles { cert, key } => {
            let files = ClientCertFiles::new(cert.clone(), key.clone()).map_err(config_error)?;
            builder.with_client_cert_resolver(Arc::new(files))
        }
        identity => {
            let (chain, key) = client_auth(identity)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Config(format!("client certificate: {e}")))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A rustls client config without a client certificate that trusts the CA certificates of
/// `ca_pem` (the system roots when `None`) the way [`TrustedCertVerifier`] does: for the HTTP
/// clients of other services (an S3 backend, a MinIO to migrate from, Vault's health).
pub fn server_trust_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, ClientError> {
    let trusted = match ca_pem {
        // A CA file without a certificate is an error (certs_from_pem), never the system roots.
        Some(pem) => certs_from_pem(pem)?,
        None => Vec::new(),
    };
    let verifier = TrustedCertVerifier::new(trusted)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Verifies a server's certificate chain against the configured CA certificates (the system
/// roots when none are configured), and also accepts a server whose certificate *is* one of the
/// configured CA certificates, if its name and validity period match.
///
/// The second rule exists for self-signed certificates made with `openssl req -x509`, as the
/// MinIO KMS guide makes them for Vault and KES: openssl marks them `CA:TRUE`, which webpki
/// refuses as an end entity while Go's crypto/tls (MinIO, KES, Vault) accepts a trusted one.
#[derive(Debug)]
pub struct TrustedCertVerifier {
    chain: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl TrustedCertVerifier {
    /// A verifier for the CA certificates `trusted`, or the system roots when it is empty.
    pub fn new(trusted: Vec<CertificateDer<'static>>) -> Result<Self, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        if trusted.is_empty() {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        } else {
            for cert in &trusted {
                roots
                    .add(cert.clone())
                    .map_err(|e| ClientError::Config(format!("invalid CA certificate: {e}")))?;
            }
        }
        let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| ClientError::Config(format!("trust roots: {e}")))?;
        Ok(TrustedCertVerifier {
            chain,
            pinned: trusted,
            provider: provider(),
        })
    }

    /// The name and validity checks for a server certificate that is itself trusted.
    fn verify_pinned(
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            })?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let now = now.as_secs() as i64;
        let validity = parsed.validity();
        if now < validity.not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet,
            ));
        }
        if now > validity.not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for TrustedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                Self::verify_pinned(end_entity, server_name, now)
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any server certificate (`--insecure`), still checking handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate marked `CA:TRUE`, as `openssl req -x509` makes it.
    fn self_signed_ca(name: &str) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verify(v: &TrustedCertVerifier, cert: &CertificateDer<'_>, name: &str) -> bool {
        let name = ServerName::try_from(name.to_string()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_trusted_self_signed_ca_certificate_is_accepted_as_the_servers_own() {
        let cert = self_signed_ca("localhost");
        let verifier = TrustedCertVerifier::new(vec![cert.clone()]).unwrap();
        assert!(verify(&verifier, &cert, "localhost"));
        assert!(
            !verify(&verifier, &cert, "vault.example"),
            "the name still has to match"
        );
    }

    #[test]
    fn an_untrusted_self_signed_certificate_is_refused() {
        let trusted = self_signed_ca("localhost");
        let other = self_signed_ca("localhost");
        let verifier = TrustedCertVerifier::new(vec![trusted]).unwrap();
        assert!(!verify(&verifier, &other, "localhost"));
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let err = server_trust_config(Some(b"not a certificate\n")).unwrap_err();
        assert!(err.to_string().contains("no certificate in PEM"), "{err}");
        assert!(server_trust_config(None).is_ok());
    }
}
