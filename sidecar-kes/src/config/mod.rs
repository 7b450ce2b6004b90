//! The server configuration file: the current KES format (`admin`, `keystore:`,
//! `policy.<name>.allow/deny`) and the older one of the MinIO KMS guide (`root`,
//! `keys: vault:`, `policy.<name>.paths`, `approle.retry`), with `${ENV}` expansion.
//! Errors name the field that is wrong.

pub mod duration;
pub mod env;

use crate::api::ApiSettings;
use crate::auth::{Identity, Policy};
use crate::cache::CacheConfig;
use crate::keystore::vault::{KvEngine, TransitEngine, VaultAuth, VaultConfig, VaultEngine};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// A config error that names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config: cannot read '{path}': {err}")]
    Read {
        /// File path.
        path: String,
        /// The I/O error.
        err: String,
    },
    /// Not valid YAML.
    #[error("config: invalid YAML: {0}")]
    Yaml(String),
    /// A field has a wrong type or value.
    #[error("config: {field}: {msg}")]
    Field {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        msg: String,
    },
}

fn field(field: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        msg: msg.into(),
    }
}

/// TLS settings of the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Private key file.
    pub key: PathBuf,
    /// Certificate file.
    pub cert: PathBuf,
    /// CA file or directory for client certificates.
    pub ca: Option<PathBuf>,
    /// Verify client certificates against `ca` (`tls.auth: on`, `--auth=on`).
    pub verify_clients: bool,
}

/// Where keys are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeystoreConfig {
    /// In memory (`--dev`).
    Memory,
    /// A directory.
    Fs {
        /// The directory.
        path: PathBuf,
    },
    /// Vault: K/V (the default) or Transit (`keystore.vault.transit`).
    Vault(Box<VaultConfig>),
}

/// A policy and the identities bound to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The allow/deny lists.
    pub policy: Policy,
    /// Identities that get the policy.
    pub identities: Vec<Identity>,
}

/// The parsed server configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Listen address.
    pub address: String,
    /// Admin identity (empty = disabled).
    pub admin: Identity,
    /// TLS.
    pub tls: TlsConfig,
    /// Cache expiry.
    pub cache: CacheConfig,
    /// Policies by name.
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Keys to create at start if missing.
    pub keys: Vec<String>,
    /// Per-API settings.
    pub api: HashMap<String, ApiSettings>,
    /// The keystore.
    pub keystore: KeystoreConfig,
    /// Where audit events are written besides `/v1/log/audit` (`log.audit`).
    pub audit_log: AuditTarget,
}

/// `log.audit`: `off` (KES's default), `on` (standard output, as KES), or a file path (Coffer:
/// appended to, JSON lines).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuditTarget {
    /// Only the `/v1/log/audit` stream.
    #[default]
    Off,
    /// Standard output.
    Stdout,
    /// A file.
    File(PathBuf),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    address: Option<String>,
    admin: Option<RawAdmin>,
    root: Option<String>,
    tls: RawTls,
    cache: RawCache,
    policy: BTreeMap<String, RawPolicy>,
    keys: Option<serde_json::Value>,
    keystore: Option<RawKeystore>,
    api: BTreeMap<String, RawApi>,
    log: RawLog,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLog {
    /// KES's `log.error` (errors always go to standard error here): `on`/`off`, or a level
    /// (`debug`, `info`, `warn`, `error`: what the operator writes and MinIO's KES accepts);
    /// checked, not used.
    error: Option<serde_json::Value>,
    audit: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAdmin {
    identity: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTls {
    key: String,
    cert: String,
    ca: String,
    auth: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCache {
    expiry: RawExpiry,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawExpiry {
    any: Option<String>,
    unused: Option<String>,
    offline: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPolicy {
    allow: Vec<String>,
    deny: Vec<String>,
    paths: Vec<String>,
    identities: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawApi {
    skip_auth: bool,
    timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawKeystore {
    fs: Option<RawFs>,
    vault: Option<RawVault>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawFs {
    path: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawVault {
    endpoint: String,
    engine: String,
    version: String,
    namespace: String,
    prefix: String,
    transit: Option<RawTransit>,
    approle: Option<RawAppRole>,
    kubernetes: Option<RawK8s>,
    tls: RawVaultTls,
    status: RawStatus,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTransit {
    engine: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAppRole {
    engine: String,
    id: String,
    secret: String,
    retry: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawK8s {
    engine: String,
    role: String,
    jwt: String,
    retry: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawVaultTls {
    key: String,
    cert: String,
    ca: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStatus {
    ping: Option<String>,
}

fn dur(name: &str, v: &Option<String>) -> Result<Option<Duration>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) => duration::parse(s).map(Some).map_err(|e| field(name, e)),
    }
}

fn on_off(name: &str, v: &serde_json::Value) -> Result<bool, ConfigError> {
    match v {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Ok(true),
            "off" | "false" | "no" | "" => Ok(false),
            _ => Err(field(name, format!("expected 'on' or 'off', got '{s}'"))),
        },
        _ => Err(field(name, "expected 'on' or 'off'")),
    }
}

fn identity_value(s: &str) -> Identity {
    let s = s.trim();
    if s.eq_ignore_ascii_case("disabled") || s == "_" {
        Identity::new("")
    } else {
        Identity::new(s)
    }
}

/// Parses a config file's text, expanding `${ENV}` with `lookup`.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ServerConfig, ConfigError> {
    let mut value: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?
    };
    if value.is_null() {
        value = serde_json::Value::Object(Default::default());
    }
    env::expand_value(&mut value, lookup);
    let raw: Raw = serde_path_to_error::deserialize(value)
        .map_err(|e| field(e.path().to_string(), e.inner().to_string()))?;
    build(raw)
}

/// Reads and parses a config file with the process environment.
pub fn load(path: &std::path::Path) -> Result<ServerConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        err: e.to_string(),
    })?;
    parse(&text, &|k| std::env::var(k).ok())
}

fn build(raw: Raw) -> Result<ServerConfig, ConfigError> {
    let admin = match (&raw.admin, &raw.root) {
        (Some(a), _) => identity_value(&a.identity),
        (None, Some(r)) => identity_value(r),
        (None, None) => Identity::new(""),
    };
    let verify_clients = match &raw.tls.auth {
        Some(v) => on_off("tls.auth", v)?,
        None => false,
    };
    let tls = TlsConfig {
        key: raw.tls.key.into(),
        cert: raw.tls.cert.into(),
        ca: (!raw.tls.ca.is_empty()).then(|| raw.tls.ca.into()),
        verify_clients,
    };
    let defaults = CacheConfig::default();
    let nonzero = |d: Option<Duration>| d.filter(|d| !d.is_zero());
    let cache = CacheConfig {
        any: match dur("cache.expiry.any", &raw.cache.expiry.any)? {
            Some(d) => nonzero(Some(d)),
            None => defaults.any,
        },
        unused: match dur("cache.expiry.unused", &raw.cache.expiry.unused)? {
            Some(d) => nonzero(Some(d)),
            None => defaults.unused,
        },
        offline: nonzero(dur("cache.expiry.offline", &raw.cache.expiry.offline)?),
    };
    let mut policies = BTreeMap::new();
    let mut seen: HashMap<Identity, String> = HashMap::new();
    for (name, p) in raw.policy {
        if !crate::api::names::valid_name(&name) {
            return Err(field(format!("policy.{name}"), "invalid policy name"));
        }
        let mut allow = p.allow;
        allow.extend(p.paths); // legacy `paths` = allow
        let mut identities = Vec::new();
        for id in p
            .identities
            .iter()
            .map(|s| identity_value(s))
            .filter(|i| !i.is_empty())
        {
            if let Some(other) = seen.insert(id.clone(), name.clone()) {
                return Err(field(
                    format!("policy.{name}.identities"),
                    format!("identity '{id}' already has policy '{other}'"),
                ));
            }
            identities.push(id);
        }
        policies.insert(
            name,
            PolicyConfig {
                policy: Policy {
                    allow,
                    deny: p.deny,
                },
                identities,
            },
        );
    }
    let mut api = HashMap::new();
    for (path, a) in raw.api {
        let path = path.trim_end_matches('/').to_string();
        api.insert(
            path.clone(),
            ApiSettings {
                skip_auth: a.skip_auth,
                timeout: nonzero(dur(&format!("api.{path}.timeout"), &a.timeout)?),
            },
        );
    }
    // `keys:` is a list of predefined keys (current) or the keystore (legacy).
    let mut keys = Vec::new();
    let mut keystore_raw = raw.keystore;
    match raw.keys {
        Some(serde_json::Value::Array(list)) => {
            for (i, k) in list.into_iter().enumerate() {
                let name = k
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string();
                if !crate::api::names::valid_name(&name) {
                    return Err(field(format!("keys[{i}].name"), "invalid key name"));
                }
                keys.push(name);
            }
        }
        Some(v @ serde_json::Value::Object(_)) => {
            if keystore_raw.is_some() {
                return Err(field(
                    "keys",
                    "both 'keys' (legacy keystore) and 'keystore' are set",
                ));
            }
            keystore_raw = Some(
                serde_path_to_error::deserialize(v)
                    .map_err(|e| field(format!("keys.{}", e.path()), e.inner().to_string()))?,
            );
        }
        Some(serde_json::Value::Null) | None => {}
        Some(_) => return Err(field("keys", "expected a list of keys or a keystore")),
    }
    let keystore = match keystore_raw {
        None => KeystoreConfig::Memory,
        Some(RawKeystore {
            fs: Some(fs),
            vault: None,
        }) => {
            if fs.path.is_empty() {
                return Err(field("keystore.fs.path", "missing path"));
            }
            KeystoreConfig::Fs {
                path: fs.path.into(),
            }
        }
        Some(RawKeystore {
            fs: None,
            vault: Some(v),
        }) => KeystoreConfig::Vault(Box::new(vault(v)?)),
        Some(RawKeystore {
            fs: None,
            vault: None,
        }) => return Err(field("keystore", "no keystore configured")),
        Some(_) => return Err(field("keystore", "more than one keystore configured")),
    };
    if let Some(v) = &raw.log.error {
        let level = v.as_str().map(str::to_ascii_lowercase);
        if !matches!(level.as_deref(), Some("debug" | "info" | "warn" | "error")) {
            on_off("log.error", v).map_err(|_| {
                field(
                    "log.error",
                    "expected 'on', 'off' or a level (debug, info, warn, error)",
                )
            })?;
        }
    }
    let audit_log = match &raw.log.audit {
        None => AuditTarget::Off,
        Some(serde_json::Value::String(p)) if p.contains('/') => AuditTarget::File(p.into()),
        Some(v) => {
            if on_off("log.audit", v).map_err(|_| {
                field(
                    "log.audit",
                    "expected 'on', 'off' or a file path (containing a '/')",
                )
            })? {
                AuditTarget::Stdout
            } else {
                AuditTarget::Off
            }
        }
    };
    Ok(ServerConfig {
        audit_log,
        address: raw.address.unwrap_or_else(|| "0.0.0.0:7373".into()),
        admin,
        tls,
        cache,
        policies,
        keys,
        api,
        keystore,
    })
}

fn vault(v: RawVault) -> Result<VaultConfig, ConfigError> {
    if v.endpoint.is_empty() {
        return Err(field("keystore.vault.endpoint", "missing endpoint"));
    }
    let engine = match v.transit {
        Some(t) => {
            for (name, value) in [
                ("engine", &v.engine),
                ("version", &v.version),
                ("prefix", &v.prefix),
            ] {
                if !value.is_empty() {
                    return Err(field(
                        format!("keystore.vault.{name}"),
                        "a K/V setting; with 'transit' set, keys live in Transit (its mount is transit.engine)",
                    ));
                }
            }
            VaultEngine::Transit(TransitEngine {
                mount: if t.engine.is_empty() {
                    "transit".into()
                } else {
                    t.engine
                },
            })
        }
        None => VaultEngine::Kv(KvEngine {
            mount: if v.engine.is_empty() {
                "kv".into()
            } else {
                v.engine
            },
            v2: match v.version.as_str() {
                "" | "v1" | "1" => false,
                "v2" | "2" => true,
                other => {
                    return Err(field(
                        "keystore.vault.version",
                        format!("invalid K/V version '{other}'"),
                    ));
                }
            },
            prefix: v.prefix,
        }),
    };
    let auth = match (v.approle, v.kubernetes) {
        (Some(a), None) => VaultAuth::AppRole {
            engine: if a.engine.is_empty() {
                "approle".into()
            } else {
                a.engine
            },
            role_id: a.id,
            secret_id: a.secret.into(),
            retry: dur("keystore.vault.approle.retry", &a.retry)?
                .unwrap_or(Duration::from_secs(15)),
        },
        (None, Some(k)) => VaultAuth::Kubernetes {
            engine: if k.engine.is_empty() {
                "kubernetes".into()
            } else {
                k.engine
            },
            role: k.role,
            jwt: k.jwt.into(),
            retry: dur("keystore.vault.kubernetes.retry", &k.retry)?
                .unwrap_or(Duration::from_secs(15)),
        },
        (None, None) => {
            return Err(field(
                "keystore.vault",
                "no authentication method (approle or kubernetes)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(field(
                "keystore.vault",
                "both approle and kubernetes are set",
            ));
        }
    };
    let opt = |s: String| (!s.is_empty()).then(|| PathBuf::from(s));
    Ok(VaultConfig {
        endpoint: v.endpoint,
        engine,
        namespace: v.namespace,
        auth,
        tls_key: opt(v.tls.key),
        tls_cert: opt(v.tls.cert),
        tls_ca: opt(v.tls.ca),
        ping: dur("keystore.vault.status.ping", &v.status.ping)?.unwrap_or(Duration::from_secs(10)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "ADMIN" => Some("AAAA".into()),
            "SECRET" => Some("s3cr3t".into()),
            _ => None,
        }
    }

    #[test]
    fn log_audit_is_off_on_or_a_file() {
        let audit = |text: &str| parse(text, &env).map(|c| c.audit_log);
        assert_eq!(audit("").unwrap(), AuditTarget::Off);
        assert_eq!(
            audit("log:\n  error: on\n  audit: off\n").unwrap(),
            AuditTarget::Off
        );
        assert_eq!(audit("log:\n  audit: on\n").unwrap(), AuditTarget::Stdout);
        assert_eq!(
            audit("log:\n  audit: /var/log/kes/audit.json\n").unwrap(),
            AuditTarget::File("/var/log/kes/audit.json".into())
        );
        let err = audit("log:\n  audit: loud\n").unwrap_err().to_string();
        assert!(err.contains("log.audit"), "{err}");
        let err = audit("log:\n  error: maybe\n").unwrap_err().to_string();
        assert!(err.contains("log.error"), "{err}");
        for ok in ["on", "off", "info", "DEBUG"] {
            audit(&format!("log:\n  error: {ok}\n")).unwrap();
        }
    }

    #[test]
    fn guide_format() {
        let text = r#"
address: 0.0.0.0:7373
tls:
  key:  kes-tls.key
  cert: kes-tls.crt
policy:
  minio:
    paths:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    identities:
    - dd46485bedc9ad2909d2e8f9017216eec4413bc5c64b236d992f7ec19c843c5f
cache:
  expiry:
    any:    5m0s
    unused: 20s
keys:
  vault:
    endpoint: https://127.0.0.1:8200
    prefix:   minio
    approle:
      id:     "role"
      secret: ${SECRET}
      retry:  15s
    tls:
      ca: vault-tls.crt
    status:
      ping: 10s
"#;
        let c = parse(text, &env).unwrap();
        assert_eq!(c.address, "0.0.0.0:7373");
        assert!(c.admin.is_empty());
        let p = &c.policies["minio"];
        assert_eq!(p.policy.allow.len(), 3);
        assert!(p.policy.verify("/v1/key/generate/minio-1"));
        assert_eq!(
            p.identities[0].as_str(),
            "dd46485bedc9ad2909d2e8f9017216eec4413bc5c64b236d992f7ec19c843c5f"
        );
        assert_eq!(c.cache.any, Some(Duration::from_secs(300)));
        assert_eq!(c.cache.unused, Some(Duration::from_secs(20)));
        let KeystoreConfig::Vault(v) = &c.keystore else {
            panic!("vault expected")
        };
        assert_eq!(
            v.engine,
            VaultEngine::Kv(KvEngine {
                mount: "kv".into(),
                v2: false,
                prefix: "minio".into()
            })
        );
        let VaultAuth::AppRole {
            role_id,
            secret_id,
            retry,
            ..
        } = &v.auth
        else {
            panic!()
        };
        assert_eq!(role_id, "role");
        assert_eq!(&secret_id[..], "s3cr3t");
        assert_eq!(*retry, Duration::from_secs(15));
        assert_eq!(
            v.tls_ca.as_deref(),
            Some(std::path::Path::new("vault-tls.crt"))
        );
    }

    #[test]
    fn current_format() {
        let text = r#"
version: v1
address: 127.0.0.1:7373
admin:
  identity: ${ADMIN}
tls:
  key: k.pem
  cert: c.pem
  ca: ca.pem
  auth: on
cache:
  expiry:
    any: 1m
    unused: 10s
    offline: 1h
api:
  /v1/ready:
    skip_auth: true
    timeout: 5s
policy:
  app:
    allow: [/v1/key/generate/app-*]
    deny: [/v1/key/delete/*]
    identities: [ABC]
keys:
  - name: app-key
keystore:
  vault:
    endpoint: https://vault:8200
    engine: secret
    version: v2
    namespace: ns1
    approle:
      id: r
      secret: s
"#;
        let c = parse(text, &env).unwrap();
        assert_eq!(c.admin.as_str(), "aaaa");
        assert!(c.tls.verify_clients);
        assert_eq!(c.cache.offline, Some(Duration::from_secs(3600)));
        assert_eq!(
            c.api["/v1/ready"],
            ApiSettings {
                skip_auth: true,
                timeout: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(c.keys, ["app-key"]);
        assert_eq!(c.policies["app"].policy.deny, ["/v1/key/delete/*"]);
        let KeystoreConfig::Vault(v) = &c.keystore else {
            panic!()
        };
        assert_eq!(
            v.engine,
            VaultEngine::Kv(KvEngine {
                mount: "secret".into(),
                v2: true,
                prefix: String::new()
            })
        );
        assert_eq!(v.namespace, "ns1");
    }

    #[test]
    fn vault_transit() {
        let text = r#"
keystore:
  vault:
    endpoint: https://vault:8200
    namespace: team
    transit:
      engine: kms-transit
    approle:
      id: r
      secret: s
"#;
        let c = parse(text, &env).unwrap();
        let KeystoreConfig::Vault(v) = &c.keystore else {
            panic!()
        };
        assert_eq!(
            v.engine,
            VaultEngine::Transit(TransitEngine {
                mount: "kms-transit".into()
            })
        );
        assert_eq!(v.namespace, "team");
        // The mount defaults to `transit`; the older config format takes it too.
        let c = parse(
            "keys:\n  vault:\n    endpoint: https://v\n    transit: {}\n    approle: {id: r, secret: s}\n",
            &env,
        )
        .unwrap();
        let KeystoreConfig::Vault(v) = &c.keystore else {
            panic!()
        };
        assert_eq!(
            v.engine,
            VaultEngine::Transit(TransitEngine {
                mount: "transit".into()
            })
        );
        // K/V settings beside `transit` are an error that names the field.
        for kv in ["engine: kv", "version: v2", "prefix: minio"] {
            let e = parse(
                &format!("keystore:\n  vault:\n    endpoint: https://v\n    {kv}\n    transit: {{}}\n    approle: {{id: r, secret: s}}\n"),
                &env,
            )
            .unwrap_err()
            .to_string();
            let name = kv.split(':').next().unwrap();
            assert!(e.contains(&format!("keystore.vault.{name}")), "{e}");
        }
    }

    #[test]
    fn vault_kubernetes_auth_and_mtls() {
        let text = r#"
keystore:
  vault:
    endpoint: https://vault:8200
    kubernetes:
      role: kes
      jwt: /var/run/secrets/kubernetes.io/serviceaccount/token
    tls:
      key: client.key
      cert: client.crt
"#;
        let c = parse(text, &env).unwrap();
        let KeystoreConfig::Vault(v) = &c.keystore else {
            panic!()
        };
        let VaultAuth::Kubernetes {
            engine,
            role,
            jwt,
            retry,
        } = &v.auth
        else {
            panic!()
        };
        assert_eq!((engine.as_str(), role.as_str()), ("kubernetes", "kes"));
        assert_eq!(
            &jwt[..],
            "/var/run/secrets/kubernetes.io/serviceaccount/token"
        );
        assert_eq!(*retry, Duration::from_secs(15));
        assert_eq!(
            v.tls_cert.as_deref(),
            Some(std::path::Path::new("client.crt"))
        );
        assert_eq!(v.ping, Duration::from_secs(10));
    }

    #[test]
    fn fs_and_errors_name_the_field() {
        let c = parse("keystore:\n  fs:\n    path: /tmp/k\n", &env).unwrap();
        assert_eq!(
            c.keystore,
            KeystoreConfig::Fs {
                path: "/tmp/k".into()
            }
        );
        let e = parse("cache:\n  expiry:\n    any: soon\n", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.expiry.any"), "{e}");
        let e = parse("tls:\n  key: [1, 2]\n", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls.key"), "{e}");
        let e = parse("keystore:\n  vault:\n    endpoint: https://v\n", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("keystore.vault"), "{e}");
        let e = parse(
            "policy:\n  a:\n    identities: [X]\n  b:\n    identities: [X]\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("policy.b.identities"), "{e}");
        assert!(matches!(parse("a: [", &env), Err(ConfigError::Yaml(_))));
    }
}
