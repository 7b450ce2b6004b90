//! A throwaway certificate authority for tests: server and client certificates as PEM files.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// A certificate and its private key, written as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA whose certificate is `dir/ca.crt`.
pub struct TestCa {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// Path of the CA certificate (PEM).
    pub cert: PathBuf,
    /// The CA certificate (PEM).
    pub cert_pem: String,
}

impl TestCa {
    /// Creates a CA named `name` and writes its certificate into `dir`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).expect("create CA dir");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        let cert_pem = cert.pem();
        let path = dir.join("ca.crt");
        std::fs::write(&path, &cert_pem).expect("write CA cert");
        TestCa {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
            cert: path,
            cert_pem,
        }
    }

    /// Issues a server certificate for `localhost`, `127.0.0.1` and `extra_names`, as `dir/<file>.crt|.key`.
    pub fn server(&self, file: &str, extra_names: &[&str]) -> CertFiles {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(extra_names.iter().map(|n| n.to_string()));
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, file);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.clone().try_into().expect("dns name")),
            })
            .collect();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.issue(file, params)
    }

    /// Issues a client certificate with common name `cn` for the private key `key_pem` (a
    /// renewal that keeps the key, and so the KES identity), as `dir/<file>.crt|.key`.
    pub fn client_for_key(&self, file: &str, cn: &str, key_pem: &str) -> CertFiles {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue_for(file, params, KeyPair::from_pem(key_pem).expect("a key PEM"))
    }

    /// Issues a client certificate with common name `cn` and organizations `orgs`.
    pub fn client(&self, file: &str, cn: &str, orgs: &[&str]) -> CertFiles {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        for org in orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(file, params)
    }

    fn issue(&self, file: &str, params: CertificateParams) -> CertFiles {
        self.issue_for(file, params, KeyPair::generate().expect("leaf key"))
    }

    fn issue_for(&self, file: &str, params: CertificateParams, key: KeyPair) -> CertFiles {
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let files = CertFiles {
            cert: self.dir.join(format!("{file}.crt")),
            key: self.dir.join(format!("{file}.key")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&files.cert, &files.cert_pem).expect("write cert");
        std::fs::write(&files.key, &files.key_pem).expect("write key");
        files
    }
}
