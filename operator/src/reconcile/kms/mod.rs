//! Reconciles one KMS: is its credentials Secret complete, does Vault answer
//! `GET /v1/sys/health` (initialized, unsealed), and does Vault accept the AppRole credentials of
//! that Secret? The last is asked with one token per KMS, logged in once and then kept and
//! renewed ([`session`]): a probe does not spend the secret ID's uses the pods need. The answer goes into `status.conditions`;
//! Tenants that use the KMS are requeued by the watch in [`super::run_controllers`]. Besides the
//! probe intervals below, a change of any Secret the KMS names (credentials, Vault CA, client
//! certificate) reconciles it at once ([`super::secret_refs`]). The credentials themselves
//! never reach a condition, an event or a log line.

use std::sync::Arc;
use std::time::Duration;

use sidecar_kes::client::tls;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::status::{self, DELETION_BLOCKED, READY, SECRET_FOUND};
use super::{Context, Error};
use crate::crd::{KMS, KmsStatus};

pub mod engine;
pub mod in_use;
pub mod session;

/// How often a healthy Vault is probed (by default: see [`Context::set_kms_probe_interval`]).
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
    /// Healthy, but refused the AppRole login; the text says with which Secret (never its values).
    LoginRefused(String),
    /// Logged in, but the configured engine is not mounted, of another kind, or not usable
    /// with the AppRole's policy ([`engine`]).
    EngineUnusable(String),
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

/// An HTTP client for Vault, trusting only `ca_pem` when given (else the platform roots).
///
/// The trust decision is sidecar-kes's [`TrustedCertVerifier`] (the one the KES sidecar uses
/// for the same Vault): a Vault certificate made as the guide and `manifests/vault/` make it
/// (`openssl req -x509`, self-signed, `CA:TRUE`) and given as its own CA is accepted, as KES and
/// Go clients accept it, where webpki alone refuses it (`CaUsedAsEndEntity`).
fn vault_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, Health> {
    https_client(ca_pem).map_err(Health::Unreachable)
}

/// An HTTPS client (5 s timeout) trusting only `ca_pem` when given (else the platform roots):
/// Vault's, and the Tenants' object-servers' (the rotation's re-wrap calls).
pub(crate) fn https_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(pem) = ca_pem {
        let invalid = || "the CA Secret's ca.crt is not valid PEM".to_string();
        let trusted = tls::certs_from_pem(pem).map_err(|_| invalid())?;
        if trusted.is_empty() {
            return Err(invalid());
        }
        let config = tls::server_trust_config(Some(pem))
            .map_err(|e| format!("the CA Secret's ca.crt: {e}"))?;
        builder = builder.tls_backend_preconfigured(config);
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// The KMS's Vault CA (`ca.crt` of `vault.tls.caSecretName`), `None` for the platform roots,
/// or what is wrong with its Secret.
pub(crate) async fn vault_ca(
    kms: &KMS,
    secrets_api: &Api<Secret>,
) -> Result<Result<Option<Vec<u8>>, String>, kube::Error> {
    let Some(name) = kms
        .spec
        .vault
        .tls
        .as_ref()
        .and_then(|t| t.ca_secret_name.as_ref())
    else {
        return Ok(Ok(None));
    };
    Ok(match secrets_api.get_opt(name).await? {
        Some(s) => match s.data.as_ref().and_then(|d| d.get("ca.crt")) {
            Some(v) => Ok(Some(v.0.clone())),
            None => Err(format!("CA Secret {name:?} has no key \"ca.crt\"")),
        },
        None => Err(format!("CA Secret {name:?} does not exist")),
    })
}

pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Probes `endpoint`'s health, trusting only `ca_pem` when given (else the platform roots).
pub async fn probe(endpoint: &str, namespace: Option<&str>, ca_pem: Option<&[u8]>) -> Health {
    let client = match vault_client(ca_pem) {
        Ok(c) => c,
        Err(h) => return h,
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
        Err(e) => Health::Unreachable(error_chain(&e)),
    }
}

/// The AppRole credentials to try, and where they came from (for messages).
pub struct AppRoleLogin<'a> {
    /// The auth mount (`approle`).
    pub engine: &'a str,
    /// The role ID.
    pub role_id: &'a str,
    /// The secret ID.
    pub secret_id: &'a str,
    /// The Secret they were read from.
    pub secret_name: &'a str,
}

/// What a refused AppRole login reports. Vault's own error text is repeated only when it
/// contains neither credential.
fn refused(login: &AppRoleLogin<'_>, code: u16, body: &serde_json::Value) -> Health {
    let said = body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|t| {
            !t.is_empty()
                && (login.secret_id.is_empty() || !t.contains(login.secret_id))
                && (login.role_id.is_empty() || !t.contains(login.role_id))
        })
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    Health::LoginRefused(format!(
        "Vault refused the AppRole login (auth/{}) with the role ID and secret ID of Secret {:?} (HTTP {code}{said})",
        login.engine, login.secret_name
    ))
}

/// One reconcile of `kms`.
pub async fn reconcile(kms: Arc<KMS>, ctx: Arc<Context>) -> Result<Action, Error> {
    let held_for = match in_use::finalize(&kms, &ctx).await? {
        in_use::Deletion::Done => return Ok(Action::await_change()),
        in_use::Deletion::InUse(tenants) => Some(tenants),
        in_use::Deletion::Live => None,
    };
    let ns = kms.namespace().unwrap_or_else(|| "default".into());
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let now = k8s_openapi::jiff::Timestamp::now();
    let generation = kms.metadata.generation;
    let mut st: KmsStatus = kms.status.clone().unwrap_or_default();

    match super::tenant::check_kms_secret(&kms, &secrets_api).await? {
        Some(problem) => {
            status::set_state(&mut st.conditions, SECRET_FOUND, &problem, generation, now)
        }
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

    let ca = vault_ca(&kms, &secrets_api).await?;
    let health = match &ca {
        Ok(ca) => {
            probe(
                &kms.spec.vault.endpoint,
                kms.spec.vault.namespace.as_deref(),
                ca.as_deref(),
            )
            .await
        }
        Err(msg) => Health::Unreachable(msg.clone()),
    };
    let health = match (&health, &kms.spec.vault.auth.app_role) {
        (Health::Healthy, Some(a)) => match secrets_api.get_opt(&a.secret_name).await? {
            Some(secret) => {
                let value = |k: &str| {
                    secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get(k))
                        .and_then(|v| String::from_utf8(v.0.clone()).ok())
                        .unwrap_or_default()
                };
                let (role_id, secret_id) = (value(&a.role_id_key), value(&a.secret_id_key));
                let login = AppRoleLogin {
                    engine: &a.engine,
                    role_id: role_id.trim(),
                    secret_id: secret_id.trim(),
                    secret_name: &a.secret_name,
                };
                let ca_pem = ca.as_ref().ok().and_then(|c| c.as_deref());
                match vault_client(ca_pem) {
                    Ok(http) => {
                        let origin = format!(
                            "{}|{:?}|{}|{}|{}|{}|{}",
                            kms.spec.vault.endpoint,
                            kms.spec.vault.namespace,
                            a.engine,
                            a.secret_name,
                            secret
                                .metadata
                                .resource_version
                                .as_deref()
                                .unwrap_or_default(),
                            a.role_id_key,
                            a.secret_id_key,
                        );
                        let target = session::Target {
                            http: &http,
                            base: kms.spec.vault.endpoint.trim_end_matches('/'),
                            namespace: kms.spec.vault.namespace.as_deref(),
                        };
                        let key = format!("{ns}/{}", kms.name_any());
                        let health = ctx
                            .vault_sessions
                            .check(&key, origin, &target, &login, ctx.kms_probe_interval())
                            .await;
                        match (&health, ctx.vault_sessions.token(&key)) {
                            (Health::Healthy, Some(token)) => {
                                engine::check(&target, &token, kms.spec.vault.engine()).await
                            }
                            _ => health,
                        }
                    }
                    Err(h) => h,
                }
            }
            // Reported by the SecretFound condition above.
            None => health,
        },
        _ => health,
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
        Health::LoginRefused(m) => status::set(
            &mut st.conditions,
            READY,
            false,
            "VaultLoginFailed",
            m.clone(),
            generation,
            now,
        ),
        Health::EngineUnusable(m) => status::set(
            &mut st.conditions,
            READY,
            false,
            "VaultEngineUnusable",
            m.clone(),
            generation,
            now,
        ),
    }
    let mut newly_held = None;
    if let Some(tenants) = &held_for {
        let message = in_use::Deletion::message(&kms.name_any(), tenants);
        let before = kms
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == DELETION_BLOCKED))
            .map(|c| c.message.clone());
        if before.as_deref() != Some(message.as_str()) {
            newly_held = Some(message.clone());
        }
        status::set(
            &mut st.conditions,
            DELETION_BLOCKED,
            true,
            in_use::IN_USE_BY_TENANTS,
            message,
            generation,
            now,
        );
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
    if let Some(message) = newly_held {
        in_use::warn(&kms, &ctx, message).await;
    }
    let next = if health == Health::Healthy {
        ctx.kms_probe_interval()
    } else {
        RETRY_INTERVAL.min(ctx.kms_probe_interval())
    };
    // Held for Tenants: a Tenant change reconciles the KMS at once; this is the safety net.
    Ok(Action::requeue(if held_for.is_some() {
        next.min(in_use::RECHECK)
    } else {
        next
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
