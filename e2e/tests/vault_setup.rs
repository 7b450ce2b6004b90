//! `manifests/vault/`: the setup script its Job runs, for real against a fresh OpenBao (raft,
//! TLS) and a real API server — init, unseal, K/V, AppRole, policy, role, and the Secrets a KMS
//! reads — run twice (the second run changes nothing) and once more after a restart (it unseals).
//! The manifests themselves are checked by the API server (server-side dry run).

use coffer_e2e::kube::KubeApi;
use coffer_e2e::vault::Vault;
use coffer_e2e::{peer_bin, process::run};
use std::path::PathBuf;
use std::process::Command;

fn vault_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/vault")
}

fn setup(api: &KubeApi, vault: &Vault) -> String {
    peer_bin("vault");
    peer_bin("kubectl");
    run(
        "manifests/vault/setup.sh",
        Command::new("sh")
            .arg(vault_dir().join("setup.sh"))
            .env("KUBECONFIG", &api.kubeconfig)
            .env("VAULT_ADDR", &vault.addr)
            .env("VAULT_CACERT", vault.ca_cert.as_ref().unwrap())
            .env_remove("VAULT_TOKEN"),
    )
}

fn secret_field(api: &KubeApi, ns: &str, name: &str, key: &str) -> String {
    use base64::Engine;
    let path = format!("jsonpath={{.data.{}}}", key.replace('.', "\\."));
    let b64 = api.run(&["-n", ns, "get", "secret", name, "-o", &path]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn setup_script_does_the_guides_vault_steps_and_hands_coffer_its_secrets() {
    let api = KubeApi::start();
    api.run(&["create", "namespace", "vault"]);
    api.run(&["create", "namespace", "coffer-demo"]);
    let mut vault = Vault::production_uninitialized();

    let log = setup(&api, &vault);
    assert!(log.contains("vault operator init"), "{log}");
    let role_id = secret_field(&api, "coffer-demo", "vault-approle", "roleId");
    let secret_id = secret_field(&api, "coffer-demo", "vault-approle", "secretId");
    assert!(!role_id.is_empty() && !secret_id.is_empty());
    assert_eq!(
        secret_field(&api, "coffer-demo", "vault-ca", "ca.crt"),
        std::fs::read_to_string(vault.ca_cert.as_ref().unwrap()).unwrap()
    );

    // The role logs in and may use only the K/V engine, as KES will.
    vault.token = secret_field(&api, "vault", "vault-init", "root-token");
    let token = vault.run(&[
        "write",
        "-field=token",
        "auth/approle/login",
        &format!("role_id={role_id}"),
        &format!("secret_id={secret_id}"),
    ]);
    let token = token.trim().to_string();
    let as_role = |vault: &Vault, args: &[&str]| {
        vault
            .cli()
            .env("VAULT_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        as_role(&vault, &["write", "kv/minio-key-1", "bytes=x"])
            .status
            .success()
    );
    assert!(
        as_role(&vault, &["read", "kv/minio-key-1"])
            .status
            .success()
    );
    // What rotation (a write over an existing key: `update`), listing and deletion need.
    let rewrite = as_role(&vault, &["write", "kv/minio-key-1", "bytes=y"]);
    assert!(
        rewrite.status.success(),
        "update: {}",
        String::from_utf8_lossy(&rewrite.stderr)
    );
    assert!(
        as_role(&vault, &["write", "kv/minio-key-2", "bytes=z"])
            .status
            .success()
    );
    let listed = as_role(&vault, &["list", "-format=json", "kv/"]);
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("minio-key-2"));
    assert!(
        as_role(&vault, &["delete", "kv/minio-key-2"])
            .status
            .success()
    );
    assert!(
        !as_role(&vault, &["policy", "list"]).status.success(),
        "the role is not an admin"
    );

    // Again: every step already done, the AppRole Secret untouched.
    let version = || {
        api.run(&[
            "-n",
            "coffer-demo",
            "get",
            "secret",
            "vault-approle",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
    };
    let before = version();
    let log = setup(&api, &vault);
    assert!(
        !log.contains("operator init") && !log.contains("operator unseal"),
        "{log}"
    );
    assert_eq!(before, version());

    // After a restart Vault is sealed; the script unseals it with 3 of the stored shares.
    vault.stop();
    vault.restart();
    let sealed = vault.cli().arg("status").output().unwrap();
    assert_eq!(sealed.status.code(), Some(2), "restarted vault is sealed");
    let log = setup(&api, &vault);
    assert!(log.contains("vault operator unseal"), "{log}");
    assert!(
        as_role(&vault, &["read", "kv/minio-key-1"])
            .status
            .success(),
        "unsealed, data intact"
    );
}

#[test]
fn vault_manifests_are_accepted_by_the_api_server() {
    let api = KubeApi::start();
    api.run(&["create", "namespace", "vault"]);
    api.run(&["create", "namespace", "coffer-demo"]);
    let out = api.run(&[
        "apply",
        "--dry-run=server",
        "-k",
        vault_dir().to_str().unwrap(),
    ]);
    for kind in [
        "statefulset.apps/vault",
        "job.batch/vault-setup",
        "configmap/vault-setup",
        "role.rbac.authorization.k8s.io/vault-setup",
    ] {
        assert!(out.contains(kind), "{kind} missing from: {out}");
    }
    // The script the Job runs is the one tested above.
    let rendered = api.run(&["kustomize", vault_dir().to_str().unwrap()]);
    let script = std::fs::read_to_string(vault_dir().join("setup.sh")).unwrap();
    assert!(
        rendered.contains(script.lines().nth(1).unwrap()),
        "the ConfigMap carries setup.sh"
    );
}
