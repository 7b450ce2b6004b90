//! Leaf certificates: what to ask the CA for ([`LeafRequest`]), what a stored one says
//! ([`CertInfo`]), and when it must be renewed ([`renewal_reason`], at 2/3 of its lifetime).

use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::PkiError;

/// What a leaf certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (S3 endpoint, KES sidecar).
    Server,
    /// A TLS client (the object-server's KES identity).
    Client,
}

/// A certificate to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRequest {
    /// The subject common name.
    pub common_name: String,
    /// DNS names and IP addresses (IPs are recognised and encoded as IP SANs).
    pub sans: Vec<String>,
    /// Server or client.
    pub usage: Usage,
    /// How long the certificate is valid.
    pub lifetime: Duration,
}

/// The facts about a stored certificate that renewal depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// DNS and IP SANs, as strings, sorted.
    pub sans: Vec<String>,
    /// The raw DER of the issuer name.
    pub issuer: Vec<u8>,
    /// The raw DER of the subject name.
    pub subject: Vec<u8>,
}

impl CertInfo {
    /// Reads the first certificate of a PEM string.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let der = first_der(pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| PkiError::Parse(e.to_string()))?;
        let mut sans = Vec::new();
        for ext in cert.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => sans.push(d.to_string()),
                        GeneralName::IPAddress(ip) => sans.push(ip_to_string(ip)),
                        _ => {}
                    }
                }
            }
        }
        sans.sort();
        let ts = |t: x509_parser::time::ASN1Time| t.to_datetime();
        Ok(Self {
            not_before: ts(cert.validity().not_before),
            not_after: ts(cert.validity().not_after),
            sans,
            issuer: cert.tbs_certificate.issuer.as_raw().to_vec(),
            subject: cert.tbs_certificate.subject.as_raw().to_vec(),
        })
    }

    /// The moment this certificate should be replaced: 2/3 of the way through its lifetime.
    pub fn renew_at(&self) -> OffsetDateTime {
        renew_at(self.not_before, self.not_after)
    }
}

/// 2/3 of the way from `not_before` to `not_after`.
pub fn renew_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    not_before + (not_after - not_before) * 2 / 3
}

/// Why a stored leaf must be re-issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewalReason {
    /// 2/3 of the lifetime has passed (or it has expired).
    Due,
    /// The names it carries differ from the ones wanted (e.g. the namespace changed).
    NamesChanged,
    /// It was not issued by the current CA (e.g. after a CA rotation).
    OtherIssuer,
    /// Its lifetime differs from the one the Tenant asks for.
    LifetimeChanged,
}

impl std::fmt::Display for RenewalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RenewalReason::Due => "2/3 of its lifetime has passed",
            RenewalReason::NamesChanged => "its names changed",
            RenewalReason::OtherIssuer => "it was issued by another CA",
            RenewalReason::LifetimeChanged => "the requested lifetime changed",
        })
    }
}

/// Whether a stored leaf still serves `req` at `now` when the current CA's subject is
/// `ca_subject`; `None` means keep it.
pub fn renewal_reason(
    info: &CertInfo,
    req: &LeafRequest,
    ca_subject: &[u8],
    now: OffsetDateTime,
) -> Option<RenewalReason> {
    if info.issuer != ca_subject {
        return Some(RenewalReason::OtherIssuer);
    }
    let mut want = req.sans.clone();
    want.sort();
    if info.sans != want {
        return Some(RenewalReason::NamesChanged);
    }
    let have = (info.not_after - info.not_before).whole_seconds();
    let lifetime = i64::try_from(req.lifetime.as_secs()).unwrap_or(i64::MAX);
    if (have - lifetime).abs() > 1 {
        return Some(RenewalReason::LifetimeChanged);
    }
    if now >= info.renew_at() {
        return Some(RenewalReason::Due);
    }
    None
}

fn ip_to_string(ip: &[u8]) -> String {
    match ip.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(ip).expect("len 4")).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(ip).expect("len 16")).to_string(),
        _ => hex::encode(ip),
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM string.
pub(crate) fn first_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    Ok(p.contents)
}
