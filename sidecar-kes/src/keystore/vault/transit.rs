//! The Vault Transit keystore: master keys that never leave Vault. Each KES key is a Transit
//! key of the same name (`<mount>/keys/<name>`, type `aes256-gcm96`, created non-exportable and
//! without plaintext backup), and every key operation is one Transit call over the shared
//! [`VaultClient`] (login, renewal, namespace, health, sealed state):
//!
//! | KES route | Transit |
//! |---|---|
//! | create | `GET keys/<name>` (exists? then `key already exists`), `POST keys/<name>` |
//! | generate | `POST datakey/plaintext/<name>` `{bits: 256, associated_data: <context>}` |
//! | encrypt | `GET keys/<name>` (so that Transit never creates a key), `POST encrypt/<name>` |
//! | decrypt | `POST decrypt/<name>` `{ciphertext, associated_data: <context>}` |
//! | describe | `GET keys/<name>` (type, versions and their creation times) |
//! | list | `LIST keys` |
//! | delete | `POST keys/<name>/config {deletion_allowed: true}`, `DELETE keys/<name>` |
//! | hmac | `POST hmac/<name>` (Transit's per-version HMAC key) |
//! | import | refused (501): a key given by a client would have existed outside Vault |
//!
//! **Ciphertexts** are Transit's own, `vault:v<version>:<base64>`, returned as the bytes of that
//! text: MinIO and our object-server store a KES ciphertext as opaque bytes and hand it back
//! for decryption. It names the key version that sealed it, which rotation builds on; a
//! ciphertext that is not of this form is `not authentic` without asking Vault. The request's
//! context is Transit's `associated_data` (AES-GCM's AAD): a ciphertext decrypts only with the
//! context it was made with, as with KES's own format.
//!
//! **Nonces.** Transit draws a fresh random 96-bit nonce for every encryption under a key
//! version (the keys are neither derived nor convergent), and data keys come from Vault's
//! random source; this store never supplies a nonce, a data key or key material.
//!
//! **Nothing is cached.** With the K/V store KES caches master keys; here there is none to
//! cache, and this store keeps nothing else either: data keys are never kept (the object
//! server's decrypt cache keeps its own), and `describe` reads Transit each time, so a key
//! deleted or rotated by another KES is seen at once. `cache.expiry` does not apply.
//!
//! **Sealed and unreachable Vault.** As with K/V: a Vault seen sealed (by the health check every
//! `ping`, or by an answer that says sealed) is `key store is sealed` (502) for every key
//! operation until a health check sees it unsealed; `/v1/ready` and `/v1/status` say sealed or
//! unreachable. Unlike K/V, an unreachable Vault stops key use at once: there is no cached
//! master key for the offline rule to serve (readers still get what the object server's own
//! decrypt cache holds).
//!
//! **The Vault policy** it needs (README): `create`/`read`/`update`/`delete`/`list` on
//! `<mount>/keys/*` and `update` on `<mount>/datakey/plaintext/*`, `<mount>/encrypt/*`,
//! `<mount>/decrypt/*` and `<mount>/hmac/*`. Without `create` on `<mount>/encrypt/*`, Transit
//! refuses an encrypt that would create a missing key.

use super::client::{VaultClient, error_list, listed_names};
use super::{TransitEngine, VaultConfig, VaultEngine};
use crate::keys::{DataKey, KeyError};
use crate::keystore::StoreError;
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The type of the Transit keys this store creates.
pub const KEY_TYPE: &str = "aes256-gcm96";

/// What every Transit ciphertext starts with.
const CIPHERTEXT_PREFIX: &str = "vault:v";

/// Keys in a Vault Transit engine. Its background tasks stop when it is dropped.
pub struct TransitKeys {
    client: VaultClient,
    transit: TransitEngine,
}

/// What Transit says about a key (`GET <mount>/keys/<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitKeyInfo {
    /// Transit's key type, e.g. `aes256-gcm96`.
    pub key_type: String,
    /// The versions Transit still has, with their creation times.
    pub versions: BTreeMap<u32, OffsetDateTime>,
    /// The version new ciphertexts are made with.
    pub latest_version: u32,
    /// The oldest version Transit still decrypts with.
    pub min_decryption_version: u32,
    /// Whether Transit would export the key (never for keys this store created).
    pub exportable: bool,
}

impl TransitKeyInfo {
    /// KES's algorithm name for the key type (`AES256`), or Transit's type for others.
    pub fn algorithm(&self) -> String {
        match self.key_type.as_str() {
            KEY_TYPE => "AES256".into(),
            "chacha20-poly1305" => "ChaCha20".into(),
            other => other.into(),
        }
    }

    /// When the oldest version Transit still has was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.versions
            .values()
            .next()
            .copied()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The key's versions as `kes key info` reports them.
    pub fn versions_info(&self) -> crate::keys::KeyVersions {
        crate::keys::KeyVersions {
            algorithm: self.algorithm(),
            versions: self
                .versions
                .iter()
                .map(|(v, t)| crate::keys::VersionInfo {
                    version: *v,
                    created_at: *t,
                })
                .collect(),
            newest: self.latest_version,
            min_version: self.min_decryption_version,
        }
    }

    fn parse(body: &Value) -> Result<Self, StoreError> {
        let invalid = || StoreError::Other("vault: invalid transit key description".into());
        let data = body.get("data").ok_or_else(invalid)?;
        let number = |field: &str| {
            data.get(field)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(invalid)
        };
        let mut versions = BTreeMap::new();
        for (version, created) in data
            .get("keys")
            .and_then(Value::as_object)
            .ok_or_else(invalid)?
        {
            // Symmetric keys: the creation time in Unix seconds. (Asymmetric keys give an
            // object with `creation_time`; they are not KES keys, but describe should not fail.)
            let seconds = created
                .as_i64()
                .or_else(|| {
                    created
                        .get("creation_time")
                        .and_then(Value::as_str)
                        .and_then(|t| {
                            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .map(OffsetDateTime::unix_timestamp)
                })
                .ok_or_else(invalid)?;
            versions.insert(
                version.parse().map_err(|_| invalid())?,
                OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| invalid())?,
            );
        }
        Ok(TransitKeyInfo {
            key_type: data
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(invalid)?
                .to_string(),
            versions,
            latest_version: number("latest_version")?,
            min_decryption_version: number("min_decryption_version")?,
            exportable: data
                .get("exportable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// `{"associated_data": <base64 context>}` merged into `body`; nothing for an empty context
/// (AES-GCM treats no associated data and empty associated data alike).
fn with_context(mut body: Value, context: &[u8]) -> Value {
    if !context.is_empty() {
        body["associated_data"] = STANDARD.encode(context).into();
    }
    body
}

/// Whether Transit's error says the key does not exist (`encryption key not found`, or the
/// config route's `no existing key named ...`).
fn says_not_found(errors: &str) -> bool {
    errors.contains("key not found") || errors.contains("no existing key")
}

/// A Transit ciphertext as text, or `None` if `ciphertext` cannot be one.
fn transit_ciphertext(ciphertext: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(ciphertext).ok()?;
    let rest = text.strip_prefix(CIPHERTEXT_PREFIX)?;
    let (version, payload) = rest.split_once(':')?;
    let valid = !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && !payload.is_empty()
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
    valid.then_some(text)
}

#[derive(Deserialize)]
struct PlaintextData {
    #[serde(with = "crate::api::b64")]
    plaintext: Zeroizing<Vec<u8>>,
}

#[derive(Deserialize)]
struct CiphertextData {
    ciphertext: String,
}

#[derive(Deserialize)]
struct DataKeyData {
    #[serde(with = "crate::api::b64")]
    plaintext: Zeroizing<Vec<u8>>,
    ciphertext: String,
}

#[derive(Deserialize)]
struct HmacData {
    hmac: String,
}

#[derive(Deserialize)]
struct Answer<T> {
    data: T,
}

/// The `data` of a successful answer.
async fn data<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, StoreError> {
    resp.json::<Answer<T>>()
        .await
        .map(|a| a.data)
        .map_err(|_| StoreError::Other("vault: invalid transit response".into()))
}

impl TransitKeys {
    /// Connects, logs in once (failures are retried in the background), and starts the
    /// renewal and health tasks. Must run inside a tokio runtime. `cfg` must name a Transit
    /// engine.
    pub async fn connect(cfg: VaultConfig) -> Result<Self, StoreError> {
        let VaultEngine::Transit(transit) = cfg.engine.clone() else {
            return Err(StoreError::Other(
                "vault: the Transit keystore needs a Transit engine".into(),
            ));
        };
        Ok(TransitKeys {
            client: VaultClient::connect(cfg).await?,
            transit,
        })
    }

    /// For `kes server`'s banner.
    pub fn describe(&self) -> String {
        format!(
            "Hashicorp Vault Transit: {} ({})",
            self.client.config().endpoint,
            self.mount()
        )
    }

    /// Vault's health; the round trip.
    pub async fn status(&self) -> Result<Duration, StoreError> {
        self.client.check_health().await
    }

    /// Whether Vault was last seen sealed.
    pub fn is_sealed(&self) -> bool {
        self.client.is_sealed()
    }

    /// Number of successful token renewals so far.
    pub fn renewals(&self) -> u64 {
        self.client.renewals()
    }

    /// Number of successful logins so far.
    pub fn logins(&self) -> u64 {
        self.client.logins()
    }

    fn mount(&self) -> &str {
        self.transit.mount.trim_matches('/')
    }

    /// `<mount>/<route>/<name>`; KES's name rules keep `name` a single path segment.
    fn path(&self, route: &str, name: &str) -> Result<String, StoreError> {
        if !crate::api::names::valid_name(name) {
            return Err(StoreError::InvalidName);
        }
        Ok(format!("{}/{route}/{name}", self.mount()))
    }

    /// Sends `method path [body]` unless Vault was seen sealed.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, StoreError> {
        self.client.check_sealed()?;
        self.client.send(method, path, body).await
    }

    /// The key's description; `NotFound` if Transit has no such key.
    pub async fn info(&self, name: &str) -> Result<TransitKeyInfo, StoreError> {
        let resp = self
            .call(reqwest::Method::GET, &self.path("keys", name)?, None)
            .await?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(StoreError::NotFound),
            _ => return Err(self.client.fail(resp, "read key").await),
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| StoreError::Other("vault: invalid transit response".into()))?;
        TransitKeyInfo::parse(&body)
    }

    /// Creates a non-exportable `aes256-gcm96` key; `Exists` if the name is taken. (Transit's
    /// create of an existing key changes nothing and succeeds: two KES creating the same name
    /// at once may both succeed, and both then use the one key Transit has.)
    pub async fn create(&self, name: &str) -> Result<(), StoreError> {
        match self.info(name).await {
            Ok(_) => return Err(StoreError::Exists),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let body = json!({
            "type": KEY_TYPE,
            "exportable": false,
            "allow_plaintext_backup": false,
        });
        let resp = self
            .call(
                reqwest::Method::POST,
                &self.path("keys", name)?,
                Some(&body),
            )
            .await?;
        match resp.status().as_u16() {
            200 | 204 => Ok(()),
            _ => Err(self.client.fail(resp, "create key").await),
        }
    }

    /// Every key name of the mount.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        let path = format!("{}/keys?list=true", self.mount());
        let resp = self.call(reqwest::Method::GET, &path, None).await?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(Vec::new()),
            _ => return Err(self.client.fail(resp, "list keys").await),
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| StoreError::Other("vault: invalid transit response".into()))?;
        Ok(listed_names(&body))
    }

    /// Deletes the key and every version of it: ciphertexts under it can never be decrypted
    /// again. Transit deletes only keys marked `deletion_allowed`, so it marks it first.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let config = format!("{}/config", self.path("keys", name)?);
        let resp = self
            .call(
                reqwest::Method::POST,
                &config,
                Some(&json!({ "deletion_allowed": true })),
            )
            .await?;
        self.ok_or_not_found(resp, "allow deletion").await?;
        let resp = self
            .call(reqwest::Method::DELETE, &self.path("keys", name)?, None)
            .await?;
        self.ok_or_not_found(resp, "delete key").await
    }

    /// Transit's own rotation: `POST keys/<name>/rotate` adds a version (new ciphertexts name
    /// it, `vault:v<N>:`), then `POST keys/<name>/config {min_decryption_version}` sets the
    /// oldest version Transit still decrypts with (checked against the newest first: Transit
    /// would refuse it too, less clearly). The key must exist: Transit's rotate never creates.
    pub async fn rotate(
        &self,
        name: &str,
        rotation: crate::keys::Rotation,
    ) -> Result<TransitKeyInfo, KeyError> {
        let mut info = self.info(name).await?;
        let key = self.path("keys", name)?;
        if rotation.add_version {
            let resp = self
                .call(
                    reqwest::Method::POST,
                    &format!("{key}/rotate"),
                    Some(&json!({})),
                )
                .await?;
            self.ok_or_not_found(resp, "rotate key").await?;
            info = self.info(name).await?;
        }
        if let Some(min) = rotation.min_version {
            if min == 0 || min > info.latest_version {
                return Err(KeyError::Version(
                    crate::crypto::RingError::InvalidMinVersion {
                        min,
                        newest: info.latest_version,
                    },
                ));
            }
            let resp = self
                .call(
                    reqwest::Method::POST,
                    &format!("{key}/config"),
                    Some(&json!({ "min_decryption_version": min })),
                )
                .await?;
            self.ok_or_not_found(resp, "set minimum version").await?;
            info = self.info(name).await?;
        }
        Ok(info)
    }

    async fn ok_or_not_found(&self, resp: reqwest::Response, what: &str) -> Result<(), StoreError> {
        match resp.status().as_u16() {
            200 | 204 => Ok(()),
            404 => Err(StoreError::NotFound),
            400 => {
                let errors = error_list(resp).await;
                if says_not_found(&errors) || errors.contains("not found") {
                    Err(StoreError::NotFound)
                } else {
                    Err(StoreError::Other(format!("vault: {what}: 400 {errors}")))
                }
            }
            _ => Err(self.client.fail(resp, what).await),
        }
    }

    /// Maps the error answer of a key operation: a missing key is `NotFound`; a 400 for another
    /// reason is `on_bad_request`.
    async fn key_error(
        &self,
        resp: reqwest::Response,
        what: &str,
        on_bad_request: Option<KeyError>,
    ) -> KeyError {
        if resp.status().as_u16() != 400 {
            return self.client.fail(resp, what).await.into();
        }
        let errors = error_list(resp).await;
        if says_not_found(&errors) {
            return StoreError::NotFound.into();
        }
        on_bad_request
            .unwrap_or_else(|| StoreError::Other(format!("vault: {what}: 400 {errors}")).into())
    }

    /// A fresh 256-bit data key from Vault and its ciphertext bound to `context`.
    pub async fn generate(&self, name: &str, context: &[u8]) -> Result<DataKey, KeyError> {
        let body = with_context(json!({ "bits": 256 }), context);
        let resp = self
            .call(
                reqwest::Method::POST,
                &self.path("datakey/plaintext", name)?,
                Some(&body),
            )
            .await?;
        if resp.status().as_u16() != 200 {
            return Err(self.key_error(resp, "generate data key", None).await);
        }
        let answer: DataKeyData = data(resp).await?;
        let mut plaintext = Zeroizing::new([0u8; 32]);
        if answer.plaintext.len() != plaintext.len() {
            return Err(StoreError::Other("vault: data key of the wrong size".into()).into());
        }
        plaintext.copy_from_slice(&answer.plaintext);
        Ok(DataKey {
            plaintext,
            ciphertext: answer.ciphertext.into_bytes(),
        })
    }

    /// `plaintext` encrypted under the key's newest version, bound to `context`.
    pub async fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        // Transit's encrypt creates a missing key (with `create` rights): a missing key must
        // be `key does not exist`, as with every other keystore.
        self.info(name).await?;
        let encoded = Zeroizing::new(STANDARD.encode(plaintext));
        let body = with_context(json!({ "plaintext": encoded.as_str() }), context);
        let resp = self
            .call(
                reqwest::Method::POST,
                &self.path("encrypt", name)?,
                Some(&body),
            )
            .await?;
        if resp.status().as_u16() != 200 {
            return Err(self.key_error(resp, "encrypt", None).await);
        }
        let answer: CiphertextData = data(resp).await?;
        Ok(answer.ciphertext.into_bytes())
    }

    /// The plaintext of a Transit ciphertext under `name` with the context it was made with.
    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let path = self.path("decrypt", name)?;
        let ciphertext = transit_ciphertext(ciphertext).ok_or(KeyError::NotAuthentic)?;
        let body = with_context(json!({ "ciphertext": ciphertext }), context);
        let resp = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        if resp.status().as_u16() != 200 {
            // Transit's 400s here: a ciphertext that does not authenticate under this key and
            // context, is malformed, or names a version it does not have (any more).
            return Err(self
                .key_error(resp, "decrypt", Some(KeyError::NotAuthentic))
                .await);
        }
        let answer: PlaintextData = data(resp).await?;
        Ok(answer.plaintext)
    }

    /// HMAC-SHA256 of `message` under the key's newest version's HMAC key.
    pub async fn hmac(&self, name: &str, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let body = json!({ "input": STANDARD.encode(message) });
        let resp = self
            .call(
                reqwest::Method::POST,
                &self.path("hmac", name)?,
                Some(&body),
            )
            .await?;
        if resp.status().as_u16() != 200 {
            return Err(self.key_error(resp, "hmac", None).await);
        }
        let answer: HmacData = data(resp).await?;
        // `vault:v<version>:<base64 of the MAC>`
        let mac = answer
            .hmac
            .rsplit_once(':')
            .and_then(|(_, b64)| STANDARD.decode(b64).ok())
            .ok_or_else(|| StoreError::Other("vault: invalid transit response".into()))?;
        Ok(mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transit_ciphertexts_are_sent_to_vault() {
        assert_eq!(
            transit_ciphertext(b"vault:v1:lRgnIPra+/KK="),
            Some("vault:v1:lRgnIPra+/KK=")
        );
        assert_eq!(
            transit_ciphertext(b"vault:v12:AAAA"),
            Some("vault:v12:AAAA")
        );
        for bad in [
            &b""[..],
            b"vault:v1:",
            b"vault:v:AAAA",
            b"vault:vx:AAAA",
            b"vault:v1:AA AA",
            b"vault:v1:AA\"}",
            b"vault:v1:AA\nAA",
            b"VAULT:v1:AAAA",
            b"\xff\xfe",
            // A KES ciphertext (AEAD output, iv, nonce) is binary.
            &[7u8; 60],
        ] {
            assert_eq!(transit_ciphertext(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn context_is_associated_data_and_empty_context_is_none() {
        let body = with_context(json!({ "bits": 256 }), b"{\"b\":\"b/o\"}");
        assert_eq!(body["associated_data"], "eyJiIjoiYi9vIn0=");
        let body = with_context(json!({ "bits": 256 }), b"");
        assert!(body.get("associated_data").is_none());
    }

    #[test]
    fn parses_a_key_description() {
        let body = json!({ "data": {
            "type": "aes256-gcm96", "exportable": false, "latest_version": 2,
            "min_decryption_version": 1, "keys": { "1": 1796619813, "2": 1796619913 },
        }});
        let info = TransitKeyInfo::parse(&body).unwrap();
        assert_eq!(info.algorithm(), "AES256");
        assert_eq!(info.latest_version, 2);
        assert_eq!(info.created_at().unix_timestamp(), 1796619813);
        assert_eq!(info.versions.len(), 2);
        assert!(!info.exportable);
        let body = json!({ "data": { "type": "aes256-gcm96", "keys": { "x": 1 },
            "latest_version": 1, "min_decryption_version": 1 }});
        assert!(TransitKeyInfo::parse(&body).is_err());
    }

    #[test]
    fn names_stay_one_path_segment() {
        let keys = TransitKeys {
            client: VaultClient::new_offline(super::super::test_config(VaultEngine::Transit(
                TransitEngine {
                    mount: "/transit/".into(),
                },
            ))),
            transit: TransitEngine {
                mount: "/transit/".into(),
            },
        };
        assert_eq!(keys.path("keys", "k-1").unwrap(), "transit/keys/k-1");
        for bad in ["../sys", "a/b", "", "k?list=true", "k%2F"] {
            assert_eq!(
                keys.path("keys", bad),
                Err(StoreError::InvalidName),
                "{bad}"
            );
        }
    }
}
