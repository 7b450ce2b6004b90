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
