//! Reconciles one Tenant, top to bottom, one step per file:
//!
//! 1. [`kms`]: the KMS it names, and that KMS's credentials Secret (by reference: only the
//!    presence of the keys is checked, values are never read into the operator's output); that
//!    no older Tenant's key prefix overlaps this one's, nor its name makes it take another
//!    Tenant's object names (`x-kes`, `x-hl`: see [`crate::build`]);
//! 2. [`credentials`]: the root credentials Secret, generated once when absent;
//! 3. [`ca`]: the CA (`<t>-ca`), rotated at 2/3 of its lifetime (see [`crate::pki::ca`]);
//! 4. [`leaves`]: the leaf certificates, re-issued at 2/3 of their lifetime or when names/CA
//!    change; the Secrets of `storage.s3` checked ([`backend`]);
//! 5. [`apply`]: the user Secrets of `spec.users`, checked (see [`super::users`]), and every
//!    owned object (`<t>-users` first), applied server-side with one field manager; the image
//!    comes from [`upgrade`] (the gradual rollout of the operator's default image), the
//!    StatefulSet's volumes follow a larger `storage.size` through [`storage`];
//! 6. [`status`]: the status, and a requeue for the next renewal.
//!
//! A step that finds the Tenant cannot be deployed (or an owned object the API server refuses)
//! returns a [`Blocker`]: the status then says `Degraded` with its reason, and nothing after
//! that step runs. A failed API call otherwise is an [`Error`]: the controller retries with
//! backoff.
//!
//! Around the steps, [`deletion`] keeps the Tenant's finalizer: a deleted Tenant is held while
//! `spec.deletionProtection` is true, and its claims go with it under `deletionPolicy: Delete`.
//! Nothing here deletes anything in Vault: a deleted Tenant's objects are garbage-collected
//! through their owner references, its CA and root credentials Secrets (not owned) stay for a
//! Tenant recreated under the same name, and its master keys stay where they are.

pub mod apply;
pub mod backend;
pub mod ca;
pub mod conditions;
pub mod credentials;
pub mod deletion;
pub mod kms;
pub mod leaves;
pub mod rotation;
pub mod status;
pub mod storage;
#[cfg(test)]
mod tests;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{Context, Error};
use crate::build::{FIELD_MANAGER, Names};
use crate::crd::Tenant;

pub use conditions::{Blocker, ConditionState, reason};
pub use deletion::{DELETION_BLOCKED, Deletion, FINALIZER};
pub use kms::check_kms_secret;
pub use leaves::{Leaf, leaf_requests};

/// How often a healthy Tenant is looked at even when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Retry delay while something the Tenant depends on is missing.
pub const WAIT: Duration = Duration::from_secs(5);

/// One reconcile of `tenant`: its finalizer ([`deletion`]), then the steps.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let run = Run::new(&tenant, &ctx);
    let deletion = run.finalize().await?;
    if deletion == Deletion::Done {
        return Ok(Action::await_change());
    }
    let action = run.steps().await?;
    if deletion == Deletion::Refused {
        run.report_refused_deletion().await?;
    }
    Ok(action)
}

/// Why [`Run::deploy`] stopped early.
enum Stop {
    /// The Tenant cannot be deployed as it is: reported in its status.
    Blocked(Blocker),
    /// An API call or a certificate operation failed: retried with backoff.
    Failed(Error),
}

impl From<Blocker> for Stop {
    fn from(b: Blocker) -> Self {
        Stop::Blocked(b)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

impl From<kube::Error> for Stop {
    fn from(e: kube::Error) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<crate::pki::PkiError> for Stop {
    fn from(e: crate::pki::PkiError) -> Self {
        Stop::Failed(e.into())
    }
}

/// What every step of one reconcile shares.
struct Run<'a> {
    tenant: &'a Tenant,
    ctx: &'a Context,
    names: Names,
    secrets: Api<Secret>,
    recorder: Recorder,
    now: OffsetDateTime,
}

impl<'a> Run<'a> {
    /// Steps 1 to 6.
    async fn steps(&self) -> Result<Action, Error> {
        let (kms, kms_ready) = match self.kms().await? {
            Ok(found) => found,
            Err(blocker) => {
                let kms_ready = ConditionState::fails(blocker.reason, blocker.message.clone());
                return self.blocked(blocker, kms_ready).await;
            }
        };
        match self.deploy(&kms, &kms_ready).await {
            Ok(action) => Ok(action),
            Err(Stop::Blocked(blocker)) => self.blocked(blocker, kms_ready).await,
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    fn new(tenant: &'a Tenant, ctx: &'a Context) -> Self {
        let names = Names::of(tenant);
        Self {
            tenant,
            ctx,
            secrets: Api::namespaced(ctx.client.clone(), &names.namespace),
            names,
            recorder: ctx.recorder(),
            now: OffsetDateTime::now_utc(),
        }
    }

    /// Steps 1 (the checks after the KMS) to 6, for a Tenant whose KMS exists.
    async fn deploy(
        &self,
        kms: &crate::crd::KMS,
        kms_ready: &ConditionState,
    ) -> Result<Action, Stop> {
        self.check_unique().await?;
        self.root_credentials().await?;
        let ca = self.ca().await?;
        let leaves = self.leaves(&ca).await?;
        let (certs, leaves) = self.certs(&ca, kms, leaves).await?;
        let applied = self.apply(kms, &certs).await?;
        let recreating = applied.stateful_set.is_none();
        let waiting = matches!(
            applied.image.standing,
            upgrade::Standing::WaitingForSlot { .. }
        );
        self.report_deployed(kms_ready.clone(), &certs, &leaves, applied)
            .await?;
        if recreating {
            return Ok(Action::requeue(WAIT));
        }
        let until = (leaves.next_renewal - OffsetDateTime::now_utc())
            .whole_seconds()
            .max(1) as u64;
        let mut next = Duration::from_secs(until).min(RESYNC);
        if let Some(rotation) = self.rotation(kms).await? {
            next = next.min(rotation);
        }
        Ok(Action::requeue(if waiting {
            next.min(upgrade::SLOT_RETRY)
        } else {
            next
        }))
    }

    /// Reports `blocker` (and the KMS as `kms_ready`) and retries after its delay.
    async fn blocked(&self, blocker: Blocker, kms_ready: ConditionState) -> Result<Action, Error> {
        if blocker.warn {
            self.publish(EventType::Warning, blocker.reason, blocker.message.clone())
                .await;
        }
        let retry = blocker.retry;
        self.report_blocked(blocker, kms_ready).await?;
        Ok(Action::requeue(retry))
    }

    /// Publishes an event about the Tenant; a failure is only logged (events are best effort).
    /// The note is cut to the 1 KiB the API server accepts (the status keeps the whole text).
    async fn publish(&self, type_: EventType, reason: &str, mut note: String) {
        const NOTE_MAX: usize = 1024;
        if note.len() > NOTE_MAX {
            let mut end = NOTE_MAX - "…".len();
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
            note.push('…');
        }
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&ev, &self.tenant.object_ref(&()))
            .await
        {
            tracing::debug!(error = %e, "event not published");
        }
    }
}

/// Applies `obj` server-side as the operator's one field manager.
async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, kube::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
}

/// The UTF-8 value of `key` in `secret`'s data.
fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}
