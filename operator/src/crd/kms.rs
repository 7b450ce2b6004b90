//! `KMS`: one shared Vault that Tenants keep their master keys in, in its K/V engine (the MinIO
//! KMS guide's, the default) or its Transit engine (`vault.transit`: the keys never leave
//! Vault). Every Tenant reaches it through its own KES sidecar; the Vault credentials stay in
//! the Secret named here and reach the sidecar by reference only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Where a Vault stores Coffer's master keys and how the KES sidecars log in to it.
// kube's printcolumn(...) repeats keys by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "coffer.dev",
    version = "v1alpha1",
    kind = "KMS",
    plural = "kms",
    singular = "kms",
    namespaced,
    status = "KmsStatus",
    doc = "A shared Vault that Tenants in the same namespace keep their master keys in (K/V engine), reached through each Tenant's KES sidecar.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether Vault answers its health endpoint"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.vault.endpoint",
        description = "The Vault endpoint"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since creation"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KmsSpec {
    /// The Vault server that stores the master keys.
    pub vault: VaultSpec,
    /// How long the KES sidecars keep keys in memory; a Tenant may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
}

/// A Vault server and the engine that keeps the keys: K/V (default) or Transit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.transit) || !has(self.prefix)").message("vault.prefix is a K/V path: with vault.transit the keys are Transit keys named by each Tenant's key prefix"))]
pub struct VaultSpec {
    /// The Vault address, e.g. `https://vault.vault.svc:8200`. Must be https.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://')").message("vault.endpoint must be an https:// URL"))]
    #[schemars(length(min = 9, max = 2048))]
    pub endpoint: String,
    /// Keep the keys in Vault's Transit engine instead of K/V: every key operation is a
    /// Transit call and no master key leaves Vault. `engine`, `version` and `prefix` (K/V
    /// settings) then do not apply. The Vault policy it needs is in the operator README and
    /// `manifests/vault/kes-transit-policy.hcl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit: Option<TransitSpec>,
    /// The mount path of the K/V secrets engine (default `kv`).
    #[serde(default = "default_engine")]
    #[schemars(length(min = 1, max = 256))]
    pub engine: String,
    /// The K/V engine version: `v1` or `v2` (default `v1`).
    #[serde(default)]
    pub version: KvVersion,
    /// The Vault Enterprise / OpenBao namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A path prefix inside the K/V engine; each Tenant's keys go under `<prefix>/<namespace>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("!self.startsWith('/') && !self.endsWith('/')").message("vault.prefix must not start or end with '/'"))]
    #[schemars(length(max = 256))]
    pub prefix: Option<String>,
    /// How KES logs in to Vault: exactly one of `appRole` or `kubernetes`.
    pub auth: VaultAuth,
    /// TLS towards Vault: the CA that signed its certificate, and an optional client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<VaultTls>,
}

fn default_engine() -> String {
    "kv".into()
}

/// Vault's Transit engine.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TransitSpec {
    /// The mount path of the Transit secrets engine (default `transit`).
    #[serde(default = "default_transit_engine")]
    #[schemars(length(min = 1, max = 256))]
    pub engine: String,
}

fn default_transit_engine() -> String {
    "transit".into()
}

/// The engine a KMS keeps its keys in, with its mount path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine<'a> {
    /// K/V at this mount, of this version.
    Kv(&'a str, KvVersion),
    /// Transit at this mount.
    Transit(&'a str),
}

impl VaultSpec {
    /// The configured engine.
    pub fn engine(&self) -> Engine<'_> {
        match &self.transit {
            Some(t) => Engine::Transit(&t.engine),
            None => Engine::Kv(&self.engine, self.version),
        }
    }
}

/// The K/V secrets engine version.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum KvVersion {
    /// K/V version 1.
    #[default]
    #[serde(rename = "v1")]
    V1,
    /// K/V version 2 (versioned secrets).
    #[serde(rename = "v2")]
    V2,
}

impl KvVersion {
    /// The value KES expects in `keystore.vault.version`.
    pub fn as_str(self) -> &'static str {
        match self {
            KvVersion::V1 => "v1",
            KvVersion::V2 => "v2",
        }
    }
}

/// Vault authentication: exactly one method.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.appRole) != has(self.kubernetes)").message("vault.auth needs exactly one of appRole or kubernetes"))]
pub struct VaultAuth {
    /// AppRole login; the role ID and secret ID are read from a Secret in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<AppRoleAuth>,
    /// Kubernetes login with the pod's service-account token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesAuth>,
}

/// AppRole credentials, referenced (never copied) from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAuth {
    /// The mount path of the AppRole auth method (default `approle`).
    #[serde(default = "default_approle_engine")]
    pub engine: String,
    /// The Secret (same namespace) holding the role ID and secret ID.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// The key of the role ID in that Secret (default `roleId`).
    #[serde(default = "default_role_id_key")]
    pub role_id_key: String,
    /// The key of the secret ID in that Secret (default `secretId`).
    #[serde(default = "default_secret_id_key")]
    pub secret_id_key: String,
}

fn default_approle_engine() -> String {
    "approle".into()
}
fn default_role_id_key() -> String {
    "roleId".into()
}
fn default_secret_id_key() -> String {
    "secretId".into()
}

/// Kubernetes auth: KES logs in with the pod's service-account token.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuth {
    /// The mount path of the Kubernetes auth method (default `kubernetes`).
    #[serde(default = "default_kubernetes_engine")]
    pub engine: String,
    /// The Vault role to log in as.
    #[schemars(length(min = 1, max = 256))]
    pub role: String,
}

fn default_kubernetes_engine() -> String {
    "kubernetes".into()
}

/// TLS settings towards Vault.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultTls {
    /// A Secret (same namespace) whose key `ca.crt` holds the CA certificates that Vault's
    /// certificate chains to. Without it the system roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_name: Option<String>,
    /// A `kubernetes.io/tls` Secret (keys `tls.crt`, `tls.key`) that KES presents to Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_name: Option<String>,
}

/// KES key cache expiry, as Go durations (`30s`, `5m`, `1h`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Any cached key is dropped after this long (KES `cache.expiry.any`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = 32))]
    pub any: Option<String>,
    /// A key unused for this long is dropped (KES `cache.expiry.unused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = 32))]
    pub unused: Option<String>,
    /// While Vault is unreachable, cached keys keep serving this long (KES `cache.expiry.offline`,
    /// default `1h`; `0s` turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = 32))]
    pub offline: Option<String>,
}

/// CEL rule accepting a Go-style duration made of `h`, `m`, `s` parts.
pub const DURATION_RULE: &str = "self.matches('^([0-9]+(h|m|s))+$')";
/// The message for [`DURATION_RULE`].
pub const DURATION_MESSAGE: &str = "must be a duration such as 30s, 5m or 1h30m";

/// What the operator last saw of this KMS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KmsStatus {
    /// `Ready` (Vault answers its health endpoint, unsealed), `SecretFound` (the auth Secret
    /// exists with the expected keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl KmsSpec {
    /// The name of the Secret holding Vault credentials, if the auth method uses one.
    pub fn credentials_secret(&self) -> Option<&str> {
        self.vault
            .auth
            .app_role
            .as_ref()
            .map(|a| a.secret_name.as_str())
    }

    /// Every Secret the KMS refers to: the AppRole credentials, the Vault CA, the client
    /// certificate (in that order). A change of any of them concerns the KMS and its Tenants.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        let tls = self.vault.tls.as_ref();
        self.credentials_secret()
            .into_iter()
            .chain(tls.and_then(|t| t.ca_secret_name.as_deref()))
            .chain(tls.and_then(|t| t.client_secret_name.as_deref()))
    }
}
