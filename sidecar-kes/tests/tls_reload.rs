//! The `kes` binary reloads its TLS files when they change on disk, the way the kubelet renews
//! a Secret volume (a new directory and an atomic `..data` symlink swap), without a restart:
//! a new connection gets the new certificate, an established one goes on, a broken pair is
//! refused with a warning that names the file and keeps the previous one, and a new client
//! CA (`tls.auth: on`) decides the next handshakes. The KES client's own TLS (its identity
//! and the CA it trusts, as files) is read again too.

mod common;

use coffer_e2e::pki::{CertFiles, TestCa};
use coffer_e2e::secret_volume::SecretVolume;
use coffer_e2e::tls_probe::{TlsConn, cert_der};
use coffer_e2e::wait_until;
use common::ours::OurKes;
use sidecar_kes::client::{ClientConfig, ClientIdentity};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Long enough for a reload (checked at most every second) to be noticed.
const RELOAD: Duration = Duration::from_secs(10);

fn pair(c: &CertFiles) -> [(&'static str, &[u8]); 2] {
    [
        ("tls.crt", c.cert_pem.as_bytes()),
        ("tls.key", c.key_pem.as_bytes()),
    ]
}

fn addr(kes: &OurKes) -> String {
    kes.endpoint.trim_start_matches("https://").to_string()
}

/// `kes server` with its certificate and key in `tls` and, if given, client certificates
/// verified against `client_ca` (`tls.auth: on`).
fn kes_with(tls: &SecretVolume, client_ca: Option<&Path>) -> OurKes {
    let mut config = format!(
        "address: 127.0.0.1:{{port}}\nadmin:\n  identity: disabled\ntls:\n  key: {}\n  cert: {}\n",
        tls.path("tls.key").display(),
        tls.path("tls.crt").display()
    );
    if let Some(ca) = client_ca {
        config.push_str(&format!("  ca: {}\n  auth: \"on\"\n", ca.display()));
    }
    OurKes::with_config(&config, &[])
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
    let client = ca.client("client", "client", &[]);
    let identity = Some((client.cert_pem.as_str(), client.key_pem.as_str()));
    let mut tls = SecretVolume::new(&dir.path().join("tls"), &pair(&first));
    let kes = kes_with(&tls, None);
    let pid = kes.process.pid();
    let addr = addr(&kes);

    let mut old = TlsConn::open(&addr, identity).unwrap();
    assert_eq!(old.server_cert(), cert_der(&first.cert_pem));
    assert_eq!(old.get("/version").unwrap(), 200);

    tls.update(&pair(&second));
    wait_until(
        "a new connection to get the renewed certificate",
        RELOAD,
        || {
            let conn = TlsConn::open(&addr, identity).ok()?;
            (conn.server_cert() == cert_der(&second.cert_pem)).then_some(())
        },
        || kes.process.log_tail(),
    );
    assert_eq!(
        old.get("/version").unwrap(),
        200,
        "the connection made before the renewal goes on"
    );
    assert_eq!(kes.process.pid(), pid, "no restart");
    assert!(kes.process.log().contains("reloaded TLS files"));

    // A certificate that does not match its key: refused, the renewed pair stays in effect.
    tls.update(&[
        ("tls.crt", third.cert_pem.as_bytes()),
        ("tls.key", second.key_pem.as_bytes()),
    ]);
    wait_until(
        "a warning about the mismatched pair",
        RELOAD,
        || {
            let _ = TlsConn::open(&addr, identity);
            kes.process
                .log()
                .lines()
                .any(|l| l.contains("WARN") && l.contains("does not match"))
                .then_some(())
        },
        || kes.process.log_tail(),
    );
    let log = kes.process.log();
    let warning = log.lines().find(|l| l.contains("does not match")).unwrap();
    assert!(
        warning.contains(&tls.path("tls.crt").display().to_string())
            && warning.contains(&tls.path("tls.key").display().to_string()),
        "the warning names the files: {warning}"
    );
    let key_body = second.key_pem.lines().nth(1).unwrap();
    assert!(!log.contains(key_body), "key material in the log:\n{log}");
    let conn = TlsConn::open(&addr, identity).unwrap();
    assert_eq!(conn.server_cert(), cert_der(&second.cert_pem));

    // A half-written certificate: refused too; a good pair after it is taken.
    let half = &third.cert_pem[..third.cert_pem.len() / 2];
    tls.update(&[
        ("tls.crt", half.as_bytes()),
        ("tls.key", third.key_pem.as_bytes()),
    ]);
    wait_until(
        "a warning about the half-written certificate",
        RELOAD,
        || {
            let _ = TlsConn::open(&addr, identity);
            kes.process
                .log()
                .lines()
                .any(|l| {
                    l.contains("WARN")
                        && l.contains(&tls.path("tls.crt").display().to_string())
                        && !l.contains("does not match")
                })
                .then_some(())
        },
        || kes.process.log_tail(),
    );
    let conn = TlsConn::open(&addr, identity).unwrap();
    assert_eq!(conn.server_cert(), cert_der(&second.cert_pem));
    tls.update(&pair(&third));
    wait_until(
        "the good pair after the broken ones",
        RELOAD,
        || {
            let conn = TlsConn::open(&addr, identity).ok()?;
            (conn.server_cert() == cert_der(&third.cert_pem)).then_some(())
        },
        || kes.process.log_tail(),
    );
    assert_eq!(old.get("/version").unwrap(), 200);
    assert_eq!(kes.process.pid(), pid, "no restart");
}

#[test]
fn a_new_client_ca_decides_the_next_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = TestCa::new(&dir.path().join("ca1"), "client CA 1");
    let ca2 = TestCa::new(&dir.path().join("ca2"), "client CA 2");
    let server = ca1.server("server", &[]);
    let (one, two) = (ca1.client("one", "one", &[]), ca2.client("two", "two", &[]));
    let tls = SecretVolume::new(&dir.path().join("tls"), &pair(&server));
    let mut client_ca = SecretVolume::new(
        &dir.path().join("client-ca"),
        &[("ca.crt", ca1.cert_pem.as_bytes())],
    );
    let kes = kes_with(&tls, Some(&client_ca.path("ca.crt")));
    let pid = kes.process.pid();
    let addr = addr(&kes);
    // Under TLS 1.3 a refused client certificate shows at the first read, not in the handshake.
    let admitted = |c: &CertFiles| {
        TlsConn::open(&addr, Some((&c.cert_pem, &c.key_pem)))
            .and_then(|mut conn| conn.get("/version"))
            .is_ok_and(|status| status == 200)
    };
    assert!(admitted(&one));
    assert!(!admitted(&two), "a certificate of another CA is refused");
    let mut old = TlsConn::open(&addr, Some((&one.cert_pem, &one.key_pem))).unwrap();
    assert_eq!(old.get("/version").unwrap(), 200);

    client_ca.update(&[("ca.crt", ca2.cert_pem.as_bytes())]);
    wait_until(
        "the new client CA to admit its certificate",
        RELOAD,
        || admitted(&two).then_some(()),
        || kes.process.log_tail(),
    );
    assert!(!admitted(&one), "the old CA's certificate is refused now");
    assert_eq!(
        old.get("/version").unwrap(),
        200,
        "a connection verified before goes on"
    );

    // A CA file that does not parse is refused; the CA in effect stays.
    client_ca.update(&[("ca.crt", b"-----BEGIN CERTIFICATE-----\nnot base64\n")]);
    wait_until(
        "a warning about the broken CA file",
        RELOAD,
        || {
            let _ = admitted(&two);
            kes.process
                .log()
                .lines()
                .any(|l| {
                    l.contains("WARN")
                        && l.contains(&client_ca.path("ca.crt").display().to_string())
                })
                .then_some(())
        },
        || kes.process.log_tail(),
    );
    assert!(admitted(&two));
    assert_eq!(kes.process.pid(), pid, "no restart");
}

/// The TLS the KES client library builds (the object server's, through `KesClient`) reads its
/// identity and its CA again when the files change: after the operator moves everything to a
/// new CA, the same client configuration makes its next connection with the new files.
#[test]
fn the_kes_client_reads_its_identity_and_ca_again() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = TestCa::new(&dir.path().join("ca1"), "tenant CA 1");
    let ca2 = TestCa::new(&dir.path().join("ca2"), "tenant CA 2");
    let (server1, client1) = (ca1.server("server", &[]), ca1.client("c", "c", &[]));
    let (server2, client2) = (ca2.server("server", &[]), ca2.client("c", "c", &[]));
    let mut server_tls = SecretVolume::new(&dir.path().join("server"), &pair(&server1));
    let mut server_ca = SecretVolume::new(
        &dir.path().join("server-ca"),
        &[("ca.crt", ca1.cert_pem.as_bytes())],
    );
    let kes = kes_with(&server_tls, Some(&server_ca.path("ca.crt")));
    let addr = addr(&kes);

    let mut client_files = SecretVolume::new(
        &dir.path().join("client"),
        &[
            ("client.crt", client1.cert_pem.as_bytes()),
            ("client.key", client1.key_pem.as_bytes()),
            ("ca.crt", ca1.cert_pem.as_bytes()),
        ],
    );
    let mut config = sidecar_kes::client::tls::rustls_config(&ClientConfig {
        endpoints: vec![kes.endpoint.clone()],
        identity: ClientIdentity::CertificateFiles {
            cert: client_files.path("client.crt"),
            key: client_files.path("client.key"),
        },
        ca_pems: vec![],
        ca_files: vec![client_files.path("ca.crt")],
        insecure_skip_verify: false,
    })
    .unwrap();
    // Every connection here is a full handshake: a resumed session would skip the files.
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let works = || {
        TlsConn::open_with(&addr, config.clone())
            .and_then(|mut conn| conn.get("/version"))
            .is_ok_and(|status| status == 200)
    };
    assert!(works());

    // The server moves to CA 2 first: the client, still on CA 1's files, is refused.
    server_tls.update(&pair(&server2));
    server_ca.update(&[("ca.crt", ca2.cert_pem.as_bytes())]);
    wait_until(
        "the server to move to CA 2",
        RELOAD,
        || {
            let conn = TlsConn::open(&addr, Some((&client2.cert_pem, &client2.key_pem))).ok()?;
            (conn.server_cert() == cert_der(&server2.cert_pem)).then_some(())
        },
        || kes.process.log_tail(),
    );
    assert!(
        !works(),
        "the client trusts CA 1 only, and presents CA 1's certificate"
    );

    // Then the client's files: the same configuration connects again.
    client_files.update(&[
        ("client.crt", client2.cert_pem.as_bytes()),
        ("client.key", client2.key_pem.as_bytes()),
        ("ca.crt", ca2.cert_pem.as_bytes()),
    ]);
    wait_until(
        "the client to use its renewed identity and CA",
        RELOAD,
        || works().then_some(()),
        || kes.process.log_tail(),
    );
}
