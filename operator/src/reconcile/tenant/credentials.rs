//! Step 2: the root credentials Secret, generated once when absent and never overwritten (a
//! Secret the user made, or one generated earlier, is left as it is). It carries no owner
//! reference, so deleting the Tenant keeps it; one an operator before 0.2 generated with the
//! Tenant's owner reference loses that reference here.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;

use super::conditions::reason;
use super::{Error, Run};
use crate::build::secrets;

impl Run<'_> {
    /// Creates the root credentials Secret when it does not exist. A create that loses the race
    /// to another writer (409) keeps the other's values.
    pub(super) async fn root_credentials(&self) -> Result<(), Error> {
        let root_name = self.tenant.root_secret_name();
        if let Some(existing) = self.secrets.get_opt(&root_name).await? {
            return self.disown(&existing).await;
        }
        match self
            .secrets
            .create(
                &PostParams::default(),
                &secrets::root_credentials(self.tenant),
            )
            .await
        {
            Ok(_) => {
                self.publish(
                    EventType::Normal,
                    reason::ROOT_CREDENTIALS_GENERATED,
                    format!("generated root credentials in Secret {root_name:?}"),
                )
                .await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `obj` carries this Tenant's owner reference.
    pub(super) fn owns(&self, obj: &impl kube::Resource) -> bool {
        let uid = self.tenant.metadata.uid.as_deref();
        obj.meta()
            .owner_references
            .iter()
            .flatten()
            .any(|r| Some(r.uid.as_str()) == uid)
    }

    /// Removes this Tenant's owner reference from `secret` (only that one; its values are
    /// not touched), so that deleting the Tenant keeps it.
    async fn disown(&self, secret: &Secret) -> Result<(), Error> {
        if !self.owns(secret) {
            return Ok(());
        }
        let uid = self.tenant.metadata.uid.as_deref();
        let kept: Vec<_> = secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| Some(r.uid.as_str()) != uid)
            .collect();
        // The resourceVersion makes this patch fail (409) rather than drop a reference
        // someone added meanwhile; the next reconcile tries again.
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": kept,
            "resourceVersion": secret.metadata.resource_version,
        }});
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        self.secrets
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}
