//! Interoperability with MinIO's own KES (`minio-kes` v0.24.0): its CLI against our server,
//! our CLI and client against its server, and DEKs that decrypt across both over one
//! filesystem keystore. Needs the peers on PATH (`eval "$(e2e/peers/env)"`); fails loudly without.

mod common;

use base64::{Engine, engine::general_purpose::STANDARD};
use coffer_e2e::kes::MinioKes;
use coffer_e2e::peer_bin;
use common::ours::{OurKes, kes_bin, ok, output};
use sidecar_kes::client::{ClientConfig, ClientError, ClientIdentity, KesClient};
use std::process::Command;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn minio_kes(endpoint: &str, api_key: &str) -> Command {
    let mut c = Command::new(peer_bin("minio-kes"));
    c.env("KES_SERVER", endpoint)
        .env("KES_API_KEY", api_key)
        .env_remove("KES_CLIENT_CERT")
        .env_remove("KES_CLIENT_KEY");
    c
}

fn our_cli(endpoint: &str, api_key: &str) -> Command {
    let mut c = Command::new(kes_bin());
    c.env("KES_SERVER", endpoint).env("KES_API_KEY", api_key);
    for v in [
        "MINIO_KES_SERVER",
        "MINIO_KMS_KES_ENDPOINT",
        "MINIO_KES_API_KEY",
        "KES_CLIENT_CERT",
        "KES_CLIENT_KEY",
    ] {
        c.env_remove(v);
    }
    c
}

#[test]
fn minio_kes_cli_against_our_server() {
    let ours = OurKes::dev();
    let key = ours.api_key.clone().expect("our --dev prints an API key");
    let kes = |args: &[&str]| {
        minio_kes(&ours.endpoint, &key)
            .args(args)
            .arg("-k")
            .output()
            .unwrap()
    };

    let out = kes(&["key", "create", "minio-key-1"]);
    assert!(out.status.success(), "{out:?}");
    let out = kes(&["key", "create", "minio-key-1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key already exists"),
        "{out:?}"
    );
    let ls = String::from_utf8_lossy(&kes(&["key", "ls"]).stdout).into_owned();
    assert!(ls.contains("minio-key-1"), "{ls}");
    let info = String::from_utf8_lossy(&kes(&["key", "info", "minio-key-1"]).stdout).into_owned();
    assert!(info.contains("AES256"), "{info}");
    // A DEK from MinIO's CLI decrypts with our client.
    let out = kes(&["key", "dek", "minio-key-1"]);
    assert!(out.status.success(), "{out:?}");
    let dek: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("minio-kes key dek prints JSON");
    let client = KesClient::new(ClientConfig {
        endpoints: vec![ours.endpoint.clone()],
        identity: ClientIdentity::ApiKey(key.clone()),
        ca_pems: vec![],
        ca_files: vec![],
        insecure_skip_verify: true,
    })
    .unwrap();
    let pt = rt()
        .block_on(
            client.decrypt_key(
                "minio-key-1",
                &STANDARD
                    .decode(dek["ciphertext"].as_str().unwrap())
                    .unwrap(),
                b"",
            ),
        )
        .unwrap();
    assert_eq!(STANDARD.encode(&pt[..]), dek["plaintext"].as_str().unwrap());
    let status = kes(&["status"]);
    assert!(status.status.success(), "{status:?}");

    // MinIO's identity tooling: a fresh API key's identity matches ours, and it has no policy: 403.
    let new = String::from_utf8_lossy(
        &Command::new(peer_bin("minio-kes"))
            .args(["identity", "new"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let other_key = new
        .split_whitespace()
        .find(|w| w.starts_with("kes:v1:"))
        .expect("minio-kes identity new prints an API key")
        .to_string();
    let their_id = new
        .split_whitespace()
        .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .expect("identity");
    assert_eq!(
        sidecar_kes::auth::ApiKey::parse(&other_key)
            .unwrap()
            .identity()
            .as_str(),
        their_id
    );
    let (_, ours_of) = output(Command::new(kes_bin()).args(["identity", "of", &other_key]));
    assert_eq!(ours_of.trim(), their_id);
    let out = minio_kes(&ours.endpoint, &other_key)
        .args(["key", "create", "forbidden", "-k"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authorized: insufficient permissions"),
        "{out:?}"
    );
}

/// MinIO's CLI authenticating with a client certificate of its own making (`minio-kes identity
/// new`), as MinIO does, against our server with `--auth=off`: the identity is the certificate's
/// key, bound to a policy; and a chain that appends that certificate after one of an attacker's
/// own (CA-flagged, with the attacker's key) is refused (issue #18, finding 1).
#[test]
fn minio_kes_cli_with_a_client_certificate_against_our_server() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("app.key"), dir.path().join("app.crt"));
    let out = Command::new(peer_bin("minio-kes"))
        .args(["identity", "new", "--key"])
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg("app")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let theirs_of = ok(Command::new(peer_bin("minio-kes"))
        .args(["identity", "of"])
        .arg(&cert));
    let identity = sidecar_kes::auth::Identity::from_cert_pem(&std::fs::read(&cert).unwrap())
        .unwrap()
        .to_string();
    assert!(theirs_of.contains(&identity), "{theirs_of}");
    let ca = coffer_e2e::pki::TestCa::new(&dir.path().join("tls"), "kes-ca");
    let server = ca.server("kes", &[]);
    let config = r#"address: 127.0.0.1:{port}
admin:
  identity: disabled
tls:
  key: TLS_KEY
  cert: TLS_CERT
policy:
  app:
    allow:
    - /v1/key/create/app-*
    - /v1/key/generate/app-*
    - /v1/key/decrypt/app-*
    identities: [APP_IDENTITY]
keystore:
  fs:
    path: KEYSTORE
"#
    .replace("TLS_KEY", &server.key.display().to_string())
    .replace("TLS_CERT", &server.cert.display().to_string())
    .replace("APP_IDENTITY", &identity)
    .replace("KEYSTORE", &dir.path().join("keys").display().to_string());
    let ours = OurKes::with_config(&config, &["--auth=off"]);
    let kes = |cert: &std::path::Path, key: &std::path::Path, args: &[&str]| {
        Command::new(peer_bin("minio-kes"))
            .env("KES_SERVER", &ours.endpoint)
            .env("KES_CLIENT_CERT", cert)
            .env("KES_CLIENT_KEY", key)
            .env_remove("KES_API_KEY")
            .args(args)
            .arg("-k")
            .output()
            .unwrap()
    };
    let out = kes(&cert, &key, &["key", "create", "app-key"]);
    assert!(out.status.success(), "{out:?}\n{}", ours.process.log_tail());
    let out = kes(&cert, &key, &["key", "create", "other-key"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authorized: insufficient permissions"),
        "{out:?}"
    );
    let out = kes(&cert, &key, &["key", "dek", "app-key"]);
    assert!(out.status.success(), "{out:?}");

    // The attack, with MinIO's own client: [own CA-flagged cert, the app's cert], own key.
    let own_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "attacker");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let own_ca = params.self_signed(&own_key).unwrap();
    let (forged_cert, forged_key) = (dir.path().join("forged.crt"), dir.path().join("forged.key"));
    std::fs::write(
        &forged_cert,
        format!(
            "{}{}",
            own_ca.pem(),
            std::fs::read_to_string(&cert).unwrap()
        ),
    )
    .unwrap();
    std::fs::write(&forged_key, own_key.serialize_pem()).unwrap();
    let out = kes(&forged_cert, &forged_key, &["key", "dek", "app-key"]);
    assert!(
        !out.status.success(),
        "the forged chain was taken for the app: {out:?}"
    );
    let out = kes(&forged_cert, &forged_key, &["key", "create", "app-forged"]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn our_cli_and_client_against_minio_kes() {
    let theirs = MinioKes::dev();
    let key = theirs.api_key.clone().expect("minio-kes --dev api key");
    let cli = |args: &[&str]| output(our_cli(&theirs.endpoint, &key).args(args).arg("-k"));

    assert!(cli(&["key", "create", "minio-key-1"]).0);
    let (okay, text) = cli(&["key", "create", "minio-key-1"]);
    assert!(!okay && text.contains("key already exists"), "{text}");
    let (okay, text) = cli(&["key", "ls", "--json"]);
    assert!(okay, "{text}");
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&text).unwrap(),
        ["minio-key-1"]
    );
    let (okay, text) = cli(&["key", "info", "minio-key-1", "--json"]);
    assert!(okay, "{text}");
    let info: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(info["name"], "minio-key-1");
    assert_eq!(info["algorithm"], "AES256");
    let (okay, text) = cli(&["key", "dek", "minio-key-1", "ctx", "--json"]);
    assert!(okay, "{text}");
    let dek: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (okay, text) = cli(&[
        "key",
        "decrypt",
        "minio-key-1",
        dek["ciphertext"].as_str().unwrap(),
        "ctx",
    ]);
    assert!(okay, "{text}");
    assert_eq!(text.trim(), dek["plaintext"].as_str().unwrap());
    let (okay, text) = cli(&[
        "key",
        "decrypt",
        "minio-key-1",
        dek["ciphertext"].as_str().unwrap(),
        "wrong",
    ]);
    assert!(
        !okay && text.contains("decryption failed: ciphertext is not authentic"),
        "{text}"
    );
    let (okay, text) = cli(&["status"]);
    assert!(okay, "{text}");
    // import, encrypt, decrypt, rm.
    let key32 = STANDARD.encode([7u8; 32]);
    let (okay, text) = cli(&["key", "import", "imported", &key32]);
    assert!(okay, "{text}");
    let (okay, ct) = cli(&["key", "encrypt", "imported", "hello", "ctx"]);
    assert!(okay, "{ct}");
    let (okay, pt) = cli(&["key", "decrypt", "imported", ct.trim(), "ctx"]);
    assert!(okay, "{pt}");
    assert_eq!(STANDARD.decode(pt.trim()).unwrap(), b"hello");
    // Our CLI's guard: nothing is deleted without --force and the confirmation.
    let (okay, text) = cli(&["key", "rm", "imported"]);
    assert!(!okay && text.contains("refusing to delete"), "{text}");
    let (okay, text) = cli(&["key", "describe", "imported"]);
    assert!(okay, "{text}");
    let (okay, text) = cli(&["key", "rm", "imported", "--force", "--confirm", "imported"]);
    assert!(okay, "{text}");
    let (okay, text) = cli(&["key", "describe", "imported"]);
    assert!(!okay && text.contains("key does not exist"), "{text}");

    // The client library against MinIO's KES.
    let c = KesClient::new(ClientConfig {
        endpoints: vec![theirs.endpoint.clone()],
        identity: ClientIdentity::ApiKey(key),
        ca_pems: vec![],
        ca_files: vec![],
        insecure_skip_verify: true,
    })
    .unwrap();
    rt().block_on(async {
        assert!(!c.version().await.unwrap().is_empty());
        c.ready().await.unwrap();
        assert_eq!(
            c.create_key("minio-key-1").await.unwrap_err(),
            ClientError::KeyExists
        );
        assert_eq!(
            c.describe_key("nope").await.unwrap_err(),
            ClientError::KeyNotFound
        );
        c.create_key("k2").await.unwrap();
        let dk = c.generate_key("k2", b"{\"b\":\"b/o\"}").await.unwrap();
        assert_eq!(
            &c.decrypt_key("k2", &dk.ciphertext, b"{\"b\":\"b/o\"}")
                .await
                .unwrap()[..],
            &dk.plaintext[..]
        );
        assert_eq!(
            c.decrypt_key("k2", &dk.ciphertext, b"x").await.unwrap_err(),
            ClientError::DecryptionFailed
        );
        let ct = c.encrypt("k2", b"msg", b"").await.unwrap();
        assert_eq!(&c.decrypt_key("k2", &ct, b"").await.unwrap()[..], b"msg");
        let mut names = c.list_keys("").await.unwrap();
        names.sort();
        assert_eq!(names, ["k2", "minio-key-1"]);
        c.delete_key("k2").await.unwrap();
        assert_eq!(
            c.describe_key("k2").await.unwrap_err(),
            ClientError::KeyNotFound
        );
    });
}

#[test]
fn deks_cross_decrypt_over_one_filesystem_keystore() {
    let keys = tempfile::tempdir().unwrap();
    let theirs = MinioKes::with_config(&format!(
        "keystore:\n  fs:\n    path: {}\n",
        keys.path().display()
    ));
    let admin = theirs.admin.as_ref().unwrap();
    let their_client = KesClient::new(ClientConfig {
        endpoints: vec![theirs.endpoint.clone()],
        identity: ClientIdentity::Certificate {
            cert_pem: admin.cert_pem.clone().into_bytes(),
            key_pem: admin.key_pem.clone().into_bytes(),
        },
        ca_pems: vec![std::fs::read(theirs.ca_cert.as_ref().unwrap()).unwrap()],
        ca_files: vec![],
        insecure_skip_verify: false,
    })
    .unwrap();
    let ours = OurKes::with_config(
        &format!(
            "address: 127.0.0.1:{{port}}\nadmin:\n  identity: {}\ntls:\n  key: {}\n  cert: {}\nkeystore:\n  fs:\n    path: {}\n",
            theirs.admin_identity,
            theirs.dir().join("tls/kes.key").display(),
            theirs.dir().join("tls/kes.crt").display(),
            keys.path().display()
        ),
        &[],
    );
    let our_client = KesClient::new(ClientConfig {
        endpoints: vec![ours.endpoint.clone()],
        identity: ClientIdentity::Certificate {
            cert_pem: admin.cert_pem.clone().into_bytes(),
            key_pem: admin.key_pem.clone().into_bytes(),
        },
        ca_pems: vec![std::fs::read(theirs.ca_cert.as_ref().unwrap()).unwrap()],
        ca_files: vec![],
        insecure_skip_verify: false,
    })
    .unwrap();
    rt().block_on(async {
        let ctx = br#"{"bucket":"bucket/object"}"#;
        // Theirs creates and generates; ours decrypts.
        their_client.create_key("from-minio").await.unwrap();
        let dek = their_client.generate_key("from-minio", ctx).await.unwrap();
        assert_eq!(
            &our_client
                .decrypt_key("from-minio", &dek.ciphertext, ctx)
                .await
                .unwrap()[..],
            &dek.plaintext[..]
        );
        let info = our_client.describe_key("from-minio").await.unwrap();
        assert_eq!(info.created_by, theirs.admin_identity);
        // Ours creates and generates; theirs decrypts.
        our_client.create_key("from-coffer").await.unwrap();
        let dek = our_client.generate_key("from-coffer", ctx).await.unwrap();
        assert_eq!(
            &their_client
                .decrypt_key("from-coffer", &dek.ciphertext, ctx)
                .await
                .unwrap()[..],
            &dek.plaintext[..]
        );
        assert_eq!(
            their_client
                .decrypt_key("from-coffer", &dek.ciphertext, b"other")
                .await
                .unwrap_err(),
            ClientError::DecryptionFailed
        );
        let info = their_client.describe_key("from-coffer").await.unwrap();
        assert_eq!(info.algorithm, "AES256");
        assert_eq!(info.created_by, theirs.admin_identity);
        // Both see both keys; a key file is mode 0600.
        let mut names = their_client.list_keys("from").await.unwrap();
        names.sort();
        assert_eq!(names, ["from-coffer", "from-minio"]);
        assert_eq!(
            our_client.create_key("from-minio").await.unwrap_err(),
            ClientError::KeyExists
        );
    });
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(keys.path().join("from-coffer"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let _ = ok(&mut Command::new("true"));
}
