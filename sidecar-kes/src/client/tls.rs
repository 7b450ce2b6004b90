//! The rustls client configuration of the KES client: trust roots, the client
//! certificate (PEM or derived from an API key), and the optional no-verify mode.

use super::{ClientConfig, ClientError, ClientIdentity};
use crate::auth::ApiKey;
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

/// The client certificate chain and key of an identity.
pub fn client_auth(
    identity: &ClientIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientError> {
    match identity {
        ClientIdentity::Certificate { cert_pem, key_pem } => {
            Ok((certs_from_pem(cert_pem)?, key_from_pem(key_pem)?))
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

/// Builds the rustls client config of a [`ClientConfig`] (TLS 1.2 and 1.3, HTTP/1.1).
pub fn rustls_config(cfg: &ClientConfig) -> Result<rustls::ClientConfig, ClientError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let builder = if cfg.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if cfg.ca_pems.is_empty() {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        } else {
            for pem in &cfg.ca_pems {
                for cert in certs_from_pem(pem)? {
                    roots
                        .add(cert)
                        .map_err(|e| ClientError::Config(format!("invalid CA certificate: {e}")))?;
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let (chain, key) = client_auth(&cfg.identity)?;
    let mut config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| ClientError::Config(format!("client certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
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
