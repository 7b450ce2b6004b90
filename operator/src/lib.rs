//! The Coffer operator: `Tenant` and `KMS` custom resources reconciled into encrypted
//! object-storage clusters, each with its own KES sidecar.
//!
//! - [`crd`]: the resource types and their CRDs.
//! - [`pki`]: the per-Tenant CA, leaf certificates and KES identities.
//! - [`build`]: pure functions from a Tenant (and its KMS) to every object the operator owns.
//! - [`reconcile`]: the controllers that apply those objects and report status.
//! - [`render`]: `operator render`, the builders' output without a cluster.
//! - [`run`]: `operator run`: leader election, metrics, graceful shutdown.
//!
//! # What the operator needs from the API server (RBAC)
//!
//! - `coffer.dev`: `tenants`, `kms`: get, list, watch, patch (their finalizers);
//!   `tenants/status`, `kms/status`: patch.
//! - core: `secrets`, `configmaps`, `services`: get, list, watch, create, patch;
//!   `apps`: `statefulsets`, `policy`: `poddisruptionbudgets`,
//!   `networking.k8s.io`: `networkpolicies`: get, list, watch, create, patch
//!   (server-side apply of a missing object needs `create`); `networkpolicies`: delete (when
//!   turned off); `statefulsets`: delete (recreated with larger claims);
//!   `persistentvolumeclaims`: get, patch (expansion), list, delete (`deletionPolicy: Delete`);
//!   `apps`: `controllerrevisions`: get (the image a StatefulSet's pods run during a rollout).
//! - `coordination.k8s.io`: `leases`: get, create, update (leader election).
//! - `events.k8s.io`: `events`: create, patch.
//!
//! Cluster-wide by default (a ClusterRole); with `--watch-namespaces` the same rules as a Role in
//! each watched namespace suffice, and nothing is listed or watched cluster-wide (the Lease stays
//! in the operator's own namespace).
//!
//! Owned objects go with their Tenant through owner references; the CA and root credentials
//! Secrets stay (see [`crd::tenant::lifecycle`]); nothing in Vault is deleted at all.

pub mod build;
pub mod crd;
pub mod duration;
pub mod pki;
pub mod reconcile;
pub mod render;
pub mod run;
