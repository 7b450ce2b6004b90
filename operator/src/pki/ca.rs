//! The Tenant's own certificate authority.
//!
//! # Rotating the CA without downtime
//!
//! The CA is valid for [`CA_LIFETIME`] and is rotated at 2/3 of it, in three steps spread over
//! reconciles, so that every pod trusts every certificate it may be shown at each moment:
//!
//! 1. **Add**: a new CA is minted; Secret `<t>-ca` keeps the old certificate as
//!    `previous.crt`, and every trust bundle (`ca.crt` in the TLS Secrets) becomes
//!    new + old ([`Ca::trust_bundle`]). Pods roll (the certificate hash changes) and now trust both.
//! 2. **Re-issue**: every leaf whose issuer is not the current CA is re-issued
//!    ([`super::leaf::RenewalReason::OtherIssuer`]); pods roll again, presenting new leaves that
//!    both old and new pods trust.
//! 3. **Drop**: once every leaf comes from the new CA and the old CA has expired,
//!    `previous.crt` is removed ([`Ca::drop_previous_if_expired`]).
//!
//! [`crate::reconcile::tenant`] drives these steps; the functions here are pure.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::leaf::{CertInfo, LeafRequest, Usage};
use super::{Pem, PkiError};

/// How long a Tenant's CA is valid (10 years); it is rotated at 2/3 of that.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Certificates start up to a minute before they are issued, to tolerate clock skew; short
/// lifetimes are backdated by a sixth of their lifetime at most, so that the renewal moment
/// (2/3 of the lifetime) always lies in the future.
pub fn backdate(lifetime: Duration) -> time::Duration {
    time::Duration::try_from(lifetime / 6)
        .unwrap_or(time::Duration::MAX)
        .min(time::Duration::minutes(1))
}

/// A CA certificate with its key, and the previous CA while a rotation is under way.
#[derive(Clone, Debug)]
pub struct Ca {
    /// The current CA (signs every new leaf).
    pub current: Pem,
    /// The previous CA's certificate, still trusted until it expires.
    pub previous: Option<String>,
    info: CertInfo,
}

impl Ca {
    /// Mints a new self-signed CA named after the Tenant. The common name carries the issue
    /// time so that a rotated CA has a different subject than the one it replaces.
    pub fn generate(
        common_name: &str,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("{common_name} {}", now.unix_timestamp()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "coffer");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - backdate(lifetime);
        params.not_after = now + lifetime;
        let cert = params.self_signed(&key)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem(), None)
    }

    /// Loads a CA from its stored PEM.
    pub fn from_pem(cert: &str, key: &str, previous: Option<String>) -> Result<Self, PkiError> {
        KeyPair::from_pem(key).map_err(|_| PkiError::Key)?;
        let info = CertInfo::from_pem(cert)?;
        Ok(Self {
            current: Pem {
                cert: cert.to_string(),
                key: key.to_string(),
            },
            previous,
            info,
        })
    }

    /// The raw DER subject name of the current CA (what issued leaves carry as issuer).
    pub fn subject(&self) -> &[u8] {
        &self.info.subject
    }

    /// Validity of the current CA.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// Every CA certificate a peer should trust now: the current one, then the previous one.
    pub fn trust_bundle(&self) -> String {
        let mut out = self.current.cert.clone();
        if let Some(prev) = &self.previous {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(prev);
        }
        out
    }

    /// Step 1 of a rotation when 2/3 of the CA's lifetime has passed: a new CA, the current
    /// one kept as `previous`. `None` when no rotation is due.
    pub fn rotate_if_due(
        &self,
        common_name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Self>, PkiError> {
        if now < self.info.renew_at() {
            return Ok(None);
        }
        let mut next = Self::generate(common_name, now, CA_LIFETIME)?;
        next.previous = Some(self.current.cert.clone());
        Ok(Some(next))
    }

    /// Step 3 of a rotation: forget the previous CA once it has expired.
    pub fn drop_previous_if_expired(&mut self, now: OffsetDateTime) -> bool {
        let expired = match &self.previous {
            Some(prev) => CertInfo::from_pem(prev)
                .map(|i| i.not_after <= now)
                .unwrap_or(true),
            None => false,
        };
        if expired {
            self.previous = None;
        }
        expired
    }

    /// Issues a leaf certificate with a fresh key.
    pub fn issue(&self, req: &LeafRequest, now: OffsetDateTime) -> Result<Pem, PkiError> {
        self.issue_for(req, now, KeyPair::generate()?)
    }

    /// Renews a leaf certificate keeping its private key `key_pem` (a fresh one if that does
    /// not parse). For the KES client certificate: its identity is the hash of its public key
    /// and is written in the KES policy, so keeping the key keeps the identity and a renewal
    /// changes neither the KES config nor the pods.
    pub fn renew(
        &self,
        req: &LeafRequest,
        now: OffsetDateTime,
        key_pem: &str,
    ) -> Result<Pem, PkiError> {
        let key = match KeyPair::from_pem(key_pem) {
            Ok(key) => key,
            Err(_) => KeyPair::generate()?,
        };
        self.issue_for(req, now, key)
    }

    fn issue_for(
        &self,
        req: &LeafRequest,
        now: OffsetDateTime,
        key: KeyPair,
    ) -> Result<Pem, PkiError> {
        let ca_key = KeyPair::from_pem(&self.current.key).map_err(|_| PkiError::Key)?;
        let issuer = Issuer::from_ca_cert_pem(&self.current.cert, ca_key)?;
        let mut params = CertificateParams::new(req.sans.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, req.common_name.clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, "coffer");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match req.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - backdate(req.lifetime);
        params.not_after = params.not_before + req.lifetime;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::leaf::{RenewalReason, renewal_reason};
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn server_req() -> LeafRequest {
        LeafRequest {
            common_name: "t.ns.svc".into(),
            sans: vec!["t.ns.svc".into(), "localhost".into(), "127.0.0.1".into()],
            usage: Usage::Server,
            lifetime: Duration::from_secs(3 * 3600),
        }
    }

    #[test]
    fn a_renewal_keeps_the_key_and_so_the_identity() {
        let ca = Ca::generate("coffer ns/t", now(), CA_LIFETIME).unwrap();
        let first = ca.issue(&server_req(), now()).unwrap();
        let later = now() + time::Duration::hours(2);
        let renewed = ca.renew(&server_req(), later, &first.key).unwrap();
        assert_eq!(renewed.key, first.key);
        assert_ne!(renewed.cert, first.cert);
        assert_eq!(
            crate::pki::identity_of_pem(&renewed.cert).unwrap(),
            crate::pki::identity_of_pem(&first.cert).unwrap()
        );
        let fresh = ca.renew(&server_req(), later, "not a key").unwrap();
        assert_ne!(fresh.key, first.key, "an unreadable key is replaced");
    }

    #[test]
    fn issued_leaf_carries_names_issuer_and_lifetime() {
        let ca = Ca::generate("coffer ns/t", now(), CA_LIFETIME).unwrap();
        let leaf = ca.issue(&server_req(), now()).unwrap();
        let info = CertInfo::from_pem(&leaf.cert).unwrap();
        assert_eq!(info.sans, vec!["127.0.0.1", "localhost", "t.ns.svc"]);
        assert_eq!(info.issuer, ca.subject());
        assert_eq!(info.not_after - info.not_before, time::Duration::hours(3));
        assert!(leaf.key.contains("PRIVATE KEY"));
        assert!(
            !format!("{leaf:?}").contains("PRIVATE KEY"),
            "Debug must hide the key"
        );
        // The leaf verifies against the CA with a real TLS stack's verifier.
        verify_chain(&ca, &leaf.cert, "t.ns.svc");
    }

    fn verify_chain(ca: &Ca, leaf_pem: &str, name: &str) {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(
                super::super::leaf::first_der(&ca.current.cert).unwrap(),
            ))
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
            .build()
            .unwrap();
        let leaf = CertificateDer::from(super::super::leaf::first_der(leaf_pem).unwrap());
        let at =
            UnixTime::since_unix_epoch(Duration::from_secs(now().unix_timestamp() as u64 + 60));
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                at,
            )
            .expect("leaf chains to the CA");
    }

    #[test]
    fn renewal_at_two_thirds() {
        let ca = Ca::generate("coffer ns/t", now(), CA_LIFETIME).unwrap();
        let req = server_req();
        let leaf = ca.issue(&req, now()).unwrap();
        let info = CertInfo::from_pem(&leaf.cert).unwrap();
        // Lifetime 3h, backdated 1 min: renew at nb + 2h.
        assert_eq!(
            info.renew_at(),
            now() - time::Duration::minutes(1) + time::Duration::hours(2)
        );
        assert_eq!(renewal_reason(&info, &req, ca.subject(), now()), None);
        let later = info.renew_at();
        assert_eq!(
            renewal_reason(&info, &req, ca.subject(), later),
            Some(RenewalReason::Due)
        );
        let mut renamed = req.clone();
        renamed.sans.push("t-hl.ns.svc".into());
        assert_eq!(
            renewal_reason(&info, &renamed, ca.subject(), now()),
            Some(RenewalReason::NamesChanged)
        );
        let mut longer = req.clone();
        longer.lifetime = Duration::from_secs(24 * 3600);
        assert_eq!(
            renewal_reason(&info, &longer, ca.subject(), now()),
            Some(RenewalReason::LifetimeChanged)
        );
    }

    #[test]
    fn short_lifetimes_are_renewed_in_the_future() {
        let ca = Ca::generate("coffer ns/t", now(), CA_LIFETIME).unwrap();
        let mut req = server_req();
        req.lifetime = Duration::from_secs(30);
        let info = CertInfo::from_pem(&ca.issue(&req, now()).unwrap().cert).unwrap();
        assert_eq!(
            info.not_after - info.not_before,
            time::Duration::seconds(30)
        );
        assert_eq!(info.renew_at(), now() + time::Duration::seconds(15));
        assert_eq!(renewal_reason(&info, &req, ca.subject(), now()), None);
    }

    #[test]
    fn rotation_keeps_old_ca_trusted_and_reissues_leaves() {
        let ca = Ca::generate("coffer ns/t", now(), CA_LIFETIME).unwrap();
        let req = server_req();
        let leaf = ca.issue(&req, now()).unwrap();
        assert!(ca.rotate_if_due("coffer ns/t", now()).unwrap().is_none());
        let due = ca.info().renew_at() + time::Duration::seconds(1);
        let mut next = ca
            .rotate_if_due("coffer ns/t", due)
            .unwrap()
            .expect("rotation due");
        assert_ne!(next.subject(), ca.subject());
        let bundle = next.trust_bundle();
        assert!(bundle.contains(&ca.current.cert) && bundle.contains(&next.current.cert));
        let info = CertInfo::from_pem(&leaf.cert).unwrap();
        assert_eq!(
            renewal_reason(&info, &req, next.subject(), now()),
            Some(RenewalReason::OtherIssuer)
        );
        assert!(!next.drop_previous_if_expired(due));
        assert!(next.drop_previous_if_expired(ca.info().not_after));
        assert_eq!(next.trust_bundle(), next.current.cert);
    }

    #[test]
    fn reload_from_pem() {
        let ca = Ca::generate("coffer ns/t", now(), CA_LIFETIME).unwrap();
        let again = Ca::from_pem(&ca.current.cert, &ca.current.key, None).unwrap();
        assert_eq!(again.subject(), ca.subject());
        assert!(Ca::from_pem(&ca.current.cert, "garbage", None).is_err());
    }
}
