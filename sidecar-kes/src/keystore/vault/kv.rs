//! The Vault K/V keystore (v1 and v2; OpenBao too) over the shared [`VaultClient`]. Keys are
//! stored as KES stores them: one secret per key at `<engine>/<prefix>/<name>` holding
//! `{"<name>": "<encoded key>"}` (K/V v2: under `data/`, created with `cas: 0`, deleted through
//! `metadata/`). A rotated key ([`crate::crypto::ring`]) is written over its value (v1) or as a
//! new version of the secret with check-and-set (v2); reads take the secret's latest version.
//! A sealed Vault is [`StoreError::Sealed`] and [`Keystore::is_sealed`], which the key cache
//! asks on every key use: a seal stops key use within one `ping` (see [`crate::cache`]).

use super::client::VaultClient;
use super::{KvEngine, VaultConfig, VaultEngine};
use crate::keystore::{Keystore, StoreError};
use futures::future::{BoxFuture, FutureExt};
use serde_json::{Value, json};
use std::time::Duration;
use zeroize::Zeroizing;

/// A Vault K/V keystore. Its background tasks stop when it is dropped.
pub struct VaultStore {
    client: VaultClient,
    kv: KvEngine,
}

impl VaultStore {
    /// Connects, logs in once (failures are retried in the background), and starts the
    /// renewal and health tasks. Must run inside a tokio runtime. `cfg` must name a K/V engine.
    pub async fn connect(cfg: VaultConfig) -> Result<Self, StoreError> {
        let VaultEngine::Kv(kv) = cfg.engine.clone() else {
            return Err(StoreError::Other(
                "vault: the K/V keystore needs a K/V engine".into(),
            ));
        };
        Ok(VaultStore {
            client: VaultClient::connect(cfg).await?,
            kv,
        })
    }

    /// Number of successful token renewals so far.
    pub fn renewals(&self) -> u64 {
        self.client.renewals()
    }

    /// Number of successful logins so far.
    pub fn logins(&self) -> u64 {
        self.client.logins()
    }

    fn location(&self, kind: &str, name: &str) -> String {
        location(&self.kv, kind, name)
    }

    /// Writes `value` under `name`; with K/V v2 only if the secret is still at `version`
    /// (check-and-set; 0: does not exist), else `conflict`. K/V v1 has no check-and-set.
    async fn write_if(
        &self,
        name: &str,
        value: &[u8],
        version: u64,
        conflict: StoreError,
        op: &str,
    ) -> Result<(), StoreError> {
        let c = &self.client;
        let value = std::str::from_utf8(value)
            .map_err(|_| StoreError::Other("vault: key is not text".into()))?;
        let body = if self.kv.v2 {
            json!({ "options": { "cas": version }, "data": { name: value } })
        } else {
            json!({ name: value })
        };
        let resp = c
            .send(
                reqwest::Method::PUT,
                &self.location("data", name),
                Some(&body),
            )
            .await?;
        match resp.status().as_u16() {
            200 | 204 => Ok(()),
            400 if self.kv.v2 => {
                let text = resp.text().await.unwrap_or_default();
                if text.contains("check-and-set") {
                    Err(conflict)
                } else {
                    Err(StoreError::Other(format!("vault: {op}: 400 {text}")))
                }
            }
            _ => Err(c.fail(resp, op).await),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Zeroizing<String>>, StoreError> {
        Ok(self.read_versioned(name).await?.map(|(v, _)| v))
    }

    /// The value of `name` and, with K/V v2, the secret's version (its latest, as KES reads
    /// it: a rotated key is a newer version of the same secret; 0 with K/V v1).
    async fn read_versioned(
        &self,
        name: &str,
    ) -> Result<Option<(Zeroizing<String>, u64)>, StoreError> {
        let c = &self.client;
        c.check_sealed()?;
        let path = self.location("data", name);
        let resp = c.send(reqwest::Method::GET, &path, None).await?;
        match resp.status().as_u16() {
            404 => return Ok(None),
            200 => {}
            _ => return Err(c.fail(resp, "read").await),
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| StoreError::Other("vault: invalid response".into()))?;
        let mut data = body.get("data").cloned().unwrap_or(Value::Null);
        let mut version = 0;
        if self.kv.v2 {
            version = data
                .pointer("/metadata/version")
                .and_then(Value::as_u64)
                .unwrap_or(0);
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
        Ok(Some((Zeroizing::new(v.to_string()), version)))
    }
}

/// `<mount>/[<kind>/]<prefix>/<name>` (`kind`, `data` or `metadata`, for K/V v2 only).
fn location(kv: &KvEngine, kind: &str, name: &str) -> String {
    let mut parts = vec![kv.mount.trim_matches('/')];
    if kv.v2 {
        parts.push(kind);
    }
    let prefix = kv.prefix.trim_matches('/');
    if !prefix.is_empty() {
        parts.push(prefix);
    }
    if !name.is_empty() {
        parts.push(name);
    }
    parts.join("/")
}

impl Keystore for VaultStore {
    fn describe(&self) -> String {
        format!("Hashicorp Vault: {}", self.client.config().endpoint)
    }

    fn status(&self) -> BoxFuture<'_, Result<Duration, StoreError>> {
        async move { self.client.check_health().await }.boxed()
    }

    fn is_sealed(&self) -> bool {
        self.client.is_sealed()
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            if self.read(name).await?.is_some() {
                return Err(StoreError::Exists);
            }
            self.write_if(name, value, 0, StoreError::Exists, "create")
                .await
        }
        .boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, StoreError>> {
        async move {
            match self.read(name).await? {
                Some(v) => Ok(Zeroizing::new(v.as_bytes().to_vec())),
                None => Err(StoreError::NotFound),
            }
        }
        .boxed()
    }

    /// K/V v2: a new version of the secret written with check-and-set on the version read, so
    /// of concurrent rotations one wins. K/V v1 has no check-and-set: the value is compared
    /// and then overwritten, and two rotations of one key at the same instant can lose one
    /// (rotate from one place; the operator does).
    fn replace<'a>(
        &'a self,
        name: &'a str,
        old: &'a [u8],
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let (current, version) = self
                .read_versioned(name)
                .await?
                .ok_or(StoreError::NotFound)?;
            if current.as_bytes() != old {
                return Err(StoreError::Changed);
            }
            self.write_if(name, new, version, StoreError::Changed, "replace")
                .await
        }
        .boxed()
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let c = &self.client;
            if self.read(name).await?.is_none() {
                return Err(StoreError::NotFound);
            }
            let resp = c
                .send(
                    reqwest::Method::DELETE,
                    &self.location("metadata", name),
                    None,
                )
                .await?;
            match resp.status().as_u16() {
                200 | 204 => Ok(()),
                _ => Err(c.fail(resp, "delete").await),
            }
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let c = &self.client;
            c.check_sealed()?;
            let path = format!("{}/?list=true", self.location("metadata", ""));
            let resp = c.send(reqwest::Method::GET, &path, None).await?;
            match resp.status().as_u16() {
                404 => return Ok(Vec::new()),
                200 => {}
                _ => return Err(c.fail(resp, "list").await),
            }
            let body: Value = resp
                .json()
                .await
                .map_err(|_| StoreError::Other("vault: invalid response".into()))?;
            Ok(super::client::listed_names(&body))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::vault::test_config as cfg;

    fn kv(v2: bool, prefix: &str) -> KvEngine {
        KvEngine {
            mount: "kv".into(),
            v2,
            prefix: prefix.into(),
        }
    }

    #[test]
    fn locations_v1_and_v2() {
        let v1 = kv(false, "/minio/");
        assert_eq!(location(&v1, "data", "k"), "kv/minio/k");
        assert_eq!(location(&v1, "metadata", ""), "kv/minio");
        let v2 = kv(true, "");
        assert_eq!(location(&v2, "data", "k"), "kv/data/k");
        assert_eq!(location(&v2, "metadata", "k"), "kv/metadata/k");
    }

    #[test]
    fn debug_hides_the_secret_id() {
        assert!(!format!("{:?}", cfg(VaultEngine::Kv(kv(false, "")))).contains("super-secret"));
    }
}
