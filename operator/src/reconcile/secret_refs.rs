//! Which Tenants and KMSes a Secret concerns, so that a change or deletion of a Secret they
//! name is reconciled at once rather than at the next resync. Both controllers watch Secrets
//! and map every event through here (see [`super::run_controllers`]); the Secret's data only
//! passes through, nothing is cached.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::crd::{KMS, Tenant};

/// The KMSes among `kmses` that refer to `secret`: its AppRole credentials, Vault CA or client
/// certificate (same namespace).
pub fn kmses_using<'a>(
    secret: &Secret,
    kmses: impl IntoIterator<Item = &'a KMS>,
) -> Vec<ObjectRef<KMS>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    kmses
        .into_iter()
        .filter(|k| k.namespace() == ns && k.spec.secret_names().any(|s| s == name))
        .map(ObjectRef::from_obj)
        .collect()
}

/// The Tenants among `tenants` that `secret` concerns: those that list it in `spec.users`, use
/// it as their root credentials (a user may not take the root user's access key) or as their
/// S3 certificate (`tls.externalSecretName`, cert-manager's: its absence is reported) or for
/// their backend (`storage.s3`'s credentials and CA: the same), whose
/// CA it is (`<t>-ca` has no owner reference, so the owner watch does not see it), and
/// those whose KMS (among `kmses`) refers to it (their pods read it, and its resource version
/// rolls them).
pub fn tenants_using<'a>(
    secret: &Secret,
    tenants: impl IntoIterator<Item = &'a Tenant>,
    kmses: &[Arc<KMS>],
) -> Vec<ObjectRef<Tenant>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    let kms_names: Vec<String> = kmses_using(secret, kmses.iter().map(Arc::as_ref))
        .into_iter()
        .map(|k| k.name)
        .collect();
    tenants
        .into_iter()
        .filter(|t| t.namespace() == ns)
        .filter(|t| {
            t.spec.users.iter().any(|u| u.name == name)
                || t.root_secret_name() == name
                // Not owned (it outlives the Tenant), so not mapped by the owner reference.
                || crate::build::Names::of(t).ca() == name
                || t.spec.tls.external_secret_name.as_deref() == Some(name.as_str())
                || t.spec.storage.s3.as_ref().is_some_and(|s3| s3.secret_names().any(|s| s == name))
                || kms_names.contains(&t.spec.kms.name)
        })
        .map(ObjectRef::from_obj)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::fixtures;
    use crate::crd::tenant::UserRef;

    fn secret(name: &str) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_secret_concerns_the_tenants_that_use_it() {
        let (mut photos, kms) = fixtures();
        photos.spec.users = vec![UserRef {
            name: "app1".into(),
        }];
        let mut other_ns = photos.clone();
        other_ns.metadata.namespace = Some("elsewhere".into());
        let (plain, _) = fixtures();
        let mut plain = plain;
        plain.metadata.name = Some("plain".into());
        plain.spec.kms.name = "other-kms".into();
        let all = [photos.clone(), other_ns, plain.clone()];
        let kmses = [Arc::new(kms.clone())];
        let names = |s: &Secret| -> Vec<String> {
            tenants_using(s, &all, &kmses)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(names(&secret("app1")), ["photos"]);
        assert_eq!(names(&secret("plain-root")), ["plain"]);
        // The CA Secret outlives the Tenant (no owner reference): mapped by its name.
        assert_eq!(names(&secret("plain-ca")), ["plain"]);
        let mut external = plain.clone();
        external.metadata.name = Some("external".into());
        external.spec.tls.external_secret_name = Some("external-tls".into());
        assert_eq!(
            tenants_using(&secret("external-tls"), [&external], &kmses)
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>(),
            ["external"],
            "a cert-manager Secret is watched like the others"
        );
        assert!(names(&secret("unrelated")).is_empty());
        // Through its KMS: only the Tenant that names that KMS, in its namespace.
        let approle = kms.spec.credentials_secret().expect("fixture uses AppRole");
        assert_eq!(names(&secret(approle)), ["photos"]);
        assert!(
            tenants_using(&secret(approle), &all, &[])
                .into_iter()
                .all(|r| r.name != "plain"),
            "no KMS known: no Tenant through it"
        );
    }

    #[test]
    fn a_secret_concerns_the_kmses_that_name_it() {
        let (_, mut kms) = fixtures();
        kms.spec.vault.tls = Some(crate::crd::kms::VaultTls {
            ca_secret_name: Some("vault-ca".into()),
            client_secret_name: Some("vault-client".into()),
        });
        let approle = kms.spec.credentials_secret().unwrap().to_string();
        let mut other_ns = kms.clone();
        other_ns.metadata.namespace = Some("elsewhere".into());
        let all = [kms, other_ns];
        let names = |s: &Secret| -> Vec<String> {
            kmses_using(s, &all)
                .into_iter()
                .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
                .collect()
        };
        for name in [approle.as_str(), "vault-ca", "vault-client"] {
            assert_eq!(names(&secret(name)), ["shop/vault"], "{name}");
        }
        assert!(names(&secret("unrelated")).is_empty());
    }
}
