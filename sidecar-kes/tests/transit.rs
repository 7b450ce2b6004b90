//! The Vault Transit keystore against real OpenBao, through our KES API: every key route with
//! KES's texts, the context as associated data, keys created non-exportable, AppRole login and
//! token renewal with the documented policy (`manifests/vault/kes-transit-policy.hcl`), only
//! Transit and auth paths in Vault's audit log, a namespace, and Vault stopped and sealed.

mod common;

use coffer_e2e::vault::Vault;
use common::start_server_over;
use sidecar_kes::client::ClientError;
use sidecar_kes::keystore::vault::{
    TransitEngine, TransitKeys, VaultAuth, VaultConfig, VaultEngine,
};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The policy (and role) name the tests give our KES's token.
const POLICY: &str = "kes-transit";

fn config(vault: &Vault, role_id: &str, secret_id: &str) -> VaultConfig {
    VaultConfig {
        endpoint: vault.addr.clone(),
        engine: VaultEngine::Transit(TransitEngine {
            mount: "transit".into(),
        }),
        namespace: String::new(),
        auth: VaultAuth::AppRole {
            engine: "approle".into(),
            role_id: role_id.into(),
            secret_id: Zeroizing::new(secret_id.into()),
            retry: Duration::from_millis(500),
        },
        tls_key: None,
        tls_cert: None,
        tls_ca: vault.ca_cert.clone(),
        ping: Duration::from_millis(300),
    }
}

async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `vault read -format=json <path>`'s `data`, as the root token.
fn read(vault: &Vault, path: &str) -> serde_json::Value {
    let out = vault.run(&["read", "-format=json", path]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_route_through_transit_with_approle_renewal_and_only_transit_paths_audited() {
    let vault = tokio::task::block_in_place(Vault::dev_audited);
    let role = tokio::task::block_in_place(|| {
        let role = vault.transit_with_approle("transit", POLICY);
        // Tokens that live 2 s: renewed (not replaced) while the tests run.
        vault.run(&[
            "write",
            &format!("auth/approle/role/{POLICY}"),
            "token_period=2s",
            "period=2s",
            &format!("policies={POLICY}"),
        ]);
        role
    });
    let transit = TransitKeys::connect(config(&vault, &role.role_id, &role.secret_id))
        .await
        .unwrap();
    assert_eq!(transit.logins(), 1, "logged in at start");
    let started = Instant::now();
    let ts = start_server_over(transit, vec![]).await;
    let c = ts.admin_client();
    c.ready().await.unwrap();

    // create: a non-exportable Transit key without plaintext backup; twice is KES's error.
    c.create_key("k1").await.unwrap();
    assert_eq!(
        c.create_key("k1").await.unwrap_err(),
        ClientError::KeyExists
    );
    let stored = tokio::task::block_in_place(|| read(&vault, "transit/keys/k1"));
    assert_eq!(stored["type"], "aes256-gcm96");
    assert_eq!(stored["exportable"], false);
    assert_eq!(stored["allow_plaintext_backup"], false);
    let export = tokio::task::block_in_place(|| {
        vault
            .cli()
            .args(["read", "transit/export/encryption-key/k1"])
            .output()
            .unwrap()
    });
    assert!(!export.status.success(), "Transit exported the key");
    assert!(
        String::from_utf8_lossy(&export.stderr).contains("not exportable"),
        "{export:?}"
    );

    // describe: KES's fields from Transit's metadata.
    let info = c.describe_key("k1").await.unwrap();
    assert_eq!(info.name, "k1");
    assert_eq!(info.algorithm, "AES256");
    let created = info.created_at.unwrap();
    let age = time::OffsetDateTime::now_utc() - created;
    assert!(
        age < time::Duration::seconds(60) && age > -time::Duration::seconds(5),
        "{created}"
    );
    assert_eq!(
        c.describe_key("nope").await.unwrap_err(),
        ClientError::KeyNotFound
    );

    // generate/decrypt: the context is the associated data.
    let ctx = br#"{"bucket":"bucket/object"}"#;
    let dek = c.generate_key("k1", ctx).await.unwrap();
    assert_eq!(dek.plaintext.len(), 32);
    let text = std::str::from_utf8(&dek.ciphertext).unwrap();
    assert!(text.starts_with("vault:v1:"), "{text}");
    assert_eq!(
        &c.decrypt_key("k1", &dek.ciphertext, ctx).await.unwrap()[..],
        &dek.plaintext[..]
    );
    let other = c.generate_key("k1", ctx).await.unwrap();
    assert_ne!(
        other.plaintext[..],
        dek.plaintext[..],
        "a fresh data key each time"
    );
    assert_ne!(other.ciphertext, dek.ciphertext);
    // An empty context is no associated data (MinIO sends no body at all for some keys).
    let bare = c.generate_key("k1", b"").await.unwrap();
    assert_eq!(
        &c.decrypt_key("k1", &bare.ciphertext, b"").await.unwrap()[..],
        &bare.plaintext[..]
    );
    assert_eq!(
        c.decrypt_key("k1", &bare.ciphertext, b"x")
            .await
            .unwrap_err(),
        ClientError::DecryptionFailed
    );
    // Wrong context, tampered ciphertext, another key's ciphertext, KES's own binary format:
    // `not authentic`, never a plaintext.
    assert_eq!(
        c.decrypt_key("k1", &dek.ciphertext, br#"{"bucket":"bucket/other"}"#)
            .await
            .unwrap_err(),
        ClientError::DecryptionFailed
    );
    let mut tampered = dek.ciphertext.clone();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        c.decrypt_key("k1", &tampered, ctx).await.unwrap_err(),
        ClientError::DecryptionFailed
    );
    let mut future_version = dek.ciphertext.clone();
    future_version[7] = b'9'; // vault:v9:...
    assert_eq!(
        c.decrypt_key("k1", &future_version, ctx).await.unwrap_err(),
        ClientError::DecryptionFailed
    );
    assert_eq!(
        c.decrypt_key("k1", &[7u8; 60], ctx).await.unwrap_err(),
        ClientError::DecryptionFailed
    );
    c.create_key("k2").await.unwrap();
    assert_eq!(
        c.decrypt_key("k2", &dek.ciphertext, ctx).await.unwrap_err(),
        ClientError::DecryptionFailed
    );
    assert_eq!(
        c.generate_key("missing", ctx).await.unwrap_err(),
        ClientError::KeyNotFound
    );
    assert_eq!(
        c.decrypt_key("missing", &dek.ciphertext, ctx)
            .await
            .unwrap_err(),
        ClientError::KeyNotFound
    );

    // encrypt: through Transit; a missing key is KES's 404 and Transit creates nothing.
    let sealed = c.encrypt("k1", b"a secret", b"ctx").await.unwrap();
    assert!(sealed.starts_with(b"vault:v1:"));
    assert_eq!(
        &c.decrypt_key("k1", &sealed, b"ctx").await.unwrap()[..],
        b"a secret"
    );
    assert_eq!(
        c.encrypt("missing", b"a secret", b"ctx").await.unwrap_err(),
        ClientError::KeyNotFound
    );

    // hmac: Transit's HMAC-SHA256 key of the key.
    let mac = c.hmac("k1", b"message").await.unwrap();
    assert_eq!(mac.len(), 32);
    assert_eq!(c.hmac("k1", b"message").await.unwrap(), mac);
    assert_ne!(c.hmac("k1", b"messagf").await.unwrap(), mac);
    assert_ne!(c.hmac("k2", b"message").await.unwrap(), mac);
    assert_eq!(
        c.hmac("missing", b"m").await.unwrap_err(),
        ClientError::KeyNotFound
    );

    // import: refused with a clear error (501); nothing is created.
    match c
        .import_key("imported", &[1u8; 32], "AES256")
        .await
        .unwrap_err()
    {
        ClientError::Api {
            status: 501,
            message,
        } => {
            assert!(
                message.contains("not supported by the Vault Transit keystore"),
                "{message}"
            )
        }
        e => panic!("unexpected import error: {e:?}"),
    }
    assert_eq!(
        c.describe_key("imported").await.unwrap_err(),
        ClientError::KeyNotFound
    );

    // list and delete: a deleted key's ciphertexts never decrypt again.
    assert_eq!(c.list_keys("k").await.unwrap(), ["k1", "k2"]);
    assert_eq!(c.list_keys("k2").await.unwrap(), ["k2"]);
    c.delete_key("k1").await.unwrap();
    assert_eq!(
        c.delete_key("k1").await.unwrap_err(),
        ClientError::KeyNotFound
    );
    assert_eq!(
        c.decrypt_key("k1", &dek.ciphertext, ctx).await.unwrap_err(),
        ClientError::KeyNotFound
    );
    assert_eq!(c.list_keys("").await.unwrap(), ["k2"]);

    // The token was renewed, not replaced, and still works after several periods.
    let transit = match &ts.running.shared.keys {
        sidecar_kes::keys::Keys::Transit(t) => t,
        _ => unreachable!(),
    };
    wait_for("3 token renewals", Duration::from_secs(60), || {
        let n = transit.renewals();
        async move { n >= 3 }
    })
    .await;
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "renewals follow the 2 s period"
    );
    assert_eq!(
        transit.logins(),
        1,
        "renewal, not re-login, kept the token alive"
    );
    let late = c.generate_key("k2", ctx).await.unwrap();
    assert_eq!(
        &c.decrypt_key("k2", &late.ciphertext, ctx).await.unwrap()[..],
        &late.plaintext[..]
    );

    // Vault's audit log: our token asked only for Transit paths (no K/V, export or backup
    // path) and for its own login and renewals.
    let paths = tokio::task::block_in_place(|| vault.audited_requests(POLICY));
    for path in &paths {
        assert!(
            (path.starts_with("transit/")
                && !path.starts_with("transit/export")
                && !path.starts_with("transit/backup"))
                || path == "auth/approle/login"
                || path == "auth/token/renew-self",
            "our kes requested {path}: {paths:#?}"
        );
    }
    for expected in [
        "auth/approle/login",
        "auth/token/renew-self",
        "transit/keys/k1",
        "transit/datakey/plaintext/k1",
        "transit/decrypt/k1",
        "transit/encrypt/k1",
        "transit/hmac/k1",
        "transit/keys/k1/config",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not audited: {paths:#?}"
        );
    }
    eprintln!(
        "{} requests of our kes in Vault's audit log, all Transit or auth",
        paths.len()
    );
}

/// Vault stopped: Transit key use stops (no master key to serve from a cache), `/v1/ready` and
/// `/v1/status` say unreachable. Vault back but sealed: 502 `key store is sealed` on every key
/// route. Unsealed: the keys and every ciphertext made before still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_stopped_and_sealed_then_recovers() {
    let mut vault = tokio::task::block_in_place(Vault::production);
    let role = tokio::task::block_in_place(|| vault.transit_with_approle("transit", POLICY));
    let transit = TransitKeys::connect(config(&vault, &role.role_id, &role.secret_id))
        .await
        .unwrap();
    let ts = start_server_over(transit, vec![]).await;
    let c = ts.admin_client();
    c.create_key("k").await.unwrap();
    let dek = c.generate_key("k", b"ctx").await.unwrap();
    c.ready().await.unwrap();

    // Stopped.
    tokio::task::block_in_place(|| vault.stop());
    match c.generate_key("k", b"ctx").await.unwrap_err() {
        ClientError::Api {
            status: 502,
            message,
        } => assert_eq!(message, "failed to read key"),
        e => panic!("unexpected generate error: {e:?}"),
    }
    match c
        .decrypt_key("k", &dek.ciphertext, b"ctx")
        .await
        .unwrap_err()
    {
        ClientError::Api {
            status: 502,
            message,
        } => assert_eq!(message, "failed to read key"),
        e => panic!("unexpected decrypt error: {e:?}"),
    }
    match c.ready().await.unwrap_err() {
        ClientError::Api {
            status: 504,
            message,
        } => {
            assert_eq!(message, "key store is not reachable")
        }
        e => panic!("unexpected ready error: {e:?}"),
    }
    let status = c.status().await.unwrap();
    assert_eq!(status["keystore_unreachable"], true);
    assert_eq!(status.get("keystore_sealed"), None, "{status}");

    // Back, sealed.
    tokio::task::block_in_place(|| vault.restart());
    wait_for(
        "the sealed state to be seen",
        Duration::from_secs(60),
        || {
            let c = c.clone();
            async move { c.create_key("new").await == Err(ClientError::Sealed) }
        },
    )
    .await;
    assert_eq!(c.ready().await.unwrap_err(), ClientError::Sealed);
    assert_eq!(c.describe_key("k").await.unwrap_err(), ClientError::Sealed);
    assert_eq!(
        c.generate_key("k", b"ctx").await.unwrap_err(),
        ClientError::Sealed
    );
    assert_eq!(
        c.decrypt_key("k", &dek.ciphertext, b"ctx")
            .await
            .unwrap_err(),
        ClientError::Sealed
    );
    assert_eq!(c.list_keys("").await.unwrap_err(), ClientError::Sealed);
    let raw = common::raw_client(
        &ts,
        Some(sidecar_kes::client::ClientIdentity::ApiKey(
            ts.admin.to_secret_string().to_string(),
        )),
    );
    let resp = raw
        .post(format!("{}/v1/key/generate/k", ts.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"message":"key store is sealed"}"#
    );
    let status = c.status().await.unwrap();
    assert_eq!(status["keystore_unreachable"], true);
    assert_eq!(status["keystore_sealed"], true);

    // Unsealed: the key and its old ciphertexts work again.
    tokio::task::block_in_place(|| vault.unseal());
    wait_for("ready after unseal", Duration::from_secs(60), || {
        let c = c.clone();
        async move { c.ready().await.is_ok() }
    })
    .await;
    wait_for("decrypt after unseal", Duration::from_secs(60), || {
        let c = c.clone();
        let dek = dek.clone();
        async move {
            c.decrypt_key("k", &dek.ciphertext, b"ctx")
                .await
                .is_ok_and(|p| p[..] == dek.plaintext[..])
        }
    })
    .await;

    // Sealed while running: key use stops within one ping (Vault refuses at once; the health
    // check makes it stick).
    tokio::task::block_in_place(|| vault.seal());
    let sealed_at = Instant::now();
    loop {
        let generated = c.generate_key("k", b"ctx").await;
        let decrypted = c.decrypt_key("k", &dek.ciphertext, b"ctx").await;
        if matches!(generated, Err(ClientError::Sealed))
            && matches!(decrypted, Err(ClientError::Sealed))
        {
            break;
        }
        assert!(
            sealed_at.elapsed() < Duration::from_secs(2),
            "key still in use {:?} after the seal",
            sealed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("key use stopped {:?} after the seal", sealed_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_in_a_namespace() {
    let vault = tokio::task::block_in_place(Vault::dev);
    let ns = |args: &[&str]| -> String {
        let out = vault
            .cli()
            .env("VAULT_NAMESPACE", "team")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vault {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (role_id, secret_id) = tokio::task::block_in_place(|| {
        vault.run(&["namespace", "create", "team"]);
        ns(&["secrets", "enable", "transit"]);
        ns(&["auth", "enable", "approle"]);
        let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/vault/kes-transit-policy.hcl");
        ns(&["policy", "write", POLICY, policy.to_str().unwrap()]);
        ns(&[
            "write",
            &format!("auth/approle/role/{POLICY}"),
            &format!("token_policies={POLICY}"),
        ]);
        (
            ns(&[
                "read",
                "-field=role_id",
                &format!("auth/approle/role/{POLICY}/role-id"),
            ]),
            ns(&[
                "write",
                "-f",
                "-field=secret_id",
                &format!("auth/approle/role/{POLICY}/secret-id"),
            ]),
        )
    });
    let mut cfg = config(&vault, &role_id, &secret_id);
    cfg.namespace = "team".into();
    let ts = start_server_over(TransitKeys::connect(cfg).await.unwrap(), vec![]).await;
    let c = ts.admin_client();
    c.create_key("in-team").await.unwrap();
    let dek = c.generate_key("in-team", b"ctx").await.unwrap();
    assert_eq!(
        &c.decrypt_key("in-team", &dek.ciphertext, b"ctx")
            .await
            .unwrap()[..],
        &dek.plaintext[..]
    );
    let listed = tokio::task::block_in_place(|| ns(&["list", "-format=json", "transit/keys"]));
    assert!(listed.contains("\"in-team\""), "{listed}");
    // Not in the root namespace (which has no Transit mount at all).
    let root = vault
        .cli()
        .args(["read", "transit/keys/in-team"])
        .output()
        .unwrap();
    assert!(!root.status.success());
}
