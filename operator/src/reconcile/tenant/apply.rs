//! Step 5: the users, then every owned object, applied server-side with one field manager.
//! The users file goes first, so that the pods' volume finds it. The StatefulSet's volumes
//! get their own plan ([`super::storage`]). An object the API server refuses (400, 403, 404,
//! 422: retrying the same object cannot help) stops the reconcile as a [`Blocker`] with reason
//! [`reason::APPLY_FAILED`] and a Warning event, never only a log line.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::DeleteParams;
use kube::runtime::events::EventType;

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::conditions::{Blocker, ConditionState, reason};
use super::storage::VolumePlan;
use super::upgrade::{ImageChoice, UPGRADED_FROM_ANNOTATION};
use super::{Run, Stop, apply};
use crate::build::{self, Certs};
use crate::crd::KMS;
use crate::reconcile::status::USERS_READY;
use crate::reconcile::users;

/// How long a refused object waits before it is tried again (a change of the Tenant or of an
/// owned object tries at once).
const REFUSED_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// What step 5 leaves for the status.
pub(super) struct Applied {
    /// The image chosen (see [`super::upgrade`]).
    pub image: ImageChoice,
    /// The StatefulSet as the API server returned it (its status says how the rollout goes);
    /// `None` while it is being recreated with larger claims.
    pub stateful_set: Option<StatefulSet>,
    /// Why the StatefulSet's volumes could not follow `spec.storage` (`Degraded`).
    pub storage_problem: Option<ConditionState>,
    /// How many user Secrets are in effect.
    pub users_in_effect: i32,
    /// The `UsersReady` condition.
    pub users_ready: ConditionState,
}

impl Run<'_> {
    /// Applies the users Secret and every object of [`build::owned`], with the image
    /// [`super::upgrade`] chooses.
    pub(super) async fn apply(&self, kms: &KMS, certs: &Certs) -> Result<Applied, Stop> {
        let users = users::gather(self.tenant, &self.secrets).await?;
        let users_ready = users::condition(self.tenant, &users);
        self.warn_invalid_users_once(&users_ready).await;

        let client = &self.ctx.client;
        let ns = &self.names.namespace;
        self.apply_owned(
            &self.secrets,
            &build::users::secret(self.tenant, &users.users),
        )
        .await?;
        let stateful_sets = Api::<StatefulSet>::namespaced(client.clone(), ns);
        let live = stateful_sets.get_opt(&self.names.tenant).await?;
        // A slot taken is held until the StatefulSet below is applied (the end of this call).
        let (image, _slot) = self.choose_image(live.as_ref()).await?;
        let mut owned = build::owned(self.tenant, kms, certs, &image.image)?;
        if let Some(from) = image.upgraded_from() {
            owned
                .stateful_set
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(UPGRADED_FROM_ANNOTATION.into(), from.into());
        }
        for s in &owned.secrets {
            self.apply_owned(&self.secrets, s).await?;
        }
        self.apply_owned(
            &Api::<ConfigMap>::namespaced(client.clone(), ns),
            &owned.config_map,
        )
        .await?;
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        for s in &owned.services {
            self.apply_owned(&services, s).await?;
        }
        self.apply_owned(
            &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
            &owned.pdb,
        )
        .await?;
        let policies = Api::<NetworkPolicy>::namespaced(client.clone(), ns);
        match &mut owned.network_policy {
            Some(policy) => {
                if let Some(operator_ns) = self.ctx.operator_namespace() {
                    crate::build::network_policy::admit_operator(policy, &operator_ns);
                }
                self.apply_owned(&policies, policy).await?;
            }
            None => self.remove_network_policy(&policies).await?,
        }
        let plan = self
            .plan_volumes(&stateful_sets, live, &mut owned.stateful_set)
            .await?;
        let (stateful_set, storage_problem) = match plan {
            VolumePlan::Recreating => (None, None),
            VolumePlan::Apply => (
                Some(
                    self.apply_owned(&stateful_sets, &owned.stateful_set)
                        .await?,
                ),
                None,
            ),
            VolumePlan::ApplyKeepingVolumes(problem) => (
                Some(
                    self.apply_owned(&stateful_sets, &owned.stateful_set)
                        .await?,
                ),
                Some(problem),
            ),
        };
        Ok(Applied {
            image,
            stateful_set,
            storage_problem,
            users_in_effect: users.users.len() as i32,
            users_ready,
        })
    }

    /// Applies `obj`; a refusal by the API server becomes an [`reason::APPLY_FAILED`] blocker
    /// naming the object. The API server's words are repeated except for a Secret (they could
    /// quote a value).
    async fn apply_owned<K>(&self, api: &Api<K>, obj: &K) -> Result<K, Stop>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
    {
        match apply(api, obj).await {
            Ok(applied) => Ok(applied),
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 404 | 422) => {
                let kind = K::kind(&());
                let name = obj.meta().name.as_deref().unwrap_or_default();
                let said = if kind == "Secret" {
                    format!("HTTP {} {}", s.code, s.reason)
                } else {
                    s.message.clone()
                };
                tracing::warn!(tenant = %self.names.tenant, %kind, name, code = s.code, "owned object refused");
                Err(Blocker::new(
                    reason::APPLY_FAILED,
                    format!("the API server refused {kind} {name:?}: {said}"),
                    REFUSED_RETRY,
                )
                .with_warning()
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes NetworkPolicy `<t>` once `spec.networkPolicy.enabled` is off, when this Tenant
    /// owns it (one of the same name made by someone else is left alone).
    async fn remove_network_policy(&self, policies: &Api<NetworkPolicy>) -> Result<(), Stop> {
        let name = &self.names.tenant;
        if let Some(policy) = policies.get_opt(name).await?
            && self.owns(&policy)
        {
            match policies.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A Warning event naming the invalid user Secrets, once per change of that list.
    async fn warn_invalid_users_once(&self, users_ready: &ConditionState) {
        let previous = self
            .tenant
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == USERS_READY))
            .map(|c| c.message.as_str());
        if !users_ready.status && previous != Some(users_ready.message.as_str()) {
            self.publish(
                EventType::Warning,
                users::INVALID_USER_SECRET,
                users_ready.message.clone(),
            )
            .await;
        }
    }
}
