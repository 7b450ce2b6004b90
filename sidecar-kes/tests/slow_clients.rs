//! Connections that go quiet: a client that never finishes a request head is dropped after the
//! header timeout (the slowloris defence), while a long-running log stream is never cut.

mod common;

use common::*;
use sidecar_kes::cache::CacheConfig;
use sidecar_kes::client::ClientIdentity;
use sidecar_kes::header_wait::HEADER_TIMEOUT;
use sidecar_kes::keystore::mem::MemStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let mut conn = connect(&ts).await;
    conn.write_all(b"GET /version HTTP/1.1\r\nHost: kes\r\n")
        .await
        .unwrap();
    conn.flush().await.unwrap();
    let sent = Instant::now();
    let mut buf = [0u8; 1024];
    // The server answers nothing and closes the connection once the timeout has passed.
    let read = tokio::time::timeout(HEADER_TIMEOUT * 2, conn.read(&mut buf))
        .await
        .expect("the connection is still open after twice the header timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the server answered a request head it never got in full"
    );
    assert!(
        sent.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(100),
        "closed after {:?}, before the header timeout",
        sent.elapsed()
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
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("no audit event within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "the log stream was closed while the client was listening"
        );
        body.extend_from_slice(&buf[..n]);
    }
}
