//! Step 6: the Tenant's status. [`next_status`] is pure: what the conditions and fields
//! become after a reconcile that was blocked or that deployed; [`Run`] writes it only when it
//! changed, and publishes an event when `Ready` flips.

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;

use super::apply::Applied;
use super::conditions::{Blocker, ConditionState, reason};
use super::leaves::Leaves;
use super::upgrade::{self, rolled_out, version_of};
use super::{Error, Run};
use crate::build::workload::object_server_image;
use crate::build::{Certs, Names};
use crate::crd::{Tenant, TenantStatus};
use crate::reconcile::status::{
    self, CERTIFICATES_READY, DEGRADED, KMS_READY, PROGRESSING, READY, UP_TO_DATE, USERS_READY,
    set, set_state,
};

/// How a reconcile ended, as the status reports it.
pub enum Report {
    /// Not deployed: `Degraded` with the blocker's reason.
    Blocked {
        blocker: Blocker,
        kms_ready: ConditionState,
    },
    /// Every object applied.
    Deployed {
        kms_ready: ConditionState,
        deployed: Box<Deployed>,
    },
}

/// What a reconcile that applied everything adds to the status.
pub struct Deployed {
    /// The object-server's KES identity.
    pub identity: String,
    /// When the first leaf expires.
    pub expiry: Option<time::OffsetDateTime>,
    /// Ready pods of the StatefulSet.
    pub ready_replicas: i32,
    /// Every replica runs the current pod template and is ready.
    pub updated: bool,
    /// The object-server image of the current pod template.
    pub image: String,
    /// User Secrets in effect.
    pub users_in_effect: i32,
    /// The `UsersReady` condition.
    pub users_ready: ConditionState,
    /// Why the volumes could not follow `spec.storage` (`Degraded=True`), if they could not.
    pub storage_problem: Option<ConditionState>,
    /// The StatefulSet is being recreated with larger claims: `Ready` keeps its value (the
    /// pods keep serving), `Progressing` says so.
    pub recreating: bool,
    /// The size of the StatefulSet's claim template (`status.claimSize`); `None` keeps it.
    pub claim_size: Option<String>,
    /// The images and the `UpToDate` condition.
    pub upgrade: ImageReport,
}

/// What the status says of the images (see [`super::upgrade`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// The `UpToDate` condition; `None` keeps it (while the StatefulSet is recreated).
    pub up_to_date: Option<ConditionState>,
    /// The image the pods run (`status.currentImage`).
    pub current: Option<String>,
    /// The image they roll to, when another (`status.targetImage`).
    pub target: Option<String>,
}

/// The status after `report`, from the Tenant's current one; `now` stamps changed conditions.
pub fn next_status(
    tenant: &Tenant,
    names: &Names,
    report: &Report,
    now: Timestamp,
) -> TenantStatus {
    let generation = tenant.metadata.generation;
    let mut st: TenantStatus = tenant.status.clone().unwrap_or_default();
    let conds = &mut st.conditions;
    match report {
        Report::Blocked { blocker, kms_ready } => {
            set_state(conds, KMS_READY, kms_ready, generation, now);
            let msg = &blocker.message;
            set(
                conds,
                DEGRADED,
                true,
                blocker.reason,
                msg.clone(),
                generation,
                now,
            );
            set(
                conds,
                READY,
                false,
                blocker.reason,
                msg.clone(),
                generation,
                now,
            );
            set(
                conds,
                PROGRESSING,
                false,
                blocker.reason,
                "blocked until the problem above is fixed",
                generation,
                now,
            );
        }
        Report::Deployed {
            kms_ready,
            deployed: x,
        } => {
            set_state(conds, KMS_READY, kms_ready, generation, now);
            set(
                conds,
                CERTIFICATES_READY,
                true,
                reason::ISSUED,
                "every certificate is issued by the Tenant CA and current",
                generation,
                now,
            );
            let degraded = x.storage_problem.clone().unwrap_or_else(|| ConditionState {
                status: false,
                reason: reason::AS_EXPECTED,
                message: String::new(),
            });
            set_state(conds, DEGRADED, &degraded, generation, now);
            set_state(conds, USERS_READY, &x.users_ready, generation, now);
            let want = tenant.spec.replicas;
            let (progressing, ready) = if x.recreating {
                let message = format!(
                    "claims expanded to {}; recreating the StatefulSet, its pods left running",
                    tenant.spec.storage.size
                );
                let expanding = ConditionState::holds(reason::VOLUMES_EXPANDING, message);
                set_state(conds, PROGRESSING, &expanding, generation, now);
                (None, None)
            } else if x.updated {
                st.image = Some(x.image.clone());
                (
                    Some(ConditionState::fails(
                        reason::ROLLED_OUT,
                        format!("{want}/{want} replicas up to date"),
                    )),
                    Some(ConditionState::holds(
                        reason::ALL_REPLICAS_READY,
                        format!("{want}/{want} replicas ready"),
                    )),
                )
            } else {
                let counted = format!("{}/{want} replicas ready", x.ready_replicas);
                (
                    Some(ConditionState::holds(reason::ROLLING_OUT, counted.clone())),
                    Some(ConditionState::fails(reason::REPLICAS_NOT_READY, counted)),
                )
            };
            if let (Some(progressing), Some(ready)) = (progressing, ready) {
                set_state(conds, PROGRESSING, &progressing, generation, now);
                set_state(conds, READY, &ready, generation, now);
                st.ready_replicas = Some(x.ready_replicas);
            }
            if let Some(up_to_date) = &x.upgrade.up_to_date {
                set_state(conds, UP_TO_DATE, up_to_date, generation, now);
            }
            st.current_version = x.upgrade.current.as_deref().map(version_of);
            st.current_image = x.upgrade.current.clone();
            st.target_image = x.upgrade.target.clone();
            st.kes_identity = Some(x.identity.clone());
            st.certificate_expiry = x.expiry.and_then(|e| {
                e.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
            if let Some(size) = &x.claim_size {
                st.claim_size = Some(size.clone());
            }
            st.endpoint = Some(names.endpoint());
            st.key_name = Some(tenant.key_name());
            st.users = Some(x.users_in_effect);
        }
    }
    st.selector = Some(
        crate::build::labels(names)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    st.observed_generation = generation;
    st
}

impl Run<'_> {
    /// Reports a Tenant that is not deployed.
    pub(super) async fn report_blocked(
        &self,
        blocker: Blocker,
        kms_ready: ConditionState,
    ) -> Result<(), Error> {
        self.write_status(&Report::Blocked { blocker, kms_ready })
            .await
    }

    /// Reports a deployed Tenant, and publishes an event when it became or stopped being Ready.
    pub(super) async fn report_deployed(
        &self,
        kms_ready: ConditionState,
        certs: &Certs,
        leaves: &Leaves,
        applied: Applied,
    ) -> Result<(), Error> {
        let sts = applied.stateful_set.as_ref();
        let sts_status = sts.and_then(|s| s.status.as_ref());
        let upgrade = self.image_report(&applied).await?;
        if let Some(up_to_date) = &upgrade.up_to_date {
            self.announce_upgrade(up_to_date, &applied.image.standing)
                .await;
        }
        let deployed = Deployed {
            identity: crate::pki::identity_of_pem(&certs.kes_client.cert)?,
            expiry: leaves.first_expiry,
            ready_replicas: sts_status.and_then(|s| s.ready_replicas).unwrap_or(0),
            updated: sts.is_some_and(rolled_out),
            image: applied.image.image.clone(),
            users_in_effect: applied.users_in_effect,
            users_ready: applied.users_ready,
            storage_problem: applied.storage_problem,
            recreating: applied.stateful_set.is_none(),
            claim_size: sts.and_then(super::storage::claim_template_size),
            upgrade,
        };
        let was_ready = self
            .tenant
            .status
            .as_ref()
            .is_some_and(|s| status::is_true(&s.conditions, READY));
        // While the StatefulSet is recreated, `Ready` keeps its value: no event.
        let ready = if deployed.recreating {
            was_ready
        } else {
            deployed.updated
        };
        self.write_status(&Report::Deployed {
            kms_ready,
            deployed: Box::new(deployed),
        })
        .await?;
        if ready != was_ready {
            let (reason, note) = if ready {
                (reason::READY, "every replica is ready".to_string())
            } else {
                (
                    reason::PROGRESSING,
                    format!(
                        "waiting for replicas of StatefulSet {:?}",
                        self.names.tenant
                    ),
                )
            };
            self.publish(EventType::Normal, reason, note).await;
        }
        Ok(())
    }

    /// The images the pods run and roll to, and the `UpToDate` condition.
    async fn image_report(&self, applied: &Applied) -> Result<ImageReport, Error> {
        let previous = self.tenant.status.as_ref();
        let Some(sts) = applied.stateful_set.as_ref() else {
            // Being recreated: the pods run on, as the status said.
            return Ok(ImageReport {
                up_to_date: None,
                current: previous.and_then(|s| s.current_image.clone()),
                target: previous.and_then(|s| s.target_image.clone()),
            });
        };
        let current = self.running_image(sts).await?;
        let target = object_server_image(sts).filter(|t| Some(t) != current.as_ref());
        let previous_reason = previous
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == UP_TO_DATE))
            .map(|c| c.reason.as_str());
        let up_to_date = upgrade::up_to_date(
            &applied.image.standing,
            &applied.image.image,
            current.as_deref(),
            previous_reason,
        );
        Ok(ImageReport {
            up_to_date: Some(up_to_date),
            current,
            target,
        })
    }

    /// Writes `.status` when [`next_status`] differs from the stored one.
    async fn write_status(&self, report: &Report) -> Result<(), Error> {
        let st = next_status(self.tenant, &self.names, report, Timestamp::now());
        if self.tenant.status.as_ref() == Some(&st) {
            return Ok(());
        }
        let api: Api<Tenant> = Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
        let mut patch = serde_json::json!({ "status": st });
        // A merge patch keeps what it does not name: these fields go when they no longer apply.
        for cleared in ["targetImage", "currentImage", "currentVersion"] {
            if patch["status"].get(cleared).is_none() {
                patch["status"][cleared] = serde_json::Value::Null;
            }
        }
        api.patch_status(
            &self.names.tenant,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        Ok(())
    }
}
