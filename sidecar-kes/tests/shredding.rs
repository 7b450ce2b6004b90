//! Crypto-shredding over Vault K/V v1 (real OpenBao): `kes key rm` is guarded (`--force` and
//! `--confirm NAME`); after a delete on one kes, a second kes in front of the same Vault refuses
//! the key within its cache bound (`cache.expiry.any`) with KES's 404 `key does not exist`, and
//! nothing of the key, its versions or its escrowed copies is left in Vault.

mod common;

use coffer_e2e::vault::Vault;
use common::ours::{kes_bin, output};
use common::{TestServer, kv_config, start_server};
use sidecar_kes::cache::CacheConfig;
use sidecar_kes::client::ClientError;
use sidecar_kes::keystore::vault::{VaultConfig, VaultStore};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ANY: Duration = Duration::from_secs(3);

async fn kes(vault: &Vault, role_id: &str, secret_id: &str) -> TestServer {
    let store = VaultStore::connect(VaultConfig {
        ping: Duration::from_secs(10),
        ..kv_config(vault, "kv", false, role_id, secret_id)
    })
    .await
    .unwrap();
    let cache = CacheConfig {
        any: Some(ANY),
        unused: None,
        offline: None,
    };
    start_server(Arc::new(store), cache, vec![]).await
}

/// `kes key rm ARGS` against `ts` with its admin API key.
fn rm(ts: &TestServer, args: &[&str]) -> (bool, String) {
    output(
        Command::new(kes_bin())
            .args(["key", "rm"])
            .args(args)
            .args(["-k", "--server", &ts.endpoint])
            .env("KES_API_KEY", &*ts.admin.to_secret_string())
            .env_remove("KES_CLIENT_CERT")
            .env_remove("KES_CLIENT_KEY")
            .env_remove("MINIO_KES_API_KEY"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_is_refused_by_every_kes_within_the_cache_bound() {
    let vault = tokio::task::block_in_place(Vault::dev);
    let role = tokio::task::block_in_place(|| vault.kv_with_approle("kv", 1, "kes-kv"));
    let (a, b) = (
        kes(&vault, &role.role_id, &role.secret_id).await,
        kes(&vault, &role.role_id, &role.secret_id).await,
    );
    let (ca, cb) = (a.admin_client(), b.admin_client());
    let ctx = br#"{"bucket":"bucket/object"}"#;
    ca.create_key("doomed").await.unwrap();
    ca.create_key("kept").await.unwrap();
    let dek1 = ca.generate_key("doomed", ctx).await.unwrap();
    ca.rotate_key("doomed", true, None).await.unwrap(); // versions 1 and 2, both escrowed
    let dek2 = ca.generate_key("doomed", ctx).await.unwrap();
    let kept = ca.generate_key("kept", ctx).await.unwrap();
    // b caches the rotated key.
    for dek in [&dek1, &dek2] {
        assert_eq!(
            &cb.decrypt_key("doomed", &dek.ciphertext, ctx)
                .await
                .unwrap()[..],
            &dek.plaintext[..]
        );
    }
    let escrow = |name: &str| {
        let out = vault
            .cli()
            .args([
                "list",
                "-format=json",
                &format!("kv/minio/.coffer-escrow/{name}"),
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let escrowed = tokio::task::block_in_place(|| escrow("doomed")).expect("escrowed versions");
    assert!(
        escrowed.contains("\"1-") && escrowed.contains("\"2-"),
        "{escrowed}"
    );

    // The guard: without --force, or without the exact confirmation, nothing is deleted.
    for args in [
        &["doomed"][..],
        &["doomed", "--confirm", "doomed"],
        &["doomed", "--force"],
        &["doomed", "--force", "--confirm", "kept"],
        &["doomed", "kept", "--force", "--confirm", "doomed"],
    ] {
        let (okay, text) = tokio::task::block_in_place(|| rm(&a, args));
        assert!(!okay, "{args:?}: {text}");
        assert!(text.contains("refusing to delete"), "{args:?}: {text}");
    }
    assert_eq!(
        &ca.decrypt_key("doomed", &dek2.ciphertext, ctx)
            .await
            .unwrap()[..],
        &dek2.plaintext[..]
    );

    let (okay, text) =
        tokio::task::block_in_place(|| rm(&a, &["doomed", "--force", "--confirm", "doomed"]));
    assert!(okay, "{text}");
    let deleted = Instant::now();
    // The kes that deleted refuses at once, KES's 404.
    for dek in [&dek1, &dek2] {
        assert_eq!(
            ca.decrypt_key("doomed", &dek.ciphertext, ctx)
                .await
                .unwrap_err(),
            ClientError::KeyNotFound
        );
    }
    assert_eq!(
        ca.generate_key("doomed", ctx).await.unwrap_err(),
        ClientError::KeyNotFound
    );
    // The other refuses within its cache bound.
    loop {
        match cb.decrypt_key("doomed", &dek2.ciphertext, ctx).await {
            Ok(_) => {
                assert!(
                    deleted.elapsed() < ANY + Duration::from_secs(2),
                    "b still decrypts {:?} after the delete (cache.expiry.any {ANY:?})",
                    deleted.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                assert_eq!(e, ClientError::KeyNotFound);
                break;
            }
        }
    }
    assert_eq!(
        cb.decrypt_key("doomed", &dek1.ciphertext, ctx)
            .await
            .unwrap_err(),
        ClientError::KeyNotFound
    );
    assert_eq!(
        cb.generate_key("doomed", ctx).await.unwrap_err(),
        ClientError::KeyNotFound
    );
    // Nothing of it is left in Vault; the other key is untouched on both.
    tokio::task::block_in_place(|| {
        assert_eq!(escrow("doomed"), None, "escrowed versions left behind");
        let read = vault
            .cli()
            .args(["kv", "get", "kv/minio/doomed"])
            .output()
            .unwrap();
        assert!(!read.status.success());
    });
    for c in [&ca, &cb] {
        assert_eq!(
            &c.decrypt_key("kept", &kept.ciphertext, ctx).await.unwrap()[..],
            &kept.plaintext[..]
        );
    }
    assert_eq!(ca.list_keys("").await.unwrap(), ["kept"]);
    // Deleting again: 404, through the API as MinIO calls it.
    assert_eq!(
        ca.delete_key("doomed").await.unwrap_err(),
        ClientError::KeyNotFound
    );
}
