//! The rustls ends of [`Watched`] files: a server certificate resolver, a client certificate
//! resolver, a client-certificate verifier (the client CA) and a server-certificate verifier
//! (the CA a client trusts), each answering every handshake with the files' current version.

use super::{LoadError, Watched, read, read_file_or_dir};
use crate::client::tls::{TrustedCertVerifier, certs_from_pem, key_from_pem, provider};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loads a certificate chain and its private key, and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, LoadError> {
    let chain = certs_from_pem(&read(cert)?).map_err(|e| LoadError::new(cert, e.to_string()))?;
    // The key's parse error says nothing of its bytes.
    let der = key_from_pem(&read(key)?).map_err(|e| LoadError::new(key, e.to_string()))?;
    let mismatch = || LoadError {
        file: format!("{} and {}", cert.display(), key.display()),
        reason: "the certificate does not match the private key".into(),
    };
    let certified = CertifiedKey::from_der(chain, der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => mismatch(),
        other => LoadError::new(key, format!("unusable private key: {other}")),
    })?;
    Ok(certified)
}

/// A certificate and key pair from two files.
fn watched_pair(
    what: &'static str,
    cert: PathBuf,
    key: PathBuf,
) -> Result<Watched<CertifiedKey>, LoadError> {
    Watched::new(what, vec![cert, key], |p| load_certified_key(&p[0], &p[1]))
}

/// A server's certificate and key files, read again when they change.
#[derive(Debug)]
pub struct ServerCertFiles(Watched<CertifiedKey>);

impl ServerCertFiles {
    /// Loads `cert` and `key` (PEM); fails if they do not load or do not match.
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Self, LoadError> {
        Ok(ServerCertFiles(watched_pair(
            "server certificate",
            cert,
            key,
        )?))
    }
}

impl ResolvesServerCert for ServerCertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// A client's certificate and key files (its mTLS identity), read again when they change.
#[derive(Debug)]
pub struct ClientCertFiles(Watched<CertifiedKey>);

impl ClientCertFiles {
    /// Loads `cert` and `key` (PEM); fails if they do not load or do not match.
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Self, LoadError> {
        Ok(ClientCertFiles(watched_pair(
            "client certificate",
            cert,
            key,
        )?))
    }
}

impl ResolvesClientCert for ClientCertFiles {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Every certificate of the PEM files and directories `paths`.
fn certs_of(paths: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let mut certs = Vec::new();
    for path in paths {
        for pem in read_file_or_dir(path)? {
            certs.extend(certs_from_pem(&pem).map_err(|e| LoadError::new(path, e.to_string()))?);
        }
    }
    Ok(certs)
}

/// The CA files a server verifies client certificates with, read again when they change.
///
/// It sends no CA names in its certificate request: names taken from one version of the files
/// could not outlive it (rustls lends them from the verifier), and clients with one identity
/// send it anyway (rustls always; Go's crypto/tls when the list is empty).
#[derive(Debug)]
pub struct ClientCaFiles(Watched<Arc<dyn ClientCertVerifier>>);

impl ClientCaFiles {
    /// Loads the CA certificates of `paths` (files or directories of PEM files).
    pub fn new(paths: Vec<PathBuf>) -> Result<Self, LoadError> {
        Ok(ClientCaFiles(Watched::new("client CA", paths, |paths| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs_of(paths)? {
                roots.add(cert).map_err(|e| {
                    LoadError::new(&paths[0], format!("invalid CA certificate: {e}"))
                })?;
            }
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| LoadError::new(&paths[0], format!("client CA: {e}")))
        })?))
    }
}

impl ClientCertVerifier for ClientCaFiles {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// The CA files a client verifies its server with ([`TrustedCertVerifier`]'s rules), read
/// again when they change, plus CA certificates given as PEM that never change.
#[derive(Debug)]
pub struct ServerCaFiles(Watched<TrustedCertVerifier>);

impl ServerCaFiles {
    /// Trusts the CA certificates of `paths` (files or directories of PEM files) and of
    /// `fixed_pems`.
    pub fn new(paths: Vec<PathBuf>, fixed_pems: Vec<Vec<u8>>) -> Result<Self, LoadError> {
        Ok(ServerCaFiles(Watched::new("CA", paths, move |paths| {
            let mut trusted = certs_of(paths)?;
            for pem in &fixed_pems {
                trusted.extend(
                    certs_from_pem(pem)
                        .map_err(|e| LoadError::new(Path::new("(CA PEM)"), e.to_string()))?,
                );
            }
            TrustedCertVerifier::new(trusted).map_err(|e| LoadError::new(&paths[0], e.to_string()))
        })?))
    }
}

impl ServerCertVerifier for ServerCaFiles {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.current().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_mismatched_pair_is_refused_naming_both_files_and_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, key_a) = pair(dir.path(), "a");
        let (_, key_b) = pair(dir.path(), "b");
        assert!(load_certified_key(&cert_a, &key_a).is_ok());
        let err = load_certified_key(&cert_a, &key_b).unwrap_err();
        assert!(err.reason.contains("does not match"), "{err}");
        assert!(
            err.file.contains("a.crt") && err.file.contains("b.key"),
            "{err}"
        );
        let key_pem = std::fs::read_to_string(&key_b).unwrap();
        let body = key_pem.lines().nth(1).unwrap();
        assert!(!err.to_string().contains(body), "key material in {err}");
    }

    #[test]
    fn a_half_written_key_is_refused_naming_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let pem = std::fs::read_to_string(&key).unwrap();
        std::fs::write(&key, &pem[..pem.len() / 2]).unwrap();
        let err = load_certified_key(&cert, &key).unwrap_err();
        assert_eq!(err.file, key.display().to_string());
        assert!(
            !err.to_string().contains(&pem[40..80]),
            "key material in {err}"
        );
    }
}
