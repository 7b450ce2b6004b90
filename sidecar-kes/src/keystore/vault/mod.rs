//! Vault and OpenBao: one connection ([`client`]: TLS, AppRole or Kubernetes login, token
//! renewal, the namespace header, the health check and the sealed state) under two engines:
//!
//! - [`kv`]: the K/V engine holds KES's encoded master keys, which KES fetches and caches (the
//!   MinIO KMS guide's setup, and the default);
//! - [`transit`]: the Transit engine holds the master keys and does every key operation itself,
//!   so no master key ever leaves Vault.

mod client;
pub mod kv;
pub mod lockout;
pub mod transit;

pub use kv::VaultStore;
pub use transit::TransitKeys;

use std::path::PathBuf;
use std::time::Duration;
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

/// Which Vault secrets engine holds the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaultEngine {
    /// K/V (`keystore.vault.engine`, `version`, `prefix`): KES's encoded keys.
    Kv(KvEngine),
    /// Transit (`keystore.vault.transit`): keys that never leave Vault.
    Transit(TransitEngine),
}

/// Where in a K/V engine the keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEngine {
    /// K/V mount (default `kv`).
    pub mount: String,
    /// K/V version 2.
    pub v2: bool,
    /// Path prefix inside the engine.
    pub prefix: String,
}

/// Which Transit engine holds the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitEngine {
    /// Transit mount (`keystore.vault.transit.engine`, default `transit`).
    pub mount: String,
}

/// Vault keystore settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    /// `https://host:8200`.
    pub endpoint: String,
    /// The engine and where in it the keys are.
    pub engine: VaultEngine,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: String,
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

/// Settings that point nowhere, for unit tests.
#[cfg(test)]
pub(crate) fn test_config(engine: VaultEngine) -> VaultConfig {
    VaultConfig {
        endpoint: "http://127.0.0.1:1".into(),
        engine,
        namespace: String::new(),
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
