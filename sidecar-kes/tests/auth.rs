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
