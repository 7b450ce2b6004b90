//! Key versions and rotation against the real peers: our `kes` over OpenBao's K/V (v1 and v2)
//! and Transit, and MinIO's own KES (`minio-kes` v0.24.0) reading the K/V entries a rotation
//! wrote — what it still does and what it refuses, as `sidecar-kes/README.md` documents.

mod common;

use coffer_e2e::kes::MinioKes;
use coffer_e2e::vault::Vault;
use common::ours::{OurKes, kes_bin, output};
use common::{server_cert, start_server_over};
use sidecar_kes::auth::ApiKey;
use sidecar_kes::client::{ClientConfig, ClientError, ClientIdentity, KesClient};
use sidecar_kes::crypto::ciphertext::tagged_version;
use sidecar_kes::keystore::vault::{
    TransitEngine, TransitKeys, VaultAuth, VaultConfig, VaultEngine,
};
use std::process::Command;
use std::time::Duration;
use zeroize::Zeroizing;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The stored value of `name` under `<engine>/minio/`, as `vault kv get` shows it.
fn stored(vault: &Vault, engine: &str, v2: bool, name: &str) -> String {
    let raw = vault.run(&[
        "kv",
        "get",
        "-format=json",
        &format!("{engine}/minio/{name}"),
    ]);
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let data = if v2 {
        &raw["data"]["data"]
    } else {
        &raw["data"]
    };
    assert_eq!(
        data.as_object().unwrap().len(),
        1,
        "one field, named like the key: {data}"
    );
    data[name].as_str().unwrap().to_string()
}

/// The K/V section of a KES config (both servers read the same format).
fn kv_keystore(vault: &Vault, engine: &str, v2: bool, role_id: &str, secret_id: &str) -> String {
    format!(
        "keystore:\n  vault:\n    endpoint: {}\n    engine: {engine}\n    version: {}\n    prefix: minio\n    approle:\n      id: {role_id}\n      secret: {secret_id}\n      retry: 1s\n",
        vault.addr,
        if v2 { "v2" } else { "v1" }
    )
}

#[test]
fn kv_rotation_with_our_cli_and_what_minio_kes_still_reads() {
    let vault = Vault::dev();
    for (engine, v2) in [("kv", false), ("kv2", true)] {
        let role = vault.kv_with_approle(engine, if v2 { 2 } else { 1 }, &format!("kes-{engine}"));
        let keystore = kv_keystore(&vault, engine, v2, &role.role_id, &role.secret_id);

        // Our kes, its admin an API key (also what our CLI uses).
        let dir = tempfile::tempdir().unwrap();
        let cert = server_cert();
        std::fs::write(dir.path().join("tls.crt"), &cert.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &cert.key_pem).unwrap();
        let admin = ApiKey::generate();
        let ours = OurKes::with_config(
            &format!(
                "address: 127.0.0.1:{{port}}\nadmin:\n  identity: {}\ntls:\n  key: {d}/tls.key\n  cert: {d}/tls.crt\n{keystore}",
                admin.identity(),
                d = dir.path().display()
            ),
            &[],
        );
        let our_client = KesClient::new(ClientConfig {
            endpoints: vec![ours.endpoint.clone()],
            identity: ClientIdentity::ApiKey(admin.to_secret_string().to_string()),
            ca_pems: vec![cert.cert_pem.clone().into_bytes()],
            ca_files: Vec::new(),
            insecure_skip_verify: false,
        })
        .unwrap();
        let cli = |args: &[&str]| {
            output(
                Command::new(kes_bin())
                    .args(args)
                    .args(["-k", "--server", &ours.endpoint])
                    .env("KES_API_KEY", &*admin.to_secret_string())
                    .env_remove("KES_CLIENT_CERT")
                    .env_remove("KES_CLIENT_KEY")
                    .env_remove("MINIO_KES_API_KEY"),
            )
        };
        let ctx = br#"{"bucket":"bucket/object"}"#;

        let (dek1, untouched_before) = rt().block_on(async {
            our_client.create_key("rotated").await.unwrap();
            our_client.create_key("untouched").await.unwrap();
            let dek1 = our_client.generate_key("rotated", ctx).await.unwrap();
            assert_eq!(
                tagged_version(&dek1.ciphertext),
                None,
                "version 1 is KES's layout"
            );
            (dek1, stored(&vault, engine, v2, "untouched"))
        });
        let rotated_before = stored(&vault, engine, v2, "rotated");
        // A key never rotated is stored exactly as KES stores it: a ring of one version
        // encodes to the same bytes.
        let ring = sidecar_kes::crypto::KeyRing::decode(rotated_before.as_bytes()).unwrap();
        assert_eq!(&ring.encode()[..], rotated_before.as_bytes());
        assert_eq!(ring.versions().count(), 1);

        // `kes key rotate` (our CLI): version 2.
        let (okay, text) = cli(&["key", "rotate", "rotated", "--json"]);
        assert!(okay, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            (v["newest"].as_u64(), v["min_version"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(v["versions"].as_array().unwrap().len(), 2);
        // The other key is byte for byte what it was; the rotated one changed.
        assert_eq!(stored(&vault, engine, v2, "untouched"), untouched_before);
        let rotated_after = stored(&vault, engine, v2, "rotated");
        assert_ne!(rotated_after, rotated_before);
        let (okay, text) = cli(&["key", "info", "rotated"]);
        assert!(okay, "{text}");
        assert!(text.contains("Newest    : 2"), "{text}");
        assert!(
            text.contains("Version 1  :") && text.contains("Version 2  :"),
            "{text}"
        );
        // Bad input is refused and changes nothing.
        let (okay, text) = cli(&["key", "rotate", "rotated", "--min-version", "7"]);
        assert!(
            !okay && text.contains("invalid minimum version 7"),
            "{text}"
        );
        let (okay, text) = cli(&["key", "rotate", "missing"]);
        assert!(!okay && text.contains("key does not exist"), "{text}");
        assert_eq!(stored(&vault, engine, v2, "rotated"), rotated_after);

        let dek2 = rt().block_on(async {
            let dek2 = our_client.generate_key("rotated", ctx).await.unwrap();
            assert_eq!(tagged_version(&dek2.ciphertext), Some(2));
            for dek in [&dek1, &dek2] {
                assert_eq!(
                    &our_client
                        .decrypt_key("rotated", &dek.ciphertext, ctx)
                        .await
                        .unwrap()[..],
                    &dek.plaintext[..]
                );
            }
            dek2
        });

        // MinIO's KES on the same K/V entries.
        let theirs = MinioKes::with_config(&keystore);
        let their_admin = theirs.admin.as_ref().unwrap();
        let their_client = KesClient::new(ClientConfig {
            endpoints: vec![theirs.endpoint.clone()],
            identity: ClientIdentity::Certificate {
                cert_pem: their_admin.cert_pem.clone().into_bytes(),
                key_pem: their_admin.key_pem.clone().into_bytes(),
            },
            ca_pems: vec![std::fs::read(theirs.ca_cert.as_ref().unwrap()).unwrap()],
            ca_files: Vec::new(),
            insecure_skip_verify: false,
        })
        .unwrap();
        rt().block_on(async {
            // It reads the rotated key (as its newest version) and the untouched one.
            assert_eq!(
                their_client
                    .describe_key("rotated")
                    .await
                    .unwrap()
                    .algorithm,
                "AES256"
            );
            let dek = our_client.generate_key("untouched", ctx).await.unwrap();
            assert_eq!(
                &their_client
                    .decrypt_key("untouched", &dek.ciphertext, ctx)
                    .await
                    .unwrap()[..],
                &dek.plaintext[..]
            );
            // K/V v1: it reads the rotated key as its newest version (the secret's only value).
            // K/V v2: it reads version 1 of the secret, the key as created: for MinIO's KES a
            // rotation over K/V v2 does not happen.
            let (theirs_opens, theirs_refuses) = if v2 { (&dek1, &dek2) } else { (&dek2, &dek1) };
            assert_eq!(
                &their_client
                    .decrypt_key("rotated", &theirs_opens.ciphertext, ctx)
                    .await
                    .unwrap()[..],
                &theirs_opens.plaintext[..]
            );
            assert_eq!(
                their_client
                    .decrypt_key("rotated", &theirs_refuses.ciphertext, ctx)
                    .await
                    .unwrap_err(),
                ClientError::DecryptionFailed
            );
            // What it generates (untagged, with the version it holds) our kes decrypts.
            let theirs_dek = their_client.generate_key("rotated", ctx).await.unwrap();
            assert_eq!(tagged_version(&theirs_dek.ciphertext), None);
            assert_eq!(
                &our_client
                    .decrypt_key("rotated", &theirs_dek.ciphertext, ctx)
                    .await
                    .unwrap()[..],
                &theirs_dek.plaintext[..]
            );
            // Version 3 with minimum 2: version 1 is retired on our side.
            let v = our_client
                .rotate_key("rotated", true, Some(2))
                .await
                .unwrap();
            assert_eq!((v.newest, v.min_version), (3, 2));
            match our_client
                .decrypt_key("rotated", &dek1.ciphertext, ctx)
                .await
                .unwrap_err()
            {
                ClientError::Api { status, message } => {
                    assert_eq!(status, 400);
                    assert_eq!(
                        message,
                        "decryption failed: key version 1 is retired (minimum version 2)"
                    );
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                &our_client
                    .decrypt_key("rotated", &dek2.ciphertext, ctx)
                    .await
                    .unwrap()[..],
                &dek2.plaintext[..]
            );
            let dek3 = our_client.generate_key("rotated", ctx).await.unwrap();
            assert_eq!(tagged_version(&dek3.ciphertext), Some(3));
            // Over K/V v2, what MinIO's KES made (version 1) is retired on our side too.
            assert_eq!(
                our_client
                    .decrypt_key("rotated", &theirs_dek.ciphertext, ctx)
                    .await
                    .is_ok(),
                !v2
            );
        });
        drop(theirs);
        let theirs = MinioKes::with_config(&keystore);
        let their_admin = theirs.admin.as_ref().unwrap();
        let their_client = KesClient::new(ClientConfig {
            endpoints: vec![theirs.endpoint.clone()],
            identity: ClientIdentity::Certificate {
                cert_pem: their_admin.cert_pem.clone().into_bytes(),
                key_pem: their_admin.key_pem.clone().into_bytes(),
            },
            ca_pems: vec![std::fs::read(theirs.ca_cert.as_ref().unwrap()).unwrap()],
            ca_files: Vec::new(),
            insecure_skip_verify: false,
        })
        .unwrap();
        rt().block_on(async {
            // A fresh MinIO KES: over K/V v1 it holds version 3 only, over K/V v2 version 1.
            let dek3 = our_client.generate_key("rotated", ctx).await.unwrap();
            let (opens, refuses) = if v2 { (&dek1, &dek3) } else { (&dek3, &dek2) };
            assert_eq!(
                &their_client
                    .decrypt_key("rotated", &opens.ciphertext, ctx)
                    .await
                    .unwrap()[..],
                &opens.plaintext[..]
            );
            assert_eq!(
                their_client
                    .decrypt_key("rotated", &refuses.ciphertext, ctx)
                    .await
                    .unwrap_err(),
                ClientError::DecryptionFailed
            );
            // MinIO's KES deletes a rotated key like any other (every version goes).
            their_client.delete_key("rotated").await.unwrap();
            assert_eq!(
                our_client
                    .rotate_key("rotated", true, None)
                    .await
                    .unwrap_err(),
                ClientError::KeyNotFound
            );
        });
    }
}

/// The rotate and info routes have their own policy paths: a policy allowing `/v1/key/*`
/// does not grant them.
#[test]
fn rotate_needs_its_own_policy_path() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert();
    std::fs::write(dir.path().join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &cert.key_pem).unwrap();
    let (admin, app, rotator) = (ApiKey::generate(), ApiKey::generate(), ApiKey::generate());
    let ours = OurKes::with_config(
        &format!(
            "address: 127.0.0.1:{{port}}\nadmin:\n  identity: {}\ntls:\n  key: {d}/tls.key\n  cert: {d}/tls.crt\npolicy:\n  app:\n    allow:\n    - /v1/key/*\n    identities:\n    - {}\n  rotator:\n    allow:\n    - /v1/coffer/key/rotate/app-*\n    - /v1/coffer/key/info/app-*\n    identities:\n    - {}\nkeystore:\n  fs:\n    path: {}\n",
            admin.identity(),
            app.identity(),
            rotator.identity(),
            keys.path().display(),
            d = dir.path().display()
        ),
        &[],
    );
    let client = |key: &ApiKey| {
        KesClient::new(ClientConfig {
            endpoints: vec![ours.endpoint.clone()],
            identity: ClientIdentity::ApiKey(key.to_secret_string().to_string()),
            ca_pems: vec![cert.cert_pem.clone().into_bytes()],
            ca_files: Vec::new(),
            insecure_skip_verify: false,
        })
        .unwrap()
    };
    rt().block_on(async {
        let (app, rotator) = (client(&app), client(&rotator));
        app.create_key("app-key").await.unwrap();
        let before = std::fs::read(keys.path().join("app-key")).unwrap();
        assert_eq!(
            app.rotate_key("app-key", true, None).await.unwrap_err(),
            ClientError::NotAuthorized
        );
        assert_eq!(
            app.key_versions("app-key").await.unwrap_err(),
            ClientError::NotAuthorized
        );
        assert_eq!(std::fs::read(keys.path().join("app-key")).unwrap(), before);
        // Outside its prefix, the rotator is refused too.
        app.create_key("other").await.unwrap();
        assert_eq!(
            rotator.rotate_key("other", true, None).await.unwrap_err(),
            ClientError::NotAuthorized
        );
        let v = rotator.rotate_key("app-key", true, None).await.unwrap();
        assert_eq!(v.newest, 2);
        assert_eq!(rotator.key_versions("app-key").await.unwrap(), v);
        // A body that is not the request's JSON, or asks for nothing, is refused.
        for body in [
            r#"{"min_version":"x"}"#,
            r#"{"add_version":false}"#,
            r#"{"nope":1}"#,
        ] {
            let resp = common::raw_client_trusting(
                &cert,
                Some(ClientIdentity::ApiKey(admin.to_secret_string().to_string())),
            )
            .post(format!("{}/v1/coffer/key/rotate/app-key", ours.endpoint))
            .body(body)
            .send()
            .await
            .unwrap();
            assert_eq!(resp.status(), 400, "{body}");
            let text = resp.text().await.unwrap();
            assert_eq!(text, r#"{"message":"invalid request body"}"#, "{body}");
        }
        assert_eq!(rotator.key_versions("app-key").await.unwrap(), v);
        // A name KES refuses is refused here too.
        let resp = common::raw_client_trusting(
            &cert,
            Some(ClientIdentity::ApiKey(admin.to_secret_string().to_string())),
        )
        .post(format!(
            "{}/v1/coffer/key/rotate/..%2Fescape",
            ours.endpoint
        ))
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 400);
    });
}

/// Transit's own rotation through our kes: `vault:v2:` ciphertexts, old ones decrypt until
/// the minimum is raised, Transit's key info agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_rotation_and_minimum_version() {
    let vault = tokio::task::block_in_place(Vault::dev);
    let role = tokio::task::block_in_place(|| vault.transit_with_approle("transit", "kes-transit"));
    let transit = TransitKeys::connect(VaultConfig {
        endpoint: vault.addr.clone(),
        engine: VaultEngine::Transit(TransitEngine {
            mount: "transit".into(),
        }),
        namespace: String::new(),
        auth: VaultAuth::AppRole {
            engine: "approle".into(),
            role_id: role.role_id.clone(),
            secret_id: Zeroizing::new(role.secret_id.clone()),
            retry: Duration::from_millis(500),
        },
        tls_key: None,
        tls_cert: None,
        tls_ca: None,
        ping: Duration::from_millis(300),
    })
    .await
    .unwrap();
    let ts = start_server_over(transit, vec![]).await;
    let c = ts.admin_client();
    let ctx = b"bucket/object";
    c.create_key("t").await.unwrap();
    let dek1 = c.generate_key("t", ctx).await.unwrap();
    assert!(dek1.ciphertext.starts_with(b"vault:v1:"));
    let v = c.rotate_key("t", true, None).await.unwrap();
    assert_eq!((v.newest, v.min_version, v.versions.len()), (2, 1, 2));
    assert_eq!(v.algorithm, "AES256");
    let dek2 = c.generate_key("t", ctx).await.unwrap();
    assert!(dek2.ciphertext.starts_with(b"vault:v2:"));
    for dek in [&dek1, &dek2] {
        assert_eq!(
            &c.decrypt_key("t", &dek.ciphertext, ctx).await.unwrap()[..],
            &dek.plaintext[..]
        );
    }
    let seen = tokio::task::block_in_place(|| {
        serde_json::from_str::<serde_json::Value>(&vault.run(&[
            "read",
            "-format=json",
            "transit/keys/t",
        ]))
        .unwrap()
    });
    assert_eq!(seen["data"]["latest_version"], 2);
    // Bad minimum: refused, nothing changes.
    match c.rotate_key("t", false, Some(5)).await.unwrap_err() {
        ClientError::Api { status, message } => {
            assert_eq!(status, 400);
            assert_eq!(
                message,
                "invalid minimum version 5: the key has versions 1 to 2"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.key_versions("t").await.unwrap(), v);
    // Raise the minimum without a new version: version 1 no longer decrypts.
    let v = c.rotate_key("t", false, Some(2)).await.unwrap();
    assert_eq!((v.newest, v.min_version), (2, 2));
    assert_eq!(
        c.decrypt_key("t", &dek1.ciphertext, ctx).await.unwrap_err(),
        ClientError::DecryptionFailed
    );
    assert_eq!(
        &c.decrypt_key("t", &dek2.ciphertext, ctx).await.unwrap()[..],
        &dek2.plaintext[..]
    );
    assert_eq!(
        c.rotate_key("missing", true, None).await.unwrap_err(),
        ClientError::KeyNotFound
    );
}

/// The fs keystore: MinIO's KES on the directory our kes rotated a key in reads the key as its
/// newest version.
#[test]
fn fs_rotation_and_what_minio_kes_still_reads() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert();
    std::fs::write(dir.path().join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &cert.key_pem).unwrap();
    let admin = ApiKey::generate();
    let ours = OurKes::with_config(
        &format!(
            "address: 127.0.0.1:{{port}}\nadmin:\n  identity: {}\ntls:\n  key: {d}/tls.key\n  cert: {d}/tls.crt\nkeystore:\n  fs:\n    path: {}\n",
            admin.identity(),
            keys.path().display(),
            d = dir.path().display()
        ),
        &[],
    );
    let our_client = KesClient::new(ClientConfig {
        endpoints: vec![ours.endpoint.clone()],
        identity: ClientIdentity::ApiKey(admin.to_secret_string().to_string()),
        ca_pems: vec![cert.cert_pem.clone().into_bytes()],
        ca_files: Vec::new(),
        insecure_skip_verify: false,
    })
    .unwrap();
    let ctx = b"bucket/object";
    let (dek1, dek2) = rt().block_on(async {
        our_client.create_key("k").await.unwrap();
        let dek1 = our_client.generate_key("k", ctx).await.unwrap();
        let v = our_client.rotate_key("k", true, None).await.unwrap();
        assert_eq!(v.newest, 2);
        let dek2 = our_client.generate_key("k", ctx).await.unwrap();
        assert_eq!(tagged_version(&dek2.ciphertext), Some(2));
        (dek1, dek2)
    });
    let theirs = MinioKes::with_config(&format!(
        "keystore:\n  fs:\n    path: {}\n",
        keys.path().display()
    ));
    let their_admin = theirs.admin.as_ref().unwrap();
    let their_client = KesClient::new(ClientConfig {
        endpoints: vec![theirs.endpoint.clone()],
        identity: ClientIdentity::Certificate {
            cert_pem: their_admin.cert_pem.clone().into_bytes(),
            key_pem: their_admin.key_pem.clone().into_bytes(),
        },
        ca_pems: vec![std::fs::read(theirs.ca_cert.as_ref().unwrap()).unwrap()],
        ca_files: Vec::new(),
        insecure_skip_verify: false,
    })
    .unwrap();
    rt().block_on(async {
        assert_eq!(their_client.list_keys("").await.unwrap(), ["k"]);
        assert_eq!(
            &their_client
                .decrypt_key("k", &dek2.ciphertext, ctx)
                .await
                .unwrap()[..],
            &dek2.plaintext[..]
        );
        assert_eq!(
            their_client
                .decrypt_key("k", &dek1.ciphertext, ctx)
                .await
                .unwrap_err(),
            ClientError::DecryptionFailed
        );
        let theirs_dek = their_client.generate_key("k", ctx).await.unwrap();
        assert_eq!(
            &our_client
                .decrypt_key("k", &theirs_dek.ciphertext, ctx)
                .await
                .unwrap()[..],
            &theirs_dek.plaintext[..]
        );
    });
}

/// K/V v1 has no check-and-set. Two kes servers (two `VaultStore`s, two caches) on one
/// OpenBao rotate one key many times at once, and create fresh keys at once (MinIO's start:
/// create on 404), each making data keys right after: every data key ever issued still
/// decrypts afterwards, on both and on a third kes that never cached anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kv_v1_concurrent_rotations_and_creates_from_two_kes_lose_no_data_key() {
    use sidecar_kes::cache::CacheConfig;
    use sidecar_kes::keystore::vault::VaultStore;
    use std::sync::Arc;

    let vault = tokio::task::block_in_place(Vault::dev);
    let role = tokio::task::block_in_place(|| vault.kv_with_approle("kv", 1, "kes-kv"));
    let kes = || async {
        let store = VaultStore::connect(VaultConfig {
            ping: Duration::from_secs(10),
            ..common::kv_config(&vault, "kv", false, &role.role_id, &role.secret_id)
        })
        .await
        .unwrap();
        common::start_server(Arc::new(store), CacheConfig::default(), vec![]).await
    };
    let (a, b) = (kes().await, kes().await);
    let clients = [Arc::new(a.admin_client()), Arc::new(b.admin_client())];
    let ctx = br#"{"bucket":"bucket/object"}"#;
    clients[0].create_key("k").await.unwrap();

    // Rotations: 4 workers on each server, 6 rounds each, a data key after every rotation.
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..4 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut issued = Vec::new();
                let mut rotated = 0;
                for _ in 0..6 {
                    match client.rotate_key("k", true, None).await {
                        Ok(_) => rotated += 1,
                        Err(ClientError::Api { status: 409, .. }) => {} // told to try again
                        Err(e) => panic!("rotate: {e:?}"),
                    }
                    issued.push(client.generate_key("k", ctx).await.unwrap());
                }
                (issued, rotated)
            }));
        }
    }
    let mut issued = Vec::new();
    let mut rotated = 0;
    for t in tasks {
        let (keys, n) = t.await.unwrap();
        issued.extend(keys.into_iter().map(|k| ("k".to_string(), k)));
        rotated += n;
    }
    assert!(rotated > 0, "no rotation succeeded");

    // Creates: both servers create the same fresh key at once and generate right after.
    for round in 0..8 {
        let name = format!("fresh-{round}");
        let tasks: Vec<_> = clients
            .iter()
            .map(|client| {
                let (client, name) = (client.clone(), name.clone());
                tokio::spawn(async move {
                    match client.create_key(&name).await {
                        Ok(()) | Err(ClientError::KeyExists) => {}
                        Err(e) => panic!("create: {e:?}"),
                    }
                    client.generate_key(&name, ctx).await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            issued.push((name.clone(), t.await.unwrap()));
        }
    }

    let fresh = kes().await;
    let fresh_client = fresh.admin_client();
    let mut lost = Vec::new();
    for (i, (name, dek)) in issued.iter().enumerate() {
        for (who, c) in [
            ("a", &*clients[0]),
            ("b", &*clients[1]),
            ("fresh", &fresh_client),
        ] {
            match c.decrypt_key(name, &dek.ciphertext, ctx).await {
                Ok(p) => assert_eq!(&p[..], &dek.plaintext[..], "{name} #{i} on {who}"),
                Err(e) => lost.push(format!(
                    "{name} #{i} (version {:?}) on {who}: {e:?}",
                    tagged_version(&dek.ciphertext)
                )),
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} data keys no longer decrypt ({rotated} rotations succeeded):\n{}",
        lost.len(),
        issued.len() * 3,
        lost.join("\n")
    );
    // The escrow folder is not a key.
    let names = fresh_client.list_keys("").await.unwrap();
    assert!(
        names.iter().all(|n| n == "k" || n.starts_with("fresh-")),
        "{names:?}"
    );
    assert_eq!(names.len(), 9);
}
