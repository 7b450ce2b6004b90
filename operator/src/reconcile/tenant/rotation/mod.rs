//! Key rotation (`spec.encryption.rotation`): every key under the Tenant's prefix gets a new
//! version once its newest is one period old, then the object-server's online re-wrap moves
//! every object's data key onto the new versions. `status.rotation` says the keys' versions,
//! the last rotation, the next one and the re-wrap's progress; events `KeyRotated`,
//! `RewrapStarted`, `RewrapDone`, and `KeyRotationFailed`/`RewrapFailed` (Warning).
//!
//! The schedule and its guarantees are [`plan`]'s; Vault is reached by [`transit`] (the KMS's
//! AppRole), the object-server by [`admin`] (the Tenant's root user). Only a KMS with
//! `vault.transit` and AppRole auth can rotate: over K/V, a rotation writes Coffer's versioned
//! key format inside the K/V secret, which only a KES does (the operator does not reach the
//! Tenant's KES, which listens on the pod's loopback only).

pub mod admin;
pub mod plan;
#[cfg(test)]
mod tests;
pub mod transit;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::Run;
use crate::build::secrets::{ROOT_PASSWORD, ROOT_USER};
use crate::crd::kms::Engine;
use crate::crd::tenant::{MIN_ROTATION, RotationStatus};
use crate::crd::{KMS, Tenant};
use crate::reconcile::Error;
use crate::reconcile::kms::session::Target;

/// How soon a rotation that cannot run yet (no Vault token yet, Secrets missing) is retried.
const RETRY: Duration = Duration::from_secs(30);

impl Run<'_> {
    /// Runs the rotation schedule; when to look again (`None`: no rotation configured).
    pub(super) async fn rotation(&self, kms: &KMS) -> Result<Option<Duration>, Error> {
        let previous = self
            .tenant
            .status
            .as_ref()
            .and_then(|s| s.rotation.as_ref());
        let Some(spec) = self.tenant.spec.encryption.rotation.as_deref() else {
            if previous.is_some() {
                self.write_rotation(None).await?;
            }
            return Ok(None);
        };
        let period = match (self.ctx.rotation_period(), crate::duration::parse(spec)) {
            (Some(p), _) => p,
            (None, Ok(p)) if p >= MIN_ROTATION => p,
            _ => {
                return self
                    .not_rotating(previous, crate::crd::tenant::ROTATION_MESSAGE.to_string())
                    .await;
            }
        };
        let mount = match kms.spec.vault.engine() {
            Engine::Transit(mount) if kms.spec.vault.auth.app_role.is_some() => mount,
            Engine::Transit(_) => {
                return self.not_rotating(previous, "encryption.rotation needs a KMS with AppRole auth (the operator rotates with the KMS's AppRole)".into()).await;
            }
            Engine::Kv(..) => {
                return self.not_rotating(previous, format!("encryption.rotation needs a KMS with vault.transit; KMS {:?} keeps its keys in K/V (rotate them with `kes key rotate`)", kms.name_any())).await;
            }
        };
        let kms_key = format!("{}/{}", self.names.namespace, kms.name_any());
        let Some(token) = self.ctx.vault_sessions.token(&kms_key) else {
            // The KMS probe logs in first (after a restart, within a probe).
            return self
                .not_rotating(
                    previous,
                    format!("waiting for KMS {:?} to log in to Vault", kms.name_any()),
                )
                .await
                .map(|_| Some(RETRY));
        };
        let secrets: Api<Secret> = self.secrets.clone();
        let vault_http = match crate::reconcile::kms::vault_ca(kms, &secrets).await? {
            Ok(ca) => crate::reconcile::kms::https_client(ca.as_deref()),
            Err(e) => Err(e),
        };
        let admin = self.admin_client().await?;
        let (vault_http, admin) = match (vault_http, admin) {
            (Ok(v), Ok(a)) => (v, a),
            (Err(e), _) | (_, Err(e)) => {
                return self.not_rotating(previous, e).await.map(|_| Some(RETRY));
            }
        };
        let keys = transit::TransitKeys {
            target: Target {
                http: &vault_http,
                base: kms.spec.vault.endpoint.trim_end_matches('/'),
                namespace: kms.spec.vault.namespace.as_deref(),
            },
            mount,
            token,
        };
        let outcome = plan::run(
            &keys,
            &admin,
            &self.tenant.key_prefix(),
            period,
            previous,
            time::OffsetDateTime::now_utc(),
        )
        .await;
        for (warning, reason, note) in outcome.events {
            let kind = if warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.publish(kind, reason, note).await;
        }
        if previous != Some(&outcome.status) {
            self.write_rotation(Some(&outcome.status)).await?;
        }
        Ok(Some(outcome.next))
    }

    /// Reports why rotation does not run (keeping what is known of the keys).
    async fn not_rotating(
        &self,
        previous: Option<&RotationStatus>,
        message: String,
    ) -> Result<Option<Duration>, Error> {
        let mut st = previous.cloned().unwrap_or_default();
        st.message = Some(message);
        if previous != Some(&st) {
            self.write_rotation(Some(&st)).await?;
        }
        Ok(Some(crate::reconcile::tenant::RESYNC))
    }

    async fn write_rotation(&self, st: Option<&RotationStatus>) -> Result<(), Error> {
        let api: Api<Tenant> = Api::namespaced(self.ctx.client.clone(), &self.names.namespace);
        let mut rotation = serde_json::to_value(st).expect("serializes");
        // A merge patch keeps what it does not name: fields that no longer apply go as nulls.
        if let Some(fields) = rotation.as_object_mut() {
            for cleared in ["lastRotation", "nextRotation", "keys", "rewrap", "message"] {
                fields.entry(cleared).or_insert(serde_json::Value::Null);
            }
        }
        let patch = serde_json::json!({ "status": { "rotation": rotation } });
        api.patch_status(
            &self.names.tenant,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        Ok(())
    }

    /// The Tenant's object-server admin API, as its root user; or what is missing.
    async fn admin_client(&self) -> Result<Result<admin::AdminClient, String>, Error> {
        let root_name = self.tenant.root_secret_name();
        let Some(root) = self.secrets.get_opt(&root_name).await? else {
            return Ok(Err(format!(
                "the root credentials Secret {root_name:?} does not exist"
            )));
        };
        let (Some(access_key), Some(secret_key)) = (
            super::text(&root, ROOT_USER),
            super::text(&root, ROOT_PASSWORD),
        ) else {
            return Ok(Err(format!(
                "the root credentials Secret {root_name:?} is incomplete"
            )));
        };
        let (endpoint, ca) = match self.ctx.s3_endpoint() {
            Some(over) => over,
            None => {
                let tls = self
                    .tenant
                    .spec
                    .tls
                    .external_secret_name
                    .clone()
                    .unwrap_or_else(|| self.names.tls());
                let ca = self
                    .secrets
                    .get_opt(&tls)
                    .await?
                    .and_then(|s| s.data?.get("ca.crt").map(|b| b.0.clone()));
                (self.names.endpoint(), ca)
            }
        };
        let endpoint = match reqwest::Url::parse(&endpoint) {
            Ok(u) => u,
            Err(e) => return Ok(Err(format!("the S3 endpoint {endpoint:?}: {e}"))),
        };
        Ok(
            crate::reconcile::kms::https_client(ca.as_deref()).map(|http| admin::AdminClient {
                http,
                endpoint,
                access_key,
                secret_key,
            }),
        )
    }
}
