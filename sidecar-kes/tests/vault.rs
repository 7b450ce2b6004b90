//! The Vault K/V keystore against real OpenBao: K/V v1 and v2 with AppRole, token renewal,
//! Vault stopped (offline cache, `/v1/ready`), Vault sealed (502 `key store is sealed`, cached
//! keys stop within the health-check interval), recovery; a refused AppRole login not retried
//! into Vault's user lockout.

mod common;

use coffer_e2e::vault::Vault;
use common::{kv_config, start_server};
use sidecar_kes::cache::CacheConfig;
use sidecar_kes::client::ClientError;
use sidecar_kes::keystore::Keystore;
use sidecar_kes::keystore::vault::{
    TransitEngine, TransitKeys, VaultAuth, VaultEngine, VaultStore,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_v1_and_v2_with_approle_and_token_renewal() {
    let vault = tokio::task::block_in_place(Vault::dev);
    for (engine, version) in [("kv", 1u8), ("kv2", 2u8)] {
        let role = tokio::task::block_in_place(|| {
            vault.kv_with_approle(engine, version, &format!("kes-{engine}"))
        });
        let store = VaultStore::connect(kv_config(
            &vault,
            engine,
            version == 2,
            &role.role_id,
            &role.secret_id,
        ))
        .await
        .unwrap();
        assert_eq!(store.logins(), 1, "logged in at start");
        // Keystore behaviour, directly.
        store.status().await.unwrap();
        store.create("k1", b"value-1").await.unwrap();
        assert_eq!(
            store.create("k1", b"other").await.unwrap_err(),
            sidecar_kes::keystore::StoreError::Exists
        );
        assert_eq!(&store.get("k1").await.unwrap()[..], b"value-1");
        assert_eq!(store.list().await.unwrap(), ["k1"]);
        store.delete("k1").await.unwrap();
        assert_eq!(
            store.get("k1").await.unwrap_err(),
            sidecar_kes::keystore::StoreError::NotFound
        );
        // Where KES puts it: <engine>/[data/]minio/<name> = {"<name>": "<encoded key>"}.
        let store: Arc<dyn Keystore> = Arc::new(store);
        let ts = start_server(store, CacheConfig::default(), vec![]).await;
        let c = ts.admin_client();
        c.create_key("minio-key-1").await.unwrap();
        assert_eq!(
            c.create_key("minio-key-1").await.unwrap_err(),
            ClientError::KeyExists
        );
        let dek = c.generate_key("minio-key-1", b"ctx").await.unwrap();
        assert_eq!(
            &c.decrypt_key("minio-key-1", &dek.ciphertext, b"ctx")
                .await
                .unwrap()[..],
            &dek.plaintext[..]
        );
        let path = format!("{engine}/minio/minio-key-1"); // `vault kv` adds `data/` for v2
        let raw = tokio::task::block_in_place(|| vault.run(&["kv", "get", "-format=json", &path]));
        let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let stored = if version == 2 {
            &raw["data"]["data"]["minio-key-1"]
        } else {
            &raw["data"]["minio-key-1"]
        };
        let decoded =
            sidecar_kes::crypto::KeyVersion::decode(stored.as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(decoded.created_by, ts.admin.identity());
        c.ready().await.unwrap();
    }

    // A role whose tokens live 2 s: renewed before expiry, at least 3 times, and still valid.
    let role = tokio::task::block_in_place(|| vault.kv_with_approle("kvshort", 1, "kes-short"));
    tokio::task::block_in_place(|| {
        vault.run(&[
            "write",
            "auth/approle/role/kes-short",
            "token_period=2s",
            "period=2s",
            "policies=kes-short",
        ])
    });
    let store = VaultStore::connect(kv_config(
        &vault,
        "kvshort",
        false,
        &role.role_id,
        &role.secret_id,
    ))
    .await
    .unwrap();
    let started = Instant::now();
    wait_for("3 token renewals", Duration::from_secs(60), || {
        let n = store.renewals();
        async move { n >= 3 }
    })
    .await;
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "renewals follow the 2 s period"
    );
    assert_eq!(
        store.logins(),
        1,
        "renewal, not re-login, kept the token alive"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await; // longer than one TTL
    store.create("after-renewals", b"v").await.unwrap();
    assert_eq!(&store.get("after-renewals").await.unwrap()[..], b"v");

    // Tokens that cannot be renewed past 4 s: the store logs in again before they expire.
    tokio::task::block_in_place(|| vault.kv_with_approle("kvmax", 1, "kes-max"));
    let (role_id, secret_id) = tokio::task::block_in_place(|| {
        vault.run(&[
            "write",
            "auth/approle/role/kes-max-ttl",
            "token_ttl=2s",
            "token_max_ttl=4s",
            "token_policies=kes-max",
        ]);
        (
            vault
                .run(&[
                    "read",
                    "-field=role_id",
                    "auth/approle/role/kes-max-ttl/role-id",
                ])
                .trim()
                .to_string(),
            vault
                .run(&[
                    "write",
                    "-f",
                    "-field=secret_id",
                    "auth/approle/role/kes-max-ttl/secret-id",
                ])
                .trim()
                .to_string(),
        )
    });
    let store = VaultStore::connect(kv_config(&vault, "kvmax", false, &role_id, &secret_id))
        .await
        .unwrap();
    store.create("k", b"v").await.unwrap();
    wait_for(
        "a re-login after the max TTL",
        Duration::from_secs(60),
        || {
            let n = store.logins();
            async move { n >= 2 }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        &store.get("k").await.unwrap()[..],
        b"v",
        "still authorized after the first token's max TTL"
    );
}

/// A wrong AppRole secret ID is not tried again every `retry` (500 ms here): Vault locks a role
/// ID out after 5 failed logins, for every client using it, the right secret ID included. Before
/// the fix this client made ~20 logins in the 10 s and the right secret ID was then refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_approle_login_is_not_retried_into_a_lockout() {
    let vault = tokio::task::block_in_place(Vault::production_audited);
    let role = tokio::task::block_in_place(|| vault.kv_with_approle("kv", 1, "kes-lockout"));
    let approle_logins = || {
        vault
            .audited_requests("kes-lockout")
            .iter()
            .filter(|p| *p == "auth/approle/login")
            .count()
    };
    let wrong_secret = "00000000-0000-4000-8000-000000000000";
    let wrong = VaultStore::connect(kv_config(&vault, "kv", false, &role.role_id, wrong_secret))
        .await
        .expect("a refused login is retried in the background, not an error at start");
    assert_eq!(wrong.logins(), 0);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(wrong.logins(), 0);
    assert_eq!(approle_logins(), 1, "the refused login was tried again");

    let right = VaultStore::connect(kv_config(
        &vault,
        "kv",
        false,
        &role.role_id,
        &role.secret_id,
    ))
    .await
    .unwrap();
    assert_eq!(right.logins(), 1, "the role ID was locked out");
    right.status().await.unwrap();
    right.create("after-a-refusal", b"v").await.unwrap();
    assert_eq!(approle_logins(), 2);
    drop(wrong);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_stopped_and_sealed_then_recovers() {
    let mut vault = tokio::task::block_in_place(Vault::production);
    let role = tokio::task::block_in_place(|| vault.kv_with_approle("kv", 2, "kes"));
    let store = VaultStore::connect(kv_config(
        &vault,
        "kv",
        true,
        &role.role_id,
        &role.secret_id,
    ))
    .await
    .unwrap();
    let cache = CacheConfig {
        any: Some(Duration::from_millis(500)),
        unused: None,
        offline: Some(Duration::from_secs(300)),
    };
    let ts = start_server(Arc::new(store), cache, vec![]).await;
    let c = ts.admin_client();
    c.create_key("cached").await.unwrap();
    let dek = c.generate_key("cached", b"").await.unwrap();
    c.ready().await.unwrap();

    // Vault stopped: the cached key keeps serving, /v1/ready says the keystore is unreachable.
    tokio::task::block_in_place(|| vault.stop());
    tokio::time::sleep(Duration::from_millis(700)).await; // past `any`
    let again = c.generate_key("cached", b"").await.unwrap();
    assert_eq!(
        &c.decrypt_key("cached", &again.ciphertext, b"")
            .await
            .unwrap()[..],
        &again.plaintext[..]
    );
    assert_eq!(
        &c.decrypt_key("cached", &dek.ciphertext, b"").await.unwrap()[..],
        &dek.plaintext[..]
    );
    match c.ready().await.unwrap_err() {
        ClientError::Api {
            status: 504,
            message,
        } => assert_eq!(message, "key store is not reachable"),
        e => panic!("unexpected ready error: {e:?}"),
    }
    assert!(c.create_key("new").await.is_err());
    let status = c.status().await.unwrap();
    assert_eq!(status["keystore_unreachable"], true);
    assert_eq!(status.get("keystore_sealed"), None, "{status}");

    // Vault back but sealed: 502 `key store is sealed`; cached keys still serve.
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
    assert_eq!(
        c.describe_key("never-cached").await.unwrap_err(),
        ClientError::Sealed
    );
    let raw = common::raw_client(
        &ts,
        Some(sidecar_kes::client::ClientIdentity::ApiKey(
            ts.admin.to_secret_string().to_string(),
        )),
    );
    let resp = raw
        .post(format!("{}/v1/key/create/new", ts.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"message":"key store is sealed"}"#
    );
    // A sealed Vault is an operator's stop: cached keys stop serving too.
    assert_eq!(
        c.generate_key("cached", b"").await.unwrap_err(),
        ClientError::Sealed
    );
    assert_eq!(
        c.decrypt_key("cached", &dek.ciphertext, b"")
            .await
            .unwrap_err(),
        ClientError::Sealed
    );
    // The status tells a sealed key store from an unreachable one (the object-server's readiness
    // turns false on the first only).
    let status = c.status().await.unwrap();
    assert_eq!(status["keystore_unreachable"], true);
    assert_eq!(status["keystore_sealed"], true);

    // Unsealed: everything recovers.
    tokio::task::block_in_place(|| vault.unseal());
    wait_for("ready after unseal", Duration::from_secs(60), || {
        let c = c.clone();
        async move { c.ready().await.is_ok() }
    })
    .await;
    wait_for("create after unseal", Duration::from_secs(60), || {
        let c = c.clone();
        async move { c.create_key("new").await.is_ok() }
    })
    .await;
    let dek2 = c.generate_key("new", b"").await.unwrap();
    assert_eq!(
        &c.decrypt_key("new", &dek2.ciphertext, b"").await.unwrap()[..],
        &dek2.plaintext[..]
    );
}

/// Finding 9 of issue #18: `vault operator seal` stops key use on KES within the documented
/// bound (one `status.ping` interval, see `cache.rs`), cached keys included, while a Vault that
/// is merely stopped leaves the cached key serving (the offline cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_vault_stops_cached_keys_within_the_ping_interval() {
    const PING: Duration = Duration::from_secs(2);
    let mut vault = tokio::task::block_in_place(Vault::production);
    let role = tokio::task::block_in_place(|| vault.kv_with_approle("kv", 2, "kes"));
    let mut cfg = kv_config(&vault, "kv", true, &role.role_id, &role.secret_id);
    cfg.ping = PING;
    let store = VaultStore::connect(cfg).await.unwrap();
    // KES's default cache with the guide's offline expiry: without the seal rule, a cached key
    // would serve for minutes, then for the offline hour.
    let cache = CacheConfig {
        offline: Some(Duration::from_secs(3600)),
        ..CacheConfig::default()
    };
    let ts = start_server(Arc::new(store), cache, vec![]).await;
    let c = ts.admin_client();
    c.create_key("cached").await.unwrap();
    let dek = c.generate_key("cached", b"ctx").await.unwrap();

    // Sealed: generate and decrypt on the cached key fail within one ping interval.
    tokio::task::block_in_place(|| vault.seal());
    let sealed_at = Instant::now();
    loop {
        let generated = c.generate_key("cached", b"ctx").await;
        let decrypted = c.decrypt_key("cached", &dek.ciphertext, b"ctx").await;
        if matches!(generated, Err(ClientError::Sealed))
            && matches!(decrypted, Err(ClientError::Sealed))
        {
            break;
        }
        assert!(
            sealed_at.elapsed() < PING + Duration::from_secs(1),
            "cached key still in use {:?} after the seal: {:?} / {:?}",
            sealed_at.elapsed(),
            generated.map(drop),
            decrypted.map(drop)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped_after = sealed_at.elapsed();
    assert!(
        stopped_after <= PING + Duration::from_secs(1),
        "{stopped_after:?}"
    );
    eprintln!("key use stopped {stopped_after:?} after the seal (ping {PING:?})");
    // It stays stopped.
    tokio::time::sleep(PING).await;
    assert_eq!(
        c.decrypt_key("cached", &dek.ciphertext, b"ctx")
            .await
            .unwrap_err(),
        ClientError::Sealed
    );

    // Unsealed: the key serves again (fetched from Vault).
    tokio::task::block_in_place(|| vault.unseal());
    wait_for("generate after unseal", Duration::from_secs(20), || {
        let c = c.clone();
        async move { c.generate_key("cached", b"ctx").await.is_ok() }
    })
    .await;

    // Stopped (unreachable): the cached key keeps serving, well past several health checks.
    tokio::task::block_in_place(|| vault.stop());
    tokio::time::sleep(PING * 3).await;
    assert!(c.ready().await.is_err(), "the health check saw Vault go");
    let again = c.generate_key("cached", b"ctx").await.unwrap();
    assert_eq!(
        &c.decrypt_key("cached", &dek.ciphertext, b"ctx")
            .await
            .unwrap()[..],
        &dek.plaintext[..]
    );
    assert_eq!(
        &c.decrypt_key("cached", &again.ciphertext, b"ctx")
            .await
            .unwrap()[..],
        &again.plaintext[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_namespace() {
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
        ns(&["secrets", "enable", "-path=kv", "-version=1", "kv"]);
        ns(&["auth", "enable", "approle"]);
        let scratch = tempfile::tempdir().unwrap();
        let policy = scratch.path().join("kes-ns.hcl");
        std::fs::write(&policy, "path \"kv/*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"]\n}\n").unwrap();
        ns(&["policy", "write", "kes", policy.to_str().unwrap()]);
        ns(&["write", "auth/approle/role/kes", "token_policies=kes"]);
        (
            ns(&["read", "-field=role_id", "auth/approle/role/kes/role-id"]),
            ns(&[
                "write",
                "-f",
                "-field=secret_id",
                "auth/approle/role/kes/secret-id",
            ]),
        )
    });
    let mut cfg = kv_config(&vault, "kv", false, &role_id, &secret_id);
    cfg.namespace = "team".into();
    let store = VaultStore::connect(cfg).await.unwrap();
    store.create("in-team", b"v").await.unwrap();
    assert_eq!(&store.get("in-team").await.unwrap()[..], b"v");
    let stored =
        tokio::task::block_in_place(|| ns(&["kv", "get", "-field=in-team", "kv/minio/in-team"]));
    assert_eq!(stored, "v");
    // Not in the root namespace.
    let root = vault
        .cli()
        .args(["kv", "get", "kv/minio/in-team"])
        .output()
        .unwrap();
    assert!(!root.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_auth_against_a_real_api_server() {
    let kube = tokio::task::block_in_place(coffer_e2e::kube::KubeApi::start);
    let vault = tokio::task::block_in_place(Vault::dev);
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = dir.path().join("token");
    tokio::task::block_in_place(|| {
        let kubectl = |args: &[&str]| {
            let out = kube.kubectl().args(args).output().unwrap();
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        kubectl(&["create", "serviceaccount", "kes", "-n", "default"]);
        // Vault reviews the login token with the token itself: it needs TokenReview rights.
        kubectl(&[
            "create",
            "clusterrolebinding",
            "kes-review",
            "--clusterrole=system:auth-delegator",
            "--serviceaccount=default:kes",
        ]);
        std::fs::write(
            &jwt_file,
            kubectl(&["create", "token", "kes", "-n", "default"]),
        )
        .unwrap();
        vault.kv_with_approle("kvk8s", 1, "kes-k8s"); // K/V and its policy `kes-k8s`
        vault.transit_with_approle("transit", "kes-transit"); // Transit and the documented policy
        vault.run(&["auth", "enable", "kubernetes"]);
        vault.run(&[
            "write",
            "auth/kubernetes/config",
            &format!("kubernetes_host={}", kube.server),
            &format!("kubernetes_ca_cert=@{}", kube.ca_cert.display()),
            "disable_local_ca_jwt=true",
        ]);
        vault.run(&[
            "write",
            "auth/kubernetes/role/kes",
            "bound_service_account_names=kes",
            "bound_service_account_namespaces=default",
            "token_policies=kes-k8s,kes-transit",
            "token_ttl=1h",
        ]);
    });
    let mut cfg = kv_config(&vault, "kvk8s", false, "", "");
    cfg.auth = VaultAuth::Kubernetes {
        engine: "kubernetes".into(),
        role: "kes".into(),
        jwt: Zeroizing::new(jwt_file.display().to_string()),
        retry: Duration::from_millis(500),
    };
    let store = VaultStore::connect(cfg.clone()).await.unwrap();
    assert_eq!(
        store.logins(),
        1,
        "logged in with the service account token"
    );
    store.create("k8s-key", b"v").await.unwrap();
    assert_eq!(&store.get("k8s-key").await.unwrap()[..], b"v");

    // The Transit keystore logs in the same way.
    cfg.engine = VaultEngine::Transit(TransitEngine {
        mount: "transit".into(),
    });
    let transit = TransitKeys::connect(cfg).await.unwrap();
    assert_eq!(
        transit.logins(),
        1,
        "logged in with the service account token"
    );
    transit.create("k8s-key").await.unwrap();
    let dek = transit.generate("k8s-key", b"ctx").await.unwrap();
    assert_eq!(
        &transit
            .decrypt("k8s-key", &dek.ciphertext, b"ctx")
            .await
            .unwrap()[..],
        &dek.plaintext[..]
    );
}
