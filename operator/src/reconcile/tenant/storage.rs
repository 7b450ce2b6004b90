//! Part of step 5: the StatefulSet's volumes when `spec.storage.size` changes.
//!
//! A StatefulSet's `volumeClaimTemplates` cannot be updated (Kubernetes 1.37 still refuses any
//! change of them with a 422), and the CRD refuses what cannot be done at all: a smaller size,
//! another class, another shared claim. A larger size is done as MinIO Operator does it:
//!
//! 1. every claim `data-<t>-<ordinal>` is patched to the new size; the API server's
//!    `PersistentVolumeClaimResize` admission refuses that unless the claim's StorageClass has
//!    `allowVolumeExpansion`, and the volume plugin then grows the volume (and the file system,
//!    online or at the next mount);
//! 2. the StatefulSet is deleted with `propagationPolicy: Orphan`: its pods and claims stay and
//!    keep serving; nothing is applied while the garbage collector orphans them;
//! 3. the next reconcile creates the StatefulSet again, with the new template; it adopts the
//!    running pods (same selector), and since their template has not changed they are not
//!    restarted.
//!
//! When a claim cannot be expanded, the StatefulSet is applied with the claim template it has
//! (so that every other change still rolls out) and the Tenant is `Degraded` with reason
//! [`reason::VOLUME_EXPANSION_NOT_SUPPORTED`] until the size is set back or the class allows it.
//! Setting it back is allowed by the CRD down to `status.claimSize` (the template's size,
//! written by every reconcile that applied the StatefulSet), never below.
//! A crash between 1 and 2 leaves claims larger than the template: the next reconcile finds the
//! template still smaller, patches nothing more (each claim is already as large) and deletes.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;

use super::conditions::{ConditionState, reason};
use super::{Error, Run};

/// The name of the volume claim template (and so the prefix of every claim).
const CLAIM_TEMPLATE: &str = "data";

/// What to do with the StatefulSet after looking at its volumes.
#[derive(Debug)]
pub(super) enum VolumePlan {
    /// Apply the StatefulSet as built.
    Apply,
    /// Apply it with the live claim templates, and report the problem as `Degraded`.
    ApplyKeepingVolumes(ConditionState),
    /// Do not apply it now: it is being recreated with larger claims; look again soon.
    Recreating,
}

/// The claim template of `sts` the pods' claims are made from, if it has one.
fn claim_template(sts: &StatefulSet) -> Option<&PersistentVolumeClaim> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(CLAIM_TEMPLATE))
}

/// The size `sts`'s claim template asks for (`status.claimSize`), as written there.
pub(super) fn claim_template_size(sts: &StatefulSet) -> Option<String> {
    let q = claim_template(sts)?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    Some(q.0.clone())
}

/// The requested storage of a claim spec, in bytes.
fn requested_bytes(spec: Option<&PersistentVolumeClaimSpec>) -> Option<f64> {
    let q = spec?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    quantity_bytes(&q.0)
}

/// A Kubernetes quantity (`10Gi`, `1.5G`, `1536Mi`, `2e9`) in bytes.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

impl Run<'_> {
    /// Compares the `live` StatefulSet's claim template with `built`'s and acts as the module
    /// doc says; `built` gets the live templates back when they must stay.
    pub(super) async fn plan_volumes(
        &self,
        api: &Api<StatefulSet>,
        live: Option<StatefulSet>,
        built: &mut StatefulSet,
    ) -> Result<VolumePlan, Error> {
        let Some(live) = live else {
            return Ok(VolumePlan::Apply);
        };
        if live.metadata.deletion_timestamp.is_some() {
            return Ok(VolumePlan::Recreating);
        }
        let (Some(had), Some(wanted)) = (
            claim_template(&live).cloned(),
            claim_template(built).cloned(),
        ) else {
            // A change between a shared claim and claims per pod: refused by the CRD; a Tenant
            // stored before that rule fails its apply, reported as `ApplyFailed`.
            return Ok(VolumePlan::Apply);
        };
        let (Some(had_bytes), Some(wanted_bytes)) = (
            requested_bytes(had.spec.as_ref()),
            requested_bytes(wanted.spec.as_ref()),
        ) else {
            return Ok(VolumePlan::Apply);
        };
        let size = &self.tenant.spec.storage.size;
        if wanted_bytes == had_bytes {
            return Ok(VolumePlan::Apply);
        }
        let keep_live = |built: &mut StatefulSet| {
            if let (Some(b), Some(l)) = (built.spec.as_mut(), live.spec.as_ref()) {
                b.volume_claim_templates = l.volume_claim_templates.clone();
            }
        };
        if wanted_bytes < had_bytes {
            keep_live(built);
            return Ok(VolumePlan::ApplyKeepingVolumes(ConditionState::holds(
                reason::VOLUME_SHRINK_REFUSED,
                format!(
                    "storage.size {size} is smaller than the claims' size: volumes never shrink; set it back"
                ),
            )));
        }
        let had_size = claim_template_size(&live).unwrap_or_default();
        if let Err(problem) = self
            .expand_claims(&live, size, wanted_bytes, &had_size)
            .await?
        {
            keep_live(built);
            self.publish(EventType::Warning, problem.reason, problem.message.clone())
                .await;
            return Ok(VolumePlan::ApplyKeepingVolumes(problem));
        }
        api.delete(&self.names.tenant, &DeleteParams::orphan())
            .await?;
        self.publish(
            EventType::Normal,
            reason::VOLUMES_EXPANDING,
            format!(
                "expanded the claims to {size}; recreating StatefulSet {:?} with that size, its pods left running",
                self.names.tenant
            ),
        )
        .await;
        Ok(VolumePlan::Recreating)
    }

    /// Patches every existing claim of `live` smaller than `wanted_bytes` to `size`. A claim
    /// the API server refuses to expand is the `Degraded` condition to report.
    async fn expand_claims(
        &self,
        live: &StatefulSet,
        size: &str,
        wanted_bytes: f64,
        had_size: &str,
    ) -> Result<Result<(), ConditionState>, Error> {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
        let replicas = live
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(self.tenant.spec.replicas);
        for ordinal in 0..replicas {
            let name = format!("{CLAIM_TEMPLATE}-{}-{ordinal}", self.names.tenant);
            let Some(claim) = claims.get_opt(&name).await? else {
                continue;
            };
            if requested_bytes(claim.spec.as_ref()).is_some_and(|b| b >= wanted_bytes) {
                continue;
            }
            let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
            match claims
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if matches!(s.code, 403 | 422) => {
                    let class = claim
                        .spec
                        .as_ref()
                        .and_then(|s| s.storage_class_name.clone())
                        .unwrap_or_else(|| "(default)".into());
                    return Ok(Err(ConditionState::holds(
                        reason::VOLUME_EXPANSION_NOT_SUPPORTED,
                        format!(
                            "cannot expand PersistentVolumeClaim {name:?} (StorageClass {class}) to {size}: {}; set storage.size back to {had_size} (status.claimSize), or allow volume expansion on the class",
                            s.message
                        ),
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::quantity_bytes;

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(quantity_bytes("10Gi"), Some(10.0 * 1024f64.powi(3)));
        assert_eq!(quantity_bytes("1536Mi"), quantity_bytes("1.5Gi"));
        assert_eq!(quantity_bytes("2G"), Some(2e9));
        assert_eq!(quantity_bytes("2e9"), Some(2e9));
        assert_eq!(quantity_bytes("100"), Some(100.0));
        assert!(quantity_bytes("1Gi") < quantity_bytes("1025Mi"));
        assert_eq!(quantity_bytes("ten"), None);
        assert_eq!(quantity_bytes("1Xi"), None);
    }
}
