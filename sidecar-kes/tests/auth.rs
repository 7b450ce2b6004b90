//! Client certificates verified against a CA (`tls.auth: on`), `skip_auth` and timeouts per
//! API, and a SIGHUP reload of policies in the real binary.

mod common;

use common::ours::{OurKes, kes_bin, output};
use common::*;
use sidecar_kes::api::{ApiSettings, AuthState, Shared};
use sidecar_kes::auth::Identity;
use sidecar_kes::cache::{CacheConfig, KeyCache};
use sidecar_kes::client::{ClientConfig, ClientError, ClientIdentity, KesClient};
use sidecar_kes::keystore::mem::MemStore;
use sidecar_kes::server::{TlsSettings, server_config, start};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn client(endpoint: &str, cert_pem: &str, key_pem: &str, ca: &str) -> KesClient {
    KesClient::new(ClientConfig {
        endpoints: vec![endpoint.into()],
        identity: ClientIdentity::Certificate {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        },
        ca_pems: vec![ca.as_bytes().to_vec()],
        ca_files: vec![],
        insecure_skip_verify: false,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_verified_against_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = coffer_e2e::pki::TestCa::new(dir.path(), "clients-ca");
    let server = ca.server("kes", &[]);
    let good = ca.client("good", "object-server", &[]);
    let stranger = client_cert("self-signed");
    let good_id = Identity::from_cert_pem(good.cert_pem.as_bytes()).unwrap();
    let auth = AuthState {
        admin: good_id,
        ..Default::default()
    };
    let shared = Arc::new(Shared::new(
        auth,
        KeyCache::new(Arc::new(MemStore::new()), CacheConfig::default()),
    ));
    let tls = server_config(&TlsSettings {
        cert_pem: server.cert_pem.clone().into_bytes(),
        key_pem: server.key_pem.clone().into_bytes(),
        client_cas: vec![ca.cert_pem.clone().into_bytes()],
    })
    .unwrap();
    let running = start("127.0.0.1:0", tls, shared, &["preset".into()])
        .await
        .unwrap();
    let endpoint = format!("https://127.0.0.1:{}", running.addr.port());
    let c = client(&endpoint, &good.cert_pem, &good.key_pem, &ca.cert_pem);
    c.ready().await.unwrap();
    // The predefined key exists.
    assert_eq!(c.describe_key("preset").await.unwrap().name, "preset");
    let s = client(
        &endpoint,
        &stranger.cert_pem,
        &stranger.key_pem,
        &ca.cert_pem,
    );
    assert!(
        matches!(s.version().await, Err(ClientError::Network(_))),
        "a certificate outside the CA is refused"
    );
}

/// A self-signed certificate marked as a CA, with its key: what anyone can make.
fn ca_flagged_cert(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Whether the server takes the client for `who` (`/v1/identity/self/describe`).
async fn seen_as(c: &KesClient) -> Option<String> {
    c.describe_self()
        .await
        .ok()
        .and_then(|v| v["identity"].as_str().map(String::from))
}

/// `tls.auth` off (the default, and the MinIO KMS guide's `--auth=off`): an attacker who
/// presents a chain of its own CA-flagged certificate (whose key it holds) followed by a
/// victim's public certificate must not be taken for the victim. The identity is the leaf,
/// and a CA-flagged leaf is refused in the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_victims_certificate_appended_to_the_chain_is_not_the_identity() {
    let victim = client_cert("victim");
    let ts = start_server(
        Arc::new(MemStore::new()),
        CacheConfig::default(),
        vec![(
            "app",
            sidecar_kes::auth::Policy {
                allow: vec![
                    "/v1/key/generate/app-*".into(),
                    "/v1/identity/self/describe".into(),
                ],
                deny: vec![],
            },
            vec![victim.identity.clone()],
        )],
    )
    .await;
    ts.admin_client().create_key("app-key").await.unwrap();
    let cert_client = |cert_pem: String, key_pem: String| {
        ts.client(ClientIdentity::Certificate {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        })
    };
    // The victim itself.
    let real = cert_client(victim.cert_pem.clone(), victim.key_pem.clone());
    real.generate_key("app-key", b"").await.unwrap();
    assert_eq!(
        seen_as(&real).await.as_deref(),
        Some(victim.identity.as_str())
    );

    // The attack: [own CA-flagged cert, victim's cert], signed with the own key.
    let (own_ca, own_key) = ca_flagged_cert("attacker");
    let attacker = cert_client(format!("{own_ca}{}", victim.cert_pem), own_key);
    let generated = attacker.generate_key("app-key", b"").await;
    assert!(
        matches!(generated, Err(ClientError::Network(_))),
        "a CA-flagged leaf is refused in the handshake, got {:?}",
        generated.map(drop)
    );
    assert_eq!(seen_as(&attacker).await, None);

    // A non-CA leaf of the attacker's own, then the victim's: the attacker's own identity.
    let own_leaf = client_cert("attacker-leaf");
    let attacker = cert_client(
        format!("{}{}", own_leaf.cert_pem, victim.cert_pem),
        own_leaf.key_pem.clone(),
    );
    assert_eq!(
        attacker.generate_key("app-key", b"").await.unwrap_err(),
        ClientError::NotAuthorized
    );
    assert_eq!(
        attacker.status().await.unwrap_err(),
        ClientError::NotAuthorized
    );
}

/// `tls.auth` on: the identity is the end-entity certificate rustls verified against the
/// client CAs, never another certificate of the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_verified_client_certificates_the_identity_is_the_verified_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let ca = coffer_e2e::pki::TestCa::new(dir.path(), "clients-ca");
    let server = ca.server("kes", &[]);
    let admin = ca.client("admin", "admin", &[]);
    let other = ca.client("other", "other", &[]);
    let admin_id = Identity::from_cert_pem(admin.cert_pem.as_bytes()).unwrap();
    let other_id = Identity::from_cert_pem(other.cert_pem.as_bytes()).unwrap();
    let mut auth = AuthState {
        admin: admin_id.clone(),
        ..Default::default()
    };
    auth.policies.insert(
        "self".into(),
        sidecar_kes::auth::Policy {
            allow: vec!["/v1/identity/self/describe".into()],
            deny: vec![],
        },
    );
    auth.identities.insert(other_id.clone(), "self".into());
    let shared = Arc::new(Shared::new(
        auth,
        KeyCache::new(Arc::new(MemStore::new()), CacheConfig::default()),
    ));
    let tls = server_config(&TlsSettings {
        cert_pem: server.cert_pem.clone().into_bytes(),
        key_pem: server.key_pem.clone().into_bytes(),
        client_cas: vec![ca.cert_pem.clone().into_bytes()],
    })
    .unwrap();
    let running = start("127.0.0.1:0", tls, shared, &[]).await.unwrap();
    let endpoint = format!("https://127.0.0.1:{}", running.addr.port());
    let real_admin = client(&endpoint, &admin.cert_pem, &admin.key_pem, &ca.cert_pem);
    assert_eq!(
        seen_as(&real_admin).await.as_deref(),
        Some(admin_id.as_str())
    );

    // A verified leaf of its own, then the admin's certificate: still itself.
    let chained = client(
        &endpoint,
        &format!("{}{}", other.cert_pem, admin.cert_pem),
        &other.key_pem,
        &ca.cert_pem,
    );
    assert_eq!(seen_as(&chained).await.as_deref(), Some(other_id.as_str()));
    assert_eq!(
        chained.create_key("k").await.unwrap_err(),
        ClientError::NotAuthorized
    );
    // An own CA-flagged certificate, then the admin's: refused in the handshake.
    let (own_ca, own_key) = ca_flagged_cert("attacker");
    let forged = client(
        &endpoint,
        &format!("{own_ca}{}", admin.cert_pem),
        &own_key,
        &ca.cert_pem,
    );
    assert!(matches!(
        forged.version().await,
        Err(ClientError::Network(_))
    ));
    assert!(matches!(
        forged.create_key("k").await,
        Err(ClientError::Network(_))
    ));
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_auth_and_timeouts_per_api() {
    let ts = start_server(Arc::new(MemStore::new()), CacheConfig::default(), vec![]).await;
    let mut auth: AuthState = (*ts.running.shared.auth()).clone();
    auth.api.insert(
        "/v1/ready".into(),
        ApiSettings {
            skip_auth: true,
            timeout: Some(Duration::from_secs(3)),
        },
    );
    ts.running.shared.set_auth(auth);
    let stranger = ts.client(ClientIdentity::ApiKey(
        sidecar_kes::auth::ApiKey::generate()
            .to_secret_string()
            .to_string(),
    ));
    stranger.ready().await.unwrap();
    assert_eq!(
        stranger.status().await.unwrap_err(),
        ClientError::NotAuthorized
    );
    let apis = ts.admin_client().get_json(&["v1", "api"]).await.unwrap();
    let ready = apis
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == "/v1/ready")
        .unwrap();
    assert_eq!(ready["timeout"], 3);
}

#[test]
fn sighup_reloads_policies() {
    let app = client_cert("app");
    let admin = sidecar_kes::auth::ApiKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let sc = server_cert();
    std::fs::write(dir.path().join("tls.crt"), &sc.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &sc.key_pem).unwrap();
    std::fs::write(dir.path().join("app.crt"), &app.cert_pem).unwrap();
    std::fs::write(dir.path().join("app.key"), &app.key_pem).unwrap();
    let config = |allow: &str| {
        format!(
            "address: 127.0.0.1:{{port}}\nadmin:\n  identity: {}\ntls:\n  key: {d}/tls.key\n  cert: {d}/tls.crt\npolicy:\n  app:\n    allow: [{allow}]\n    identities: [{}]\n",
            admin.identity(),
            app.identity,
            d = dir.path().display()
        )
    };
    let kes = OurKes::with_config(&config("/v1/status"), &[]);
    let cli = |args: &[&str]| {
        output(
            Command::new(kes_bin())
                .args(args)
                .args(["-k", "--server", &kes.endpoint])
                .env("KES_CLIENT_CERT", dir.path().join("app.crt"))
                .env("KES_CLIENT_KEY", dir.path().join("app.key"))
                .env_remove("KES_API_KEY")
                .env_remove("MINIO_KES_API_KEY"),
        )
    };
    let (okay, text) = cli(&["key", "create", "app-key"]);
    assert!(
        !okay && text.contains("not authorized: insufficient permissions"),
        "{text}"
    );
    // Rewrite the config in place (same port) and send SIGHUP.
    let path = kes.dir().join("config.yml");
    let port = kes.endpoint.rsplit(':').next().unwrap().to_string();
    std::fs::write(
        &path,
        config("/v1/key/create/app-*").replace("{port}", &port),
    )
    .unwrap();
    let pid = kes.process.pid().unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    coffer_e2e::wait_until(
        "the reloaded policy",
        Duration::from_secs(60),
        || cli(&["key", "create", "app-key"]).0.then_some(()),
        || kes.process.log_tail(),
    );
    let (okay, text) = cli(&["key", "create", "other"]);
    assert!(!okay && text.contains("not authorized"), "{text}");
    // The admin sees the reloaded policy with `kes policy info` and `kes policy ls`.
    let admin_cli = |args: &[&str]| {
        output(Command::new(kes_bin()).args(args).args([
            "-k",
            "--server",
            &kes.endpoint,
            "--api-key",
            &admin.to_secret_string(),
        ]))
    };
    let (okay, text) = admin_cli(&["policy", "info", "app"]);
    assert!(okay, "{text}");
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        policy["allow"].get("/v1/key/create/app-*").is_some(),
        "{text}"
    );
    let (okay, text) = admin_cli(&["policy", "ls"]);
    assert!(okay && text.contains("\"app\""), "{text}");
}
