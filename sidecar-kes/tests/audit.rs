//! The audit log: every key operation is an event with identity, key name, operation, version
//! (where known), status and time, on KES's `/v1/log/audit` stream (read here as `curl -N`
//! would, a raw streaming HTTPS request) and in the JSON file `log.audit` names; no event holds
//! key material, plaintext, ciphertext or context.

mod common;

use base64::{Engine, engine::general_purpose::STANDARD};
use common::ours::OurKes;
use common::{raw_client_trusting, server_cert};
use sidecar_kes::auth::ApiKey;
use sidecar_kes::client::{ClientConfig, ClientError, ClientIdentity, KesClient};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_operation_is_audited_without_secrets() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert();
    std::fs::write(dir.path().join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &cert.key_pem).unwrap();
    let audit_file = dir.path().join("audit.json");
    let admin = ApiKey::generate();
    let kes = OurKes::with_config(
        &format!(
            "address: 127.0.0.1:{{port}}\nadmin:\n  identity: {}\ntls:\n  key: {d}/tls.key\n  cert: {d}/tls.crt\nlog:\n  error: on\n  audit: {}\nkeystore:\n  fs:\n    path: {}\n",
            admin.identity(),
            audit_file.display(),
            keys.path().display(),
            d = dir.path().display()
        ),
        &[],
    );
    let identity = ClientIdentity::ApiKey(admin.to_secret_string().to_string());
    let client = KesClient::new(ClientConfig {
        endpoints: vec![kes.endpoint.clone()],
        identity: identity.clone(),
        ca_pems: vec![cert.cert_pem.clone().into_bytes()],
        ca_files: Vec::new(),
        insecure_skip_verify: false,
    })
    .unwrap();

    // Subscribe to the stream first.
    let streamed = Arc::new(Mutex::new(String::new()));
    let mut resp = raw_client_trusting(&cert, Some(identity))
        .get(format!("{}/v1/log/audit", kes.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reader = tokio::spawn({
        let streamed = streamed.clone();
        async move {
            while let Ok(Some(chunk)) = resp.chunk().await {
                streamed
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    });

    let ctx = b"secret-context-bucket/object";
    let imported = [0x5au8; 32];
    let message = b"a plaintext that must never be logged";
    client.create_key("k").await.unwrap();
    client.import_key("imp", &imported, "AES256").await.unwrap();
    let dek1 = client.generate_key("k", ctx).await.unwrap();
    client.rotate_key("k", true, None).await.unwrap();
    let dek2 = client.generate_key("k", ctx).await.unwrap();
    let sealed = client.encrypt("k", message, ctx).await.unwrap();
    client
        .decrypt_key("k", &dek2.ciphertext, ctx)
        .await
        .unwrap();
    client
        .decrypt_key("k", &dek1.ciphertext, ctx)
        .await
        .unwrap();
    client.describe_key("k").await.unwrap();
    client.key_versions("k").await.unwrap();
    assert_eq!(
        client
            .decrypt_key("k", &dek2.ciphertext, b"wrong")
            .await
            .unwrap_err(),
        ClientError::DecryptionFailed
    );
    let stored_key = std::fs::read(keys.path().join("k")).unwrap();
    client.delete_key("k").await.unwrap();
    assert_eq!(
        client.generate_key("k", ctx).await.unwrap_err(),
        ClientError::KeyNotFound
    );
    let expected = 13;

    let events = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = events(&streamed.lock().unwrap()).len();
        if n >= expected {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} streamed events");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reader.abort();
    let streamed = streamed.lock().unwrap().clone();
    let from_file = std::fs::read_to_string(&audit_file).unwrap();
    // The file holds the same events (its own time stamps aside, the same lines).
    assert_eq!(from_file, streamed);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&audit_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let got: Vec<(String, String, Option<u64>, u64)> = events(&streamed)
        .iter()
        .map(|e| {
            assert_eq!(e["request"]["identity"], admin.identity().as_str(), "{e}");
            assert!(e["time"].as_str().unwrap().contains('T'), "{e}");
            assert!(e["response"]["time"].is_u64(), "{e}");
            (
                e["key"]["operation"].as_str().unwrap_or("").to_string(),
                e["key"]["name"].as_str().unwrap_or("").to_string(),
                e["key"]["version"].as_u64(),
                e["response"]["code"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, Option<u64>, u64)> = [
        ("create", "k", Some(1), 200),
        ("import", "imp", Some(1), 200),
        ("generate", "k", Some(1), 200),
        ("rotate", "k", Some(2), 200),
        ("generate", "k", Some(2), 200),
        ("encrypt", "k", Some(2), 200),
        ("decrypt", "k", Some(2), 200),
        ("decrypt", "k", None, 200), // untagged: KES's layout names no version
        ("describe", "k", None, 200),
        ("info", "k", Some(2), 200),
        ("decrypt", "k", None, 400),
        ("delete", "k", None, 200),
        ("generate", "k", None, 404),
    ]
    .into_iter()
    .map(|(op, n, v, c)| (op.to_string(), n.to_string(), v, c))
    .collect();
    assert_eq!(got, want);
    let failures: Vec<_> = events(&streamed)
        .iter()
        .filter_map(|e| e["response"]["error"].as_str().map(String::from))
        .collect();
    assert_eq!(
        failures,
        [
            "decryption failed: ciphertext is not authentic",
            "key does not exist"
        ]
    );

    // No secret in any form: data keys, ciphertexts, the imported key, the message, the
    // context, the stored master key.
    let mut secrets: Vec<Vec<u8>> = vec![
        imported.to_vec(),
        message.to_vec(),
        ctx.to_vec(),
        sealed.clone(),
        stored_key.clone(),
    ];
    for dek in [&dek1, &dek2] {
        secrets.push(dek.plaintext.to_vec());
        secrets.push(dek.ciphertext.clone());
    }
    let ring = sidecar_kes::crypto::KeyRing::decode(&stored_key).unwrap();
    for (_, v) in ring.versions() {
        secrets.push(v.key.bytes().to_vec());
    }
    for s in &secrets {
        for form in [
            STANDARD.encode(s),
            hex::encode(s),
            String::from_utf8_lossy(s).into_owned(),
        ] {
            let probe: String = form.chars().take(24).collect();
            assert!(!streamed.contains(&probe), "secret in the audit stream");
        }
    }
}
