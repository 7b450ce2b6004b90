//! Real MinIO against our `kes`, set up as the MinIO KMS guide does it: the guide's config
//! format, `kes tool identity new`, the old server flags, `kes key create` from the MinIO
//! identity, then auto-encryption of an object put with `mc`; and MinIO through our `kes` over
//! Vault Transit.

mod common;

use coffer_e2e::minio::Minio;
use coffer_e2e::pki::TestCa;
use common::ours::{OurKes, kes_bin, ok};
use std::process::Command;

#[test]
fn minio_encrypts_objects_through_our_kes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("tls"), "kes-ca");
    let server = ca.server("kes-tls", &[]);
    let key = dir.path().join("minio.key");
    let cert = dir.path().join("minio.cert");
    // The guide's identity step, with the old verb and flags.
    ok(Command::new(kes_bin())
        .args(["tool", "identity", "new", "MinIO", "--time=8760h"])
        .arg(format!("--key={}", key.display()))
        .arg(format!("--cert={}", cert.display())));
    let identity = ok(Command::new(kes_bin())
        .args(["tool", "identity", "of"])
        .arg(&cert))
    .trim()
    .to_string();
    assert_eq!(identity.len(), 64);
    let keystore = dir.path().join("keys");
    let config = format!(
        r#"address: 127.0.0.1:{{port}}
tls:
  key:  {tls_key}
  cert: {tls_cert}
policy:
  minio:
    paths:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    - /v1/key/describe/minio-*
    identities:
    - ${{MINIO_IDENTITY}}
cache:
  expiry:
    any:    5m0s
    unused: 20s
keystore:
  fs:
    path: {keystore}
"#,
        tls_key = server.key.display(),
        tls_cert = server.cert.display(),
        keystore = keystore.display(),
    );
    // `${MINIO_IDENTITY}` is expanded from our child's environment.
    let kes = {
        let dir2 = tempfile::tempdir().unwrap();
        let path = dir2.path().join("kes-config.yaml");
        // Port 0: the server picks a free one (one picked here could be taken before it binds).
        std::fs::write(&path, config.replace("{port}", "0")).unwrap();
        let mut cmd = Command::new(kes_bin());
        cmd.args(["server", "--config"]).arg(&path).args([
            "--mlock",
            "--root=disabled",
            "--auth=off",
        ]);
        cmd.env("MINIO_IDENTITY", &identity);
        OurKes::spawn(cmd, dir2)
    };
    // The guide's key step: as the MinIO identity, with -k.
    let mut create = Command::new(kes_bin());
    create
        .args(["key", "create", "minio-key-1", "-k"])
        .env("KES_SERVER", &kes.endpoint)
        .env("KES_CLIENT_TLS_KEY_FILE", &key)
        .env("KES_CLIENT_TLS_CERT_FILE", &cert)
        .env_remove("KES_API_KEY")
        .env_remove("MINIO_KES_API_KEY");
    ok(&mut create);
    // Creating it twice gives KES's text; a key outside the policy is refused with KES's text.
    let out = create.output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key already exists"),
        "{out:?}"
    );
    let mut forbidden = Command::new(kes_bin());
    forbidden
        .args(["key", "create", "my-key-1", "-k"])
        .env("KES_SERVER", &kes.endpoint)
        .env("KES_CLIENT_TLS_KEY_FILE", &key)
        .env("KES_CLIENT_TLS_CERT_FILE", &cert)
        .env_remove("KES_API_KEY");
    let out = forbidden.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authorized: insufficient permissions"),
        "{out:?}"
    );

    let minio = Minio::start(&[
        ("MINIO_KMS_KES_ENDPOINT", kes.endpoint.as_str()),
        ("MINIO_KMS_KES_KEY_FILE", key.to_str().unwrap()),
        ("MINIO_KMS_KES_CERT_FILE", cert.to_str().unwrap()),
        ("MINIO_KMS_KES_KEY_NAME", "minio-key-1"),
        ("MINIO_KMS_KES_CAPATH", ca.cert.to_str().unwrap()),
        ("MINIO_KMS_KES_CA_PATH", ca.cert.to_str().unwrap()),
        ("MINIO_KMS_AUTO_ENCRYPTION", "on"),
    ]);
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hello, encrypted world\n".repeat(1000)).unwrap();
    ok(minio.mc().args(["mb", "local/bucket"]));
    ok(minio
        .mc()
        .args(["cp"])
        .arg(&file)
        .arg("local/bucket/hello.txt"));
    let back = ok(minio.mc().args(["cat", "local/bucket/hello.txt"]));
    assert_eq!(back, std::fs::read_to_string(&file).unwrap());
    let stat = ok(minio.mc().args(["stat", "local/bucket/hello.txt"]));
    assert!(
        stat.contains("SSE-") || stat.contains("Encrypt"),
        "mc stat shows no encryption:\n{stat}\n{}",
        minio.log()
    );
    // MinIO created nothing else: the one master key is in our keystore.
    let names: Vec<_> = std::fs::read_dir(&keystore)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["minio-key-1"]);
}

/// Real MinIO through our `kes` over Vault Transit (`keystore.vault.transit`, the documented
/// policy): MinIO creates its default key, then SSE-S3 and SSE-KMS objects round-trip. The keys
/// are Transit's, and Vault's audit log shows our kes asked only for Transit and auth paths.
#[test]
fn minio_encrypts_objects_through_our_kes_over_vault_transit() {
    let vault = coffer_e2e::vault::Vault::dev_audited();
    let role = vault.transit_with_approle("transit", "kes-transit");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("tls"), "kes-ca");
    let server = ca.server("kes-tls", &[]);
    let key = dir.path().join("minio.key");
    let cert = dir.path().join("minio.cert");
    ok(Command::new(kes_bin())
        .args(["identity", "new", "MinIO"])
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert));
    let identity = ok(Command::new(kes_bin()).args(["identity", "of"]).arg(&cert))
        .trim()
        .to_string();
    let config = format!(
        r#"address: 127.0.0.1:0
tls:
  key:  {tls_key}
  cert: {tls_cert}
policy:
  minio:
    allow:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    - /v1/key/describe/minio-*
    identities:
    - {identity}
keys:
  - name: minio-sse-kms
keystore:
  vault:
    endpoint: {endpoint}
    transit:
      engine: transit
    approle:
      id: {role_id}
      secret: {secret_id}
      retry: 1s
    status:
      ping: 1s
"#,
        tls_key = server.key.display(),
        tls_cert = server.cert.display(),
        endpoint = vault.addr,
        role_id = role.role_id,
        secret_id = role.secret_id,
    );
    let kes = OurKes::with_config(&config, &[]);
    assert!(
        kes.process.log().contains("Vault Transit"),
        "{}",
        kes.process.log()
    );
    let minio = Minio::start(&[
        ("MINIO_KMS_KES_ENDPOINT", kes.endpoint.as_str()),
        ("MINIO_KMS_KES_KEY_FILE", key.to_str().unwrap()),
        ("MINIO_KMS_KES_CERT_FILE", cert.to_str().unwrap()),
        ("MINIO_KMS_KES_KEY_NAME", "minio-default"),
        ("MINIO_KMS_KES_CAPATH", ca.cert.to_str().unwrap()),
    ]);
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hello, transit\n".repeat(10_000)).unwrap();
    let want = std::fs::read_to_string(&file).unwrap();
    ok(minio.mc().args(["mb", "local/bucket"]));
    ok(minio
        .mc()
        .args(["cp", "--enc-s3", "local/bucket/sse-s3"])
        .arg(&file)
        .arg("local/bucket/sse-s3"));
    ok(minio
        .mc()
        .args(["cp", "--enc-kms", "local/bucket/sse-kms=minio-sse-kms"])
        .arg(&file)
        .arg("local/bucket/sse-kms"));
    for (object, mode) in [("sse-s3", "SSE-S3"), ("sse-kms", "SSE-KMS")] {
        let back = ok(minio.mc().args(["cat", &format!("local/bucket/{object}")]));
        assert!(back == want, "{object} did not read back\n{}", minio.log());
        let stat = ok(minio.mc().args(["stat", &format!("local/bucket/{object}")]));
        assert!(stat.contains(mode), "mc stat of {object}:\n{stat}");
    }
    let stat = ok(minio.mc().args(["stat", "local/bucket/sse-kms"]));
    assert!(stat.contains("minio-sse-kms"), "{stat}");

    // The master keys are Transit keys: MinIO's default key (created by MinIO through our kes at
    // its start) and the predefined one, both non-exportable.
    let listed = vault.run(&["list", "-format=json", "transit/keys"]);
    let listed: Vec<String> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed, ["minio-default", "minio-sse-kms"]);
    for name in &listed {
        let k = vault.run(&["read", "-format=json", &format!("transit/keys/{name}")]);
        let k: serde_json::Value = serde_json::from_str(&k).unwrap();
        assert_eq!(k["data"]["exportable"], false, "{k}");
    }
    let paths = vault.audited_requests("kes-transit");
    for path in &paths {
        assert!(
            path.starts_with("transit/") || path.starts_with("auth/"),
            "our kes requested {path}: {paths:#?}"
        );
    }
    for expected in [
        "transit/keys/minio-default",
        "transit/datakey/plaintext/minio-default",
        "transit/datakey/plaintext/minio-sse-kms",
        "transit/decrypt/minio-sse-kms",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not audited: {paths:#?}\n{}",
            minio.log()
        );
    }
}
