//! Deleting a KMS that Tenants still use is held, and said, never silent: every KMS carries the
//! finalizer [`FINALIZER`]; a deleted KMS that a Tenant of its namespace names in `spec.kms`
//! stays (and keeps being probed: those Tenants' pods still reach its Vault), with condition
//! `DeletionBlocked` (reason [`IN_USE_BY_TENANTS`], naming them) and a Warning event. Once no
//! Tenant names it (deleted, or moved to another KMS: a Tenant change reconciles its KMS), the
//! finalizer goes and so does the KMS. Nothing in Vault is touched either way.

use kube::api::ListParams;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use crate::crd::{KMS, Tenant};
use crate::reconcile::{Context, Error, finalizer};

/// The finalizer every KMS carries while the operator runs.
pub const FINALIZER: &str = "coffer.dev/kms-in-use";
/// How often a held KMS looks at its Tenants again besides the Tenant watch.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);
/// Reason of `DeletionBlocked` and of the Warning event: Tenants still name the deleted KMS.
pub const IN_USE_BY_TENANTS: &str = "InUseByTenants";

/// Where a KMS stands with respect to its deletion.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Not deleted: the finalizer is in place.
    Live,
    /// Deleted, held for these Tenants (names, sorted).
    InUse(Vec<String>),
    /// Deleted and let go: nothing more to do.
    Done,
}

impl Deletion {
    /// The message of `DeletionBlocked` for [`Deletion::InUse`].
    pub fn message(kms: &str, tenants: &[String]) -> String {
        format!(
            "KMS {kms:?} is deleted but Tenant(s) {} still use it: it goes once none does \
             (delete them, or set their spec.kms.name to another KMS)",
            tenants.join(", ")
        )
    }
}

/// Adds the finalizer to a live KMS; lets a deleted one go once no Tenant names it.
pub async fn finalize(kms: &KMS, ctx: &Context) -> Result<Deletion, Error> {
    let ns = kms.namespace().unwrap_or_else(|| "default".into());
    let kmses: Api<KMS> = Api::namespaced(ctx.client.clone(), &ns);
    if kms.metadata.deletion_timestamp.is_none() {
        finalizer::add(&kmses, kms, FINALIZER).await?;
        return Ok(Deletion::Live);
    }
    if !finalizer::has(kms, FINALIZER) {
        return Ok(Deletion::Done);
    }
    // A LIST, not the controller's cache: a Tenant created a moment ago must count.
    let tenants: Api<Tenant> = Api::namespaced(ctx.client.clone(), &ns);
    let mut users: Vec<String> = tenants
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|t| t.spec.kms.name == kms.name_any())
        .map(|t| t.name_any())
        .collect();
    if users.is_empty() {
        finalizer::remove(&kmses, kms, FINALIZER).await?;
        return Ok(Deletion::Done);
    }
    users.sort();
    Ok(Deletion::InUse(users))
}

/// The Warning event for a held deletion (best effort, as every event).
pub async fn warn(kms: &KMS, ctx: &Context, message: String) {
    let ev = Event {
        type_: EventType::Warning,
        reason: IN_USE_BY_TENANTS.into(),
        note: Some(message),
        action: "Delete".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder().publish(&ev, &kms.object_ref(&())).await {
        tracing::debug!(error = %e, "event not published");
    }
}
