//! Step 1: the KMS the Tenant names must exist with a complete credentials Secret, and the
//! Tenant must not reach another Tenant's keys or object names.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::conditions::{Blocker, ConditionState, reason};
use super::{Error, RESYNC, Run, WAIT};
use crate::crd::{KMS, Tenant};
use crate::reconcile::status::{self, READY};

impl Run<'_> {
    /// The KMS and what the Tenant's `KMSReady` says of it; a [`Blocker`] when the KMS or its
    /// credentials Secret is missing or incomplete.
    pub(super) async fn kms(&self) -> Result<Result<(KMS, ConditionState), Blocker>, Error> {
        let kms_api: Api<KMS> = Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
        let Some(kms) = kms_api.get_opt(&self.tenant.spec.kms.name).await? else {
            let msg = format!(
                "KMS {:?} not found in namespace {:?}",
                self.tenant.spec.kms.name, self.names.namespace
            );
            return Ok(Err(Blocker::new(reason::KMS_NOT_FOUND, msg, WAIT)));
        };
        if let Some(problem) = check_kms_secret(&kms, &self.secrets).await? {
            return Ok(Err(Blocker::new(problem.reason, problem.message, WAIT)));
        }
        let ready = kms_ready(&kms);
        Ok(Ok((kms, ready)))
    }

    /// Refuses a Tenant whose key prefix overlaps an older Tenant's (its KES policy would reach
    /// the other's keys), or whose owned objects would take another Tenant's names (see
    /// `build`'s module doc; the CRD refuses such names, this catches Tenants stored before).
    pub(super) async fn check_unique(&self) -> Result<(), super::Stop> {
        let tenant = self.tenant;
        let describe = |other: &Tenant| {
            format!(
                "key prefix {:?} overlaps the prefix {:?} of Tenant {:?}; set spec.encryption.keyPrefix",
                tenant.key_prefix(),
                other.key_prefix(),
                other.name_any()
            )
        };
        let conflict = match self.ctx.cached_tenants() {
            Some(cached) => tenant
                .prefix_conflict(cached.iter().map(|t| t.as_ref()))
                .map(describe),
            None => {
                let listed =
                    Api::<Tenant>::namespaced(self.ctx.client.clone(), &self.names.namespace)
                        .list(&Default::default())
                        .await?;
                tenant.prefix_conflict(&listed.items).map(describe)
            }
        };
        if let Some(msg) = conflict {
            return Err(Blocker::new(reason::KEY_PREFIX_CONFLICT, msg, RESYNC).into());
        }
        if let Some(msg) = crate::build::name_collision(&self.names.tenant) {
            return Err(Blocker::new(reason::NAME_COLLIDES, msg, RESYNC)
                .with_warning()
                .into());
        }
        Ok(())
    }
}

/// The Tenant's `KMSReady`, from the KMS's own `Ready` condition.
fn kms_ready(kms: &KMS) -> ConditionState {
    let conds = kms
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if status::is_true(conds, READY) {
        return ConditionState::holds(
            reason::VAULT_HEALTHY,
            format!("KMS {:?} reports Vault healthy", kms.name_any()),
        );
    }
    let why = conds
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| c.message.clone())
        .unwrap_or_else(|| "not probed yet".into());
    ConditionState::fails(
        reason::VAULT_UNAVAILABLE,
        format!("KMS {:?}: {why}", kms.name_any()),
    )
}

/// `name=resourceVersion` of the KMS's credentials Secret, or `None` when it has none. Only
/// that Secret: the pods take it as environment, read once at start. The Vault CA and client
/// certificate are files KES reads again when they change.
pub(super) async fn kms_secrets_version(
    kms: &KMS,
    secrets_api: &Api<Secret>,
) -> Result<Option<String>, Error> {
    let Some(name) = kms.spec.credentials_secret() else {
        return Ok(None);
    };
    let rv = secrets_api
        .get_opt(name)
        .await?
        .and_then(|s| s.metadata.resource_version)
        .unwrap_or_default();
    Ok(Some(format!("{name}={rv}")))
}

/// A failing condition (reason [`reason::KMS_SECRET_MISSING`] or
/// [`reason::KMS_SECRET_INCOMPLETE`]) when the KMS's credentials Secret is missing or
/// incomplete. Only the presence of the keys is checked.
pub async fn check_kms_secret(
    kms: &KMS,
    secrets_api: &Api<Secret>,
) -> Result<Option<ConditionState>, Error> {
    let Some(a) = &kms.spec.vault.auth.app_role else {
        return Ok(None);
    };
    let Some(secret) = secrets_api.get_opt(&a.secret_name).await? else {
        return Ok(Some(ConditionState::fails(
            reason::KMS_SECRET_MISSING,
            format!(
                "Secret {:?} referenced by KMS {:?} does not exist",
                a.secret_name,
                kms.name_any()
            ),
        )));
    };
    let has = |k: &str| {
        secret
            .data
            .as_ref()
            .is_some_and(|d| d.get(k).is_some_and(|v: &ByteString| !v.0.is_empty()))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(k))
    };
    for k in [&a.role_id_key, &a.secret_id_key] {
        if !has(k) {
            return Ok(Some(ConditionState::fails(
                reason::KMS_SECRET_INCOMPLETE,
                format!(
                    "Secret {:?} referenced by KMS {:?} has no key {k:?}",
                    a.secret_name,
                    kms.name_any()
                ),
            )));
        }
    }
    Ok(None)
}
