//! The KES config the operator generates is accepted by MinIO's own `kes` (the reference
//! implementation of the format) and by ours (`sidecar-kes`, started in-process from the same
//! file), reaches a real Vault with AppRole credentials taken from the environment, and its
//! policy admits only the Tenant's identity, only on the Tenant's prefix.
//!
//! Needs the peers `vault` and `minio-kes` on PATH (`eval "$(e2e/peers/env)"`); fails when absent.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use coffer_e2e::vault::Vault;
use coffer_e2e::{Process, peer_bin, start_on_free_ports};
use operator::build::kes_config;
use operator::crd::{KMS, Tenant};
use operator::pki::{Ca, Pem, Usage, ca::CA_LIFETIME};
use time::OffsetDateTime;

use common::write_file as write;

/// Runs `minio-kes key create NAME` as the client with `cert`/`key`; returns (success, output).
fn key_create(endpoint: &str, cert: &str, key: &str, name: &str) -> (bool, String) {
    let out = Command::new(peer_bin("minio-kes"))
        .args(["key", "create", "-k", name])
        .env("KES_SERVER", endpoint)
        .env("KES_CLIENT_CERT", cert)
        .env("KES_CLIENT_KEY", key)
        .output()
        .unwrap();
    (out.status.success(), common::printed(&out))
}

#[test]
fn generated_config_runs_minio_kes_and_ours_against_vault_and_confines_the_tenant() {
    let vault = Vault::production();
    let approle = vault.kv_with_approle("kv", 1, "coffer");
    let kms: KMS = serde_saphyr::from_str(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: shop}}\n\
         spec:\n  vault:\n    endpoint: {}\n    engine: kv\n    version: v1\n    prefix: coffer\n    auth:\n      appRole: {{secretName: vault-approle}}\n    tls: {{caSecretName: vault-ca}}\n",
        vault.addr
    ))
    .unwrap();
    let tenant: Tenant = serde_saphyr::from_str(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {name: photos, namespace: shop, uid: u1}\nspec:\n  kms: {name: vault}\n",
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let common::KesSetup { cfg, ca, client } =
        common::kes_setup(&tenant, &kms, vault.ca_cert.as_ref().unwrap(), d);
    let intruder = common::leaf(&ca, "intruder", &[], Usage::Client);
    let identity = operator::pki::identity_of_pem(&client.cert).unwrap();

    let (kes, ports, ()) = start_on_free_ports(
        "minio-kes (generated config)",
        1,
        Duration::from_secs(60),
        |ports| {
            let config_path = write(d, "config.yaml", &config_text(&cfg, ports[0]));
            let mut command = Command::new(peer_bin("minio-kes"));
            command
                .args(["server", "--config", &config_path])
                .env("VAULT_APPROLE_ID", &approle.role_id)
                .env("VAULT_APPROLE_SECRET", &approle.secret_id);
            Process::spawn("minio-kes (generated config)", command, &d.join("kes.log"))
        },
        |kes, _| kes.log().contains("Server is up").then_some(()),
    );
    confines_the_tenant(
        &format!("https://127.0.0.1:{}", ports[0]),
        d,
        &client,
        &intruder,
        &vault,
        "minio-kes",
        &kes.log_tail(),
    );
    drop(kes);

    // Our kes, from the same generated file (address port 0: it picks a free one), with the
    // same env.
    let ours = config_text(&cfg, 0);
    let env = |k: &str| match k {
        "VAULT_APPROLE_ID" => Some(approle.role_id.clone()),
        "VAULT_APPROLE_SECRET" => Some(approle.secret_id.clone()),
        _ => None,
    };
    let parsed =
        sidecar_kes::config::parse(&ours, &env).expect("our kes reads the generated config");
    assert!(parsed.admin.is_empty(), "admin disabled");
    assert!(
        parsed.tls.verify_clients,
        "client certificates verified against the Tenant CA"
    );
    let policy = &parsed.policies["object-server"];
    assert_eq!(
        policy.identities,
        vec![sidecar_kes::auth::Identity::new(&identity)]
    );
    assert!(policy.policy.verify("/v1/key/generate/photos_default"));
    assert!(!policy.policy.verify("/v1/key/delete/photos_default"));
    assert!(!policy.policy.verify("/v1/key/generate/videos_default"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(common::start_our_kes(&parsed));
    let ours = format!("https://127.0.0.1:{}", running.addr.port());
    confines_the_tenant(&ours, d, &client, &intruder, &vault, "our kes", "");
    // The sidecar's probe passes with the object-server's identity, and fails with another
    // (so a probe that cannot reach, or is not allowed, takes the pod out).
    let (ok, out) = run_kes_probe(&tenant, &kms, &ours, d, "client");
    assert!(
        ok && out.contains("Keystore"),
        "the KES probe passes: {out}"
    );
    let (ok, out) = run_kes_probe(&tenant, &kms, &ours, d, "intruder");
    assert!(
        !ok,
        "the KES probe fails for an identity the policy does not allow: {out}"
    );
}

fn config_text(cfg: &kes_config::KesConfig, port: u16) -> String {
    let mut cfg = cfg.clone();
    cfg.address = format!("127.0.0.1:{port}");
    kes_config::to_yaml(&cfg)
}

/// The Tenant's identity may create keys under its prefix (stored in Vault under
/// `<prefix>/<namespace>`); another prefix, another identity and another CA are refused.
fn confines_the_tenant(
    endpoint: &str,
    d: &Path,
    client: &Pem,
    intruder: &Pem,
    vault: &Vault,
    server: &str,
    log: &str,
) {
    let key = format!("photos_{}", server.replace(" ", "_").replace("-", "_"));
    let (cc, ck) = (
        write(d, "client.crt", &client.cert),
        write(d, "client.key", &client.key),
    );

    let (ok, out) = key_create(endpoint, &cc, &ck, &key);
    assert!(
        ok,
        "{server}: the Tenant's identity may create a key under its prefix: {out}\n{log}"
    );
    let stored = vault.run(&["kv", "list", "kv/coffer/shop"]);
    assert!(
        stored.contains(&key),
        "the key lives in Vault under <prefix>/<namespace>: {stored}"
    );

    let (ok, out) = key_create(endpoint, &cc, &ck, "videos_default");
    assert!(
        !ok && out.contains("not authorized"),
        "another prefix is refused: {out}"
    );

    let (ic, ik) = (
        write(d, "intruder.crt", &intruder.cert),
        write(d, "intruder.key", &intruder.key),
    );
    let (ok, out) = key_create(endpoint, &ic, &ik, "photos_other");
    assert!(
        !ok && out.contains("not authorized"),
        "another identity is refused: {out}"
    );

    // A certificate from another CA is refused at the TLS handshake (tls.auth: on).
    let other_ca = Ca::generate("someone else", OffsetDateTime::now_utc(), CA_LIFETIME).unwrap();
    let foreign = common::leaf(&other_ca, "x", &[], Usage::Client);
    let (fc, fk) = (
        write(d, "foreign.crt", &foreign.cert),
        write(d, "foreign.key", &foreign.key),
    );
    let (ok, out) = key_create(endpoint, &fc, &fk, "photos_foreign");
    assert!(!ok, "a certificate from another CA is refused: {out}");
}

/// The KES sidecar's probe, exactly as the StatefulSet runs it inside the sidecar (`kes
/// status` over loopback with the object-server's client certificate), pointed at `endpoint`
/// and at the files of `d`, with `identity` (`client` or `intruder`) as the client files.
fn run_kes_probe(
    tenant: &Tenant,
    kms: &KMS,
    endpoint: &str,
    d: &Path,
    identity: &str,
) -> (bool, String) {
    use operator::build::kes_config::KES_ADDRESS;
    use operator::build::workload::{KES_CLIENT_DIR, stateful_set};
    let sts = stateful_set(tenant, kms, "image", "h", "h");
    let kes = &sts
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .init_containers
        .unwrap()[0];
    let command = kes
        .liveness_probe
        .clone()
        .unwrap()
        .exec
        .unwrap()
        .command
        .unwrap();
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| {
            if *a == format!("https://{KES_ADDRESS}") {
                endpoint.to_string()
            } else if let Some(file) = a.strip_prefix(&format!("{KES_CLIENT_DIR}/")) {
                let file = file.replace("client", identity);
                d.join(file).display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    assert_eq!(command[0], "kes");
    let bin = coffer_e2e::process::workspace_bin_dir(&["kes"]).join("kes");
    let out = Command::new(bin).args(&args).output().unwrap();
    (out.status.success(), common::printed(&out))
}

/// A KMS with `vault.transit`: the generated config runs our kes on OpenBao's Transit engine
/// with the documented policy (`manifests/vault/kes-transit-policy.hcl`); the Tenant's keys
/// are non-exportable Transit keys named by its prefix, and the policy still confines it.
#[test]
fn generated_transit_config_runs_our_kes_on_transit_and_confines_the_tenant() {
    let vault = Vault::production();
    let approle = vault.transit_with_approle("kms-transit", "coffer");
    let kms: KMS = serde_saphyr::from_str(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: shop}}\n\
         spec:\n  vault:\n    endpoint: {}\n    transit: {{engine: kms-transit}}\n    auth:\n      appRole: {{secretName: vault-approle}}\n    tls: {{caSecretName: vault-ca}}\n",
        vault.addr
    ))
    .unwrap();
    let tenant: Tenant = serde_saphyr::from_str(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {name: photos, namespace: shop, uid: u1}\nspec:\n  kms: {name: vault}\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let common::KesSetup { cfg, client, .. } =
        common::kes_setup(&tenant, &kms, vault.ca_cert.as_ref().unwrap(), d);
    let text = config_text(&cfg, 0);
    assert!(
        text.contains("transit:") && !text.contains("prefix:"),
        "{text}"
    );
    let env = |k: &str| match k {
        "VAULT_APPROLE_ID" => Some(approle.role_id.clone()),
        "VAULT_APPROLE_SECRET" => Some(approle.secret_id.clone()),
        _ => None,
    };
    let parsed = sidecar_kes::config::parse(&text, &env).expect("our kes reads it");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(common::start_our_kes(&parsed));
    let endpoint = format!("https://127.0.0.1:{}", running.addr.port());
    let (cc, ck) = (
        write(d, "client.crt", &client.cert),
        write(d, "client.key", &client.key),
    );
    let (ok, out) = key_create(&endpoint, &cc, &ck, "photos_default");
    assert!(ok, "the Tenant creates its key through kes: {out}");
    let key = vault.run(&["read", "-format=json", "kms-transit/keys/photos_default"]);
    let key: serde_json::Value = serde_json::from_str(&key).unwrap();
    assert_eq!(key["data"]["exportable"], false, "{key}");
    assert_eq!(key["data"]["latest_version"], 1, "{key}");
    let (ok, out) = key_create(&endpoint, &cc, &ck, "videos_default");
    assert!(
        !ok && out.contains("not authorized"),
        "another prefix is refused: {out}"
    );
    drop(running);
}
