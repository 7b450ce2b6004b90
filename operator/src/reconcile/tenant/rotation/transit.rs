//! [`KeyApi`] over Vault's Transit engine, with the KMS probe's token: the KMS's AppRole, the
//! identity the Tenants' KES sidecars use. Its documented policy
//! (`manifests/vault/kes-transit-policy.hcl`) already allows what this needs — `LIST` and
//! `read` of `transit/keys/*` and `update` of `transit/keys/<name>/rotate` — so the operator
//! holds no Vault right beyond the sidecars'. It never asks for a key's material (Transit keys
//! are non-exportable) and never moves the minimum version: old versions keep decrypting.

use futures::FutureExt;
use futures::future::BoxFuture;
use time::OffsetDateTime;

use super::plan::{KeyApi, KeyState};
use crate::reconcile::kms::session::Target;

/// The Transit engine at `mount`, used with `token`.
pub struct TransitKeys<'a> {
    /// Vault.
    pub target: Target<'a>,
    /// The mount path.
    pub mount: &'a str,
    /// The KMS probe's token (never logged).
    pub token: String,
}

impl TransitKeys<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<(u16, serde_json::Value), String> {
        let resp = self
            .target
            .request(method, &format!("{}/{path}", self.mount.trim_matches('/')))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .map_err(|e| crate::reconcile::kms::error_chain(&e))?;
        let code = resp.status().as_u16();
        Ok((code, resp.json().await.unwrap_or_default()))
    }
}

/// Vault's error texts (they name paths, never token or key material).
fn refused(what: &str, code: u16, body: &serde_json::Value) -> String {
    let said = body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    format!("Vault answered HTTP {code} to {what}: {said}")
}

/// A Transit key's `data`: `latest_version`, `min_decryption_version`, `keys` (version →
/// creation time, Unix seconds for AES keys).
pub fn key_state(data: &serde_json::Value) -> Result<KeyState, String> {
    let newest = data["latest_version"]
        .as_u64()
        .ok_or("no latest_version in Vault's answer")? as u32;
    let created = data["keys"][newest.to_string()]
        .as_i64()
        .ok_or("no creation time of the newest version in Vault's answer")?;
    Ok(KeyState {
        newest,
        min_version: data["min_decryption_version"].as_u64().unwrap_or(1) as u32,
        newest_created: OffsetDateTime::from_unix_timestamp(created)
            .map_err(|_| "an invalid creation time in Vault's answer")?,
    })
}

impl KeyApi for TransitKeys<'_> {
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>> {
        async move {
            let method = reqwest::Method::from_bytes(b"LIST").expect("a valid method");
            match self.call(method, "keys").await? {
                (200, body) => Ok(body["data"]["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str())
                    .filter(|k| k.starts_with(prefix))
                    .map(str::to_owned)
                    .collect()),
                // No key at all yet.
                (404, _) => Ok(vec![]),
                (code, body) => Err(refused("LIST keys", code, &body)),
            }
        }
        .boxed()
    }

    fn info<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<KeyState, String>> {
        async move {
            match self
                .call(reqwest::Method::GET, &format!("keys/{name}"))
                .await?
            {
                (200, body) => key_state(&body["data"]),
                (code, body) => Err(refused(&format!("reading key {name}"), code, &body)),
            }
        }
        .boxed()
    }

    fn rotate<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<KeyState, String>> {
        async move {
            match self
                .call(reqwest::Method::POST, &format!("keys/{name}/rotate"))
                .await?
            {
                // OpenBao answers the key's state; an older Vault answers 204 without it.
                (200, body) if body["data"]["latest_version"].is_u64() => key_state(&body["data"]),
                (200 | 204, _) => self.info(name).await,
                (code, body) => Err(refused(&format!("rotating key {name}"), code, &body)),
            }
        }
        .boxed()
    }
}
