//! Step 5: the users, then every owned object, applied server-side with one field manager.
//! The users file goes first, so that the pods' volume finds it.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::runtime::events::EventType;

use super::conditions::ConditionState;
use super::{Error, Run, apply};
use crate::build::{self, Certs};
use crate::crd::KMS;
use crate::reconcile::status::USERS_READY;
use crate::reconcile::users;

/// What step 5 leaves for the status.
pub(super) struct Applied {
    /// The StatefulSet as the API server returned it (its status says how the rollout goes).
    pub stateful_set: StatefulSet,
    /// How many user Secrets are in effect.
    pub users_in_effect: i32,
    /// The `UsersReady` condition.
    pub users_ready: ConditionState,
}

impl Run<'_> {
    /// Applies the users Secret and every object of [`build::owned`].
    pub(super) async fn apply(&self, kms: &KMS, certs: &Certs) -> Result<Applied, Error> {
        let users = users::gather(self.tenant, &self.secrets).await?;
        let users_ready = users::condition(self.tenant, &users);
        self.warn_invalid_users_once(&users_ready).await;

        let client = &self.ctx.client;
        let ns = &self.names.namespace;
        apply(
            &self.secrets,
            &build::users::secret(self.tenant, &users.users),
        )
        .await?;
        let owned = build::owned(self.tenant, kms, certs, &self.ctx.default_image)?;
        for s in &owned.secrets {
            apply(&self.secrets, s).await?;
        }
        apply(
            &Api::<ConfigMap>::namespaced(client.clone(), ns),
            &owned.config_map,
        )
        .await?;
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        for s in &owned.services {
            apply(&services, s).await?;
        }
        apply(
            &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
            &owned.pdb,
        )
        .await?;
        let stateful_set = apply(
            &Api::<StatefulSet>::namespaced(client.clone(), ns),
            &owned.stateful_set,
        )
        .await?;
        Ok(Applied {
            stateful_set,
            users_in_effect: users.users.len() as i32,
            users_ready,
        })
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
