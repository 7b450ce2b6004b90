//! Pure builders of every object the operator owns for a Tenant. Nothing here talks to a
//! server: the reconciler and `operator render` call the same functions.
//!
//! Owned objects of Tenant `t`: Secrets `t-tls` (unless an external one is used),
//! `t-kes-tls`, `t-users` (the S3 users of `spec.users`), ConfigMap `t-kes-config`,
//! StatefulSet `t`, Services `t` and `t-hl`, PodDisruptionBudget `t`, NetworkPolicy `t` (when
//! `spec.networkPolicy.enabled`) and, made by the StatefulSet controller, pods `t-<n>`. They
//! carry the Tenant's owner reference: deleting the Tenant deletes them.
//!
//! Made but not owned, so that deleting the Tenant keeps them (see
//! [`crate::crd::tenant::lifecycle`]): Secret `t-ca` (the CA: a Tenant recreated under the same
//! name is trusted by the same clients), the root credentials Secret `t-root` (generated once),
//! and the claims `data-t-<n>` (deleted by the operator only with `deletionPolicy: Delete`).
//!
//! ## No two Tenants of a namespace share an object name
//!
//! Every owned object is applied server-side with one field manager, so an object two Tenants
//! both generated would silently change hands on each reconcile (the second apply replaces the
//! first one's fields, owner reference included). Names of one kind must therefore be injective
//! across the Tenants of a namespace. DESIGN.md fixes the names (`t-ca`, Services `t` and
//! `t-hl`), so instead of renaming we refuse the Tenant names that could collide:
//!
//! Two Tenants `a` ≠ `b` collide on a kind when `a` + s₁ = `b` + s₂ for two suffixes of that
//! kind's names, s₁ ≠ s₂. Then the longer name is the shorter plus `-p` where `-p` + s₁ = s₂,
//! i.e. one suffix ends with another and `-p` is the difference. The suffix sets are: Secrets
//! {`-ca`, `-tls`, `-kes-tls`, `-root`, `-users`}, ConfigMaps {`-kes-config`}, Services {``,
//! `-hl`}, StatefulSets, PDBs and NetworkPolicies {``}. The only pairs where one ends with the other are
//! `-kes-tls`/`-tls` (difference `-kes`: Tenant `x-kes`'s S3 certificate `x-kes-tls` is Tenant
//! `x`'s KES certificate) and `-hl`/`` (difference `-hl`: Tenant `x-hl`'s Service is Tenant
//! `x`'s headless Service). Pods and claims end in `-<ordinal>`, which no other name of the
//! same kind does. So refusing names that end in [`RESERVED_NAME_SUFFIXES`] makes every
//! kind's names injective; the CRD refuses them (a CEL rule, so `kubectl apply` says why) and
//! the reconciler refuses Tenants stored before the rule existed (condition `NameCollides`).
//! `build::tests::owned_names_are_injective_across_accepted_tenants` checks the argument
//! against the names the builders really produce. A new suffix must keep it true (the test
//! fails otherwise). The root credentials Secret a Tenant names itself
//! (`spec.rootCredentials.secretName`) is never written over: it is created only when absent.

pub mod backend;
pub mod kes_config;
pub mod network_policy;
pub mod secrets;
pub mod service_monitor;
pub mod users;
pub mod workload;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};

use crate::crd::{KMS, Tenant};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "coffer-operator";
/// Label `app.kubernetes.io/managed-by` value.
pub const MANAGED_BY: &str = "coffer-operator";
/// Port of the S3 API.
pub const S3_PORT: i32 = 9000;
/// Port of the web console (MinIO's default `--console-address :9001`).
pub const CONSOLE_PORT: i32 = 9001;
/// Pod template annotation: hash of the credentials the pods read only when they start (see
/// [`Certs::restart_hash`]). Certificates, keys and CAs are not in it: `object-server` and
/// `kes` read those files again when the kubelet renews them, so a renewal rolls no pod.
pub const CERTS_HASH_ANNOTATION: &str = "coffer.dev/certs-hash";
/// Pod template annotation: hash of the KES config.
pub const CONFIG_HASH_ANNOTATION: &str = "coffer.dev/config-hash";

/// Tenant names that would collide with another Tenant's owned objects (see the module doc):
/// Tenant `x-kes`'s Secret `x-kes-tls` is Tenant `x`'s, Tenant `x-hl`'s Service is `x`'s
/// headless Service.
pub const RESERVED_NAME_SUFFIXES: [&str; 2] = ["-kes", "-hl"];

/// Why the Tenant name `name` is refused, if it is: it ends in a reserved suffix.
pub fn name_collision(name: &str) -> Option<String> {
    let suffix = RESERVED_NAME_SUFFIXES.iter().find(|s| name.ends_with(*s))?;
    let other = &name[..name.len() - suffix.len()];
    Some(format!(
        "Tenant names must not end in {}: the objects of Tenant {name:?} would take names of \
         Tenant {other:?} ({}); choose another name",
        RESERVED_NAME_SUFFIXES.join(" or "),
        if *suffix == "-kes" {
            format!("its Secret \"{name}-tls\" is the KES certificate Secret of {other:?}")
        } else {
            format!("its Service {name:?} is the headless Service of {other:?}")
        }
    ))
}

/// The names of everything a Tenant owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The Tenant's name (also the StatefulSet, Service and PDB name).
    pub tenant: String,
    /// The namespace of all of it.
    pub namespace: String,
}

impl Names {
    /// Names for `tenant`.
    pub fn of(tenant: &Tenant) -> Self {
        Self {
            tenant: tenant.metadata.name.clone().unwrap_or_default(),
            namespace: tenant
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        }
    }
    /// Secret `<t>-ca`: the CA certificate and key.
    pub fn ca(&self) -> String {
        format!("{}-ca", self.tenant)
    }
    /// Secret `<t>-tls`: the S3 server certificate.
    pub fn tls(&self) -> String {
        format!("{}-tls", self.tenant)
    }
    /// Secret `<t>-kes-tls`: KES server certificate and the object-server's client certificate.
    pub fn kes_tls(&self) -> String {
        format!("{}-kes-tls", self.tenant)
    }
    /// Secret `<t>-users`: the users file the object-server reloads.
    pub fn users(&self) -> String {
        format!("{}-users", self.tenant)
    }
    /// ConfigMap `<t>-kes-config`.
    pub fn kes_config(&self) -> String {
        format!("{}-kes-config", self.tenant)
    }
    /// The headless Service `<t>-hl`.
    pub fn headless(&self) -> String {
        format!("{}-hl", self.tenant)
    }
    /// The S3 endpoint inside the cluster.
    pub fn endpoint(&self) -> String {
        format!("https://{}.{}.svc:{S3_PORT}", self.tenant, self.namespace)
    }
    /// DNS names of the S3 endpoint: the Service and every pod behind the headless Service.
    pub fn s3_dns_names(&self) -> Vec<String> {
        let (t, ns, hl) = (&self.tenant, &self.namespace, self.headless());
        vec![
            t.clone(),
            format!("{t}.{ns}"),
            format!("{t}.{ns}.svc"),
            format!("{t}.{ns}.svc.cluster.local"),
            format!("*.{hl}.{ns}.svc"),
            format!("*.{hl}.{ns}.svc.cluster.local"),
            "localhost".into(),
            "127.0.0.1".into(),
        ]
    }
}

/// Labels on every owned object, and the pod selector.
pub fn labels(names: &Names) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "coffer".into()),
        ("app.kubernetes.io/instance".into(), names.tenant.clone()),
        ("app.kubernetes.io/managed-by".into(), MANAGED_BY.into()),
    ])
}

/// The owner reference that makes the Tenant own (and garbage-collect) an object.
pub fn owner_ref(tenant: &Tenant) -> OwnerReference {
    tenant
        .controller_owner_ref(&())
        .expect("a stored Tenant has a name and uid")
}

/// Metadata of an owned object called `name`.
pub fn meta(tenant: &Tenant, name: String) -> ObjectMeta {
    ObjectMeta {
        owner_references: Some(vec![owner_ref(tenant)]),
        ..kept_meta(tenant, name)
    }
}

/// Metadata of an object called `name` that outlives the Tenant: its labels, no owner
/// reference (the CA and root credentials Secrets).
pub fn kept_meta(tenant: &Tenant, name: String) -> ObjectMeta {
    let names = Names::of(tenant);
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(&names)),
        ..Default::default()
    }
}

/// Lowercase hex SHA-256 over `parts`, each length-prefixed so that boundaries count.
pub fn hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// The certificates a Tenant's pods mount, as PEM.
#[derive(Clone, Debug)]
pub struct Certs {
    /// Every CA certificate the pods trust (current, then previous during a rotation).
    pub ca_bundle: String,
    /// The S3 server certificate and key; `None` when an external Secret is used.
    pub s3: Option<crate::pki::Pem>,
    /// The KES sidecar's server certificate and key.
    pub kes_server: crate::pki::Pem,
    /// The object-server's KES client certificate and key.
    pub kes_client: crate::pki::Pem,
    /// `resourceVersion` of the KMS's credentials Secret (the AppRole ID and secret the KES
    /// sidecar takes from its environment, read only at start): a change rolls the pods.
    /// A version, never values or hashes of values. The Vault CA and client certificate
    /// Secrets are not in it: they are mounted files that KES reads again when they change.
    pub kms_secrets_version: Option<String>,
    /// `name=resourceVersion` of the `storage.s3` credentials Secret (the object-server takes
    /// the backend's keys from its environment, read only at start): a change rolls the pods.
    pub backend_secret_version: Option<String>,
}

impl Certs {
    /// Hash of what the pods read only at start, so that a change of it rolls them: the KMS
    /// credentials version, and the backend credentials' (absent without `storage.s3`, so the
    /// hash of a volume Tenant is what it always was). The certificates, keys and CA bundle are left out on purpose:
    /// both binaries reload them from their mounted Secrets (`sidecar_kes::tls_files`), and
    /// the KES client identity survives a renewal because its key is kept (`Ca::renew`).
    pub fn restart_hash(&self) -> String {
        hash(
            self.kms_secrets_version
                .iter()
                .chain(&self.backend_secret_version)
                .map(|v| v.as_bytes()),
        )
    }
}

/// Everything the operator applies for one Tenant (the root credentials Secret apart: it is
/// created only when absent and never overwritten).
#[derive(Clone, Debug)]
pub struct Owned {
    /// `<t>-tls`, `<t>-kes-tls` (the CA Secret is applied separately, first).
    pub secrets: Vec<k8s_openapi::api::core::v1::Secret>,
    /// `<t>-kes-config`.
    pub config_map: k8s_openapi::api::core::v1::ConfigMap,
    /// `<t>`.
    pub stateful_set: k8s_openapi::api::apps::v1::StatefulSet,
    /// `<t>` and `<t>-hl`.
    pub services: Vec<k8s_openapi::api::core::v1::Service>,
    /// `<t>`.
    pub pdb: k8s_openapi::api::policy::v1::PodDisruptionBudget,
    /// `<t>`, when `spec.networkPolicy.enabled`.
    pub network_policy: Option<k8s_openapi::api::networking::v1::NetworkPolicy>,
}

/// Builds every owned object from the Tenant, its KMS and its certificates; the pods run
/// `default_image` unless the Tenant names its own.
pub fn owned(
    tenant: &Tenant,
    kms: &KMS,
    certs: &Certs,
    default_image: &str,
) -> Result<Owned, crate::pki::PkiError> {
    let identity = crate::pki::identity_of_pem(&certs.kes_client.cert)?;
    let config = kes_config::to_yaml(&kes_config::build(tenant, kms, &identity));
    let config_hash = hash([config.as_bytes()]);
    let mut secrets = vec![secrets::kes_tls(tenant, certs)];
    if let Some(s3) = secrets::s3_tls(tenant, certs) {
        secrets.insert(0, s3);
    }
    Ok(Owned {
        secrets,
        config_map: secrets::kes_config_map(tenant, config),
        stateful_set: workload::stateful_set(
            tenant,
            kms,
            default_image,
            &certs.restart_hash(),
            &config_hash,
        ),
        services: vec![
            workload::service(tenant),
            workload::headless_service(tenant),
        ],
        pdb: workload::pdb(tenant),
        network_policy: network_policy::network_policy(tenant),
    })
}

#[cfg(test)]
pub(crate) mod tests;
