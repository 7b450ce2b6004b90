//! The KES server configuration generated for one Tenant, in the format `kes server --config`
//! reads (KES's current layout: `address`, `admin`, `tls`, `policy`, `cache`, `log`, `keystore`).
//!
//! The policy `object-server` admits only the Tenant's object-server identity, and only to the
//! routes the object-server calls, each limited to the Tenant's key prefix:
//! `/v1/key/{create,generate,decrypt,encrypt,describe}/<prefix>*` (`encrypt`: the re-wrap job
//! seals a data key it already holds under a key's newest version, `object-server/src/rewrap/`;
//! an identity that may decrypt every object gains nothing by it). `/v1/status` is allowed as well: it
//! reveals no key material, and MinIO's KMS status/health reporting calls it. `/v1/ready` is not
//! needed (the sidecar is probed with `kes status` inside its pod) and so not allowed. The admin identity is
//! `disabled`: nobody can manage keys or policies through a Tenant's sidecar, and nothing here
//! can delete a key, so deleting a Tenant never deletes its keys in Vault.
//!
//! Vault credentials never appear here: the AppRole ID and secret are `${VAULT_APPROLE_ID}` and
//! `${VAULT_APPROLE_SECRET}`, which KES expands from its environment, filled by `secretKeyRef`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crd::kms::{CacheSpec, Engine, KMS};
use crate::crd::tenant::Tenant;

/// Where the sidecar listens: loopback only. Its one client is the object-server in the same
/// pod; its probes run `kes status` inside the container ([`crate::build::workload`]), so
/// nothing outside the pod needs to reach it (and every connection still needs a client
/// certificate from the Tenant's CA).
pub const KES_ADDRESS: &str = "127.0.0.1:7373";
/// The port of [`KES_ADDRESS`].
pub const KES_PORT: i32 = 7373;
/// The name of the only policy.
pub const POLICY_NAME: &str = "object-server";
/// Environment variable holding the AppRole role ID in the sidecar.
pub const ENV_APPROLE_ID: &str = "VAULT_APPROLE_ID";
/// Environment variable holding the AppRole secret ID in the sidecar.
pub const ENV_APPROLE_SECRET: &str = "VAULT_APPROLE_SECRET";

/// Directory of the KES config file in the sidecar.
pub const CONFIG_DIR: &str = "/etc/kes/config";
/// The config file's key in the ConfigMap.
pub const CONFIG_FILE: &str = "config.yaml";
/// Directory of the sidecar's server certificate and the Tenant CA.
pub const TLS_DIR: &str = "/etc/kes/tls";
/// Directory of Vault's CA certificate (from the KMS's CA Secret).
pub const VAULT_CA_DIR: &str = "/etc/kes/vault-ca";
/// Directory of the client certificate KES presents to Vault (from the KMS's Secret).
pub const VAULT_CLIENT_DIR: &str = "/etc/kes/vault-client";
/// The projected service-account token for Kubernetes auth.
pub const SA_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The whole file.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct KesConfig {
    /// Listen address.
    pub address: String,
    /// Admin identity (`disabled`).
    pub admin: Admin,
    /// Server TLS and client verification.
    pub tls: Tls,
    /// Policies by name.
    pub policy: BTreeMap<String, Policy>,
    /// Key cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// Logging.
    pub log: Log,
    /// The key store.
    pub keystore: Keystore,
}

/// `admin:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Admin {
    /// An identity, or `disabled`.
    pub identity: String,
}

/// `tls:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Tls {
    /// Server private key file.
    pub key: String,
    /// Server certificate file.
    pub cert: String,
    /// CA file that client certificates must chain to.
    pub ca: String,
    /// `on`: verify client certificates against `ca`.
    pub auth: String,
}

/// `policy.<name>:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Policy {
    /// Allowed API path patterns.
    pub allow: Vec<String>,
    /// Denied API path patterns (deny wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Identities this policy applies to.
    pub identities: Vec<String>,
}

/// `cache:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Cache {
    /// `cache.expiry`.
    pub expiry: CacheExpiry,
}

/// `cache.expiry:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CacheExpiry {
    /// `any`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any: Option<String>,
    /// `unused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unused: Option<String>,
    /// `offline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
}

/// `log:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Log {
    /// Error log level.
    pub error: String,
    /// Audit log level (`off`).
    pub audit: String,
}

/// `keystore:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Keystore {
    /// `keystore.vault`.
    pub vault: Vault,
}

/// `keystore.vault:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Vault {
    /// Vault address.
    pub endpoint: String,
    /// K/V mount (absent with `transit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// `v1` or `v2` (absent with `transit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Vault namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Path prefix inside the K/V engine (absent with `transit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The Transit engine: the keys are Transit keys (sidecar-kes's `keystore.vault.transit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transit: Option<Transit>,
    /// AppRole login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approle: Option<AppRole>,
    /// Kubernetes login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Kubernetes>,
    /// TLS towards Vault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<VaultTls>,
}

/// `keystore.vault.transit:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Transit {
    /// Transit mount.
    pub engine: String,
}

/// `keystore.vault.approle:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AppRole {
    /// Auth mount.
    pub engine: String,
    /// Role ID (`${VAULT_APPROLE_ID}`).
    pub id: String,
    /// Secret ID (`${VAULT_APPROLE_SECRET}`).
    pub secret: String,
}

/// `keystore.vault.kubernetes:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Kubernetes {
    /// Auth mount.
    pub engine: String,
    /// Vault role.
    pub role: String,
    /// Path of the service-account token.
    pub jwt: String,
}

/// `keystore.vault.tls:`
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct VaultTls {
    /// CA file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Client key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Client certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
}

/// The API routes the object-server may call, each with the Tenant's key prefix.
pub fn allowed_routes(key_prefix: &str) -> Vec<String> {
    let mut routes: Vec<String> = ["create", "generate", "decrypt", "encrypt", "describe"]
        .iter()
        .map(|op| format!("/v1/key/{op}/{key_prefix}*"))
        .collect();
    routes.push("/v1/status".into());
    routes
}

/// The K/V path prefix of a Tenant: `<kms prefix>/<namespace>` (keys are named
/// `<tenant key prefix>…`, so Tenants never share a Vault path). Transit keys have no path
/// prefix: a Transit key is named as the KES key, so two namespaces whose Tenants have the
/// same key prefix must not share a Transit mount (see the operator README).
pub fn vault_prefix(kms: &KMS, namespace: &str) -> String {
    match kms.spec.vault.prefix.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/{namespace}"),
        None => namespace.to_string(),
    }
}

/// Builds the configuration for `tenant`, whose object-server presents the certificate with
/// KES identity `client_identity`.
pub fn build(tenant: &Tenant, kms: &KMS, client_identity: &str) -> KesConfig {
    let ns = tenant.metadata.namespace.as_deref().unwrap_or("default");
    let v = &kms.spec.vault;
    let kv = match v.engine() {
        Engine::Kv(_, version) => Some(version),
        Engine::Transit(_) => None,
    };
    let cache = merge_cache(kms.spec.cache.as_ref(), tenant.spec.kes.cache.as_ref());
    let tls = v.tls.as_ref().and_then(|t| {
        let out = VaultTls {
            ca: t
                .ca_secret_name
                .as_ref()
                .map(|_| format!("{VAULT_CA_DIR}/ca.crt")),
            key: t
                .client_secret_name
                .as_ref()
                .map(|_| format!("{VAULT_CLIENT_DIR}/tls.key")),
            cert: t
                .client_secret_name
                .as_ref()
                .map(|_| format!("{VAULT_CLIENT_DIR}/tls.crt")),
        };
        (out != VaultTls::default()).then_some(out)
    });
    KesConfig {
        address: KES_ADDRESS.into(),
        admin: Admin {
            identity: "disabled".into(),
        },
        tls: Tls {
            key: format!("{TLS_DIR}/server.key"),
            cert: format!("{TLS_DIR}/server.crt"),
            ca: format!("{TLS_DIR}/ca.crt"),
            auth: "on".into(),
        },
        policy: BTreeMap::from([(
            POLICY_NAME.to_string(),
            Policy {
                allow: allowed_routes(&tenant.key_prefix()),
                deny: vec![],
                identities: vec![client_identity.to_string()],
            },
        )]),
        cache: (cache != CacheExpiry::default()).then_some(Cache { expiry: cache }),
        log: Log {
            error: tenant
                .spec
                .kes
                .log_level
                .clone()
                .unwrap_or_else(|| "info".into()),
            audit: "off".into(),
        },
        keystore: Keystore {
            vault: Vault {
                endpoint: v.endpoint.clone(),
                engine: kv.map(|_| v.engine.clone()),
                version: kv.map(|version| version.as_str().into()),
                namespace: v.namespace.clone(),
                prefix: kv.map(|_| vault_prefix(kms, ns)),
                transit: match v.engine() {
                    Engine::Transit(mount) => Some(Transit {
                        engine: mount.into(),
                    }),
                    Engine::Kv(..) => None,
                },
                approle: v.auth.app_role.as_ref().map(|a| AppRole {
                    engine: a.engine.clone(),
                    id: format!("${{{ENV_APPROLE_ID}}}"),
                    secret: format!("${{{ENV_APPROLE_SECRET}}}"),
                }),
                kubernetes: v.auth.kubernetes.as_ref().map(|k| Kubernetes {
                    engine: k.engine.clone(),
                    role: k.role.clone(),
                    jwt: SA_TOKEN.into(),
                }),
                tls,
            },
        },
    }
}

/// How long cached keys keep serving while Vault is unreachable when neither the KMS nor the
/// Tenant says: KES's own default is zero, which would make every Vault outage an S3 outage.
pub const DEFAULT_OFFLINE_EXPIRY: &str = "1h";

fn merge_cache(kms: Option<&CacheSpec>, tenant: Option<&CacheSpec>) -> CacheExpiry {
    let pick = |f: fn(&CacheSpec) -> &Option<String>| {
        tenant
            .and_then(|t| f(t).clone())
            .or_else(|| kms.and_then(|k| f(k).clone()))
    };
    CacheExpiry {
        any: pick(|c| &c.any),
        unused: pick(|c| &c.unused),
        offline: pick(|c| &c.offline).or_else(|| Some(DEFAULT_OFFLINE_EXPIRY.into())),
    }
}

/// The configuration as the YAML file KES reads.
pub fn to_yaml(config: &KesConfig) -> String {
    format!(
        "# Generated by the Coffer operator for one Tenant; changes are overwritten.\n{}",
        serde_saphyr::to_string(config).expect("the KES config always serializes")
    )
}
