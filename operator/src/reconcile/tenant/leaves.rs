//! Step 4: the leaf certificates. Each [`Leaf`] lives under fixed keys of a fixed Secret; one
//! is re-issued when it is missing, unreadable, past 2/3 of its lifetime, or no longer matches
//! its request (names, usage, lifetime, issuing CA). With `spec.tls.externalSecretName` the S3
//! certificate is the user's and only its presence is checked here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::EventType;
use time::OffsetDateTime;

use super::conditions::{Blocker, reason};
use super::kms::kms_secrets_version;
use super::{Error, RESYNC, Run, Stop, WAIT, text};
use crate::build::{Certs, Names};
use crate::crd::{KMS, Tenant};
use crate::pki::leaf::{CertInfo, RenewalReason, renewal_reason};
use crate::pki::{Ca, LeafRequest, Pem, Usage, ca::CA_LIFETIME};

/// A leaf certificate the operator issues for a Tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leaf {
    /// The S3 endpoint's server certificate (Secret `<t>-tls`), unless an external one is used.
    S3,
    /// The KES sidecar's server certificate (Secret `<t>-kes-tls`).
    KesServer,
    /// The object-server's KES client certificate, its identity (Secret `<t>-kes-tls`).
    KesClient,
}

impl Leaf {
    /// The Secret the leaf lives in.
    pub fn secret_name(self, names: &Names) -> String {
        match self {
            Leaf::S3 => names.tls(),
            Leaf::KesServer | Leaf::KesClient => names.kes_tls(),
        }
    }

    /// The keys of the certificate and of the private key in that Secret.
    pub fn keys(self) -> (&'static str, &'static str) {
        match self {
            Leaf::S3 => ("tls.crt", "tls.key"),
            Leaf::KesServer => ("server.crt", "server.key"),
            Leaf::KesClient => ("client.crt", "client.key"),
        }
    }
}

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Leaf::S3 => "s3",
            Leaf::KesServer => "kes-server",
            Leaf::KesClient => "kes-client",
        })
    }
}

/// The leaf certificates a Tenant needs, each with what it must certify.
pub fn leaf_requests(tenant: &Tenant, lifetime: Duration) -> Vec<(Leaf, LeafRequest)> {
    let names = Names::of(tenant);
    let mut out = vec![];
    if tenant.spec.tls.external_secret_name.is_none() {
        out.push((
            Leaf::S3,
            LeafRequest {
                common_name: format!("{}.{}.svc", names.tenant, names.namespace),
                sans: names.s3_dns_names(),
                usage: Usage::Server,
                lifetime,
            },
        ));
    }
    out.push((
        Leaf::KesServer,
        LeafRequest {
            common_name: "kes".into(),
            sans: vec!["localhost".into(), "127.0.0.1".into()],
            usage: Usage::Server,
            lifetime,
        },
    ));
    out.push((
        Leaf::KesClient,
        LeafRequest {
            common_name: format!("object-server {}/{}", names.namespace, names.tenant),
            sans: vec![],
            usage: Usage::Client,
            lifetime,
        },
    ));
    out
}

/// The leaves in effect after step 4.
pub(super) struct Leaves {
    pub issued: BTreeMap<Leaf, Pem>,
    /// When the first leaf (or the CA) is due for renewal: the next reconcile.
    pub next_renewal: OffsetDateTime,
    /// When the first leaf expires (for the status).
    pub first_expiry: Option<OffsetDateTime>,
}

fn stored_pem(secret: Option<&Secret>, leaf: Leaf) -> Option<Pem> {
    let (cert_key, key_key) = leaf.keys();
    let s = secret?;
    Some(Pem {
        cert: text(s, cert_key)?,
        key: text(s, key_key)?,
    })
}

impl Run<'_> {
    /// Every leaf of [`leaf_requests`], current.
    pub(super) async fn leaves(&self, ca: &Ca) -> Result<Leaves, Stop> {
        let lifetime =
            crate::duration::parse(&self.tenant.spec.tls.certificate_lifetime).map_err(|e| {
                Blocker::new(
                    reason::INVALID_SPEC,
                    format!("spec.tls.certificateLifetime: {e}"),
                    RESYNC,
                )
            })?;
        let mut stored: BTreeMap<String, Option<Secret>> = BTreeMap::new();
        let mut out = Leaves {
            issued: BTreeMap::new(),
            next_renewal: (self.now + CA_LIFETIME).min(ca.info().renew_at()),
            first_expiry: None,
        };
        for (leaf, req) in leaf_requests(self.tenant, lifetime) {
            let secret_name = leaf.secret_name(&self.names);
            if !stored.contains_key(&secret_name) {
                let s = self.secrets.get_opt(&secret_name).await?;
                stored.insert(secret_name.clone(), s);
            }
            let current = stored_pem(stored[&secret_name].as_ref(), leaf);
            let reason = match current.as_ref().map(|p| CertInfo::from_pem(&p.cert)) {
                Some(Ok(info)) => renewal_reason(&info, &req, ca.subject(), self.now),
                _ => Some(RenewalReason::Due),
            };
            let pem = match (current, reason) {
                (Some(p), None) => p,
                (old, reason) => {
                    let reason = reason.unwrap_or(RenewalReason::Due);
                    // The KES client keeps its key: its identity is in the KES config (Ca::renew).
                    let p = match (leaf, &old) {
                        (Leaf::KesClient, Some(old)) => ca.renew(&req, self.now, &old.key)?,
                        _ => ca.issue(&req, self.now)?,
                    };
                    if old.is_some() {
                        self.publish(
                            EventType::Normal,
                            reason::CERTIFICATE_RENEWED,
                            format!("re-issued the {leaf} certificate: {reason}"),
                        )
                        .await;
                    }
                    p
                }
            };
            let info = CertInfo::from_pem(&pem.cert)?;
            out.next_renewal = out.next_renewal.min(info.renew_at());
            out.first_expiry = Some(
                out.first_expiry
                    .map_or(info.not_after, |e| e.min(info.not_after)),
            );
            out.issued.insert(leaf, pem);
        }
        Ok(out)
    }

    /// Everything the pods mount, and what rolls them: the version of the KMS's credentials
    /// Secret (read once at start); certificates and CAs are files the binaries read again.
    pub(super) async fn certs(
        &self,
        ca: &Ca,
        kms: &KMS,
        mut leaves: Leaves,
    ) -> Result<(Certs, Leaves), Stop> {
        if let Some(name) = &self.tenant.spec.tls.external_secret_name {
            self.check_external_secret(name).await?;
        }
        let kms_secrets_version = kms_secrets_version(kms, &self.secrets).await?;
        let backend_secret_version = self.check_backend_secrets().await?;
        let missing = |leaf: Leaf| Error::Spec(format!("no {leaf} certificate"));
        let certs = Certs {
            ca_bundle: ca.trust_bundle(),
            s3: leaves.issued.remove(&Leaf::S3),
            kes_server: leaves
                .issued
                .remove(&Leaf::KesServer)
                .ok_or_else(|| missing(Leaf::KesServer))?,
            kes_client: leaves
                .issued
                .remove(&Leaf::KesClient)
                .ok_or_else(|| missing(Leaf::KesClient))?,
            kms_secrets_version,
            backend_secret_version,
        };
        Ok((certs, leaves))
    }

    /// An external S3 Secret (cert-manager's) must hold a pair; its renewal is read by the
    /// object-server from the mounted files and rolls no pod.
    async fn check_external_secret(&self, name: &str) -> Result<(), Stop> {
        match self.secrets.get_opt(name).await? {
            Some(s) if text(&s, "tls.crt").is_some() && text(&s, "tls.key").is_some() => Ok(()),
            _ => Err(Blocker::new(
                reason::TLS_SECRET_MISSING,
                format!("TLS Secret {name:?} is missing or has no tls.crt/tls.key"),
                WAIT,
            )
            .into()),
        }
    }
}
