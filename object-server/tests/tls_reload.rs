//! The `object-server` binary serves a renewed certificate from `--certs-dir` without a restart,
//! when the files change the way the kubelet renews a Secret volume (a new directory and an
//! atomic `..data` symlink swap): a new connection gets the new certificate, an established
//! one goes on, and a broken pair is refused with a warning naming the files, the previous
//! certificate staying in effect.

use coffer_e2e::pki::{CertFiles, TestCa};
use coffer_e2e::secret_volume::SecretVolume;
use coffer_e2e::tls_probe::{TlsConn, cert_der};
use coffer_e2e::{Process, wait_until};
use std::process::Command;
use std::time::Duration;

/// Long enough for a reload (checked at most every second) to be noticed.
const RELOAD: Duration = Duration::from_secs(10);
const LIVE: &str = "/minio/health/live";

/// MinIO's names in the certs directory, as the operator mounts them.
fn pair(c: &CertFiles) -> [(&'static str, &[u8]); 2] {
    [
        ("public.crt", c.cert_pem.as_bytes()),
        ("private.key", c.key_pem.as_bytes()),
    ]
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("ca"), "renewal CA");
    let (first, second, third) = (
        ca.server("first", &[]),
        ca.server("second", &[]),
        ca.server("third", &[]),
    );
    let mut certs = SecretVolume::new(&dir.path().join("certs"), &pair(&first));
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_object-server"));
    cmd.args(["server", "--address", "127.0.0.1:0", "--certs-dir"])
        .arg(certs.dir())
        .arg(&data)
        .env_remove("RUST_LOG");
    let server = Process::spawn("object-server", cmd, &dir.path().join("server.log"));
    let addr = wait_until(
        "object-server to listen",
        Duration::from_secs(60),
        || {
            server.assert_running();
            server.log().lines().find_map(|l| {
                l.strip_prefix("S3-API: https://")
                    .map(|a| a.trim().to_string())
            })
        },
        || server.log_tail(),
    );
    let pid = server.pid();

    let mut old = TlsConn::open(&addr, None).unwrap();
    assert_eq!(old.server_cert(), cert_der(&first.cert_pem));
    assert_eq!(old.get(LIVE).unwrap(), 200);

    certs.update(&pair(&second));
    wait_until(
        "a new connection to get the renewed certificate",
        RELOAD,
        || {
            let conn = TlsConn::open(&addr, None).ok()?;
            (conn.server_cert() == cert_der(&second.cert_pem)).then_some(())
        },
        || server.log_tail(),
    );
    assert_eq!(
        old.get(LIVE).unwrap(),
        200,
        "the connection made before the renewal goes on"
    );
    assert_eq!(server.pid(), pid, "no restart");

    // A certificate that does not match its key: refused, the renewed pair stays in effect.
    certs.update(&[
        ("public.crt", third.cert_pem.as_bytes()),
        ("private.key", second.key_pem.as_bytes()),
    ]);
    wait_until(
        "a warning about the mismatched pair",
        RELOAD,
        || {
            let _ = TlsConn::open(&addr, None);
            server
                .log()
                .lines()
                .any(|l| l.contains("WARN") && l.contains("does not match"))
                .then_some(())
        },
        || server.log_tail(),
    );
    let log = server.log();
    let warning = log.lines().find(|l| l.contains("does not match")).unwrap();
    assert!(
        warning.contains(&certs.path("public.crt").display().to_string())
            && warning.contains(&certs.path("private.key").display().to_string()),
        "the warning names the files: {warning}"
    );
    let key_body = second.key_pem.lines().nth(1).unwrap();
    assert!(!log.contains(key_body), "key material in the log:\n{log}");
    let mut conn = TlsConn::open(&addr, None).unwrap();
    assert_eq!(conn.server_cert(), cert_der(&second.cert_pem));
    assert_eq!(conn.get(LIVE).unwrap(), 200);

    // The right key arrives: the new pair is taken.
    certs.update(&pair(&third));
    wait_until(
        "the good pair after the broken one",
        RELOAD,
        || {
            let conn = TlsConn::open(&addr, None).ok()?;
            (conn.server_cert() == cert_der(&third.cert_pem)).then_some(())
        },
        || server.log_tail(),
    );
    assert_eq!(old.get(LIVE).unwrap(), 200);
    assert_eq!(server.pid(), pid, "no restart");
}

/// A KES on its own runtime, so that dropping it closes every connection (a sidecar restart).
struct InProcessKes {
    runtime: Option<tokio::runtime::Runtime>,
}

impl InProcessKes {
    fn start(
        addr: &str,
        files: &sidecar_kes::server::TlsFiles,
        shared: std::sync::Arc<sidecar_kes::api::Shared>,
    ) -> (InProcessKes, std::net::SocketAddr) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let tls = sidecar_kes::server::server_config_from_files(files).unwrap();
        let running = runtime
            .block_on(sidecar_kes::server::start(addr, tls, shared, &[]))
            .unwrap();
        let bound = running.addr;
        // The accept loop lives as long as the runtime.
        std::mem::forget(running);
        (
            InProcessKes {
                runtime: Some(runtime),
            },
            bound,
        )
    }
}

impl Drop for InProcessKes {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// The object server's KES client reads its identity (renewed by the operator with the same
/// key) and the KES CA again when they change: after a move of everything to a new CA and a
/// restart of KES (which drops every pooled connection), the same object-server process is
/// Ready again through KES, without a restart of its own.
#[test]
fn the_kes_client_identity_and_ca_are_read_again_without_a_restart() {
    use sidecar_kes::api::{AuthState, Shared};
    use sidecar_kes::auth::{ApiKey, Identity, Policy};
    use sidecar_kes::cache::{CacheConfig, KeyCache};
    use sidecar_kes::keystore::mem::MemStore;
    use sidecar_kes::server::TlsFiles;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let ca1 = TestCa::new(&dir.path().join("ca1"), "tenant CA 1");
    let ca2 = TestCa::new(&dir.path().join("ca2"), "tenant CA 2");
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let (client1, client2) = (
        ca1.client_for_key("client", "object-server", &key),
        ca2.client_for_key("client", "object-server", &key),
    );
    let (server1, server2) = (ca1.server("kes", &[]), ca2.server("kes", &[]));
    // The sidecar's volume (server pair and the CA it verifies clients with) and the object
    // server's (its identity and the CA it trusts for KES), both from one Secret in a pod.
    let kes_files = |server: &CertFiles, ca: &TestCa| {
        vec![
            ("server.crt", server.cert_pem.clone().into_bytes()),
            ("server.key", server.key_pem.clone().into_bytes()),
            ("ca.crt", ca.cert_pem.clone().into_bytes()),
        ]
    };
    let client_files = |client: &CertFiles, ca: &TestCa| {
        vec![
            ("client.crt", client.cert_pem.clone().into_bytes()),
            ("client.key", client.key_pem.clone().into_bytes()),
            ("ca.crt", ca.cert_pem.clone().into_bytes()),
        ]
    };
    let update = |volume: &mut SecretVolume, files: Vec<(&'static str, Vec<u8>)>| {
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        volume.update(&refs);
    };
    let mut kes_volume = SecretVolume::new(&dir.path().join("kes-tls"), &[]);
    update(&mut kes_volume, kes_files(&server1, &ca1));
    let mut client_volume = SecretVolume::new(&dir.path().join("kes-client"), &[]);
    update(&mut client_volume, client_files(&client1, &ca1));

    let identity = Identity::from_cert_der(&cert_der(&client1.cert_pem)).unwrap();
    let mut auth = AuthState {
        admin: ApiKey::generate().identity(),
        ..Default::default()
    };
    auth.policies.insert(
        "object-server".into(),
        Policy {
            allow: ["create", "generate", "decrypt", "describe"]
                .iter()
                .map(|a| format!("/v1/key/{a}/tenant-*"))
                .collect(),
            deny: vec![],
        },
    );
    auth.identities.insert(identity, "object-server".into());
    let keys: sidecar_kes::keys::Keys =
        KeyCache::new(Arc::new(MemStore::new()), CacheConfig::default()).into();
    let shared = Arc::new(Shared::new(auth, keys));
    let tls = TlsFiles {
        cert: kes_volume.path("server.crt"),
        key: kes_volume.path("server.key"),
        client_ca: Some(kes_volume.path("ca.crt")),
    };
    let (kes, kes_addr) = InProcessKes::start("127.0.0.1:0", &tls, shared.clone());

    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_object-server"));
    cmd.args(["server", "--address", "127.0.0.1:0"])
        .arg(&data)
        .env_remove("RUST_LOG")
        .env("MINIO_KMS_KES_ENDPOINT", format!("https://{kes_addr}"))
        .env("MINIO_KMS_KES_CERT_FILE", client_volume.path("client.crt"))
        .env("MINIO_KMS_KES_KEY_FILE", client_volume.path("client.key"))
        .env("MINIO_KMS_KES_CAPATH", client_volume.path("ca.crt"))
        .env("MINIO_KMS_KES_KEY_NAME", "tenant-key");
    let server = Process::spawn("object-server", cmd, &dir.path().join("server.log"));
    let addr = wait_until(
        "object-server to listen",
        Duration::from_secs(60),
        || {
            server.assert_running();
            server.log().lines().find_map(|l| {
                l.strip_prefix("S3-API: http://")
                    .map(|a| a.trim().to_string())
            })
        },
        || server.log_tail(),
    );
    let pid = server.pid();
    let ready = || -> Option<u16> {
        let mut tcp = std::net::TcpStream::connect(&addr).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        use std::io::{Read, Write};
        tcp.write_all(
            b"GET /minio/health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .ok()?;
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    };
    wait_until(
        "object-server Ready through KES",
        Duration::from_secs(30),
        || (ready() == Some(200)).then_some(()),
        || server.log_tail(),
    );

    // The operator moves the sidecar to CA 2; KES restarts (every connection dropped) on the
    // same address. The object server, still on CA 1's files, can no longer reach it.
    drop(kes);
    update(&mut kes_volume, kes_files(&server2, &ca2));
    let (_kes, _) = InProcessKes::start(&kes_addr.to_string(), &tls, shared);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ready(),
        Some(503),
        "KES is on CA 2 and the object server still on CA 1's files"
    );

    // The object server's files follow (same key: same identity): Ready again, same process.
    update(&mut client_volume, client_files(&client2, &ca2));
    wait_until(
        "object-server Ready again with its renewed identity and CA",
        Duration::from_secs(30),
        || (ready() == Some(200)).then_some(()),
        || server.log_tail(),
    );
    assert_eq!(server.pid(), pid, "no restart");
}
