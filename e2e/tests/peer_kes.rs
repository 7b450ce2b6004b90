//! Smoke test of MinIO's KES (`minio-kes`): create a key and generate a data key with its CLI.

use coffer_e2e::kes::MinioKes;

fn kes(server: &MinioKes, args: &[&str]) -> String {
    let out = server.cli().args(args).output().expect("run minio-kes");
    assert!(
        out.status.success(),
        "minio-kes {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dev_server_creates_a_key_and_a_dek() {
    let server = MinioKes::dev();
    assert_eq!(server.admin_identity.len(), 64);
    kes(&server, &["key", "create", "-k", "minio-key-1"]);
    let dek = kes(&server, &["key", "dek", "-k", "minio-key-1"]);
    let dek: serde_json::Value =
        serde_json::from_str(&dek).unwrap_or_else(|e| panic!("dek output {dek:?}: {e}"));
    assert!(
        dek["plaintext"].as_str().is_some_and(|p| p.len() >= 43),
        "{dek}"
    );
    assert!(
        dek["ciphertext"].as_str().is_some_and(|c| c.len() > 60),
        "{dek}"
    );

    let again = server
        .cli()
        .args(["key", "create", "-k", "minio-key-1"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("key already exists"));
}

#[test]
fn configured_server_with_fs_keystore_and_mtls_admin() {
    let dir = tempfile::tempdir().unwrap();
    let server = MinioKes::with_config(&format!(
        "keystore:\n  fs:\n    path: {}\n",
        dir.path().display()
    ));
    kes(&server, &["key", "create", "-k", "minio-key-1"]);
    assert!(
        dir.path().join("minio-key-1").exists(),
        "the fs keystore holds the key"
    );
    let list = kes(&server, &["key", "ls", "-k", "--json"]);
    assert!(list.contains("minio-key-1"), "{list}");
}
