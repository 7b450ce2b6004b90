//! What deleting a Tenant does (`spec.deletionProtection`, `spec.deletionPolicy`) and the pod
//! settings users set themselves (`spec.serviceAccountName`, `imagePullSecrets`, `podLabels`,
//! `podAnnotations`, `terminationGracePeriodSeconds`, `probes`, `networkPolicy`).
//!
//! Deleting a Tenant always removes what the operator generates and can generate again (the
//! StatefulSet, its pods, the Services, the PDB, the NetworkPolicy, the KES ConfigMap, the
//! Secrets `<t>-tls`, `<t>-kes-tls`, `<t>-users`: owner references, the garbage collector) and
//! always keeps what cannot be made again: the CA Secret `<t>-ca` and the root credentials
//! Secret (no owner reference), so a Tenant recreated under the same name serves the same CA and
//! credentials; the master keys in Vault (never deleted); the claims `data-<t>-<n>` unless
//! `deletionPolicy: Delete`.

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL rule: `podLabels` leaves the labels the StatefulSet selects its pods by alone.
pub const POD_LABELS_RULE: &str = "!self.exists(k, k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by'])";
/// What the API server answers when [`POD_LABELS_RULE`] refuses a Tenant.
pub const POD_LABELS_MESSAGE: &str = "podLabels must not set app.kubernetes.io/name, app.kubernetes.io/instance or app.kubernetes.io/managed-by: the operator selects the Tenant's pods by them";
/// CEL rule: `podAnnotations` leaves the operator's `coffer.dev/` annotations alone.
pub const POD_ANNOTATIONS_RULE: &str = "!self.exists(k, k.startsWith('coffer.dev/'))";
/// What the API server answers when [`POD_ANNOTATIONS_RULE`] refuses a Tenant.
pub const POD_ANNOTATIONS_MESSAGE: &str = "podAnnotations must not set coffer.dev/ annotations: the operator's hashes there decide when pods restart";

/// What deleting the Tenant does to the claims of its pods.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the claims `data-<t>-<n>` (and so the objects): a Tenant recreated under the
    /// same name mounts them again.
    #[default]
    Retain,
    /// Delete the claims `data-<t>-<n>` with the Tenant: its objects are gone for good (what
    /// the volumes' reclaim policy then does is the StorageClass's). A claim named by
    /// `storage.sharedClaimName` is the user's and is never deleted.
    Delete,
}

impl DeletionPolicy {
    /// Whether this is the default.
    pub fn is_retain(&self) -> bool {
        *self == Self::Retain
    }
}

/// When a probe of the object-server runs and how many failures it takes; unset fields keep
/// the operator's values.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTiming {
    /// Seconds after the container starts before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub period_seconds: Option<i32>,
    /// Seconds a probe may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<i32>,
    /// Consecutive failures that count as failed (a liveness failure restarts the container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub failure_threshold: Option<i32>,
}

/// Overrides of the object-server's probes (its KES sidecar keeps its own).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProbesSpec {
    /// The startup probe (TCP on the S3 port; default every 2 s, 60 failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<ProbeTiming>,
    /// The readiness probe (`/minio/health/ready`; default every 10 s, 3 failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ProbeTiming>,
    /// The liveness probe (`/minio/health/live`; default every 20 s, 3 failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<ProbeTiming>,
}

impl ProbesSpec {
    /// Whether nothing is overridden.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `spec.networkPolicy`: a NetworkPolicy `<t>` that admits S3 and refuses every other
/// connection to the Tenant's pods. Only enforced where the cluster's network plugin enforces
/// NetworkPolicies (Calico, Cilium, …; the plain CNI bridge does not).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy (default false: nothing is created, and one created before
    /// is deleted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
    /// Who may connect to the S3 port 9000 (NetworkPolicy peers: pod and namespace selectors,
    /// IP blocks). Empty: every source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub s3_from: Vec<NetworkPolicyPeer>,
    /// Who may connect to the console port 9001. Empty: nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub console_from: Vec<NetworkPolicyPeer>,
    /// Who may scrape the metrics (`/minio/v2/metrics/…`, served on the S3 port) when
    /// `s3From` is restricted, e.g. Prometheus' namespace. A NetworkPolicy cannot tell paths
    /// apart: these sources reach the whole S3 port, where S3 authentication still applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub metrics_from: Vec<NetworkPolicyPeer>,
}

impl NetworkPolicySpec {
    /// Whether nothing is set.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
