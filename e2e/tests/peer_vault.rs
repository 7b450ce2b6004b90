//! Smoke tests of OpenBao (`vault`): the dev server and the production-like one both take the
//! MinIO KMS guide's steps — K/V, AppRole, a policy, a role — and a role's token reads and writes.

use coffer_e2e::vault::{AppRole, Vault};

fn login(vault: &Vault, role: &AppRole) -> String {
    vault
        .run(&[
            "write",
            "-field=token",
            "auth/approle/login",
            &format!("role_id={}", role.role_id),
            &format!("secret_id={}", role.secret_id),
        ])
        .trim()
        .to_string()
}

fn write_and_read_as_role(vault: &Vault, role: &AppRole, path: &str) {
    let token = login(vault, role);
    let as_role = |args: &[&str]| {
        let out = vault
            .cli()
            .env("VAULT_TOKEN", &token)
            .args(args)
            .output()
            .expect("run vault");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = as_role(&["kv", "put", path, "value=sealed-secret"]);
    assert!(ok, "role cannot write {path}: {err}");
    let (ok, out, err) = as_role(&["kv", "get", "-field=value", path]);
    assert!(ok, "role cannot read {path}: {err}");
    assert_eq!(out.trim(), "sealed-secret");
    let (ok, _, err) = as_role(&["kv", "put", "secret/outside", "value=x"]);
    assert!(!ok, "the role's policy must not reach outside its K/V path");
    assert!(
        err.contains("permission denied") || err.contains("403"),
        "unexpected refusal: {err}"
    );
}

#[test]
fn dev_server_kv_v1_and_approle() {
    let vault = Vault::dev();
    let role = vault.kv_with_approle("kv", 1, "kes-server");
    assert!(!role.role_id.is_empty() && !role.secret_id.is_empty());
    write_and_read_as_role(&vault, &role, "kv/minio-key-1");
}

#[test]
fn production_like_server_tls_init_unseal_kv_v2() {
    let mut vault = Vault::production();
    assert!(vault.addr.starts_with("https://"));
    assert_eq!(vault.unseal_keys.len(), 5);
    let role = vault.kv_with_approle("kv", 2, "kes-server");
    write_and_read_as_role(&vault, &role, "kv/minio-key-1");

    vault.seal();
    let sealed = vault.cli().arg("status").output().expect("vault status");
    assert_eq!(
        sealed.status.code(),
        Some(2),
        "a sealed vault answers status with exit code 2"
    );
    vault.unseal();
    let out = vault.run(&["kv", "get", "-field=value", "kv/minio-key-1"]);
    assert_eq!(out.trim(), "sealed-secret", "data survives seal and unseal");

    vault.stop();
    vault.restart();
    vault.unseal();
    let out = vault.run(&["kv", "get", "-field=value", "kv/minio-key-1"]);
    assert_eq!(
        out.trim(),
        "sealed-secret",
        "raft storage survives a restart"
    );
}
