//! Shared helpers of the integration tests: certificates, a server on loopback, clients.
#![allow(dead_code)]

use sidecar_kes::api::{AuthState, Shared};
use sidecar_kes::auth::{ApiKey, Identity, Policy};
use sidecar_kes::cache::{CacheConfig, KeyCache};
use sidecar_kes::client::{ClientConfig, ClientIdentity, KesClient};
use sidecar_kes::keys::Keys;
use sidecar_kes::keystore::Keystore;
use sidecar_kes::server::{Running, TlsSettings, server_config, start};
use std::sync::Arc;

pub mod ours;

/// A self-signed server certificate for 127.0.0.1 and localhost.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn server_cert() -> ServerCert {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    ServerCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A client certificate (self-signed) and its identity.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub identity: Identity,
}

pub fn client_cert(cn: &str) -> ClientCert {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let identity = Identity::from_cert_der(cert.der()).unwrap();
    ClientCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        identity,
    }
}

pub struct TestServer {
    pub running: Running,
    pub cert: ServerCert,
    pub admin: ApiKey,
    pub endpoint: String,
}

impl TestServer {
    pub fn client(&self, identity: ClientIdentity) -> KesClient {
        KesClient::new(ClientConfig {
            endpoints: vec![self.endpoint.clone()],
            identity,
            ca_pems: vec![self.cert.cert_pem.clone().into_bytes()],
            ca_files: vec![],
            insecure_skip_verify: false,
        })
        .unwrap()
    }

    pub fn admin_client(&self) -> KesClient {
        self.client(ClientIdentity::ApiKey(
            self.admin.to_secret_string().to_string(),
        ))
    }
}

/// Starts a server over `store` with an admin API key and the given policies.
pub async fn start_server(
    store: Arc<dyn Keystore>,
    cache: CacheConfig,
    policies: Vec<(&str, Policy, Vec<Identity>)>,
) -> TestServer {
    start_server_over(KeyCache::new(store, cache), policies).await
}

/// Starts a server over `keys` (a key cache, or Vault Transit) with an admin API key and the
/// given policies.
pub async fn start_server_over(
    keys: impl Into<Keys>,
    policies: Vec<(&str, Policy, Vec<Identity>)>,
) -> TestServer {
    let cert = server_cert();
    let admin = ApiKey::generate();
    let mut auth = AuthState {
        admin: admin.identity(),
        ..Default::default()
    };
    for (name, p, ids) in policies {
        auth.policies.insert(name.into(), p);
        for id in ids {
            auth.identities.insert(id, name.into());
        }
    }
    let shared = Arc::new(Shared::new(auth, keys));
    let tls = server_config(&TlsSettings {
        cert_pem: cert.cert_pem.clone().into_bytes(),
        key_pem: cert.key_pem.clone().into_bytes(),
        client_cas: vec![],
    })
    .unwrap();
    let running = start("127.0.0.1:0", tls, shared, &[]).await.unwrap();
    let endpoint = format!("https://127.0.0.1:{}", running.addr.port());
    TestServer {
        running,
        cert,
        admin,
        endpoint,
    }
}

/// A raw HTTPS client with the given identity (for malformed requests).
pub fn raw_client(ts: &TestServer, identity: Option<ClientIdentity>) -> reqwest::Client {
    raw_client_trusting(&ts.cert, identity)
}

/// [`raw_client`] for a server (e.g. our `kes` binary) with certificate `cert`.
pub fn raw_client_trusting(cert: &ServerCert, identity: Option<ClientIdentity>) -> reqwest::Client {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(sidecar_kes::client::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match identity {
        Some(id) => {
            let (chain, key) = sidecar_kes::client::tls::client_auth(&id).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(cfg)
        .build()
        .unwrap()
}

/// Our Vault keystore's configuration for the K/V engine `engine` (v1 or v2, prefix `minio`) of
/// `vault`, logging in with an AppRole; it checks health every 300 ms.
pub fn kv_config(
    vault: &coffer_e2e::vault::Vault,
    engine: &str,
    v2: bool,
    role_id: &str,
    secret_id: &str,
) -> sidecar_kes::keystore::vault::VaultConfig {
    use sidecar_kes::keystore::vault::{KvEngine, VaultAuth, VaultConfig, VaultEngine};
    use std::time::Duration;
    VaultConfig {
        endpoint: vault.addr.clone(),
        engine: VaultEngine::Kv(KvEngine {
            mount: engine.into(),
            v2,
            prefix: "minio".into(),
        }),
        namespace: String::new(),
        auth: VaultAuth::AppRole {
            engine: "approle".into(),
            role_id: role_id.into(),
            secret_id: zeroize::Zeroizing::new(secret_id.into()),
            retry: Duration::from_millis(500),
        },
        tls_key: None,
        tls_cert: None,
        tls_ca: vault.ca_cert.clone(),
        ping: Duration::from_millis(300),
    }
}
