//! Connections that go quiet: a client that never finishes a request head is dropped after the
//! header timeout (the slowloris defence), while a long-running log stream is never cut; a
//! client that held back a body it announced with `Expect: 100-continue` is not read past.

mod common;

use common::*;
use sidecar_kes::cache::CacheConfig;
use sidecar_kes::client::ClientIdentity;
use sidecar_kes::header_wait::HEADER_TIMEOUT;
use sidecar_kes::keystore::mem::MemStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long past its due time an answer or a close may come on a loaded machine (a scheduler
/// that starves the server or the test for seconds), before the test calls it missing.
const LATE: Duration = Duration::from_secs(30);

/// An mTLS connection to `ts` as its admin, with nothing sent yet.
async fn connect(ts: &TestServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ts.cert.cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let admin = ClientIdentity::ApiKey(ts.admin.to_secret_string().to_string());
    let (chain, key) = sidecar_kes::client::tls::client_auth(&admin).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(sidecar_kes::client::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(ts.running.addr)
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_is_dropped_after_the_header_timeout() {
    let ts = start_server(Arc::new(MemStore::new()), CacheConfig::default(), vec![]).await;
    // Before the connection exists, so before the server can start its clock: measured from
    // after the handshake, a test task that a loaded machine starves would see an early close.
    let connecting = Instant::now();
    let mut conn = connect(&ts).await;
    conn.write_all(b"GET /version HTTP/1.1\r\nHost: kes\r\n")
        .await
        .unwrap();
    conn.flush().await.unwrap();
    let mut buf = [0u8; 1024];
    // The server answers nothing and closes the connection once the timeout has passed.
    let read = tokio::time::timeout(HEADER_TIMEOUT + LATE, conn.read(&mut buf))
        .await
        .expect("the connection is still open long after the header timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the server answered a request head it never got in full"
    );
    assert!(
        connecting.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(20),
        "closed after {:?}, before the header timeout",
        connecting.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_stream_outlives_the_header_timeout() {
    let ts = start_server(Arc::new(MemStore::new()), CacheConfig::default(), vec![]).await;
    let mut conn = connect(&ts).await;
    conn.write_all(b"GET /v1/log/audit HTTP/1.1\r\nHost: kes\r\n\r\n")
        .await
        .unwrap();
    conn.flush().await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before the response head");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // Quiet for longer than the header timeout: the stream must still deliver the next event.
    tokio::time::sleep(HEADER_TIMEOUT + Duration::from_secs(2)).await;
    ts.admin_client()
        .create_key("after-the-quiet")
        .await
        .unwrap();
    let mut body = head.split_off(head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
    while !String::from_utf8_lossy(&body).contains("/v1/key/create/after-the-quiet") {
        let n = tokio::time::timeout(LATE, conn.read(&mut buf))
            .await
            .expect("no audit event in time")
            .unwrap();
        assert!(
            n > 0,
            "the log stream was closed while the client was listening"
        );
        body.extend_from_slice(&buf[..n]);
    }
}

/// Reads one response head (and nothing after it, as far as one read allows) from `conn`.
async fn read_head(conn: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(LATE, conn.read(&mut buf))
            .await
            .expect("no response head in time")
            .unwrap();
        assert!(n > 0, "the connection closed before a response head");
        head.push(buf[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

/// A new connection that sent the head of a POST of `len` bytes to `path` waiting for
/// `100 Continue`, and the first response head it got.
async fn send_expecting(
    ts: &TestServer,
    path: &str,
    len: usize,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
) {
    let mut conn = connect(ts).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: kes\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let resp = read_head(&mut conn).await;
    (conn, resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_its_expected_body_closes_the_connection() {
    let ts = start_server(Arc::new(MemStore::new()), CacheConfig::default(), vec![]).await;
    ts.admin_client().create_key("k").await.unwrap();
    let body = br#"{"context":""}"#;

    // Refused before the body is read (no such API): the client never sends the body. Kept open,
    // the connection would take the start of the next request for that body.
    let (mut conn, resp) = send_expecting(&ts, "/v1/no-such-api/k", body.len()).await;
    assert!(resp.starts_with("http/1.1 404"), "{resp}");
    assert!(resp.contains("connection: close\r\n"), "{resp}");
    let mut rest = Vec::new();
    tokio::time::timeout(LATE, conn.read_to_end(&mut rest))
        .await
        .expect("the server kept the connection open")
        .ok();
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("HTTP/1.1"), "a second response: {rest}");

    // Read, the body gets `100 Continue` and the connection goes on.
    let (mut conn, cont) = send_expecting(&ts, "/v1/key/generate/k", body.len()).await;
    assert!(cont.starts_with("http/1.1 100"), "{cont}");
    conn.write_all(body).await.unwrap();
    let resp = read_head(&mut conn).await;
    assert!(resp.starts_with("http/1.1 200"), "{resp}");
    assert!(!resp.contains("connection: close"), "{resp}");
    let len: usize = resp
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut answer = vec![0u8; len];
    conn.read_exact(&mut answer).await.unwrap();
    conn.write_all(b"GET /version HTTP/1.1\r\nHost: kes\r\n\r\n")
        .await
        .unwrap();
    let next = read_head(&mut conn).await;
    assert!(next.starts_with("http/1.1 200"), "{next}");
}
