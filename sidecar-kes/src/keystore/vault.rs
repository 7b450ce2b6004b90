//! The Vault K/V keystore (v1 and v2; OpenBao too): AppRole or Kubernetes login, token
//! renewal at 80% of its TTL with re-login as fallback, a periodic health check (every
//! `ping`), and a sealed Vault reported as [`StoreError::Sealed`] and through
//! [`Keystore::is_sealed`], which the key cache asks on every key use: a seal stops key use
//! within one `ping` (see [`crate::cache`]). The sealed state is set by a health check or a
//! K/V answer that says sealed, and cleared only by a health check that says unsealed. Keys are stored as KES stores them:
//! one secret per key at `<engine>/<prefix>/<name>` holding `{"<name>": "<encoded key>"}`
//! (K/V v2: under `data/`, created with `cas: 0`, deleted through `metadata/`).

use super::{Keystore, StoreError};
use futures::future::{BoxFuture, FutureExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How KES authenticates to Vault.
#[derive(Clone, PartialEq, Eq)]
pub enum VaultAuth {
    /// AppRole: `PUT /v1/auth/<engine>/login {role_id, secret_id}`.
    AppRole {
        /// Auth engine path (default `approle`).
        engine: String,
        /// Role ID.
        role_id: String,
        /// Secret ID (a secret).
        secret_id: Zeroizing<String>,
        /// Wait between failed logins.
        retry: Duration,
    },
    /// Kubernetes: `PUT /v1/auth/<engine>/login {role, jwt}`.
    Kubernetes {
        /// Auth engine path (default `kubernetes`).
        engine: String,
        /// Vault role.
        role: String,
        /// A service account token, or a file that holds it.
        jwt: Zeroizing<String>,
        /// Wait between failed logins.
        retry: Duration,
    },
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultAuth::AppRole {
                engine,
                role_id,
                retry,
                ..
            } => f
                .debug_struct("AppRole")
                .field("engine", engine)
                .field("role_id", role_id)
                .field("retry", retry)
                .finish_non_exhaustive(),
            VaultAuth::Kubernetes {
                engine,
                role,
                retry,
                ..
            } => f
                .debug_struct("Kubernetes")
                .field("engine", engine)
                .field("role", role)
                .field("retry", retry)
                .finish_non_exhaustive(),
        }
    }
}

/// Vault keystore settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    /// `https://host:8200`.
    pub endpoint: String,
    /// K/V mount (default `kv`).
    pub engine: String,
    /// K/V version 2.
    pub kv_v2: bool,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: String,
    /// Path prefix inside the engine.
    pub prefix: String,
    /// Authentication.
    pub auth: VaultAuth,
    /// Client key for mTLS to Vault.
    pub tls_key: Option<PathBuf>,
    /// Client certificate for mTLS to Vault.
    pub tls_cert: Option<PathBuf>,
    /// CA that verifies Vault.
    pub tls_ca: Option<PathBuf>,
    /// Health check interval.
    pub ping: Duration,
}

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
}

/// A Vault K/V keystore. Its background tasks stop when the last clone is dropped.
pub struct VaultStore {
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

fn http_client(cfg: &VaultConfig) -> Result<reqwest::Client, StoreError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| StoreError::Other(format!("vault: {}: {e}", p.display())))
    };
    let mut trusted = Vec::new();
    if let Some(ca) = &cfg.tls_ca {
        for c in CertificateDer::pem_slice_iter(&read(ca)?) {
            trusted.push(c.map_err(|e| StoreError::Other(format!("vault: tls.ca: {e}")))?);
        }
    }
    let verifier = crate::client::tls::TrustedCertVerifier::new(trusted)
        .map_err(|e| StoreError::Other(format!("vault: tls.ca: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(crate::client::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Other(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier));
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => {
            let certs = CertificateDer::pem_slice_iter(&read(c)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Other(format!("vault: tls.cert: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&read(k)?)
                .map_err(|_| StoreError::Other("vault: tls.key: invalid private key".into()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| StoreError::Other(format!("vault: tls: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| StoreError::Other(e.to_string()))
}

impl VaultStore {
    /// Connects, logs in once (failures are retried in the background), and starts the
    /// renewal and health tasks. Must run inside a tokio runtime.
    pub async fn connect(cfg: VaultConfig) -> Result<Self, StoreError> {
        let http = http_client(&cfg)?;
        let inner = Arc::new(Inner {
            cfg,
            http,
            token: RwLock::new(None),
            sealed: AtomicBool::new(false),
            renewals: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        });
        inner.check_health().await.ok();
        let first = inner.login().await;
        let weak = Arc::downgrade(&inner);
        tokio::spawn(renew_loop(weak.clone(), first.ok()));
        tokio::spawn(health_loop(weak));
        Ok(VaultStore { inner })
    }

    /// Number of successful token renewals so far.
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Relaxed)
    }

    /// Number of successful logins so far.
    pub fn logins(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }
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

    fn location(&self, kind: &str, name: &str) -> String {
        let mut parts = vec![self.cfg.engine.trim_matches('/')];
        if self.cfg.kv_v2 {
            parts.push(kind);
        }
        let prefix = self.cfg.prefix.trim_matches('/');
        if !prefix.is_empty() {
            parts.push(prefix);
        }
        if !name.is_empty() {
            parts.push(name);
        }
        parts.join("/")
    }

    /// `GET /v1/sys/health`: records and reports whether Vault is sealed.
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
        let token = parse_auth(resp).await?;
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

    /// Sends a request with the current token; on 403 (expired or revoked token) logs in
    /// again once and retries.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, StoreError> {
        let build = || {
            let r = self.request(method.clone(), path);
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
        self.login().await?;
        build().send().await.map_err(unreachable)
    }

    fn check_sealed(&self) -> Result<(), StoreError> {
        if self.sealed.load(Ordering::Relaxed) {
            Err(StoreError::Sealed)
        } else {
            Ok(())
        }
    }

    /// Maps an error status of Vault; 503 means sealed (or standby), which we treat as sealed.
    async fn fail(&self, resp: reqwest::Response, what: &str) -> StoreError {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let errors = body
            .get("errors")
            .map(|e| e.to_string())
            .unwrap_or_default();
        if status == 503 && errors.contains("sealed") {
            self.sealed.store(true, Ordering::Relaxed);
            return StoreError::Sealed;
        }
        if status >= 500 {
            return StoreError::Unreachable(format!("vault: {what}: {status} {errors}"));
        }
        StoreError::Other(format!("vault: {what}: {status} {errors}"))
    }

    async fn read(&self, name: &str) -> Result<Option<Zeroizing<String>>, StoreError> {
        self.check_sealed()?;
        let mut path = self.location("data", name);
        if self.cfg.kv_v2 {
            path.push_str("?version=1");
        }
        let resp = self.send(reqwest::Method::GET, &path, None).await?;
        match resp.status().as_u16() {
            404 => return Ok(None),
            200 => {}
            _ => return Err(self.fail(resp, "read").await),
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| StoreError::Other("vault: invalid response".into()))?;
        let mut data = body.get("data").cloned().unwrap_or(Value::Null);
        if self.cfg.kv_v2 {
            data = data.get("data").cloned().unwrap_or(Value::Null);
        }
        if data.is_null() {
            return Ok(None); // v2: a deleted version
        }
        let v = data.get(name).and_then(Value::as_str).ok_or_else(|| {
            StoreError::Other(format!(
                "vault: entry '{name}' exists but no secret key is present"
            ))
        })?;
        Ok(Some(Zeroizing::new(v.to_string())))
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

impl Keystore for VaultStore {
    fn describe(&self) -> String {
        format!("Hashicorp Vault: {}", self.inner.cfg.endpoint)
    }

    fn status(&self) -> BoxFuture<'_, Result<Duration, StoreError>> {
        async move { self.inner.check_health().await }.boxed()
    }

    fn is_sealed(&self) -> bool {
        self.inner.sealed.load(Ordering::Relaxed)
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let s = &self.inner;
            if s.read(name).await?.is_some() {
                return Err(StoreError::Exists);
            }
            let value = std::str::from_utf8(value)
                .map_err(|_| StoreError::Other("vault: key is not text".into()))?;
            let body = if s.cfg.kv_v2 {
                json!({ "options": { "cas": 0 }, "data": { name: value } })
            } else {
                json!({ name: value })
            };
            let resp = s
                .send(reqwest::Method::PUT, &s.location("data", name), Some(&body))
                .await?;
            match resp.status().as_u16() {
                200 | 204 => Ok(()),
                400 if s.cfg.kv_v2 => {
                    // cas mismatch: someone created it meanwhile.
                    let text = resp.text().await.unwrap_or_default();
                    if text.contains("check-and-set") {
                        Err(StoreError::Exists)
                    } else {
                        Err(StoreError::Other(format!("vault: create: 400 {text}")))
                    }
                }
                _ => Err(s.fail(resp, "create").await),
            }
        }
        .boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, StoreError>> {
        async move {
            match self.inner.read(name).await? {
                Some(v) => Ok(Zeroizing::new(v.as_bytes().to_vec())),
                None => Err(StoreError::NotFound),
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let s = &self.inner;
            if s.read(name).await?.is_none() {
                return Err(StoreError::NotFound);
            }
            let resp = s
                .send(reqwest::Method::DELETE, &s.location("metadata", name), None)
                .await?;
            match resp.status().as_u16() {
                200 | 204 => Ok(()),
                _ => Err(s.fail(resp, "delete").await),
            }
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let s = &self.inner;
            s.check_sealed()?;
            let path = format!("{}/?list=true", s.location("metadata", ""));
            let resp = s.send(reqwest::Method::GET, &path, None).await?;
            match resp.status().as_u16() {
                404 => return Ok(Vec::new()),
                200 => {}
                _ => return Err(s.fail(resp, "list").await),
            }
            let body: Value = resp
                .json()
                .await
                .map_err(|_| StoreError::Other("vault: invalid response".into()))?;
            Ok(body
                .pointer("/data/keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|k| !k.ends_with('/'))
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v2: bool, prefix: &str) -> VaultConfig {
        VaultConfig {
            endpoint: "http://127.0.0.1:1".into(),
            engine: "kv".into(),
            kv_v2: v2,
            namespace: String::new(),
            prefix: prefix.into(),
            auth: VaultAuth::AppRole {
                engine: "approle".into(),
                role_id: "r".into(),
                secret_id: Zeroizing::new("super-secret".into()),
                retry: Duration::from_secs(1),
            },
            tls_key: None,
            tls_cert: None,
            tls_ca: None,
            ping: Duration::from_secs(10),
        }
    }

    fn inner(c: VaultConfig) -> Inner {
        Inner {
            http: http_client(&c).unwrap(),
            cfg: c,
            token: RwLock::new(None),
            sealed: AtomicBool::new(false),
            renewals: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        }
    }

    #[test]
    fn locations_v1_and_v2() {
        let v1 = inner(cfg(false, "/minio/"));
        assert_eq!(v1.location("data", "k"), "kv/minio/k");
        assert_eq!(v1.location("metadata", ""), "kv/minio");
        let v2 = inner(cfg(true, ""));
        assert_eq!(v2.location("data", "k"), "kv/data/k");
        assert_eq!(v2.location("metadata", "k"), "kv/metadata/k");
    }

    #[test]
    fn debug_hides_the_secret_id() {
        assert!(!format!("{:?}", cfg(false, "")).contains("super-secret"));
    }
}
