//! Reconciles one KMS: is its credentials Secret complete, and does Vault answer
//! `GET /v1/sys/health` (initialized, unsealed)? The answer goes into `status.conditions`;
//! Tenants that use the KMS are requeued by the watch in [`super::run_controllers`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::status::{self, READY, SECRET_FOUND};
use super::{Context, Error};
use crate::crd::{KMS, KmsStatus};

/// How often a healthy Vault is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// How often an unhealthy or unreachable Vault is probed (notice recovery soon).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// What Vault's health endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Initialized and unsealed (active, standby or performance standby).
    Healthy,
    /// Answered, but sealed or not initialized; the text says which.
    Unhealthy(String),
    /// Did not answer (connection, TLS, timeout); the text says why.
    Unreachable(String),
}

/// Maps the status code of `GET /v1/sys/health` to [`Health`].
pub fn health_of_status(code: u16) -> Health {
    match code {
        200 | 429 | 472 | 473 => Health::Healthy,
        501 => Health::Unhealthy("Vault is not initialized".into()),
        503 => Health::Unhealthy("Vault is sealed".into()),
        c => Health::Unhealthy(format!("Vault health endpoint answered HTTP {c}")),
    }
}

/// Probes `endpoint`'s health, trusting only `ca_pem` when given (else the platform roots).
pub async fn probe(endpoint: &str, namespace: Option<&str>, ca_pem: Option<&[u8]>) -> Health {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(pem) = ca_pem {
        match reqwest::Certificate::from_pem_bundle(pem) {
            Ok(certs) => builder = builder.tls_certs_only(certs),
            Err(_) => return Health::Unreachable("the CA Secret's ca.crt is not valid PEM".into()),
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return Health::Unreachable(format!("HTTP client: {e}")),
    };
    let url = format!(
        "{}/v1/sys/health?standbyok=true&perfstandbyok=true",
        endpoint.trim_end_matches('/')
    );
    let mut req = client.get(&url);
    if let Some(ns) = namespace {
        req = req.header("X-Vault-Namespace", ns);
    }
    match req.send().await {
        Ok(resp) => health_of_status(resp.status().as_u16()),
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            Health::Unreachable(msg)
        }
    }
}

/// One reconcile of `kms`.
pub async fn reconcile(kms: Arc<KMS>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = kms.namespace().unwrap_or_else(|| "default".into());
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let now = k8s_openapi::jiff::Timestamp::now();
    let generation = kms.metadata.generation;
    let mut st: KmsStatus = kms.status.clone().unwrap_or_default();

    match super::tenant::check_kms_secret(&kms, &secrets_api).await? {
        Some((reason, msg)) => status::set(
            &mut st.conditions,
            SECRET_FOUND,
            false,
            reason,
            msg,
            generation,
            now,
        ),
        None if kms.spec.credentials_secret().is_none() => status::set(
            &mut st.conditions,
            SECRET_FOUND,
            true,
            "NotNeeded",
            "Kubernetes auth uses the pod's service-account token",
            generation,
            now,
        ),
        None => status::set(
            &mut st.conditions,
            SECRET_FOUND,
            true,
            "Found",
            "credentials Secret present with the expected keys",
            generation,
            now,
        ),
    }

    let ca = match kms
        .spec
        .vault
        .tls
        .as_ref()
        .and_then(|t| t.ca_secret_name.as_ref())
    {
        None => Ok(None),
        Some(name) => match secrets_api.get_opt(name).await? {
            Some(s) => match s.data.as_ref().and_then(|d| d.get("ca.crt")) {
                Some(v) => Ok(Some(v.0.clone())),
                None => Err(format!("CA Secret {name:?} has no key \"ca.crt\"")),
            },
            None => Err(format!("CA Secret {name:?} does not exist")),
        },
    };
    let health = match ca {
        Ok(ca) => {
            probe(
                &kms.spec.vault.endpoint,
                kms.spec.vault.namespace.as_deref(),
                ca.as_deref(),
            )
            .await
        }
        Err(msg) => Health::Unreachable(msg),
    };
    match &health {
        Health::Healthy => status::set(
            &mut st.conditions,
            READY,
            true,
            "VaultHealthy",
            "Vault answers its health endpoint, unsealed",
            generation,
            now,
        ),
        Health::Unhealthy(m) => status::set(
            &mut st.conditions,
            READY,
            false,
            "VaultUnhealthy",
            m.clone(),
            generation,
            now,
        ),
        Health::Unreachable(m) => status::set(
            &mut st.conditions,
            READY,
            false,
            "VaultUnreachable",
            m.clone(),
            generation,
            now,
        ),
    }
    st.observed_generation = generation;
    if kms.status.as_ref() != Some(&st) {
        tracing::info!(kms = %kms.name_any(), namespace = %ns, health = ?health, "KMS status changed");
        let api: Api<KMS> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &kms.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": st })),
        )
        .await?;
    }
    Ok(Action::requeue(if health == Health::Healthy {
        PROBE_INTERVAL
    } else {
        RETRY_INTERVAL
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_codes() {
        assert_eq!(health_of_status(200), Health::Healthy);
        assert_eq!(health_of_status(429), Health::Healthy);
        assert_eq!(
            health_of_status(503),
            Health::Unhealthy("Vault is sealed".into())
        );
        assert!(matches!(health_of_status(500), Health::Unhealthy(_)));
    }

    #[tokio::test]
    async fn unreachable_vault_is_reported() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let h = probe(&format!("https://127.0.0.1:{port}"), None, None).await;
        assert!(matches!(h, Health::Unreachable(_)), "{h:?}");
    }
}
