//! Step 2: the root credentials Secret, generated once when absent and never overwritten (a
//! Secret the user made, or one generated earlier, is left as it is).

use kube::api::PostParams;
use kube::runtime::events::EventType;

use super::conditions::reason;
use super::{Error, Run};
use crate::build::secrets;

impl Run<'_> {
    /// Creates the root credentials Secret when it does not exist. A create that loses the race
    /// to another writer (409) keeps the other's values.
    pub(super) async fn root_credentials(&self) -> Result<(), Error> {
        let root_name = self.tenant.root_secret_name();
        if self.secrets.get_opt(&root_name).await?.is_some() {
            return Ok(());
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
}
