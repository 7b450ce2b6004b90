//! The Coffer operator: `Tenant` and `KMS` custom resources reconciled into encrypted
//! object-storage clusters, each with its own KES sidecar.
//!
//! - [`crd`]: the resource types and their CRDs.
//! - [`pki`]: the per-Tenant CA, leaf certificates and KES identities.
//! - [`build`]: pure functions from a Tenant (and its KMS) to every object the operator owns.
//! - [`reconcile`]: the controllers that apply those objects and report status.

pub mod build;
pub mod crd;
pub mod duration;
pub mod pki;
pub mod reconcile;
pub mod render;
pub mod run;
