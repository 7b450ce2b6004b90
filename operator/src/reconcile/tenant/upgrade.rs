//! Part of step 5: which image the pods run, and the gradual rollout of the operator's default
//! image across Tenants.
//!
//! # The rule
//!
//! A Tenant with `spec.image` runs it; a change of it rolls at once (the user chose it). A
//! Tenant without one follows the operator's default image (`--default-image`, the chart sets
//! it to the operator's own), but when that default changes the Tenants move to it gradually.
//! A Tenant moves only when all of these hold, and otherwise its StatefulSet is applied with
//! the image it already runs:
//!
//! 1. it is not paused (annotation [`UPGRADE_PAUSED_ANNOTATION`] `"true"`);
//! 2. it is Ready on the image it runs: its StatefulSet has [`rolled_out`] (a Tenant already in
//!    trouble is never also made to change image);
//! 3. an upgrade slot is free: fewer than `--max-concurrent-upgrades` Tenants are *moving*
//!    (0 turns the rollout off).
//!
//! Which waiting Tenant takes a freed slot first is not specified.
//!
//! # The ledger is the cluster
//!
//! A Tenant is *moving* from the apply that puts the new image into its StatefulSet until that
//! StatefulSet has rolled out on it: that apply marks the StatefulSet with
//! [`UPGRADED_FROM_ANNOTATION`] (the image it leaves), and the reconcile that finds it rolled
//! out drops the mark (event `Upgraded`); the Tenants waiting for a slot are woken as soon as
//! the StatefulSet reports it rolled out ([`frees_slot`]), else retry every [`SLOT_RETRY`]. Slots are counted by listing the StatefulSets (a
//! quorum read, not the watch cache), and nothing is kept in memory: a restarted operator, or
//! the replica that takes the Lease over, counts the same Tenants as moving.
//!
//! Within one process, counting and the apply that takes a slot are one critical section
//! (`Context::upgrade_slots`), so two Tenants reconciled at once cannot both take the last slot;
//! across processes only the Lease holder reconciles ([`crate::reconcile::leader`]). A crash
//! before that apply leaves nothing (the next reconcile decides again); after it, a marked
//! StatefulSet, whose slot stays taken until it rolls out, as it should.
//!
//! A moved Tenant that never becomes Ready keeps its slot: the rollout stops there, as after a
//! failed canary, and the waiting Tenants name it. Fixing it, setting its `spec.image`, or
//! deleting it frees the slot. While the StatefulSet is missing (recreated with larger
//! volumes), the image it ran is read from `status.currentImage`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::events::EventType;

use super::conditions::{ConditionState, reason};
use super::{Error, Run};
use crate::build::MANAGED_BY;
use crate::build::workload::object_server_image;
use crate::crd::Tenant;
use crate::crd::tenant::UPGRADE_PAUSED_ANNOTATION;
use crate::reconcile::status::UP_TO_DATE;

/// StatefulSet annotation: the image a Tenant is moving away from while the rollout of the
/// operator's default image moves it (the slot it holds). See the module doc.
pub const UPGRADED_FROM_ANNOTATION: &str = "coffer.dev/upgraded-from";

/// How soon a Tenant waiting for an upgrade slot looks again (a slot freed by a Tenant that
/// rolled out wakes the waiting ones at once; this covers a holder deleted or re-pinned).
pub const SLOT_RETRY: Duration = Duration::from_secs(30);

/// Whether `sts` has rolled out: the StatefulSet controller has seen its current spec, every
/// replica runs the update revision and is ready (and the current revision is the update one,
/// when the controller says).
pub fn rolled_out(sts: &StatefulSet) -> bool {
    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    sts.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some()
            && s.observed_generation == sts.metadata.generation
            && s.updated_replicas.unwrap_or(0) == want
            && s.ready_replicas.unwrap_or(0) == want
            && match (&s.current_revision, &s.update_revision) {
                (Some(current), Some(update)) => current == update,
                _ => true,
            }
    })
}

/// The object-server image of the pod template a StatefulSet's `ControllerRevision` records
/// (its data is the patch `{"spec": {"template": …}}`).
pub fn image_of_revision(rev: &ControllerRevision) -> Option<String> {
    rev.data
        .as_ref()?
        .0
        .pointer("/spec/template/spec/containers")?
        .as_array()?
        .iter()
        .find(|c| c["name"] == crate::build::workload::OBJECT_SERVER)?
        .get("image")?
        .as_str()
        .map(str::to_string)
}

/// The version an image reference names: its digest when pinned by one (`…@sha256:…`), else
/// its tag, else `latest` (what a runtime pulls for a bare name).
pub fn version_of(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_string(),
        _ => "latest".to_string(),
    }
}

/// Whether `tenant`'s status says it waits for an upgrade slot (it is woken when one frees).
pub fn waits_for_slot(tenant: &Tenant) -> bool {
    tenant.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == UP_TO_DATE && c.reason == reason::WAITING_FOR_UPGRADE_SLOT)
    })
}

/// Whether `sts` is marked as moving and has rolled out: its slot is free (the Tenants waiting
/// for one are woken by the controller's StatefulSet watch).
pub fn frees_slot(sts: &StatefulSet) -> bool {
    let live = Live::of(sts);
    live.upgraded_from.is_some() && live.rolled_out
}

/// What the Tenant's StatefulSet, as it is in the cluster, says for [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The object-server image of its pod template.
    pub image: Option<String>,
    /// See [`rolled_out`].
    pub rolled_out: bool,
    /// Its [`UPGRADED_FROM_ANNOTATION`].
    pub upgraded_from: Option<String>,
}

impl Live {
    /// What `sts` says.
    pub fn of(sts: &StatefulSet) -> Self {
        Self {
            image: object_server_image(sts),
            rolled_out: rolled_out(sts),
            upgraded_from: sts
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(UPGRADED_FROM_ANNOTATION))
                .cloned(),
        }
    }
}

/// Where a Tenant stands with respect to the image it should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Its StatefulSet has (or gets) the image it should run.
    Current,
    /// The rollout moved it from `from`; not rolled out yet (it holds a slot).
    Moving { from: String },
    /// The rollout moved it from `from` and it has now rolled out (the slot is freed).
    Finished { from: String },
    /// Paused by the annotation while the default is `default`.
    Paused { default: String },
    /// Not Ready on its image while the default is `default`.
    NotReady { default: String },
    /// Ready, but `holders` take every one of the `max` slots.
    WaitingForSlot {
        default: String,
        holders: Vec<String>,
        max: usize,
    },
}

/// [`plan`]'s answer before slots are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Build the StatefulSet with `image`.
    Run { image: String, standing: Standing },
    /// Ready on `from`, not paused: moves to `to` when a slot is free.
    NeedsSlot { from: String, to: String },
}

/// The image `tenant` should get now, from the operator's `default` image, its StatefulSet as
/// it is (`live`, `None` when missing) and the image its status last recorded (the module doc
/// says why each case is what it is).
pub fn plan(tenant: &Tenant, default: &str, live: Option<&Live>, recorded: Option<&str>) -> Plan {
    let run = |image: &str| {
        let standing = match live {
            Some(Live {
                image: Some(on),
                rolled_out,
                upgraded_from: Some(from),
            }) if on == image => {
                if *rolled_out {
                    Standing::Finished { from: from.clone() }
                } else {
                    Standing::Moving { from: from.clone() }
                }
            }
            _ => Standing::Current,
        };
        Plan::Run {
            image: image.to_string(),
            standing,
        }
    };
    if let Some(image) = &tenant.spec.image {
        return run(image);
    }
    let live_image = live.and_then(|l| l.image.as_deref());
    let Some(current) = live_image.or(recorded) else {
        // Nothing runs yet: a new Tenant starts on the default.
        return run(default);
    };
    if current == default {
        return run(default);
    }
    let hold = |standing: Standing| match run(current) {
        // Still moving to an earlier default: it keeps its mark and its slot.
        Plan::Run {
            image,
            standing: moving @ Standing::Moving { .. },
        } => Plan::Run {
            image,
            standing: moving,
        },
        Plan::Run { image, .. } => Plan::Run { image, standing },
        needs => needs,
    };
    let default = default.to_string();
    if tenant.upgrade_paused() {
        return hold(Standing::Paused { default });
    }
    if !live.is_some_and(|l| l.rolled_out) {
        return hold(Standing::NotReady { default });
    }
    Plan::NeedsSlot {
        from: current.to_string(),
        to: default,
    }
}

/// The `UpToDate` condition for `standing` on `image` while the pods run `running` (a
/// rollout of another change on the same image is `Progressing`'s business, not this one's);
/// `previous` is the condition's reason before this reconcile.
pub fn up_to_date(
    standing: &Standing,
    image: &str,
    running: Option<&str>,
    previous: Option<&str>,
) -> ConditionState {
    match standing {
        Standing::Current if running == Some(image) => {
            let why = if previous == Some(reason::UPGRADED) {
                reason::UPGRADED
            } else {
                reason::IMAGE_CURRENT
            };
            ConditionState::holds(why, format!("the pods run {image}"))
        }
        Standing::Current => {
            ConditionState::fails(reason::UPGRADING, format!("rolling out {image}"))
        }
        Standing::Moving { from } => ConditionState::fails(
            reason::UPGRADING,
            format!("rolling from {from} to {image}, the operator's default image"),
        ),
        Standing::Finished { from } => ConditionState::holds(
            reason::UPGRADED,
            format!("upgraded from {from}: every replica is ready on {image}"),
        ),
        Standing::Paused { default } => ConditionState::fails(
            reason::UPGRADE_PAUSED,
            format!(
                "annotation {UPGRADE_PAUSED_ANNOTATION} is \"true\": stays on {image} (the operator's default image is {default})"
            ),
        ),
        Standing::NotReady { default } => ConditionState::fails(
            reason::NOT_READY_FOR_UPGRADE,
            format!(
                "not Ready on {image}: the operator's default image {default} waits until every replica is ready"
            ),
        ),
        Standing::WaitingForSlot {
            default,
            holders,
            max: 0,
        } => ConditionState::fails(
            reason::WAITING_FOR_UPGRADE_SLOT,
            format!(
                "stays on {image}: upgrades to the operator's default image {default} are off (--max-concurrent-upgrades=0){}",
                if holders.is_empty() {
                    String::new()
                } else {
                    format!("; moving: {}", holders.join(", "))
                }
            ),
        ),
        Standing::WaitingForSlot {
            default,
            holders,
            max,
        } => ConditionState::fails(
            reason::WAITING_FOR_UPGRADE_SLOT,
            format!(
                "stays on {image}: waiting for an upgrade slot to move to the operator's default image {default} ({} of {max} taken by {})",
                holders.len(),
                holders.join(", ")
            ),
        ),
    }
}

/// What the image step decided, for the apply and the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChoice {
    /// The image of the object-server (and of a KES sidecar without its own).
    pub image: String,
    /// Where the Tenant stands.
    pub standing: Standing,
}

/// The upgrade slot a reconcile takes: held until the StatefulSet carrying the new image is
/// applied, so that no other reconcile of this process counts the slots before it.
pub(super) type SlotGuard<'a> = tokio::sync::MutexGuard<'a, ()>;

impl ImageChoice {
    /// The [`UPGRADED_FROM_ANNOTATION`] the StatefulSet carries after this apply.
    pub fn upgraded_from(&self) -> Option<&str> {
        match &self.standing {
            Standing::Moving { from } => Some(from),
            _ => None,
        }
    }
}

impl<'a> Run<'a> {
    /// Chooses the image for this reconcile (see the module doc); `live` is the StatefulSet as
    /// it is in the cluster.
    pub(super) async fn choose_image(
        &self,
        live: Option<&StatefulSet>,
    ) -> Result<(ImageChoice, Option<SlotGuard<'a>>), Error> {
        let live = live.map(Live::of);
        let recorded = self
            .tenant
            .status
            .as_ref()
            .and_then(|s| s.current_image.as_deref());
        let default = &self.ctx.default_image;
        let (from, to) = match plan(self.tenant, default, live.as_ref(), recorded) {
            Plan::Run { image, standing } => return Ok((ImageChoice { image, standing }, None)),
            Plan::NeedsSlot { from, to } => (from, to),
        };
        let ctx: &'a crate::reconcile::Context = self.ctx;
        let slot = ctx.upgrade_slots.lock().await;
        let holders = self.slot_holders().await?;
        let max = ctx.max_concurrent_upgrades();
        if holders.len() < max {
            tracing::info!(tenant = %self.names.tenant, %from, %to, "upgrade slot taken");
            let choice = ImageChoice {
                image: to,
                standing: Standing::Moving { from },
            };
            Ok((choice, Some(slot)))
        } else {
            let choice = ImageChoice {
                image: from,
                standing: Standing::WaitingForSlot {
                    default: to,
                    holders,
                    max,
                },
            };
            Ok((choice, None))
        }
    }

    /// `namespace/name` of every other Tenant moving (see the module doc), listed from the API
    /// server in every namespace the operator watches.
    async fn slot_holders(&self) -> Result<Vec<String>, Error> {
        let me = (self.names.namespace.as_str(), self.names.tenant.as_str());
        let params =
            ListParams::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
        let mut holders = Vec::new();
        for api in self.ctx.stateful_set_apis(&self.names.namespace) {
            for sts in api.list(&params).await?.items {
                let ns = sts.metadata.namespace.as_deref().unwrap_or_default();
                let name = sts.metadata.name.as_deref().unwrap_or_default();
                let live = Live::of(&sts);
                if live.upgraded_from.is_some() && !live.rolled_out && (ns, name) != me {
                    holders.push(format!("{ns}/{name}"));
                }
            }
        }
        holders.sort();
        holders.dedup();
        Ok(holders)
    }

    /// The object-server image the pods of `applied` run: its template's once rolled out or
    /// when the current revision is the update one, else the image of its current revision's
    /// `ControllerRevision`, else what the status recorded.
    pub(super) async fn running_image(
        &self,
        applied: &StatefulSet,
    ) -> Result<Option<String>, Error> {
        let recorded = || {
            self.tenant
                .status
                .as_ref()
                .and_then(|s| s.current_image.clone())
        };
        let template = object_server_image(applied);
        if rolled_out(applied) {
            return Ok(template);
        }
        let Some(st) = applied.status.as_ref() else {
            return Ok(recorded());
        };
        let seen = st.observed_generation.is_some()
            && st.observed_generation == applied.metadata.generation;
        match (&st.current_revision, &st.update_revision) {
            (Some(current), Some(update)) if seen && current == update => Ok(template),
            (Some(current), _) => {
                let api: Api<ControllerRevision> =
                    Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
                // Without RBAC for it (an older install), the status is the next best source.
                let revision = match api.get_opt(current).await {
                    Ok(revision) => revision,
                    Err(kube::Error::Api(s)) if s.code == 403 => None,
                    Err(e) => return Err(e.into()),
                };
                Ok(revision
                    .as_ref()
                    .and_then(image_of_revision)
                    .or_else(recorded))
            }
            _ => Ok(recorded()),
        }
    }

    /// Publishes an event when the rollout changed the `UpToDate` reason (a Tenant simply on
    /// its image, or rolling to its own `spec.image`, is told by `Progressing`).
    pub(super) async fn announce_upgrade(&self, state: &ConditionState, standing: &Standing) {
        let previous = self
            .tenant
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == UP_TO_DATE))
            .map(|c| c.reason.as_str());
        if *standing != Standing::Current && previous != Some(state.reason) {
            self.publish(EventType::Normal, state.reason, state.message.clone())
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::fixtures;

    const OLD: &str = "ghcr.io/coffer-dev/coffer:0.1.0";
    const NEW: &str = "ghcr.io/coffer-dev/coffer:0.2.0";

    fn live(image: &str, rolled_out: bool, upgraded_from: Option<&str>) -> Live {
        Live {
            image: Some(image.into()),
            rolled_out,
            upgraded_from: upgraded_from.map(Into::into),
        }
    }

    fn tenant(paused: bool, image: Option<&str>) -> Tenant {
        let (mut t, _) = fixtures();
        t.spec.image = image.map(Into::into);
        if paused {
            t.metadata.annotations =
                Some([(UPGRADE_PAUSED_ANNOTATION.to_string(), "true".to_string())].into());
        }
        t
    }

    fn runs(image: &str, standing: Standing) -> Plan {
        Plan::Run {
            image: image.into(),
            standing,
        }
    }

    #[test]
    fn a_ready_follower_on_an_older_image_needs_a_slot() {
        let l = live(OLD, true, None);
        assert_eq!(
            plan(&tenant(false, None), NEW, Some(&l), None),
            Plan::NeedsSlot {
                from: OLD.into(),
                to: NEW.into()
            }
        );
    }

    #[test]
    fn paused_or_not_ready_followers_stay_on_their_image() {
        let ready = live(OLD, true, None);
        assert_eq!(
            plan(&tenant(true, None), NEW, Some(&ready), None),
            runs(
                OLD,
                Standing::Paused {
                    default: NEW.into()
                }
            )
        );
        let rolling = live(OLD, false, None);
        assert_eq!(
            plan(&tenant(false, None), NEW, Some(&rolling), None),
            runs(
                OLD,
                Standing::NotReady {
                    default: NEW.into()
                }
            )
        );
        // No StatefulSet (recreated with larger volumes): the recorded image, not the default.
        assert_eq!(
            plan(&tenant(false, None), NEW, None, Some(OLD)),
            runs(
                OLD,
                Standing::NotReady {
                    default: NEW.into()
                }
            )
        );
        // "false" or another value does not pause.
        let mut t = tenant(true, None);
        t.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(UPGRADE_PAUSED_ANNOTATION.into(), "false".into());
        assert!(matches!(
            plan(&t, NEW, Some(&ready), None),
            Plan::NeedsSlot { .. }
        ));
    }

    #[test]
    fn an_explicit_image_and_a_new_tenant_apply_at_once() {
        let rolling = live(OLD, false, None);
        let t = tenant(true, Some("registry.example/coffer:9"));
        assert_eq!(
            plan(&t, NEW, Some(&rolling), None),
            runs("registry.example/coffer:9", Standing::Current)
        );
        assert_eq!(
            plan(&tenant(false, None), NEW, None, None),
            runs(NEW, Standing::Current)
        );
    }

    #[test]
    fn a_moving_tenant_keeps_its_mark_until_rolled_out() {
        let moving = live(NEW, false, Some(OLD));
        assert_eq!(
            plan(&tenant(false, None), NEW, Some(&moving), None),
            runs(NEW, Standing::Moving { from: OLD.into() })
        );
        // Paused once moved: it stays where it is, on the new image.
        assert_eq!(
            plan(&tenant(true, None), NEW, Some(&moving), None),
            runs(NEW, Standing::Moving { from: OLD.into() })
        );
        // The default changed again meanwhile: it finishes its move first, holding its slot.
        assert_eq!(
            plan(&tenant(false, None), "coffer:0.3.0", Some(&moving), None),
            runs(NEW, Standing::Moving { from: OLD.into() })
        );
        let done = live(NEW, true, Some(OLD));
        assert_eq!(
            plan(&tenant(false, None), NEW, Some(&done), None),
            runs(NEW, Standing::Finished { from: OLD.into() })
        );
    }

    #[test]
    fn versions_of_image_references() {
        assert_eq!(version_of(NEW), "0.2.0");
        assert_eq!(version_of("localhost:5000/coffer:1.2"), "1.2");
        assert_eq!(version_of("localhost:5000/coffer"), "latest");
        assert_eq!(version_of("coffer@sha256:abc"), "sha256:abc");
        assert_eq!(version_of("coffer:1.0@sha256:abc"), "sha256:abc");
    }

    #[test]
    fn conditions_say_why_a_tenant_is_not_on_the_default() {
        let waiting = Standing::WaitingForSlot {
            default: NEW.into(),
            holders: vec!["shop/a".into()],
            max: 1,
        };
        let c = up_to_date(&waiting, OLD, Some(OLD), None);
        assert_eq!(
            (c.status, c.reason, c.message.as_str()),
            (
                false,
                reason::WAITING_FOR_UPGRADE_SLOT,
                "stays on ghcr.io/coffer-dev/coffer:0.1.0: waiting for an upgrade slot to move to the operator's default image ghcr.io/coffer-dev/coffer:0.2.0 (1 of 1 taken by shop/a)"
            )
        );
        let off = Standing::WaitingForSlot {
            default: NEW.into(),
            holders: vec![],
            max: 0,
        };
        assert!(
            up_to_date(&off, OLD, Some(OLD), None)
                .message
                .contains("--max-concurrent-upgrades=0")
        );
        let finished = Standing::Finished { from: OLD.into() };
        assert_eq!(
            up_to_date(&finished, NEW, Some(NEW), None).reason,
            reason::UPGRADED
        );
        // The next reconcile (the mark gone) keeps saying it was upgraded.
        assert_eq!(
            up_to_date(&Standing::Current, NEW, Some(NEW), Some(reason::UPGRADED)).reason,
            reason::UPGRADED
        );
        assert_eq!(
            up_to_date(&Standing::Current, NEW, Some(NEW), None).reason,
            reason::IMAGE_CURRENT
        );
        assert_eq!(
            up_to_date(&Standing::Current, NEW, Some(OLD), None).reason,
            reason::UPGRADING
        );
        assert_eq!(
            up_to_date(&Standing::Current, NEW, None, None).reason,
            reason::UPGRADING
        );
    }
}
