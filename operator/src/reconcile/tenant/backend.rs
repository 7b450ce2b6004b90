//! Part of step 4: the Secrets a Tenant on `storage.s3` names. The pods take the backend's keys
//! by `secretKeyRef`, so a missing Secret or key would leave them failing to start
//! (`CreateContainerConfigError`) with nothing on the Tenant saying why. They are checked
//! first: a missing one stops the reconcile as a [`Blocker`] (`Degraded`, `Ready=False`, a
//! Warning event) retried every few seconds, and the Secret watch maps its creation to the
//! Tenant at once (`reconcile::secret_refs`), so nothing stays wedged. Only the presence of the
//! keys is checked; values are never read into the status, events or logs.

use k8s_openapi::api::core::v1::Secret;

use super::conditions::{Blocker, reason};
use super::{Run, Stop, WAIT};

/// Whether `secret` holds a non-empty `key`.
fn has_key(secret: &Secret, key: &str) -> bool {
    secret
        .data
        .as_ref()
        .is_some_and(|d| d.get(key).is_some_and(|v| !v.0.is_empty()))
}

impl Run<'_> {
    /// `name=resourceVersion` of the credentials Secret (what rolls the pods when it changes),
    /// `None` without `storage.s3`; a [`Blocker`] when a named Secret or key is missing.
    pub(super) async fn check_backend_secrets(&self) -> Result<Option<String>, Stop> {
        let Some(s3) = &self.tenant.spec.storage.s3 else {
            return Ok(None);
        };
        let creds = &s3.credentials_secret;
        let mut wanted = vec![(
            creds.name.as_str(),
            vec![creds.access_key_key.as_str(), creds.secret_key_key.as_str()],
            "credentials",
        )];
        if let Some(ca) = &s3.ca_secret {
            wanted.push((ca.name.as_str(), vec![ca.key.as_str()], "CA"));
        }
        let mut version = None;
        for (name, keys, what) in wanted {
            let blocker = |message: String| {
                Stop::from(
                    Blocker::new(reason::BACKEND_SECRET_MISSING, message, WAIT).with_warning(),
                )
            };
            let Some(secret) = self.secrets.get_opt(name).await? else {
                return Err(blocker(format!(
                    "Secret {name:?} (storage.s3 {what}) does not exist; the pods cannot start without it"
                )));
            };
            if let Some(key) = keys.iter().find(|k| !has_key(&secret, k)) {
                return Err(blocker(format!(
                    "Secret {name:?} (storage.s3 {what}) has no key {key:?}"
                )));
            }
            if version.is_none() {
                let rv = secret.metadata.resource_version.unwrap_or_default();
                version = Some(format!("{name}={rv}"));
            }
        }
        Ok(version)
    }
}
