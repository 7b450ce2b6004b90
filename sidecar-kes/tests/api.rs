//! The server and the client together on loopback: every key API, policies, errors.

mod common;

use common::*;
use sidecar_kes::auth::Policy;
use sidecar_kes::cache::CacheConfig;
use sidecar_kes::client::{ClientConfig, ClientError, ClientIdentity, KesClient};
use sidecar_kes::keystore::mem::MemStore;
use std::sync::Arc;

async fn mem_server(policies: Vec<(&str, Policy, Vec<sidecar_kes::auth::Identity>)>) -> TestServer {
    start_server(Arc::new(MemStore::new()), CacheConfig::default(), policies).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_key_lifecycle() {
    let ts = mem_server(vec![]).await;
    let c = ts.admin_client();
    assert!(c.version().await.unwrap().starts_with('v'));
    c.ready().await.unwrap();
    c.create_key("minio-key-1").await.unwrap();
    assert_eq!(
        c.create_key("minio-key-1").await.unwrap_err(),
        ClientError::KeyExists
    );
    let info = c.describe_key("minio-key-1").await.unwrap();
    assert_eq!(info.name, "minio-key-1");
    assert_eq!(info.algorithm, "AES256");
    assert_eq!(info.created_by, ts.admin.identity().to_string());
    assert!(info.created_at.is_some());
    c.create_key("other").await.unwrap();
    assert_eq!(c.list_keys("").await.unwrap(), ["minio-key-1", "other"]);
    assert_eq!(c.list_keys("minio-").await.unwrap(), ["minio-key-1"]);

    let ctx = br#"{"bucket":"bucket/object"}"#;
    let dek = c.generate_key("minio-key-1", ctx).await.unwrap();
    assert_eq!(dek.plaintext.len(), 32);
    assert_eq!(dek.ciphertext.len(), 32 + 16 + 28);
    let pt = c
        .decrypt_key("minio-key-1", &dek.ciphertext, ctx)
        .await
        .unwrap();
    assert_eq!(&pt[..], &dek.plaintext[..]);
    // Wrong context, tampered ciphertext, wrong key: not authentic.
    assert_eq!(
        c.decrypt_key("minio-key-1", &dek.ciphertext, b"x")
            .await
            .unwrap_err(),
        ClientError::DecryptionFailed
    );
    let mut bad = dek.ciphertext.clone();
    bad[3] ^= 0x40;
    assert_eq!(
        c.decrypt_key("minio-key-1", &bad, ctx).await.unwrap_err(),
        ClientError::DecryptionFailed
    );
    assert_eq!(
        c.decrypt_key("other", &dek.ciphertext, ctx)
            .await
            .unwrap_err(),
        ClientError::DecryptionFailed
    );

    let ct = c.encrypt("other", b"hello", b"").await.unwrap();
    assert_eq!(
        &c.decrypt_key("other", &ct, b"").await.unwrap()[..],
        b"hello"
    );
    let mac = c.hmac("other", b"msg").await.unwrap();
    assert_eq!(mac.len(), 32);
    assert_eq!(c.hmac("other", b"msg").await.unwrap(), mac);

    c.import_key("imported", &[9u8; 32], "ChaCha20")
        .await
        .unwrap();
    assert_eq!(
        c.describe_key("imported").await.unwrap().algorithm,
        "ChaCha20"
    );
    let ct = c.encrypt("imported", b"x", b"c").await.unwrap();
    assert_eq!(
        &c.decrypt_key("imported", &ct, b"c").await.unwrap()[..],
        b"x"
    );

    c.delete_key("other").await.unwrap();
    assert_eq!(
        c.describe_key("other").await.unwrap_err(),
        ClientError::KeyNotFound
    );
    assert_eq!(
        c.generate_key("other", b"").await.unwrap_err(),
        ClientError::KeyNotFound
    );
    assert_eq!(
        c.delete_key("other").await.unwrap_err(),
        ClientError::KeyNotFound
    );

    let status = c.status().await.unwrap();
    assert!(status["uptime"].is_u64());
    let me = c.describe_self().await.unwrap();
    assert_eq!(me["admin"], true);
    assert_eq!(me["identity"], ts.admin.identity().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_restrict_identities() {
    let app = client_cert("minio");
    let policy = Policy {
        allow: vec![
            "/v1/key/create/minio-*".into(),
            "/v1/key/generate/minio-*".into(),
            "/v1/key/decrypt/minio-*".into(),
            "/v1/ready".into(),
        ],
        deny: vec!["/v1/key/generate/minio-secret".into()],
    };
    let ts = mem_server(vec![("minio", policy, vec![app.identity.clone()])]).await;
    let c = ts.client(ClientIdentity::Certificate {
        cert_pem: app.cert_pem.clone().into_bytes(),
        key_pem: app.key_pem.clone().into_bytes(),
    });
    c.ready().await.unwrap();
    c.create_key("minio-a").await.unwrap();
    let dek = c.generate_key("minio-a", b"").await.unwrap();
    assert_eq!(
        &c.decrypt_key("minio-a", &dek.ciphertext, b"")
            .await
            .unwrap()[..],
        &dek.plaintext[..]
    );
    assert_eq!(
        c.create_key("my-key-1").await.unwrap_err(),
        ClientError::NotAuthorized
    );
    assert_eq!(
        c.delete_key("minio-a").await.unwrap_err(),
        ClientError::NotAuthorized
    );
    c.create_key("minio-secret").await.unwrap();
    assert_eq!(
        c.generate_key("minio-secret", b"").await.unwrap_err(),
        ClientError::NotAuthorized
    );
    assert_eq!(
        c.list_keys("").await.unwrap_err(),
        ClientError::NotAuthorized
    );

    // An identity without a policy: /version works, every /v1 route is 403 with KES's text.
    let stranger = ts.client(ClientIdentity::ApiKey(
        sidecar_kes::auth::ApiKey::generate()
            .to_secret_string()
            .to_string(),
    ));
    assert!(stranger.version().await.is_ok());
    assert_eq!(
        stranger.ready().await.unwrap_err(),
        ClientError::NotAuthorized
    );
    let raw = raw_client(
        &ts,
        Some(ClientIdentity::ApiKey(
            sidecar_kes::auth::ApiKey::generate()
                .to_secret_string()
                .to_string(),
        )),
    );
    let resp = raw
        .get(format!("{}/v1/ready", ts.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"message":"not authorized: insufficient permissions"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_documented_errors() {
    let ts = mem_server(vec![]).await;
    let admin = ClientIdentity::ApiKey(ts.admin.to_secret_string().to_string());
    let raw = raw_client(&ts, Some(admin));
    let url = |p: &str| format!("{}{}", ts.endpoint, p);
    let text = |r: reqwest::Response| async move { (r.status().as_u16(), r.text().await.unwrap()) };

    assert_eq!(
        text(raw.post(url("/v1/key/create/k")).send().await.unwrap())
            .await
            .0,
        200
    );
    // PUT works too.
    assert_eq!(
        text(raw.put(url("/v1/key/create/k2")).send().await.unwrap())
            .await
            .0,
        200
    );
    // Malformed JSON.
    let r = text(
        raw.post(url("/v1/key/decrypt/k"))
            .body("{nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r, (400, r#"{"message":"invalid request body"}"#.into()));
    // Bad base64.
    let r = text(
        raw.post(url("/v1/key/decrypt/k"))
            .body(r#"{"ciphertext":"***"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.0, 400);
    // Body over 1 MB.
    let big = format!(r#"{{"plaintext":"{}"}}"#, "A".repeat(1 << 21));
    let r = text(
        raw.post(url("/v1/key/encrypt/k"))
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r, (400, r#"{"message":"invalid request body"}"#.into()));
    // Invalid names.
    let r = text(raw.post(url("/v1/key/create/a.b")).send().await.unwrap()).await;
    assert_eq!(
        r,
        (
            400,
            r#"{"message":"key name 'a.b' is empty, too long or contains invalid characters"}"#
                .into()
        )
    );
    let r = text(
        raw.post(url("/v1/key/create/..%2Fetc"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.0, 400);
    // Wrong method.
    let r = text(raw.get(url("/v1/key/create/k3")).send().await.unwrap()).await;
    assert_eq!(
        r,
        (
            405,
            r#"{"message":"received method 'GET' expected 'PUT'"}"#.into()
        )
    );
    // Unknown route.
    assert_eq!(
        text(raw.get(url("/v1/nope")).send().await.unwrap()).await.0,
        404
    );
    // Too short ciphertext.
    let r = text(
        raw.post(url("/v1/key/decrypt/k"))
            .body(r#"{"ciphertext":"AAAA"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        r,
        (
            400,
            r#"{"message":"decryption failed: ciphertext is not authentic"}"#.into()
        )
    );
    // Nothing was created by the failed calls.
    let c = ts.admin_client();
    assert_eq!(c.list_keys("").await.unwrap(), ["k", "k2"]);
    // /v1/api and /v1/metrics.
    let apis: serde_json::Value = raw
        .get(url("/v1/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        apis.as_array()
            .unwrap()
            .iter()
            .any(|a| a["path"] == "/v1/key/generate/" && a["max_body"] == 1048576)
    );
    let metrics = raw
        .get(url("/v1/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kes_http_request_success"), "{metrics}");
    assert!(metrics.contains("kes_http_request_error"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_requires_a_client_certificate() {
    let ts = mem_server(vec![]).await;
    let raw = raw_client(&ts, None);
    let err = raw.get(format!("{}/version", ts.endpoint)).send().await;
    assert!(
        err.is_err(),
        "a client without certificate must not get an answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fails_over_to_the_next_endpoint() {
    let ts = mem_server(vec![]).await;
    // Bound but never listening, and kept: connections are refused, and no other test's server
    // can take the port meanwhile (a port freed again could be).
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    let c = KesClient::new(ClientConfig {
        endpoints: vec![
            format!("https://127.0.0.1:{dead_port}"),
            ts.endpoint.clone(),
        ],
        identity: ClientIdentity::ApiKey(ts.admin.to_secret_string().to_string()),
        ca_pems: vec![ts.cert.cert_pem.clone().into_bytes()],
        ca_files: vec![],
        insecure_skip_verify: false,
    })
    .unwrap();
    c.create_key("k").await.unwrap();
    assert!(c.generate_key("k", b"").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_streams_events() {
    let ts = mem_server(vec![]).await;
    let raw = raw_client(
        &ts,
        Some(ClientIdentity::ApiKey(
            ts.admin.to_secret_string().to_string(),
        )),
    );
    let mut resp = raw
        .get(format!("{}/v1/log/audit", ts.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The subscription is registered once the headers arrived.
    let c = ts.admin_client();
    c.create_key("audited").await.unwrap();
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let line: serde_json::Value =
        serde_json::from_slice(chunk.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["request"]["path"], "/v1/key/create/audited");
    assert_eq!(line["request"]["identity"], ts.admin.identity().to_string());
    assert_eq!(line["response"]["code"], 200);
}

/// A keystore that is always unreachable.
struct Down;

impl sidecar_kes::keystore::Keystore for Down {
    fn describe(&self) -> String {
        "down".into()
    }
    fn status(
        &self,
    ) -> futures::future::BoxFuture<
        '_,
        Result<std::time::Duration, sidecar_kes::keystore::StoreError>,
    > {
        Box::pin(async {
            Err(sidecar_kes::keystore::StoreError::Unreachable(
                "connection refused".into(),
            ))
        })
    }
    fn create<'a>(
        &'a self,
        _: &'a str,
        _: &'a [u8],
    ) -> futures::future::BoxFuture<'a, Result<(), sidecar_kes::keystore::StoreError>> {
        Box::pin(async {
            Err(sidecar_kes::keystore::StoreError::Unreachable(
                "connection refused".into(),
            ))
        })
    }
    fn get<'a>(
        &'a self,
        _: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        Result<zeroize::Zeroizing<Vec<u8>>, sidecar_kes::keystore::StoreError>,
    > {
        Box::pin(async {
            Err(sidecar_kes::keystore::StoreError::Unreachable(
                "connection refused".into(),
            ))
        })
    }
    fn delete<'a>(
        &'a self,
        _: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), sidecar_kes::keystore::StoreError>> {
        Box::pin(async {
            Err(sidecar_kes::keystore::StoreError::Unreachable(
                "connection refused".into(),
            ))
        })
    }
    fn list(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<Vec<String>, sidecar_kes::keystore::StoreError>>
    {
        Box::pin(async {
            Err(sidecar_kes::keystore::StoreError::Unreachable(
                "connection refused".into(),
            ))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_keystore_errors_and_error_log() {
    let ts = start_server(Arc::new(Down), CacheConfig::default(), vec![]).await;
    let raw = raw_client(
        &ts,
        Some(ClientIdentity::ApiKey(
            ts.admin.to_secret_string().to_string(),
        )),
    );
    let mut log = raw
        .get(format!("{}/v1/log/error", ts.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    let r = raw
        .post(format!("{}/v1/key/generate/k", ts.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"message":"failed to read key"}"#
    );
    let r = raw
        .get(format!("{}/v1/ready", ts.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"message":"key store is not reachable"}"#
    );
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), log.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let line: serde_json::Value =
        serde_json::from_slice(chunk.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("failed to read key 'k'"),
        "{line}"
    );
    let status = ts.admin_client().status().await.unwrap();
    assert_eq!(status["keystore_unreachable"], true);
}

/// The samples of an exposition without labels (`name value`), and the histogram buckets.
fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(n, v)| (n.to_owned(), v.parse().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_requests_by_class() {
    let ts = mem_server(vec![]).await;
    let c = ts.admin_client();
    let admin = ClientIdentity::ApiKey(ts.admin.to_secret_string().to_string());
    let raw = raw_client(&ts, Some(admin));
    let scrape = || async {
        let r = raw
            .get(format!("{}/v1/metrics", ts.endpoint))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        samples(&r.text().await.unwrap())
    };
    let before = scrape().await;
    c.create_key("m").await.unwrap();
    for _ in 0..3 {
        c.generate_key("m", b"ctx").await.unwrap();
    }
    assert_eq!(
        c.describe_key("missing").await.unwrap_err(),
        ClientError::KeyNotFound
    );
    let after = scrape().await;
    let delta = |n: &str| after[n] - before[n];
    // Four calls and the first scrape (counted when it finished) succeeded; one 404.
    assert_eq!(delta("kes_http_request_success"), 5.0);
    assert_eq!(delta("kes_http_request_error"), 1.0);
    assert_eq!(delta("kes_http_request_failure"), 0.0);
    // The scrape being answered is the one request in flight.
    assert_eq!(after["kes_http_request_active"], 1.0);
    let finished = after["kes_http_request_success"]
        + after["kes_http_request_error"]
        + after["kes_http_request_failure"];
    assert_eq!(after["kes_http_response_time_count"], finished);
    assert_eq!(
        after["kes_http_response_time_bucket{le=\"+Inf\"}"],
        finished
    );
    // Loopback calls of an in-memory store finish within KES's first bucket (10 ms) or the
    // next ones; the buckets are cumulative.
    let b = |le: &str| after[&format!("kes_http_response_time_bucket{{le=\"{le}\"}}")];
    assert!(b("0.01") <= b("0.05") && b("0.05") <= b("10") && b("10") <= finished);
    assert!(after["kes_system_up_time"] >= 0.0 && after["kes_system_num_cpu"] >= 1.0);
}
