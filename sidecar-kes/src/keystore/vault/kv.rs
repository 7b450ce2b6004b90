//! The Vault K/V keystore (v1 and v2; OpenBao too) over the shared [`VaultClient`]. Keys are
//! stored as KES stores them: one secret per key at `<engine>/<prefix>/<name>` holding
//! `{"<name>": "<encoded key>"}` (K/V v2: under `data/`, created with `cas: 0`, deleted through
//! `metadata/`). A rotated key ([`crate::crypto::ring`]) is written over its value (v1) or as a
//! new version of the secret with check-and-set (v2); reads take the secret's latest version.
//! A sealed Vault is [`StoreError::Sealed`] and [`Keystore::is_sealed`], which the key cache
//! asks on every key use: a seal stops key use within one `ping` (see [`crate::cache`]).
//!
//! **K/V v1: concurrent writers lose no key version.** K/V v1 has no check-and-set: a create
//! or a rotation reads the secret and then writes it, and another KES (or the operator)
//! doing the same between the two overwrites it. Whatever key version the lost write held
//! may already be in use: another replica can have read it from Vault and made data keys
//! with it before it was overwritten. So on K/V v1 no key version's bytes ever exist only in
//! a value that can be overwritten:
//!
//! 1. **Escrow first.** Before a write puts a new key version into a key's secret (a create:
//!    version 1; a rotation: the ring's new newest version), the version alone is written to
//!    its own path, `<prefix>/.coffer-escrow/<name>/<version>-<128 random bits>`. No other
//!    writer ever chooses that path, so nothing overwrites it: it is written once. The
//!    folder's name is not a KES key name (a dot), and [`Keystore::list`] leaves folders out.
//! 2. **Read back.** After writing, the secret is read again; if it no longer holds what was
//!    written, another writer won: a create answers `Exists`, a rotation `Changed` (the
//!    cache then rotates again on top of the winner's ring).
//! 3. **Escrow on decryption.** A ciphertext that the key's ring cannot open (its version is
//!    missing, or the ring's key of that number is not the one that sealed it) is tried with
//!    every escrowed candidate of the version it names (every escrowed version, for an
//!    untagged one); the AEAD tells which is right. [`Keystore::escrowed`] lists them. The
//!    ring's minimum version applies to escrowed versions too.
//!
//! The guarantee: every key version that any KES ever used was escrowed before any KES could
//! read it, so every ciphertext made with it still decrypts while the key exists. What
//! remains: the losing rotation's version is not the key's newest for KES that read the
//! secret after the winner wrote it (harmless: data keys are made with the winner's); a
//! rotation told `Ok` may still be overwritten by a concurrent one that read the secret
//! earlier (its version stays escrowed, so nothing is lost; a minimum-version change made at
//! that moment can be undone, and `kes key info` shows it); MinIO's KES does not look in the
//! escrow. Escrowed versions are kept until the key is deleted ([`Keystore::delete`] removes
//! them, then the key, then any escrowed meanwhile), one small secret per create and
//! rotation. A decryption that fails on a K/V v1 key costs one `LIST` of the key's escrow
//! folder (and a read per candidate); the policy therefore needs `list` on the prefix, as
//! rotation needs `update` and deletion `delete` (`manifests/vault/setup.sh`). K/V v2 needs
//! none of this: check-and-set refuses the losing write (`cas: 0` on create, the version read
//! on rotation), so a version that lost is never readable.

use super::client::VaultClient;
use super::{KvEngine, VaultConfig, VaultEngine};
use crate::keystore::{EscrowedVersion, Keystore, StoreError};
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

/// The folder under the prefix that holds escrowed key versions (K/V v1; see the module doc).
const ESCROW: &str = ".coffer-escrow";

/// How often a delete removes the key again when a concurrent K/V v1 rotation wrote it back.
const DELETE_ROUNDS: usize = 5;

impl VaultStore {
    /// `<mount>/<prefix>/.coffer-escrow/<name>` (K/V v1 only).
    fn escrow_dir(&self, name: &str) -> String {
        location(&self.kv, "data", &format!("{ESCROW}/{name}"))
    }

    /// Writes key version `version` of `name` (its encoded bytes) to a path no other writer
    /// chooses: `<version>-<128 random bits>` in the key's escrow folder.
    async fn escrow(&self, name: &str, version: u32, key: &[u8]) -> Result<(), StoreError> {
        let c = &self.client;
        let key = std::str::from_utf8(key)
            .map_err(|_| StoreError::Other("vault: key is not text".into()))?;
        let id = hex::encode(crate::crypto::rand::array::<16>());
        let path = format!("{}/{version}-{id}", self.escrow_dir(name));
        let resp = c
            .send(reqwest::Method::PUT, &path, Some(&json!({ "key": key })))
            .await?;
        match resp.status().as_u16() {
            200 | 204 => Ok(()),
            _ => Err(c.fail(resp, "escrow").await),
        }
    }

    /// Every escrowed version of `name`: its number and path.
    async fn escrow_entries(&self, name: &str) -> Result<Vec<(u32, String)>, StoreError> {
        let c = &self.client;
        c.check_sealed()?;
        let dir = self.escrow_dir(name);
        let resp = c
            .send(reqwest::Method::GET, &format!("{dir}/?list=true"), None)
            .await?;
        match resp.status().as_u16() {
            404 => return Ok(Vec::new()),
            200 => {}
            _ => return Err(c.fail(resp, "list escrowed versions").await),
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| StoreError::Other("vault: invalid response".into()))?;
        Ok(super::client::listed_names(&body)
            .into_iter()
            .filter_map(|entry| {
                let version = entry.split_once('-')?.0.parse().ok()?;
                Some((version, format!("{dir}/{entry}")))
            })
            .collect())
    }

    /// Deletes every escrowed version of `name` (a path already gone is no error).
    async fn delete_escrow(&self, name: &str) -> Result<(), StoreError> {
        let c = &self.client;
        for (_, path) in self.escrow_entries(name).await? {
            let resp = c.send(reqwest::Method::DELETE, &path, None).await?;
            match resp.status().as_u16() {
                200 | 204 | 404 => {}
                _ => return Err(c.fail(resp, "delete escrowed version").await),
            }
        }
        Ok(())
    }

    /// K/V v1, after a write of `written` to `name`: whether the secret still holds it (see
    /// the module doc); `lost` if another writer's value replaced it.
    async fn read_back(
        &self,
        name: &str,
        written: &[u8],
        lost: StoreError,
    ) -> Result<(), StoreError> {
        match self.read(name).await? {
            Some(v) if v.as_bytes() == written => Ok(()),
            _ => Err(lost),
        }
    }
}

/// The key version a rotation from `old` to `new` adds (its number and encoded key), if any.
fn added_version(old: &[u8], new: &[u8]) -> Result<Option<EscrowedVersion>, StoreError> {
    let new = crate::crypto::KeyRing::decode(new)
        .map_err(|_| StoreError::Other("vault: the new value is not a key".into()))?;
    let old_newest = crate::crypto::KeyRing::decode(old).map_or(0, |r| r.newest().0);
    let (version, key) = new.newest();
    Ok((version > old_newest).then(|| (version, key.encode())))
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
            if !self.kv.v2 {
                self.escrow(name, 1, value).await?;
            }
            self.write_if(name, value, 0, StoreError::Exists, "create")
                .await?;
            if !self.kv.v2 {
                self.read_back(name, value, StoreError::Exists).await?;
            }
            Ok(())
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
    /// of concurrent rotations one wins. K/V v1 has no check-and-set: the added version is
    /// escrowed, the value compared and overwritten, and read back (see the module doc).
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
            if self.kv.v2 {
                return self
                    .write_if(name, new, version, StoreError::Changed, "replace")
                    .await;
            }
            if let Some((added, key)) = added_version(old, new)? {
                self.escrow(name, added, &key).await?;
            }
            self.write_if(name, new, version, StoreError::Changed, "replace")
                .await?;
            self.read_back(name, new, StoreError::Changed).await
        }
        .boxed()
    }

    /// K/V v2: the secret's metadata, so every version goes. K/V v1: the escrowed versions
    /// first (a delete that fails there has removed nothing a KES reads, and can be repeated),
    /// then the secret, then what a concurrent rotation escrowed meanwhile; a rotation that
    /// read the key before the delete can write it back (no check-and-set), so the secret is
    /// read again and deleted again until it stays gone.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let c = &self.client;
            let exists = self.read(name).await?.is_some();
            if !self.kv.v2 {
                self.delete_escrow(name).await?;
            }
            if !exists {
                return Err(StoreError::NotFound);
            }
            for _ in 0..DELETE_ROUNDS {
                let resp = c
                    .send(
                        reqwest::Method::DELETE,
                        &self.location("metadata", name),
                        None,
                    )
                    .await?;
                match resp.status().as_u16() {
                    200 | 204 => {}
                    _ => return Err(c.fail(resp, "delete").await),
                }
                if self.kv.v2 {
                    return Ok(());
                }
                self.delete_escrow(name).await?;
                if self.read(name).await?.is_none() {
                    return Ok(());
                }
            }
            Err(StoreError::Other(
                "vault: delete: the key keeps being written back by a concurrent rotation".into(),
            ))
        }
        .boxed()
    }

    fn escrowed<'a>(
        &'a self,
        name: &'a str,
        version: Option<u32>,
    ) -> BoxFuture<'a, Result<Vec<EscrowedVersion>, StoreError>> {
        async move {
            if self.kv.v2 {
                return Ok(Vec::new());
            }
            let c = &self.client;
            let mut found = Vec::new();
            for (v, path) in self.escrow_entries(name).await? {
                if version.is_some_and(|want| want != v) {
                    continue;
                }
                let resp = c.send(reqwest::Method::GET, &path, None).await?;
                match resp.status().as_u16() {
                    404 => continue, // deleted meanwhile
                    200 => {}
                    _ => return Err(c.fail(resp, "read escrowed version").await),
                }
                let body: Value = resp
                    .json()
                    .await
                    .map_err(|_| StoreError::Other("vault: invalid response".into()))?;
                if let Some(key) = body.pointer("/data/key").and_then(Value::as_str) {
                    found.push((v, Zeroizing::new(key.as_bytes().to_vec())));
                }
            }
            Ok(found)
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
