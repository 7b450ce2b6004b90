//! The TLS listener: TLS 1.2+, a client certificate required on every connection
//! (verified against CAs when `tls.auth` is on), the identity computed once per
//! connection, HTTP/1.1 and HTTP/2 with keep-alive.
//!
//! The identity rule: a connection's identity is the hash of the public key of the **first**
//! certificate the client presented, the leaf. It is the only certificate whose key the client
//! proved to hold (the TLS handshake signature is checked against it), so it is the only one
//! the identity may come from; the rest of the chain is public and anyone can append a
//! victim's certificate to it. A leaf marked as a CA (basic constraints `cA: true`) or one
//! that does not parse is refused in the handshake, with or without `tls.auth`: a CA
//! certificate is never a client, and refusing it early means no identity is ever computed
//! from it. With `tls.auth` on, rustls (webpki) has verified that same leaf against the
//! client CAs and refuses a CA as end entity too.

use crate::api::{self, Conn, Shared};
use crate::auth::Identity;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Why the TLS setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Bad certificate or key PEM.
    #[error("tls: {0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TLS settings of the server.
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
    /// PEM CAs that client certificates must chain to; empty = accept any certificate
    /// (the identity is the hash of its public key, as in KES).
    pub client_cas: Vec<Vec<u8>>,
}

/// Requires a client certificate and accepts any end-entity one, without a CA: the
/// handshake signature proves the client holds the leaf's key, and the identity is that key.
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

/// Refuses a client leaf that cannot be a client: one that does not parse, or a CA.
fn check_client_leaf(end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    match x509_parser::parse_x509_certificate(end_entity) {
        Ok((_, cert)) if !cert.is_ca() => Ok(()),
        Ok(_) => Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::InvalidPurpose,
        )),
        Err(_) => Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        )),
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_client_leaf(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// TLS settings of the server as files, read again when they change (see
/// [`crate::tls_files`]): a renewed certificate and key, or a new client CA, apply to the
/// handshakes that follow, without a restart.
pub struct TlsFiles {
    /// PEM certificate chain file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
    /// PEM CA file or directory that client certificates must chain to; `None` = accept any
    /// certificate (as [`TlsSettings::client_cas`] empty).
    pub client_ca: Option<PathBuf>,
}

/// Builds the rustls server config of PEMs in memory.
pub fn server_config(tls: &TlsSettings) -> Result<rustls::ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let provider = crate::client::tls::provider();
    let certs = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("invalid certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem)
        .map_err(|_| TlsError::Pem("invalid private key".into()))?;
    let verifier: Arc<dyn ClientCertVerifier> = if tls.client_cas.is_empty() {
        Arc::new(AnyClientCert(provider.clone()))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for pem in &tls.client_cas {
            for c in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(c.map_err(|e| TlsError::Pem(format!("invalid CA certificate: {e}")))?)
                    .map_err(TlsError::Rustls)?;
            }
        }
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Pem(format!("client CA: {e}")))?
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Builds the rustls server config of files that are read again when they change.
pub fn server_config_from_files(tls: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    use crate::tls_files::rustls::{ClientCaFiles, ServerCertFiles};
    let provider = crate::client::tls::provider();
    let load_error = |e: crate::tls_files::LoadError| TlsError::Pem(e.to_string());
    let verifier: Arc<dyn ClientCertVerifier> = match &tls.client_ca {
        None => Arc::new(AnyClientCert(provider.clone())),
        Some(ca) => Arc::new(ClientCaFiles::new(vec![ca.clone()]).map_err(load_error)?),
    };
    let resolver = ServerCertFiles::new(tls.cert.clone(), tls.key.clone()).map_err(load_error)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The identity of a connection's peer: the key of the first certificate it presented, the
/// one the handshake proved it holds (see the module doc). Never a later certificate of the
/// chain; a CA or unparsable leaf (refused in the handshake already) is the empty identity,
/// which no route but `/version` accepts.
pub fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Identity {
    let Some(leaf) = certs.and_then(|c| c.first()) else {
        return Identity::new("");
    };
    match x509_parser::parse_x509_certificate(leaf) {
        Ok((_, cert)) if !cert.is_ca() => Identity::from_spki_der(cert.public_key().raw),
        _ => Identity::new(""),
    }
}

/// Threads that serve HTTP/1 connections, each running a single-threaded runtime; a connection
/// is handed to one of them when accepted and stays there.
///
/// Why: with keep-alive, a request on tokio's multi-threaded scheduler often wakes a second
/// worker (a futex and an eventfd write per request, about a fifth of the server's syscalls
/// under load); a connection pinned to one thread costs only its own read, write and epoll.
/// HTTP/2 streams are still spread over the main runtime, so one multiplexed client is not
/// held to one core.
pub struct ConnThreads {
    handles: Vec<tokio::runtime::Handle>,
    next: std::sync::atomic::AtomicUsize,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl ConnThreads {
    /// Starts `n` (at least one) connection threads.
    pub fn spawn(n: usize) -> std::io::Result<Self> {
        let (mut handles, mut stop) = (Vec::new(), Vec::new());
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("kes-conn-{i}"))
                .spawn(move || {
                    let _ = rt.block_on(rx);
                })?;
        }
        Ok(ConnThreads {
            handles,
            next: Default::default(),
            stop,
        })
    }

    /// One thread per available CPU.
    pub fn per_cpu() -> std::io::Result<Self> {
        Self::spawn(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn pick(&self) -> &tokio::runtime::Handle {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.handles[i % self.handles.len()]
    }
}

impl Drop for ConnThreads {
    fn drop(&mut self) {
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// Accepts connections until the listener fails; each connection is served on its own task,
/// on one of `threads` if given, else on the current runtime.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    threads: Option<Arc<ConnThreads>>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let main = tokio::runtime::Handle::current();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, shared, main) = (acceptor.clone(), shared.clone(), main.clone());
        let conn = move |tcp| connection(acceptor, shared, peer, main, tcp);
        match &threads {
            None => {
                tokio::spawn(conn(tcp));
            }
            Some(t) => {
                // A socket belongs to the runtime that registers it: move it as a std socket.
                let std = tcp.into_std()?;
                t.pick().spawn(async move {
                    match tokio::net::TcpStream::from_std(std) {
                        Ok(tcp) => conn(tcp).await,
                        Err(e) => tracing::debug!(%peer, "connection lost: {e}"),
                    }
                });
            }
        }
    }
}

/// Serves one connection: TLS handshake, identity, HTTP/1.1 or HTTP/2 (by ALPN).
async fn connection(
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    peer: std::net::SocketAddr,
    main: tokio::runtime::Handle,
    tcp: tokio::net::TcpStream,
) {
    let stream = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        acceptor.accept(tcp),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "tls handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let identity = peer_identity(stream.get_ref().1.peer_certificates());
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let conn = Arc::new(Conn {
        identity,
        ip: peer.ip().to_string(),
        header_wait: crate::header_wait::HeaderWait::new(std::time::Instant::now()),
    });
    let watched = conn.clone();
    let service = hyper::service::service_fn(move |req| {
        let (shared, conn) = (shared.clone(), conn.clone());
        async move {
            use crate::expect_continue::{Watch, watch};
            let resp = match watch(req) {
                Watch::Plain(req) => api::handle(shared, conn, req).await,
                Watch::Watched(req, unread) => {
                    unread.close_if_unread(api::handle(shared, conn, req).await)
                }
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    // The protocol is known from ALPN: no need to sniff the connection preface.
    let result = if h2 {
        hyper::server::conn::http2::Builder::new(MainExecutor(main))
            .serve_connection(io, service)
            .await
    } else {
        // The connection runs as its own task, so that its wake-ups never poll the watchdog's
        // timer; the watchdog (this task) ends it when a request head is overdue.
        let mut http = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service),
        );
        tokio::select! {
            joined = &mut http => match joined {
                Ok(r) => r,
                Err(e) => {
                    // A panic in a handler ends only its connection; it must still be seen.
                    tracing::error!(%peer, "connection task failed: {e}");
                    return;
                }
            },
            () = watched.header_wait.expired(crate::header_wait::HEADER_TIMEOUT) => {
                http.abort();
                tracing::debug!(%peer, "connection closed: no request head in time");
                return;
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection closed: {e}");
    }
}

/// Runs HTTP/2 streams on the main (multi-threaded) runtime.
#[derive(Clone)]
struct MainExecutor(tokio::runtime::Handle);

impl<F> hyper::rt::Executor<F> for MainExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut);
    }
}

/// Builds the reloadable auth state from a config.
pub fn auth_state(cfg: &crate::config::ServerConfig) -> crate::api::AuthState {
    let mut auth = crate::api::AuthState {
        admin: cfg.admin.clone(),
        api: cfg.api.clone(),
        ..Default::default()
    };
    for (name, p) in &cfg.policies {
        auth.policies.insert(name.clone(), p.policy.clone());
        for id in &p.identities {
            auth.identities.insert(id.clone(), name.clone());
        }
    }
    auth
}

/// Opens the keystore of a config that stores keys for KES to fetch (memory, a directory,
/// Vault K/V). A Transit keystore is no such store: open it with [`open_keys`].
pub async fn open_keystore(
    ks: &crate::config::KeystoreConfig,
) -> Result<Arc<dyn crate::keystore::Keystore>, crate::keystore::StoreError> {
    use crate::config::KeystoreConfig;
    use crate::keystore::vault::VaultEngine;
    Ok(match ks {
        KeystoreConfig::Memory => Arc::new(crate::keystore::mem::MemStore::new()),
        KeystoreConfig::Fs { path } => Arc::new(crate::keystore::fs::FsStore::new(path)?),
        KeystoreConfig::Vault(v) => match v.engine {
            VaultEngine::Kv(_) => {
                Arc::new(crate::keystore::vault::VaultStore::connect((**v).clone()).await?)
            }
            VaultEngine::Transit(_) => {
                return Err(crate::keystore::StoreError::Other(
                    "vault: Transit keeps its keys in Vault: open it with open_keys".into(),
                ));
            }
        },
    })
}

/// Opens the keys of a config: a keystore behind a cache with `cache`'s expiry rules, or
/// Vault Transit (which caches nothing).
pub async fn open_keys(
    ks: &crate::config::KeystoreConfig,
    cache: crate::cache::CacheConfig,
) -> Result<crate::keys::Keys, crate::keystore::StoreError> {
    use crate::config::KeystoreConfig;
    use crate::keystore::vault::{TransitKeys, VaultEngine};
    if let KeystoreConfig::Vault(v) = ks
        && let VaultEngine::Transit(_) = v.engine
    {
        return Ok(TransitKeys::connect((**v).clone()).await?.into());
    }
    Ok(crate::cache::KeyCache::new(open_keystore(ks).await?, cache).into())
}

/// A running server (tests and `kes server`).
pub struct Running {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    /// Shared state (for reloads).
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Waits until the server stops (it only stops on error).
    pub async fn wait(mut self) -> std::io::Result<()> {
        (&mut self.task).await.unwrap_or(Ok(()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves the API with `shared` state on the current runtime; creates the
/// predefined `keys`.
pub async fn start(
    addr: &str,
    tls: rustls::ServerConfig,
    shared: Arc<Shared>,
    keys: &[String],
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    start_on(addr, tls, shared, keys, None).await
}

/// [`start`], with HTTP/1 connections served on `threads`.
pub async fn start_on(
    addr: &str,
    tls: rustls::ServerConfig,
    shared: Arc<Shared>,
    keys: &[String],
    threads: Option<Arc<ConnThreads>>,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    for name in keys {
        let admin = shared.auth().admin.clone();
        match shared.keys.create(name, shared.cipher, &admin).await {
            Ok(()) | Err(crate::keystore::StoreError::Exists) => {}
            Err(e) => return Err(format!("failed to create key '{name}': {e}").into()),
        }
    }
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // Evict expired cache entries in the background.
    let weak = Arc::downgrade(&shared);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            match weak.upgrade() {
                Some(s) => s.keys.evict(),
                None => return,
            }
        }
    });
    let task = tokio::spawn(serve(listener, Arc::new(tls), shared.clone(), threads));
    Ok(Running { addr, shared, task })
}
