//! What deleting a Tenant does, around the six steps (see [`crate::crd::tenant::lifecycle`]
//! for what goes and what stays).
//!
//! Every Tenant carries the finalizer [`FINALIZER`], added by its first reconcile. When the
//! Tenant is deleted:
//! - with `spec.deletionProtection: true` the finalizer stays: the Tenant and everything it
//!   owns stay and keep being reconciled (certificates renew, pods serve), and condition
//!   [`DELETION_BLOCKED`] (reason [`reason::DELETION_PROTECTED`]) and a Warning event say how
//!   to proceed: set it to false, and the deletion goes on at once;
//! - otherwise, with `spec.deletionPolicy: Delete`, the claims `data-<t>-<n>` are deleted (the
//!   API server's `pvc-protection` keeps each until its pod is gone), then the finalizer is
//!   removed and the garbage collector deletes the owned objects.
//!
//! The protection covers the default deletion (`kubectl delete`, background propagation).
//! A foreground deletion (`--cascade=foreground`) makes the garbage collector delete the owned
//! objects before the finalizers run: the Tenant still stays, and its objects are made again.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::conditions::reason;
use super::{Error, Run};
use crate::build::labels;
use crate::crd::Tenant;
use crate::crd::tenant::DeletionPolicy;
use crate::reconcile::{finalizer, status};

/// The finalizer every Tenant carries while the operator runs.
pub const FINALIZER: &str = "coffer.dev/tenant";
/// Condition type: the Tenant was deleted but stays (the reason says why).
pub const DELETION_BLOCKED: &str = status::DELETION_BLOCKED;

/// What [`Run::finalize`] leaves for the rest of the reconcile.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Not deleted: the finalizer is in place, reconcile as usual.
    Live,
    /// Deleted but protected: reconcile as usual, then [`Run::report_refused_deletion`].
    Refused,
    /// Deleted and let go (or not ours to hold): nothing more to do.
    Done,
}

impl Run<'_> {
    fn tenants(&self) -> Api<Tenant> {
        Api::namespaced(self.ctx.client.clone(), &self.names.namespace)
    }

    /// Adds the finalizer to a live Tenant; lets a deleted one go unless it is protected.
    pub(super) async fn finalize(&self) -> Result<Deletion, Error> {
        if self.tenant.metadata.deletion_timestamp.is_none() {
            finalizer::add(&self.tenants(), self.tenant, FINALIZER).await?;
            return Ok(Deletion::Live);
        }
        if !finalizer::has(self.tenant, FINALIZER) {
            return Ok(Deletion::Done);
        }
        if self.tenant.spec.deletion_protection {
            return Ok(Deletion::Refused);
        }
        if self.tenant.spec.deletion_policy == DeletionPolicy::Delete {
            self.delete_claims().await?;
        }
        finalizer::remove(&self.tenants(), self.tenant, FINALIZER).await?;
        tracing::info!(tenant = %self.names.tenant, namespace = %self.names.namespace, "deleted");
        Ok(Deletion::Done)
    }

    /// Deletes the claims the StatefulSet made for the Tenant's pods (`data-<t>-<n>` with the
    /// Tenant's labels), never `storage.sharedClaimName`.
    async fn delete_claims(&self) -> Result<(), Error> {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
        let selector = labels(&self.names)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let prefix = format!("data-{}-", self.names.tenant);
        let shared = self.tenant.spec.storage.shared_claim_name.as_deref();
        let mut deleted = vec![];
        for claim in claims
            .list(&ListParams::default().labels(&selector))
            .await?
        {
            let name = claim.name_any();
            let ordinal = name.strip_prefix(&prefix).unwrap_or_default();
            let made_by_statefulset =
                !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit());
            if !made_by_statefulset || Some(name.as_str()) == shared {
                continue;
            }
            if claim.metadata.deletion_timestamp.is_none() {
                match claims.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => deleted.push(name),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if !deleted.is_empty() {
            self.publish(
                EventType::Normal,
                reason::CLAIMS_DELETED,
                format!(
                    "deletionPolicy Delete: deleted the claims {}",
                    deleted.join(", ")
                ),
            )
            .await;
        }
        Ok(())
    }

    /// Condition [`DELETION_BLOCKED`] on a deleted, protected Tenant, and a Warning event the
    /// first time. Written after the steps' own status (read back fresh) so that it is kept.
    pub(super) async fn report_refused_deletion(&self) -> Result<(), Error> {
        let message = format!(
            "spec.deletionProtection is true: Tenant {0:?} and everything it owns stay. To delete it, \
             set it to false: kubectl -n {1} patch tenant {0} --type=merge -p '{{\"spec\":{{\"deletionProtection\":false}}}}'",
            self.names.tenant, self.names.namespace
        );
        let Some(fresh) = self.tenants().get_opt(&self.names.tenant).await? else {
            return Ok(());
        };
        let mut st = fresh.status.clone().unwrap_or_default();
        let already = status::is_true(&st.conditions, DELETION_BLOCKED);
        status::set(
            &mut st.conditions,
            DELETION_BLOCKED,
            true,
            reason::DELETION_PROTECTED,
            message.clone(),
            fresh.metadata.generation,
            Timestamp::now(),
        );
        if fresh.status.as_ref().map(|s| &s.conditions) != Some(&st.conditions) {
            self.tenants()
                .patch_status(
                    &self.names.tenant,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"status": {"conditions": st.conditions}})),
                )
                .await?;
        }
        if !already {
            self.publish(EventType::Warning, reason::DELETION_PROTECTED, message)
                .await;
        }
        Ok(())
    }
}
