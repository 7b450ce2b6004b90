//! The operator's Vault token, one per KMS: logged in once, then kept.
//!
//! A KMS's AppRole secret ID may allow only so many logins (`secret_id_num_uses`), and the pods'
//! KES sidecars spend them too: the probe must not log in every time it runs. So the first probe
//! logs in and keeps the token; each later probe proves the token still works with
//! `auth/token/lookup-self` (the `default` policy allows it, and it spends no secret-ID use),
//! and renews it with `auth/token/renew-self` once 80% of its TTL has passed or before it would
//! expire ahead of the next probe. It logs in again only when Vault says the token is gone
//! (expired or revoked: 403), or when what the token was made from changes (endpoint, auth
//! mount, the credentials Secret's `resourceVersion`), so a rotated secret ID is checked at
//! once. A replaced token is revoked.
//!
//! A login refused for its credentials (a 4xx but 429) is not tried again with them before
//! [`REFUSED_LOGIN_RETRY`] (16 minutes): Vault and OpenBao lock an AppRole's role ID out for 15
//! minutes after 5 failed logins (user lockout, on by default), which would also lock out every
//! KES sidecar using that role, and the failure count only resets after 15 minutes without a
//! login attempt (see [`sidecar_kes::keystore::vault::lockout`], the rule our `kes` follows
//! too). A wrong secret ID probed every 10 s and at every Tenant change locked the role out
//! within a minute, and a fixed Secret was then refused too. A changed Secret (a new
//! `resourceVersion`) is tried at once.
//!
//! Tokens live only in this process's memory: never in a status, an event or a log line. The
//! token of a deleted KMS is no longer renewed and expires with its TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sidecar_kes::keystore::vault::lockout::{REFUSED_LOGIN_RETRY, refused_for_credentials};

use super::{AppRoleLogin, Health, error_chain, refused};

/// A token and what it was made from.
struct Session {
    /// Endpoint, namespace, auth mount, credentials Secret and its `resourceVersion`.
    origin: String,
    token: String,
    /// When to renew (80% of the TTL).
    renew_at: Instant,
    /// When Vault forgets the token unless renewed.
    expires_at: Instant,
    renewable: bool,
}

impl Session {
    fn new(origin: String, token: String, auth: &serde_json::Value, now: Instant) -> Self {
        let mut s = Session {
            origin,
            token,
            renew_at: now,
            expires_at: now,
            renewable: false,
        };
        s.refresh(auth, now);
        s
    }

    /// Takes the TTL and renewability of a login or renewal answer's `auth` (or a lookup's
    /// `data`, which says `ttl`).
    fn refresh(&mut self, auth: &serde_json::Value, now: Instant) {
        let ttl = auth["lease_duration"]
            .as_u64()
            .or_else(|| auth["ttl"].as_u64())
            .unwrap_or(0);
        // A TTL of 0 is a token that never expires (root-like): look it up, never renew.
        let ttl = if ttl == 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(ttl)
        };
        self.expires_at = now + ttl;
        self.renew_at = now + ttl.mul_f64(0.8);
        self.renewable = auth["renewable"].as_bool().unwrap_or(self.renewable);
    }
}

/// A refused login: what it was made from, when, and what Vault said.
struct Refusal {
    origin: String,
    at: Instant,
    health: Health,
}

/// Every KMS's token, by `namespace/name`.
#[derive(Default)]
pub struct Sessions {
    by_kms: Mutex<HashMap<String, Session>>,
    refused: Mutex<HashMap<String, Refusal>>,
}

/// What a probe needs to reach Vault.
pub struct Target<'a> {
    /// The HTTP client (Vault's CA trusted).
    pub http: &'a reqwest::Client,
    /// The endpoint, without a trailing `/`.
    pub base: &'a str,
    /// The Vault namespace, if any.
    pub namespace: Option<&'a str>,
}

impl Target<'_> {
    /// A request to `/v1/<path>`, in the KMS's Vault namespace.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}/v1/{path}", self.base));
        match self.namespace {
            Some(ns) => req.header("X-Vault-Namespace", ns),
            None => req,
        }
    }
}

impl Sessions {
    /// Whether the KMS `kms` (`namespace/name`) can use Vault with `login`'s credentials, made
    /// from `origin`: [`Health::Healthy`] when its kept token still works (renewed when due) or
    /// a new login succeeds. `interval` is the time to the next probe.
    pub async fn check(
        &self,
        kms: &str,
        origin: String,
        target: &Target<'_>,
        login: &AppRoleLogin<'_>,
        interval: Duration,
    ) -> Health {
        let kept = self.take(kms);
        let now = Instant::now();
        if let Some(mut s) = kept {
            if s.origin != origin {
                revoke(target, &s.token).await;
            } else if now < s.expires_at {
                let renew = s.renewable && (now >= s.renew_at || s.expires_at - now < 2 * interval);
                match keep(target, &mut s, renew, now).await {
                    Kept::Yes => {
                        self.put(kms, s);
                        return Health::Healthy;
                    }
                    Kept::Gone => {}
                    Kept::Unknown(health) => {
                        // Vault did not say: keep the token for the next probe.
                        self.put(kms, s);
                        return health;
                    }
                }
            }
        }
        if let Some(health) = self.still_refused(kms, &origin, now) {
            return health;
        }
        match log_in(target, login).await {
            Ok((token, auth)) => {
                self.put(kms, Session::new(origin, token, &auth, now));
                Health::Healthy
            }
            Err(Refused {
                health,
                credentials,
            }) => {
                if credentials {
                    self.refused.lock().expect("not poisoned").insert(
                        kms.to_string(),
                        Refusal {
                            origin,
                            at: now,
                            health: health.clone(),
                        },
                    );
                }
                health
            }
        }
    }

    /// What Vault said to the last login from `origin`, while it is too recent to try again.
    fn still_refused(&self, kms: &str, origin: &str, now: Instant) -> Option<Health> {
        let mut refused = self.refused.lock().expect("not poisoned");
        match refused.get(kms) {
            Some(r) if r.origin == origin && now.duration_since(r.at) < REFUSED_LOGIN_RETRY => {
                Some(r.health.clone())
            }
            Some(_) => {
                refused.remove(kms);
                None
            }
            None => None,
        }
    }

    /// The kept token of `kms`, for calls made right after a [`Sessions::check`] that said
    /// `Healthy` (the engine check, a key rotation); never logged or stored elsewhere.
    pub fn token(&self, kms: &str) -> Option<String> {
        self.by_kms
            .lock()
            .expect("not poisoned")
            .get(kms)
            .map(|s| s.token.clone())
    }

    fn take(&self, kms: &str) -> Option<Session> {
        self.by_kms.lock().expect("not poisoned").remove(kms)
    }

    fn put(&self, kms: &str, s: Session) {
        self.by_kms
            .lock()
            .expect("not poisoned")
            .insert(kms.to_string(), s);
    }
}

enum Kept {
    /// The token works.
    Yes,
    /// Vault no longer knows it (403): log in again.
    Gone,
    /// No answer that says either way.
    Unknown(Health),
}

/// Renews `s` (or looks it up when no renewal is due) and updates its TTL.
async fn keep(target: &Target<'_>, s: &mut Session, renew: bool, now: Instant) -> Kept {
    let (method, path) = if renew {
        (reqwest::Method::POST, "auth/token/renew-self")
    } else {
        (reqwest::Method::GET, "auth/token/lookup-self")
    };
    let resp = match target
        .request(method, path)
        .header("X-Vault-Token", &s.token)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Kept::Unknown(Health::Unreachable(error_chain(&e))),
    };
    match resp.status().as_u16() {
        200 => {
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            let ttl_source = if renew { &body["auth"] } else { &body["data"] };
            s.refresh(ttl_source, now);
            Kept::Yes
        }
        403 => Kept::Gone,
        code => Kept::Unknown(Health::Unreachable(format!(
            "Vault answered HTTP {code} to {path}"
        ))),
    }
}

/// Why a login gave no token.
struct Refused {
    health: Health,
    /// Vault judged the credentials (a 4xx but 429): what Vault's user lockout counts, so not
    /// to be tried again as they are. A 5xx, a 429 or no answer may pass on the next try.
    credentials: bool,
}

/// `PUT auth/<engine>/login`: the token and the answer's `auth`, or why not.
async fn log_in(
    target: &Target<'_>,
    login: &AppRoleLogin<'_>,
) -> Result<(String, serde_json::Value), Refused> {
    let resp = target
        .request(
            reqwest::Method::PUT,
            &format!("auth/{}/login", login.engine),
        )
        .json(&serde_json::json!({ "role_id": login.role_id, "secret_id": login.secret_id }))
        .send()
        .await
        .map_err(|e| Refused {
            health: Health::Unreachable(error_chain(&e)),
            credentials: false,
        })?;
    let code = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    match body["auth"]["client_token"].as_str() {
        Some(token) if code == 200 => Ok((token.to_string(), body["auth"].clone())),
        _ => Err(Refused {
            health: refused(login, code, &body),
            credentials: refused_for_credentials(code),
        }),
    }
}

async fn revoke(target: &Target<'_>, token: &str) {
    let req = target
        .request(reqwest::Method::POST, "auth/token/revoke-self")
        .header("X-Vault-Token", token);
    if let Err(e) = req.send().await {
        tracing::debug!(error = %error_chain(&e), "revoking the KMS probe's previous Vault token");
    }
}
