//! `Tenant`: one encrypted object-storage cluster: a StatefulSet of `object-server` pods,
//! each with its own KES sidecar that holds this Tenant's identity and policy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecurityContext, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::kms::{CacheSpec, DURATION_MESSAGE, DURATION_RULE};

pub mod backend;
pub mod lifecycle;

pub use backend::{BackendCa, BackendCredentials, S3StorageSpec};
pub use lifecycle::{DeletionPolicy, NetworkPolicySpec, ProbeTiming, ProbesSpec};

/// CEL rule refusing the Tenant names of [`crate::build::RESERVED_NAME_SUFFIXES`]: their owned
/// objects would take the names of another Tenant's (see `build`'s module doc).
pub const NAME_SUFFIX_RULE: &str =
    "!self.metadata.name.endsWith('-kes') && !self.metadata.name.endsWith('-hl')";
/// What `kubectl apply` prints when [`NAME_SUFFIX_RULE`] refuses a Tenant.
pub const NAME_SUFFIX_MESSAGE: &str = "metadata.name must not end in -kes or -hl: Tenant x-kes's Secret x-kes-tls would be Tenant x's KES certificate Secret, and Tenant x-hl's Service Tenant x's headless Service";

/// The image that holds both `object-server` and `kes`, for a Tenant without `spec.image` when
/// the operator is not told its own image (`COFFER_DEFAULT_IMAGE`, which the chart and the plain
/// manifests set to the operator's image, so that upgrading the operator upgrades such Tenants).
pub const DEFAULT_IMAGE: &str = "ghcr.io/coffer-dev/coffer:0.1.0";

/// An encrypted S3 object-storage cluster with its own KES sidecar per pod.
// kube's printcolumn(...) repeats keys by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "coffer.dev",
    version = "v1alpha1",
    kind = "Tenant",
    namespaced,
    shortname = "tenant",
    status = "TenantStatus",
    // `kubectl scale tenant` and a HorizontalPodAutoscaler aimed at the Tenant (the operator
    // owns the StatefulSet's replicas, so the Tenant is what is scaled).
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.readyReplicas",
        label_selector_path = ".status.selector"
    ),
    doc = "An encrypted S3 object-storage cluster: object-server pods, each with a KES sidecar that reaches the KMS's Vault.",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#, description = "Whether every replica serves S3"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas", description = "Desired replicas"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint", description = "The S3 endpoint inside the cluster"),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.users", description = "S3 users in effect (besides the root user)"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.currentVersion", description = "The version of the image the pods run"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp", description = "Time since creation"),
    validation = kube::core::Rule::new("size(self.metadata.name) <= 47").message("metadata.name must be at most 47 characters (names of owned objects and pods derive from it)"),
    validation = kube::core::Rule::new("!self.metadata.name.contains('.')").message("metadata.name must not contain '.' (it names pods and KES keys)"),
    validation = kube::core::Rule::new(NAME_SUFFIX_RULE).message(NAME_SUFFIX_MESSAGE),
    validation = kube::core::Rule::new(SIZE_RULE).message(SIZE_MESSAGE),
    validation = kube::core::Rule::new("!has(self.spec.encryption) || !has(self.spec.encryption.keyName) || has(self.spec.encryption.keyPrefix) || self.spec.encryption.keyName.startsWith(self.metadata.name + '_')").message("encryption.keyName must start with the Tenant's key prefix: '<tenant name>_' unless encryption.keyPrefix says otherwise (the KES policy allows no other key)")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.replicas <= 1 || has(self.storage.sharedClaimName) || has(self.storage.s3)").message("replicas > 1 needs storage.sharedClaimName (a ReadWriteMany claim shared by every replica) or storage.s3 (a backend bucket)"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.encryption.keyPrefix) || !has(self.encryption.keyName) || self.encryption.keyName.startsWith(self.encryption.keyPrefix)").message("encryption.keyName must start with encryption.keyPrefix"))]
pub struct TenantSpec {
    /// The KMS (same namespace) whose Vault keeps this Tenant's master keys.
    pub kms: KmsRef,
    /// Number of object-server pods (default 1). More than 1 needs a shared volume or
    /// `storage.s3`.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 64))]
    pub replicas: i32,
    /// The image running `object-server` (default: the operator's own image, so that the pods
    /// follow the operator's upgrades).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Key names and auto-encryption.
    #[serde(default)]
    pub encryption: EncryptionSpec,
    /// Where objects are stored.
    #[serde(default)]
    pub storage: StorageSpec,
    /// The S3 root credentials.
    #[serde(default)]
    pub root_credentials: RootCredentialsSpec,
    /// S3 users besides the root user, one Secret each (same namespace) with keys `accessKey`,
    /// `secretKey` and optional `policy` (comma-separated policy names, default `readwrite`).
    /// MinIO operator's `CONSOLE_ACCESS_KEY`/`CONSOLE_SECRET_KEY` are read too. A change or
    /// deletion of a Secret reaches the pods without a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 1000))]
    pub users: Vec<UserRef>,
    /// The S3 endpoint's TLS certificate.
    #[serde(default)]
    pub tls: TlsSpec,
    /// The KES sidecar.
    #[serde(default)]
    pub kes: KesSpec,
    /// The Service in front of the pods.
    #[serde(default)]
    pub service: ServiceSpec,
    /// The object-server's web console (port 9001, on the Service as `console`).
    #[serde(default, skip_serializing_if = "ConsoleSpec::is_default")]
    pub console: ConsoleSpec,
    /// Where the pods may run.
    #[serde(default)]
    pub scheduling: SchedulingSpec,
    /// Extra environment variables for the object-server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Compute resources of the object-server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The pod security context (default: non-root user 1000, fsGroup 1000, seccomp RuntimeDefault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// The security context of both containers (default: non-root, read-only root filesystem,
    /// no privilege escalation, every capability dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,
    /// Prometheus scraping of the object-servers' MinIO-compatible metrics.
    #[serde(default, skip_serializing_if = "MonitoringSpec::is_default")]
    pub monitoring: MonitoringSpec,

    // Deletion and pod settings (see `lifecycle`): one block, kept together.
    /// Refuse to delete this Tenant: a deletion waits (the Tenant and everything it owns stay,
    /// condition `DeletionBlocked` and a Warning event say why) until this is set to false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletion_protection: bool,
    /// What deleting the Tenant does to its pods' claims: `Retain` (default) keeps them,
    /// `Delete` deletes them. The CA and root credentials Secrets and the keys in Vault are
    /// always kept.
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_retain")]
    pub deletion_policy: DeletionPolicy,
    /// The pods' ServiceAccount (default: the namespace's `default`), e.g. the one Vault's
    /// Kubernetes auth role names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// Secrets (same namespace) to pull the images with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Extra labels on the pods (not the ones the operator selects them by).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = kube::core::Rule::new(lifecycle::POD_LABELS_RULE).message(lifecycle::POD_LABELS_MESSAGE))]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations on the pods (not `coffer.dev/` ones).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = kube::core::Rule::new(lifecycle::POD_ANNOTATIONS_RULE).message(lifecycle::POD_ANNOTATIONS_MESSAGE))]
    pub pod_annotations: BTreeMap<String, String>,
    /// Seconds a pod has to finish its requests after SIGTERM (default 30, Kubernetes').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub termination_grace_period_seconds: Option<i64>,
    /// Timing of the object-server's probes.
    #[serde(default, skip_serializing_if = "ProbesSpec::is_default")]
    pub probes: ProbesSpec,
    /// An opt-in NetworkPolicy admitting S3 (and the console and metrics sources named) only.
    #[serde(default, skip_serializing_if = "NetworkPolicySpec::is_default")]
    pub network_policy: NetworkPolicySpec,
}

/// `spec.monitoring`: a Prometheus Operator `ServiceMonitor` for the Tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Create a ServiceMonitor (monitoring.coreos.com/v1) scraping every pod's
    /// `/minio/v2/metrics/cluster` and `/minio/v2/metrics/bucket`. Without the Prometheus
    /// Operator's CRD in the cluster nothing is created and an event says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service_monitor: bool,
    /// The scrape interval (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = 32))]
    pub interval: Option<String>,
    /// Extra labels on the ServiceMonitor, e.g. to match a Prometheus' serviceMonitorSelector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The Secret key (same namespace) holding the bearer token `mc admin prometheus generate`
    /// prints. Without it the object-servers must allow anonymous scrapes: set
    /// `MINIO_PROMETHEUS_AUTH_TYPE=public` in `spec.env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeyRef>,
}

impl MonitoringSpec {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A key of a Secret in the Tenant's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in its data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_replicas() -> i32 {
    1
}

/// A reference to a KMS in the Tenant's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KmsRef {
    /// The KMS's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Which keys this Tenant uses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// Every key name this Tenant may use starts with this (default `<tenant>_`: Tenant names
    /// cannot contain `_`, so no Tenant's default prefix is a prefix of another's). The KES
    /// policy allows nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(KEY_PREFIX_RULE).message("encryption.keyPrefix must be 1-64 characters of A-Z a-z 0-9 _ -, not starting with -"))]
    #[schemars(length(max = 64))]
    pub key_prefix: Option<String>,
    /// The default key (MINIO_KMS_KES_KEY_NAME), created on first use (default `<prefix>default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(KEY_NAME_RULE).message("encryption.keyName must be a valid KES key name: 1-80 characters of A-Z a-z 0-9 _ -, not starting or ending with -"))]
    #[schemars(length(max = 80))]
    pub key_name: Option<String>,
    /// Encrypt every object even when the request asks for no encryption (default true).
    #[serde(default = "default_true")]
    pub auto_encryption: bool,
    /// Rotate the Tenant's keys (every key under its prefix) this long after each one's newest
    /// version was made, e.g. `2160h` (90 days), at least `1h`; then re-wrap every object's key
    /// onto the new version (the object-server's online re-wrap). Needs a KMS with
    /// `vault.transit` and AppRole auth. Absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(ROTATION_RULE).message(ROTATION_MESSAGE))]
    #[schemars(length(max = 16))]
    pub rotation: Option<String>,
}

/// CEL rule of `encryption.rotation`: a Go duration of whole `h`/`m`/`s` parts, at least an
/// hour (CEL's `duration()` reads Go durations).
pub const ROTATION_RULE: &str =
    "self.matches('^([0-9]+(h|m|s))+$') && duration(self) >= duration('1h')";
/// What the API server answers to a `rotation` that [`ROTATION_RULE`] refuses.
pub const ROTATION_MESSAGE: &str = "encryption.rotation must be a duration of at least 1h made of h, m and s parts, such as 720h or 2160h (90 days)";
/// The shortest rotation period the operator acts on (the CEL rule's floor, checked again for
/// objects that predate the rule).
pub const MIN_ROTATION: std::time::Duration = std::time::Duration::from_secs(3600);

impl Default for EncryptionSpec {
    fn default() -> Self {
        Self {
            key_prefix: None,
            key_name: None,
            auto_encryption: true,
            rotation: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// CEL rule for a KES key name.
pub const KEY_NAME_RULE: &str =
    "self != '_' && self.matches('^[A-Za-z0-9_]([A-Za-z0-9_-]{0,78}[A-Za-z0-9_])?$')";
/// CEL rule for a key prefix.
pub const KEY_PREFIX_RULE: &str = "self.matches('^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$')";

/// CEL transition rule: `storage.storageClassName` keeps its value (or its absence).
pub const STORAGE_CLASS_RULE: &str = "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)";
/// What the API server answers to a change of `storage.storageClassName`.
pub const STORAGE_CLASS_MESSAGE: &str = "storage.storageClassName cannot change: the StatefulSet's volume claims keep the class they were made with. Keep it, or create a new Tenant with the new class and copy the objects over (mc mirror)";
/// CEL transition rule: `storage.sharedClaimName` keeps its value (or its absence).
pub const SHARED_CLAIM_RULE: &str = "has(self.sharedClaimName) == has(oldSelf.sharedClaimName) && (!has(self.sharedClaimName) || self.sharedClaimName == oldSelf.sharedClaimName)";
/// What the API server answers to a change of `storage.sharedClaimName`.
pub const SHARED_CLAIM_MESSAGE: &str = "storage.sharedClaimName cannot be added, changed or removed: the pods' volumes are fixed when the StatefulSet is made. Keep it, or create a new Tenant with the other volume and copy the objects over (mc mirror)";
/// CEL transition rule on the whole Tenant: `storage.size` never shrinks below the claims'
/// size. It may go back down to `status.claimSize` (what the claims have, written by the
/// operator): the way out of an expansion the StorageClass refused. A rule on the whole
/// object, since a rule on the field cannot see the status.
pub const SIZE_RULE: &str = "!has(self.spec.storage) || !has(oldSelf.spec.storage) \
    || !isQuantity(self.spec.storage.size) || !isQuantity(oldSelf.spec.storage.size) \
    || quantity(self.spec.storage.size).compareTo(quantity(oldSelf.spec.storage.size)) >= 0 \
    || (has(self.status) && has(self.status.claimSize) && isQuantity(self.status.claimSize) \
    && quantity(self.spec.storage.size).compareTo(quantity(self.status.claimSize)) >= 0)";
/// What the API server answers to a smaller `storage.size`.
pub const SIZE_MESSAGE: &str = "storage.size cannot shrink: a PersistentVolumeClaim never gets smaller. Keep the size (a larger one expands the claims where the StorageClass allows it; after a refused expansion, it may go back to status.claimSize), or create a new Tenant with the smaller size and copy the objects over (mc mirror)";

/// Storage of the objects. The class and the shared claim cannot change, the size cannot
/// shrink (see the rules above): the StatefulSet's volume claims cannot follow such changes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(STORAGE_CLASS_RULE).message(STORAGE_CLASS_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(SHARED_CLAIM_RULE).message(SHARED_CLAIM_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(backend::S3_NO_VOLUME_RULE).message(backend::S3_NO_VOLUME_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(backend::S3_FIXED_RULE).message(backend::S3_FIXED_MESSAGE))]
pub struct StorageSpec {
    /// Size of each pod's claim (default `10Gi`); ignored with `sharedClaimName`. It may grow
    /// (the claims are expanded where their StorageClass allows it), never shrink.
    #[serde(default = "default_size")]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$')").message("storage.size must be a quantity such as 10Gi"))]
    #[schemars(length(max = 32))]
    pub size: String,
    /// The StorageClass of each pod's claim (default: the cluster's default class). Fixed at
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// An existing ReadWriteMany PersistentVolumeClaim that every replica mounts instead of a
    /// claim per pod. Required for replicas > 1. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_claim_name: Option<String>,
    /// A bucket of another S3 service (Ceph's RGW, MinIO, AWS) that holds every object, user
    /// and setting (encrypted and sealed), instead of volumes: the pods are stateless and
    /// `replicas` may be anything. Excludes `size`, `storageClassName` and `sharedClaimName`;
    /// cannot be added or removed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3StorageSpec>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_size(),
            storage_class_name: None,
            shared_claim_name: None,
            s3: None,
        }
    }
}

fn default_size() -> String {
    "10Gi".into()
}

/// The S3 root user.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RootCredentialsSpec {
    /// A Secret (same namespace) with keys `rootUser` and `rootPassword` (default
    /// `<tenant>-root`). Generated with random values when it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// A Secret (same namespace) holding one S3 user, as in MinIO operator's `spec.users`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UserRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// TLS of the S3 endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret (keys `tls.crt`, `tls.key`, optional `ca.crt`) to serve S3
    /// with instead of a certificate from the Tenant's own CA. The KES certificates always
    /// come from the Tenant's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,
    /// Lifetime of the leaf certificates the operator issues (default `2160h`, 90 days); each
    /// is renewed at 2/3 of it.
    #[serde(default = "default_lifetime")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = 32))]
    pub certificate_lifetime: String,
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            external_secret_name: None,
            certificate_lifetime: default_lifetime(),
        }
    }
}

fn default_lifetime() -> String {
    "2160h".into()
}

/// The KES sidecar.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KesSpec {
    /// The image running `kes` (default: the Tenant's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compute resources of the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The error log level (KES `log.error`): `debug`, `info`, `warn` or `error` (default `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self in ['debug', 'info', 'warn', 'error']").message("kes.logLevel must be one of debug, info, warn, error"))]
    #[schemars(length(max = 16))]
    pub log_level: Option<String>,
    /// Key cache expiry; overrides the KMS's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
}

/// The Service `<tenant>` in front of the pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The Service type: `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self in ['ClusterIP', 'NodePort', 'LoadBalancer']").message("service.type must be ClusterIP, NodePort or LoadBalancer"))]
    #[schemars(length(max = 16))]
    pub type_: Option<String>,
    /// Extra annotations on the Service (e.g. for a load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `spec.console`: the object-server's web console on port 9001 (MinIO's `--console-address`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSpec {
    /// Serve the console (default true). `false` sets `MINIO_BROWSER=off` in the object-server
    /// and leaves the port off the Service.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for ConsoleSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl ConsoleSpec {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Pod placement.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// The PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// How the pods spread over zones or nodes. A constraint without a `labelSelector` gets the
    /// Tenant's pod labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

/// What the operator last saw of this Tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// `CertificatesReady`, `KMSReady`, `UsersReady`, `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods of the StatefulSet that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The label selector of the Tenant's pods (`k=v,…`): the scale subresource's, so that a
    /// HorizontalPodAutoscaler aimed at the Tenant finds their metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The S3 endpoint inside the cluster (`https://<tenant>.<namespace>.svc:9000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// When the first of the issued leaf certificates expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiry: Option<String>,
    /// The KES identity of the object-server (public: the hash of its certificate's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kes_identity: Option<String>,
    /// The default key name in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// How many users of `spec.users` are in effect (valid Secrets; the `UsersReady`
    /// condition names the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<i32>,
    /// The image the object-server containers run: set when every replica runs the current pod
    /// template, so during a rollout it still names the image being replaced. The older name
    /// of `currentImage`, kept until `v1beta1` (see the operator README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The size of the pods' claims (the StatefulSet's claim template): `spec.storage.size`
    /// may go back down to it, never below (absent with `storage.sharedClaimName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_size: Option<String>,

    // --- Upgrades (see `reconcile::tenant::upgrade`) ---
    /// The object-server image the pods run, from the StatefulSet's current revision (during a
    /// rollout, the image being replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,
    /// The version of `currentImage`: its tag, or its digest when it is pinned by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// While the pods roll to another image: that image (absent once every replica runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_image: Option<String>,

    // --- Key rotation (see `reconcile::tenant::rotation`) ---
    /// The Tenant's keys, their versions and the re-wrap onto the newest (with
    /// `spec.encryption.rotation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
}

/// `status.rotation`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// When the operator last rotated one of the keys (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation: Option<String>,
    /// When the next key is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<String>,
    /// Every key under the Tenant's prefix, as Vault last said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyVersionStatus>,
    /// The object-server's re-wrap job, as it last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrap: Option<RewrapStatus>,
    /// Why rotation does not run or the last attempt failed (absent when all is well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One key's versions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersionStatus {
    /// The key's name.
    pub name: String,
    /// The newest version (new data keys use it).
    pub version: u32,
    /// The oldest version that still decrypts.
    pub min_version: u32,
    /// When the newest version was made (RFC 3339).
    pub created: String,
}

/// The re-wrap job (`GET /minio/admin/v3/coffer/rewrap`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RewrapStatus {
    /// The job's id.
    #[serde(default)]
    pub id: String,
    /// `running` or `done`.
    #[serde(default)]
    pub state: String,
    /// When it started (RFC 3339).
    #[serde(default)]
    pub started: String,
    /// Keys looked at.
    #[serde(default)]
    pub scanned: u64,
    /// Keys moved onto the newest version.
    #[serde(default)]
    pub rewrapped: u64,
    /// Keys already current, or changed by a writer meanwhile.
    #[serde(default)]
    pub skipped: u64,
    /// Keys that could not be re-wrapped.
    #[serde(default)]
    pub failed: u64,
    /// Units (buckets, and the system unit) finished.
    #[serde(default)]
    pub units_done: u64,
    /// Units in all.
    #[serde(default)]
    pub units_total: u64,
}

impl Tenant {
    /// The image of the object-server: `spec.image`, else `default_image` (the operator's).
    pub fn image(&self, default_image: &str) -> String {
        self.spec
            .image
            .clone()
            .unwrap_or_else(|| default_image.to_string())
    }

    /// The image of the KES sidecar: `spec.kes.image`, else [`Tenant::image`].
    pub fn kes_image(&self, default_image: &str) -> String {
        self.spec
            .kes
            .image
            .clone()
            .unwrap_or_else(|| self.image(default_image))
    }

    /// The key prefix this Tenant may use (`spec.encryption.keyPrefix`, default `<name>_`).
    pub fn key_prefix(&self) -> String {
        self.spec
            .encryption
            .key_prefix
            .clone()
            .unwrap_or_else(|| format!("{}_", self.metadata.name.as_deref().unwrap_or_default()))
    }

    /// The default key name (`spec.encryption.keyName`, default `<prefix>default`).
    pub fn key_name(&self) -> String {
        self.spec
            .encryption
            .key_name
            .clone()
            .unwrap_or_else(|| format!("{}default", self.key_prefix()))
    }

    /// The first Tenant in `others` (same namespace) whose key prefix overlaps this one's (one
    /// is a prefix of the other) and that was created earlier (ties broken by name): that
    /// Tenant keeps the prefix, this one must not be deployed, or its KES policy would let it
    /// use the other's keys.
    pub fn prefix_conflict<'a>(
        &self,
        others: impl IntoIterator<Item = &'a Tenant>,
    ) -> Option<&'a Tenant> {
        let mine = self.key_prefix();
        let key = |t: &Tenant| {
            (
                t.metadata.creation_timestamp.clone(),
                t.metadata.name.clone(),
            )
        };
        others.into_iter().find(|o| {
            o.metadata.name != self.metadata.name
                && o.metadata.namespace == self.metadata.namespace
                && {
                    let theirs = o.key_prefix();
                    theirs.starts_with(&mine) || mine.starts_with(&theirs)
                }
                && key(o) < key(self)
        })
    }

    /// The name of the root credentials Secret.
    pub fn root_secret_name(&self) -> String {
        self.spec
            .root_credentials
            .secret_name
            .clone()
            .unwrap_or_else(|| {
                format!("{}-root", self.metadata.name.as_deref().unwrap_or_default())
            })
    }
}

// --- Upgrades (see `reconcile::tenant::upgrade`) ---

/// Tenant annotation: `"true"` keeps a Tenant without `spec.image` on the image it runs when
/// the operator's default image changes (an explicit `spec.image` still applies at once).
pub const UPGRADE_PAUSED_ANNOTATION: &str = "coffer.dev/upgrade-paused";

impl Tenant {
    /// Whether [`UPGRADE_PAUSED_ANNOTATION`] is `"true"`.
    pub fn upgrade_paused(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(UPGRADE_PAUSED_ANNOTATION))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}
