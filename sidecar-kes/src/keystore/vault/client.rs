//! The connection to Vault both engines share: TLS (optionally mTLS) to the endpoint, the
//! namespace header, AppRole or Kubernetes login, token renewal at 80% of its TTL with
//! re-login as fallback, a periodic health check (every `ping`), and the sealed state.
//!
//! A failed login is tried again every `retry`, except an AppRole login Vault refused for its
//! credentials: that one waits [`REFUSED_LOGIN_RETRY`], so that this process alone never
//! locks the role ID out for every other client (see [`super::lockout`]). The credentials come
//! from the configuration, so new ones mean a restart, which tries at once.
//!
//! The sealed state is set by a health check or by any answer that says sealed (503 "Vault is
//! sealed"), and cleared only by a health check that says unsealed: an unknown state after a
//! stop stays stopped (see [`crate::cache`]). Key operations ask [`VaultClient::check_sealed`]
//! first, so a seal stops key use within one `ping` on every KES.

use super::lockout::{REFUSED_LOGIN_RETRY, refused_for_credentials};
use super::{VaultAuth, VaultConfig};
use crate::keystore::StoreError;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

struct Token {
    value: Zeroizing<String>,
    ttl: Duration,
    renewable: bool,
}

struct Inner {
    cfg: VaultConfig,
    http: reqwest::Client,
    token: RwLock<Option<Zeroizing<String>>>,
    sealed: AtomicBool,
    renewals: AtomicU64,
    logins: AtomicU64,
    /// Whether the last login was an AppRole login refused for its credentials.
    credentials_refused: AtomicBool,
}

/// A logged-in connection to Vault. Its background tasks (renewal, health) stop when the last
/// clone is dropped.
#[derive(Clone)]
pub(super) struct VaultClient {
    inner: Arc<Inner>,
}

fn unreachable(e: reqwest::Error) -> StoreError {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    StoreError::Unreachable(s)
}

/// The HTTP client to Vault. Its CA file and client certificate and key files are read again
/// when they change (see [`crate::tls_files`]): a renewal is used from the next connection on.
fn http_client(cfg: &VaultConfig) -> Result<reqwest::Client, StoreError> {
    use crate::tls_files::rustls::{ClientCertFiles, ServerCaFiles};
    let builder = rustls::ClientConfig::builder_with_provider(crate::client::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Other(e.to_string()))?
        .dangerous();
    let builder = match &cfg.tls_ca {
        Some(ca) => builder.with_custom_certificate_verifier(Arc::new(
            ServerCaFiles::new(vec![ca.clone()], Vec::new())
                .map_err(|e| StoreError::Other(format!("vault: tls.ca: {e}")))?,
        )),
        None => builder.with_custom_certificate_verifier(Arc::new(
            crate::client::tls::TrustedCertVerifier::new(Vec::new())
                .map_err(|e| StoreError::Other(format!("vault: tls.ca: {e}")))?,
        )),
    };
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => builder.with_client_cert_resolver(Arc::new(
            ClientCertFiles::new(c.clone(), k.clone())
                .map_err(|e| StoreError::Other(format!("vault: tls: {e}")))?,
        )),
        _ => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        // reqwest's default today; explicit because every Transit key operation is a small
        // request/response on this connection and must never wait for a delayed ACK.
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| StoreError::Other(e.to_string()))
}

impl VaultClient {
    /// Connects, logs in once (failures are retried in the background), and starts the
    /// renewal and health tasks. Must run inside a tokio runtime.
    pub(super) async fn connect(cfg: VaultConfig) -> Result<Self, StoreError> {
        let client = Self::new(cfg)?;
        let inner = &client.inner;
        inner.check_health().await.ok();
        let first = inner.login().await;
        let weak = Arc::downgrade(inner);
        tokio::spawn(renew_loop(weak.clone(), first.ok()));
        tokio::spawn(health_loop(weak));
        Ok(client)
    }

    /// A client that has not logged in and runs no background task.
    fn new(cfg: VaultConfig) -> Result<Self, StoreError> {
        let http = http_client(&cfg)?;
        Ok(VaultClient {
            inner: Arc::new(Inner {
                cfg,
                http,
                token: RwLock::new(None),
                sealed: AtomicBool::new(false),
                renewals: AtomicU64::new(0),
                logins: AtomicU64::new(0),
                credentials_refused: AtomicBool::new(false),
            }),
        })
    }

    /// The settings it was made with.
    pub(super) fn config(&self) -> &VaultConfig {
        &self.inner.cfg
    }

    /// Number of successful token renewals so far.
    pub(super) fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Relaxed)
    }

    /// Number of successful logins so far.
    pub(super) fn logins(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// Whether Vault was last seen sealed.
    pub(super) fn is_sealed(&self) -> bool {
        self.inner.sealed.load(Ordering::Relaxed)
    }

    /// `Sealed` while Vault was last seen sealed: asked before every key operation.
    pub(super) fn check_sealed(&self) -> Result<(), StoreError> {
        if self.is_sealed() {
            Err(StoreError::Sealed)
        } else {
            Ok(())
        }
    }

    /// `GET /v1/sys/health`: records and reports whether Vault is sealed; the round trip.
    pub(super) async fn check_health(&self) -> Result<Duration, StoreError> {
        self.inner.check_health().await
    }

    /// Sends a request with the current token; on 403 (expired or revoked token) logs in
    /// again once and retries.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, StoreError> {
        let inner = &self.inner;
        let build = || {
            let r = inner.request(method.clone(), path);
            match body {
                Some(b) => r.json(b),
                None => r,
            }
        };
        let resp = build().send().await.map_err(unreachable)?;
        if resp.status().as_u16() != 403 {
            return Ok(resp);
        }
        tracing::info!("vault: permission denied, logging in again");
        inner.login().await?;
        build().send().await.map_err(unreachable)
    }

    /// Maps an error answer of Vault to a store error; a 503 that says sealed records the
    /// seal. The text names the operation and Vault's error list, never a request's body.
    pub(super) async fn fail(&self, resp: reqwest::Response, what: &str) -> StoreError {
        let status = resp.status().as_u16();
        let errors = error_list(resp).await;
        if status == 503 && errors.contains("sealed") {
            self.inner.sealed.store(true, Ordering::Relaxed);
            return StoreError::Sealed;
        }
        if status >= 500 {
            return StoreError::Unreachable(format!("vault: {what}: {status} {errors}"));
        }
        StoreError::Other(format!("vault: {what}: {status} {errors}"))
    }
}

/// Vault's `errors` list of an error answer, as JSON text (empty if there is none).
pub(super) async fn error_list(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    body.get("errors")
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// The names of a `LIST` answer (`data.keys`), without sub-folders (names ending in `/`).
pub(super) fn listed_names(body: &Value) -> Vec<String> {
    body.pointer("/data/keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|k| !k.ends_with('/'))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

async fn renew_loop(inner: std::sync::Weak<Inner>, mut token: Option<Token>) {
    // Set when a renewal did not restore the TTL (the token's max TTL is near): log in again.
    let mut capped = false;
    loop {
        let Some(this) = inner.upgrade() else { return };
        let retry = match &this.cfg.auth {
            VaultAuth::AppRole { retry, .. } | VaultAuth::Kubernetes { retry, .. } => *retry,
        };
        let wait = match &token {
            None if this.credentials_refused.load(Ordering::Relaxed) => REFUSED_LOGIN_RETRY,
            None => retry,
            Some(t) if t.ttl.is_zero() => Duration::from_secs(60), // a token that never expires
            Some(t) => t.ttl.mul_f64(0.8).max(Duration::from_millis(200)),
        };
        drop(this);
        tokio::time::sleep(wait).await;
        let Some(this) = inner.upgrade() else { return };
        token = match token {
            Some(t) if t.ttl.is_zero() => Some(t),
            Some(t) if t.renewable && !capped => match this.renew().await {
                Ok(new) => {
                    capped = new.ttl < t.ttl;
                    if new.ttl.is_zero() {
                        this.login().await.ok()
                    } else {
                        Some(new)
                    }
                }
                Err(e) => {
                    tracing::warn!("vault: token renewal failed, logging in again: {e}");
                    this.login().await.ok()
                }
            },
            _ => {
                capped = false;
                match this.login().await {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!("vault: login failed: {e}");
                        None
                    }
                }
            }
        };
    }
}

async fn health_loop(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(this) = inner.upgrade() else { return };
        let ping = this.cfg.ping;
        let _ = this.check_health().await;
        drop(this);
        tokio::time::sleep(ping.max(Duration::from_millis(100))).await;
    }
}

impl Inner {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/v1/{}",
            self.cfg.endpoint.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, self.url(path));
        if !self.cfg.namespace.is_empty() {
            r = r.header("X-Vault-Namespace", &self.cfg.namespace);
        }
        if let Some(t) = self.token.read().expect("lock").as_ref() {
            r = r.header("X-Vault-Token", t.as_str());
        }
        r
    }

    async fn check_health(&self) -> Result<Duration, StoreError> {
        let start = Instant::now();
        let resp = self
            .http
            .get(self.url("sys/health?standbyok=true&perfstandbyok=true"))
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let sealed = status == 503 || body.get("sealed").and_then(Value::as_bool).unwrap_or(false);
        self.sealed.store(sealed, Ordering::Relaxed);
        if sealed {
            return Err(StoreError::Sealed);
        }
        match status {
            200 | 429 | 472 | 473 => Ok(start.elapsed()),
            501 => Err(StoreError::Unreachable("vault is not initialized".into())),
            s => Err(StoreError::Unreachable(format!(
                "vault health check returned {s}"
            ))),
        }
    }

    async fn login(&self) -> Result<Token, StoreError> {
        let (engine, body) = match &self.cfg.auth {
            VaultAuth::AppRole {
                engine,
                role_id,
                secret_id,
                ..
            } => (
                engine,
                json!({ "role_id": role_id, "secret_id": secret_id.as_str() }),
            ),
            VaultAuth::Kubernetes {
                engine, role, jwt, ..
            } => {
                let jwt = match std::fs::read_to_string(jwt.as_str()) {
                    Ok(s) => Zeroizing::new(s.trim().to_string()),
                    Err(_) => jwt.clone(),
                };
                (engine, json!({ "role": role, "jwt": jwt.as_str() }))
            }
        };
        let mut req = self
            .http
            .put(self.url(&format!("auth/{}/login", engine.trim_matches('/'))));
        if !self.cfg.namespace.is_empty() {
            req = req.header("X-Vault-Namespace", &self.cfg.namespace);
        }
        let resp = req.json(&body).send().await.map_err(unreachable)?;
        let approle = matches!(self.cfg.auth, VaultAuth::AppRole { .. });
        let refused = approle && refused_for_credentials(resp.status().as_u16());
        self.credentials_refused.store(refused, Ordering::Relaxed);
        let token = parse_auth(resp).await.inspect_err(|_| {
            if refused {
                tracing::warn!(
                    "vault: the AppRole login was refused for its credentials; not trying them \
                     again for {} min, since Vault locks a role ID out (for every client using \
                     it) after 5 failed logins. Restart kes with the right secret ID to try at once",
                    REFUSED_LOGIN_RETRY.as_secs() / 60
                );
            }
        })?;
        *self.token.write().expect("lock") = Some(token.value.clone());
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!("vault: logged in (token TTL {:?})", token.ttl);
        Ok(token)
    }

    async fn renew(&self) -> Result<Token, StoreError> {
        let resp = self
            .request(reqwest::Method::POST, "auth/token/renew-self")
            .json(&json!({}))
            .send()
            .await
            .map_err(unreachable)?;
        let token = parse_auth(resp).await?;
        *self.token.write().expect("lock") = Some(token.value.clone());
        self.renewals.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("vault: token renewed (TTL {:?})", token.ttl);
        Ok(token)
    }
}

async fn parse_auth(resp: reqwest::Response) -> Result<Token, StoreError> {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status == 503 {
        return Err(StoreError::Sealed);
    }
    if status != 200 {
        let errors = body
            .get("errors")
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(StoreError::Other(format!(
            "vault: authentication failed: {status} {errors}"
        )));
    }
    let auth = body
        .get("auth")
        .ok_or_else(|| StoreError::Other("vault: no auth in response".into()))?;
    let value = auth
        .get("client_token")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::Other("vault: no client token in response".into()))?;
    Ok(Token {
        value: Zeroizing::new(value.to_string()),
        ttl: Duration::from_secs(
            auth.get("lease_duration")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        ),
        renewable: auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
impl VaultClient {
    /// A client that never logged in and runs no background task (unit tests).
    pub(super) fn new_offline(cfg: VaultConfig) -> Self {
        Self::new(cfg).expect("client")
    }
}
