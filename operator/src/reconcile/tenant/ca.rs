//! Step 3: the Tenant's own CA in Secret `<t>-ca`: read back, issued when absent or
//! unreadable, rotated at 2/3 of its lifetime (old and new trusted while the leaves re-issue),
//! and the previous CA dropped once it has expired. The Secret is written only when it changes.
//! It carries no owner reference: deleting the Tenant keeps it, and a Tenant recreated under
//! the same name reads it back here and keeps its CA.

use kube::runtime::events::EventType;

use super::conditions::reason;
use super::{Error, Run, apply, text};
use crate::build::secrets;
use crate::pki::{Ca, ca::CA_LIFETIME};

impl Run<'_> {
    /// The current CA, stored.
    pub(super) async fn ca(&self) -> Result<Ca, Error> {
        let ca_name = self.names.ca();
        let ca_cn = format!("coffer {}/{} CA", self.names.namespace, self.names.tenant);
        let stored = self.secrets.get_opt(&ca_name).await?;
        let read = stored.as_ref().and_then(|s| {
            Ca::from_pem(
                &text(s, secrets::CA_CERT)?,
                &text(s, secrets::CA_KEY)?,
                text(s, secrets::CA_PREVIOUS),
            )
            .ok()
        });
        let mut ca = match read {
            Some(ca) => ca,
            None => {
                self.publish(
                    EventType::Normal,
                    reason::CA_ISSUED,
                    format!("issued a new CA in Secret {ca_name:?}"),
                )
                .await;
                Ca::generate(&ca_cn, self.now, CA_LIFETIME)?
            }
        };
        if let Some(next) = ca.rotate_if_due(&ca_cn, self.now)? {
            self.publish(
                EventType::Normal,
                reason::CA_ROTATED,
                "CA rotation started: old and new CA trusted while leaves re-issue".into(),
            )
            .await;
            ca = next;
        }
        ca.drop_previous_if_expired(self.now);
        let ca_secret = secrets::ca(self.tenant, &ca);
        // An operator before 0.2 made the Tenant own its CA Secret: applying it again without
        // the owner reference drops it, so that a deletion keeps the CA.
        let owned = stored.as_ref().is_some_and(|s| self.owns(s));
        if owned || stored.as_ref().and_then(|s| s.data.as_ref()) != ca_secret.data.as_ref() {
            apply(&self.secrets, &ca_secret).await?;
        }
        Ok(ca)
    }
}
