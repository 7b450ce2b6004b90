//! Serving: the KMS, TLS from a certs directory, health and metrics endpoints, the S3 service,
//! and graceful shutdown on SIGTERM / Ctrl-C.
//!
//! Health endpoints are open to anyone (probes carry no credentials); the metrics endpoints need
//! a bearer token unless `MINIO_PROMETHEUS_AUTH_TYPE=public` ([`crate::metrics_auth`]) and show
//! [`crate::metrics`]. Each S3 request is counted through a guard ([`crate::metrics::s3`]), so
//! a request dropped mid-way (its client gone) leaves the in-flight gauge as surely as one
//! that finished, and runs in a `s3_request` tracing span.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::service::S3ServiceBuilder;
use sidecar_kes::expect_continue::{self, Watch};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use crate::admin::AdminRoute;
use crate::config::{Config, KmsConfig};
use crate::iam::Iam;
use crate::iam::access::{Access, Auth, ClientAddr};
use crate::kms::metered::{KmsStats, Metered};
use crate::kms::static_key::{StaticKms, load_or_create_embedded};
use crate::kms::{Kms, ensure_default_key};
use crate::metrics::{Metrics, Scope};
use crate::metrics_auth::{self, AuthType};
use crate::s3::CofferS3;
use crate::sse::metadata_key;
use crate::stall_guard::StallGuard;
use crate::storage::Store;
use crate::storage::engine::state::StateDocs;

/// The log filter when `RUST_LOG` is not set. s3s logs every refused request (a 404 HEAD, an
/// AccessDenied, a bad signature) at ERROR, which buries real errors under client mistakes;
/// our own code logs what goes wrong on the server's side, so s3s stays quiet unless asked
/// (`RUST_LOG=info,s3s=info`).
const DEFAULT_LOG_FILTER: &str = "info,s3s=off";

/// The most s3s may ever log, whatever `RUST_LOG` says. Below INFO s3s logs secrets: every
/// request whole (`Authorization`, an SSE-C customer key, the checksums of a plaintext), the
/// string to sign and, for a refused signature, the *right* signature of the request — which
/// lets whoever reads the log send that request. No filter directive can lift this cap.
const S3S_LOG_CAP: tracing::level_filters::LevelFilter = tracing::level_filters::LevelFilter::INFO;

/// Sets up structured logs (`RUST_LOG` filters; `COFFER_LOG_FORMAT=json` for JSON lines).
pub fn init_logging() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{FilterExt, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let cap = Targets::new()
        .with_default(tracing::level_filters::LevelFilter::TRACE)
        .with_target("s3s", S3S_LOG_CAP);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: log collectors (kubectl logs, files) get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let layer = if std::env::var("COFFER_LOG_FORMAT").is_ok_and(|v| v == "json") {
        fmt.json().with_filter(filter.and(cap)).boxed()
    } else {
        fmt.with_filter(filter.and(cap)).boxed()
    };
    tracing_subscriber::registry().with(layer).init();
}

/// Builds the KMS the configuration names, makes sure its default key exists (as MinIO does at
/// start) and loads the data directory's metadata key through it. A KMS that is down now may come
/// up later: both are retried in the background meanwhile. Its requests are counted in `stats`.
pub async fn build_kms(
    cfg: &Config,
    store: &Store,
    extra_cas: Vec<PathBuf>,
    stats: Arc<KmsStats>,
) -> anyhow::Result<Arc<dyn Kms>> {
    build_kms_for(cfg, store, None, extra_cas, stats).await
}

/// [`build_kms`], the metadata key kept in `shared` (the gateway's backend) when given.
async fn build_kms_for(
    cfg: &Config,
    store: &Store,
    shared: Option<Arc<dyn StateDocs>>,
    extra_cas: Vec<PathBuf>,
    stats: Arc<KmsStats>,
) -> anyhow::Result<Arc<dyn Kms>> {
    let kms = connect_kms(cfg, store, extra_cas, stats)?;
    let mut tries = 0;
    loop {
        match ensure_default_key(kms.as_ref()).await {
            Ok(()) => break,
            Err(e @ crate::kms::KmsError::Unavailable(_)) if tries < 5 => {
                tracing::warn!(error = %e, key = kms.default_key(), "cannot create the default KMS key yet; retrying");
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, key = kms.default_key(), "the default KMS key is not available; SSE requests will fail until it is");
                break;
            }
        }
    }
    let system_dir = store.system_dir();
    let load = {
        let kms = kms.clone();
        move || {
            let (kms, shared, system_dir) = (kms.clone(), shared.clone(), system_dir.clone());
            async move {
                match &shared {
                    Some(docs) => {
                        metadata_key::load_or_create_shared(docs.as_ref(), kms.as_ref()).await
                    }
                    None => metadata_key::load_or_create(&system_dir, kms.as_ref()).await,
                }
            }
        }
    };
    if let Err(e) = load().await {
        tracing::error!(error = %e, "the metadata key is not available; encrypted objects cannot be read or written until it is (retrying)");
        let kms = kms.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                tokio::time::sleep(wait).await;
                let _ = ensure_default_key(kms.as_ref()).await;
                match load().await {
                    Ok(()) => {
                        tracing::info!("metadata key loaded");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "the metadata key is still not available"),
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        });
    }
    Ok(kms)
}

fn connect_kms(
    cfg: &Config,
    store: &Store,
    extra_cas: Vec<PathBuf>,
    stats: Arc<KmsStats>,
) -> anyhow::Result<Arc<dyn Kms>> {
    Ok(match &cfg.kms {
        KmsConfig::Embedded => Arc::new(Metered::new(
            load_or_create_embedded(&store.system_dir()).context("embedded master key")?,
            stats,
        )),
        KmsConfig::SecretKey(k) => Arc::new(Metered::new(
            StaticKms::from_secret_key(k.expose()).context("MINIO_KMS_SECRET_KEY")?,
            stats,
        )),
        KmsConfig::MasterKey(k) => Arc::new(Metered::new(
            StaticKms::from_master_key(k.expose()).context("MINIO_KMS_MASTER_KEY")?,
            stats,
        )),
        // A remote KMS: its decryptions are reused for a few seconds (kms/decrypt_cache.rs);
        // only what reaches KES is counted.
        KmsConfig::Kes(kes) => {
            Arc::new(crate::kms::decrypt_cache::DecryptCache::new(Metered::new(
                crate::kms::kes::KesKms::new(kes, extra_cas).context("MINIO_KMS_KES_*")?,
                stats,
            )))
        }
    })
}

/// TLS server settings (if the certs directory has a key pair) and the extra CA directory.
type TlsFiles = (Option<Arc<rustls::ServerConfig>>, Vec<PathBuf>);

/// TLS from `public.crt` and `private.key` in `dir` (MinIO's names), read again when they
/// change so a renewed certificate is served from the next handshake on (see
/// `sidecar_kes::tls_files`), and `dir/CAs/` if it exists (CAs the KES client trusts, read
/// again too).
fn load_tls(dir: &Path) -> anyhow::Result<TlsFiles> {
    use sidecar_kes::tls_files::rustls::ServerCertFiles;
    let cas_dir = dir.join("CAs");
    let cas = if cas_dir.is_dir() {
        vec![cas_dir]
    } else {
        Vec::new()
    };
    let (crt, key) = (dir.join("public.crt"), dir.join("private.key"));
    if !crt.exists() && !key.exists() {
        return Ok((None, cas));
    }
    let resolver = ServerCertFiles::new(crt, key).context("TLS certificate and key")?;
    let mut sc = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Some(Arc::new(sc)), cas))
}

fn text(status: u16, body: String) -> http::Response<s3s::Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain; version=0.0.4")
        .body(s3s::Body::from(body))
        .expect("valid response")
}

/// Serves one S3 request (everything but health and metrics) and records it in `metrics`.
async fn serve_s3(
    req: http::Request<Incoming>,
    service: s3s::service::S3Service,
    cors: Arc<crate::s3::cors::CorsGate>,
    bucket_resource: Arc<crate::sigv2::BucketResource>,
    idle: Option<Duration>,
    metrics: &Metrics,
) -> Result<http::Response<s3s::Body>, Infallible> {
    let received = content_length(req.headers()).unwrap_or(0);
    let guard = metrics.s3().start(received);
    let method = req.method().clone();
    // CORS (s3/cors.rs): preflights are answered from the bucket's rules without
    // authentication; any other response gets the headers its rule allows.
    if method == http::Method::OPTIONS {
        let resp = cors.preflight(req.headers(), req.uri()).await;
        guard.finish(resp.status().as_u16(), 0);
        return Ok(resp);
    }
    let cors_headers = cors.for_request(&method, req.headers(), req.uri()).await;
    let req = bucket_resource.resolve(req).await;
    let req = match idle {
        Some(idle) if !req.body().is_end_stream() => {
            req.map(|b| s3s::Body::http_body(StallGuard::new(b, idle)))
        }
        _ => req.map(s3s::Body::from),
    };
    // Browser uploads (s3/post): the form's head is recorded for the access hook,
    // and s3s's answer gets AWS's codes.
    let (req, post_form) = crate::s3::post::PostForm::attach(req);
    let resp = match crate::admin::with_known_length(req).await {
        Ok(req) => match expect_continue::watch(req) {
            Watch::Plain(req) => service.call(req).await,
            Watch::Watched(req, unread) => service
                .call(req.map(s3s::Body::http_body))
                .await
                .map(|r| unread.close_if_unread(r)),
        },
        Err(status) => Ok(text(status, String::new())),
    };
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = ?e, "request failed");
            text(500, String::new())
        }
    };
    if let Some(form) = post_form {
        resp = form.finish(resp);
    }
    if let Some(h) = cors_headers {
        h.apply(&mut resp);
    }
    let status = resp.status().as_u16();
    let span = tracing::Span::current();
    span.record(
        "api",
        crate::metrics::api::label(crate::metrics::api::current()),
    );
    span.record("status", status);
    tracing::debug!(ms = guard.elapsed().as_millis() as u64, "request");
    let sent = resp
        .body()
        .size_hint()
        .exact()
        .or_else(|| content_length(resp.headers()))
        .unwrap_or(0);
    guard.finish(status, sent);
    Ok(resp)
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A gateway started without a state directory (`object-server gateway s3 URL`, pods without
/// volumes) stages uploads in a new temp directory, removed when the server stops; nothing else
/// is kept there. The embedded KMS keeps its master key in the state directory, which every
/// process would have its own of: it is refused, a KMS they share is needed.
fn stateless_gateway_scratch(cfg: &mut Config) -> anyhow::Result<Option<tempfile::TempDir>> {
    if !cfg.data_dir.as_os_str().is_empty() {
        return Ok(None);
    }
    if cfg.backend.is_none() {
        anyhow::bail!(
            "a data directory is needed (only the gateway, --backend URL, runs without one)"
        );
    }
    if matches!(cfg.kms, KmsConfig::Embedded) {
        anyhow::bail!(
            "a gateway without a state directory needs a KMS every gateway shares: set MINIO_KMS_KES_ENDPOINT \
             (with MINIO_KMS_KES_CERT_FILE, _KEY_FILE, _KEY_NAME) or MINIO_KMS_SECRET_KEY=name:base64; the embedded \
             master key is kept in the state directory and would differ in every process"
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("coffer-gateway-")
        .tempdir()
        .context("a temp directory for staged uploads")?;
    tracing::info!(dir = %scratch.path().display(), "no state directory: staging uploads in a temp directory");
    cfg.data_dir = scratch.path().to_owned();
    Ok(Some(scratch))
}

/// The gateway's engine over backend `b`. A backend away at start is not fatal (requests answer
/// 503 until it is back); one that answers but ignores conditional writes is refused, since the
/// IAM state and the metadata key kept in it would lose concurrent changes.
async fn open_gateway(
    b: &crate::storage::engine::s3::BackendConfig,
    staging: &Path,
) -> anyhow::Result<Arc<crate::storage::engine::s3::S3Store>> {
    let engine =
        crate::storage::engine::s3::S3Store::new(b.clone(), staging).context("S3 backend")?;
    if let Err(e) = engine.check().await {
        tracing::warn!(error = %e, "the S3 backend does not answer yet");
        return Ok(Arc::new(engine));
    }
    match engine.conditional_writes_hold().await {
        Ok(true) => {}
        Ok(false) => anyhow::bail!(
            "the S3 backend {} ignores conditional writes (If-None-Match: * / If-Match on PUT): \
             gateways would lose each other's changes to users and policies; use a backend that \
             honours them (MinIO since 2024, Ceph RGW Squid, AWS S3)",
            b.endpoint
        ),
        Err(e) => {
            tracing::warn!(error = %e, "the S3 backend's conditional writes could not be checked")
        }
    }
    Ok(Arc::new(engine))
}

/// Starts the server and runs until SIGTERM or Ctrl-C.
pub async fn run(mut cfg: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Removed when the server stops; holds staged uploads only.
    let _scratch = stateless_gateway_scratch(&mut cfg)?;
    crate::storage::set_lock_wait(cfg.lock_wait);
    let store = Store::open(&cfg.data_dir)
        .with_context(|| format!("data directory {}", cfg.data_dir.display()))?;
    store.clean_temp(Duration::from_secs(3600));
    // Part files a crash left unreferenced (see storage::parts), swept while serving.
    let sweeper = store.clone();
    tokio::task::spawn_blocking(move || {
        let removed = sweeper.reclaim_orphaned_parts();
        if removed > 0 {
            tracing::info!(removed, "reclaimed unreferenced multipart part directories");
        }
    });
    let (tls, cas) = match &cfg.certs_dir {
        Some(d) => load_tls(d)?,
        None => (None, Vec::new()),
    };
    let cert_expiry = match &cfg.certs_dir {
        Some(d) if tls.is_some() => crate::metrics::certificate_expiry(&d.join("public.crt")),
        _ => None,
    };
    // The gateway's engine comes first: its backend keeps the metadata key and the IAM state.
    let gateway = match &cfg.backend {
        Some(b) => Some(open_gateway(b, &cfg.data_dir).await?),
        None => None,
    };
    let shared_state = gateway.clone().map(|g| g as Arc<dyn StateDocs>);
    let kms_stats = Arc::new(KmsStats::default());
    let kms = build_kms_for(&cfg, &store, shared_state.clone(), cas, kms_stats.clone()).await?;
    let listener = TcpListener::bind(cfg.address)
        .await
        .with_context(|| format!("listen on {}", cfg.address))?;
    let local = listener.local_addr()?;
    print_banner(&cfg, local, tls.is_some(), kms.as_ref());

    let gateway = gateway.map(|g| g as Arc<dyn crate::storage::engine::Storage>);
    if gateway.is_none() {
        // Lifecycle rules are kept in the data directory (not served in gateway mode).
        crate::lifecycle::scanner::spawn(store.clone());
    }
    let iam_backing = match shared_state {
        Some(docs) => crate::iam::store::Backing::Shared(docs),
        None => crate::iam::store::Backing::Local(
            crate::iam::store::Dir::open(&store.system_dir()).context("IAM state")?,
        ),
    };
    let iam = Iam::open_backing(
        cfg.data_dir.clone(),
        iam_backing,
        kms.clone(),
        cfg.root_user.clone(),
        cfg.root_password.clone(),
    )
    .await
    .context("IAM state")?;
    if let Some(f) = &cfg.users_file {
        tokio::spawn(crate::iam::users_file::watch(
            iam.clone(),
            f.clone(),
            cfg.users_reload,
        ));
    }
    // The re-wrap job walks the local store and its state lives there: in gateway mode it is
    // not run, and its admin call answers 501 (admin/rewrap.rs).
    let rewrap = match &gateway {
        None => {
            let job = crate::rewrap::Rewrapper::new(
                store.clone(),
                kms.clone(),
                cfg.rewrap_rate,
                cfg.rewrap_parallelism,
            )
            .context("re-wrap state")?;
            tokio::spawn(job.clone().run());
            Some(job)
        }
        Some(_) => None,
    };
    let usage = Arc::new(crate::metrics::usage::UsageCache::new(cfg.usage_max_age));
    let mut admin = AdminRoute::new(iam.clone(), store.clone(), tls.is_some())
        .with_buckets(cfg.auto_encryption, cfg.backend.is_some())
        .with_usage(usage.clone());
    if let Some(job) = &rewrap {
        admin = admin.with_rewrap(job.clone());
    }
    let cors = crate::s3::cors::CorsGate::new(
        store.clone(),
        cfg.domains.clone(),
        cfg.cors_allow_origin.clone(),
    );
    let bucket_resource = Arc::new(crate::sigv2::BucketResource::new(
        iam.clone(),
        cfg.domains.clone(),
    ));
    let access_store = store.clone();
    let s3_stats = Arc::new(crate::metrics::s3::S3Stats::default());
    let mut metrics = Metrics::new(
        local.to_string(),
        store.clone(),
        kms.clone(),
        kms_stats,
        s3_stats.clone(),
        usage,
        cert_expiry,
    );
    if let Some(job) = rewrap {
        metrics.register(move || job.collector());
    }
    let metrics = Arc::new(metrics);
    let console_store = store.clone();
    let console_engine = gateway.clone();
    let mut s3 = CofferS3::new(store, kms.clone(), cfg.auto_encryption, tls.is_some());
    let gateway_mode = gateway.is_some();
    if let Some(engine) = gateway {
        s3 = s3.with_gateway(engine);
    }
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(Auth(iam.clone()));
    let metrics_iam = iam.clone();
    builder.set_access(Access {
        iam,
        tls: tls.is_some(),
        store: access_store,
        gateway: gateway_mode,
    });
    builder.set_route(admin);
    if let Some(domains) = &cfg.domains {
        builder.set_host(domains.clone());
    }
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        crate::s3::post::s3s_config(),
    ))));
    let service = builder.build();
    let acceptor = tls.map(TlsAcceptor::from);
    if let Some(console) = &cfg.console
        && let Some(listener) = crate::console::bind(console).await?
    {
        print_console(listener.local_addr()?, acceptor.is_some());
        tokio::spawn(crate::console::serve(
            listener,
            crate::console::ConsoleDeps {
                service: service.clone(),
                s3_address: local,
                store: console_store,
                engine: console_engine,
                kms: kms.clone(),
                tls: acceptor.clone(),
                session_lifetime: console.session_lifetime,
                s3_stats,
                sign_in_limits: console.sign_in_limits,
            },
        ));
    }

    let mut http = ConnBuilder::new(TokioExecutor::new());
    // Without a timer hyper enforces no header timeout at all: a client could hold a
    // connection (and its memory) forever by never finishing a request head.
    http.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(cfg.read_header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    continue;
                }
            },
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = ctrl_c.as_mut() => { tracing::info!("interrupt: shutting down"); break; }
        };
        let _ = stream.set_nodelay(true);
        let (service, metrics, kms) = (service.clone(), metrics.clone(), kms.clone());
        let cors = cors.clone();
        let metrics_iam = metrics_iam.clone();
        let bucket_resource = bucket_resource.clone();
        let (cfg_idle, prometheus_auth, tls_on) =
            (cfg.idle_timeout, cfg.prometheus_auth, acceptor.is_some());
        let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let (service, metrics, kms) = (service.clone(), metrics.clone(), kms.clone());
            let metrics_iam = metrics_iam.clone();
            let cors = cors.clone();
            let bucket_resource = bucket_resource.clone();
            // For `aws:SourceIp` in policies.
            req.extensions_mut().insert(ClientAddr(peer));
            async move {
                let path = req.uri().path();
                if req.method() == http::Method::GET || req.method() == http::Method::HEAD {
                    match path {
                        "/minio/health/live" => {
                            return Ok::<_, Infallible>(text(200, String::new()));
                        }
                        "/minio/health/ready" | "/minio/health/cluster" => {
                            let ok = tokio::time::timeout(Duration::from_secs(3), kms.ready())
                                .await
                                .is_ok_and(|r| r.is_ok());
                            return Ok(text(if ok { 200 } else { 503 }, String::new()));
                        }
                        _ if let Some(scope) = Scope::of_path(path) => {
                            if prometheus_auth == AuthType::Jwt
                                && let Err(why) = metrics_auth::authorize(
                                    &metrics_iam,
                                    req.headers(),
                                    Some(peer.ip()),
                                    tls_on,
                                )
                                .await
                            {
                                tracing::debug!(%path, %why, "metrics scrape refused");
                                return Ok(metrics_auth::refused(path));
                            }
                            let body = metrics.scrape(scope).await;
                            return Ok(http::Response::builder()
                                .header("content-type", crate::metrics::CONTENT_TYPE)
                                .body(s3s::Body::from(body))
                                .expect("valid response"));
                        }
                        _ => {}
                    }
                }
                let span = tracing::debug_span!(
                    "s3_request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    api = tracing::field::Empty,
                    status = tracing::field::Empty,
                );
                crate::metrics::api::scope(
                    serve_s3(req, service, cors, bucket_resource, cfg_idle, &metrics)
                        .instrument(span),
                )
                .await
            }
        });
        match &acceptor {
            None => {
                let conn = http
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acc) => {
                let acc = acc.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(tls) =
                        tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await
                    else {
                        return;
                    };
                    let Ok(tls) = tls else { return };
                    let conn = http.serve_connection(TokioIo::new(tls), svc).into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(Duration::from_secs(30)) => tracing::warn!("connections still open after 30 s; exiting"),
    }
    Ok(())
}

fn print_console(local: SocketAddr, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    println!("Console: {scheme}://{}", display_host(local));
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// `HOST:PORT` to print: loopback for an unspecified address, brackets for IPv6.
fn display_host(local: SocketAddr) -> String {
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        local.ip().to_string()
    };
    if local.is_ipv6() && !local.ip().is_unspecified() {
        format!("[{host}]:{}", local.port())
    } else {
        format!("{host}:{}", local.port())
    }
}

fn print_banner(cfg: &Config, local: SocketAddr, tls: bool, kms: &dyn Kms) {
    let scheme = if tls { "https" } else { "http" };
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        local.ip().to_string()
    };
    let host = if local.is_ipv6() && !local.ip().is_unspecified() {
        format!("[{host}]")
    } else {
        host
    };
    println!("Coffer object-server");
    println!("S3-API: {scheme}://{host}:{}", local.port());
    println!("RootUser: {}", cfg.root_user);
    if cfg.default_credentials {
        println!("RootPass: {}", cfg.root_password.as_str());
        println!(
            "WARNING: default credentials minioadmin/minioadmin; set MINIO_ROOT_USER and MINIO_ROOT_PASSWORD."
        );
    } else {
        println!("RootPass: (from MINIO_ROOT_PASSWORD)");
    }
    match &cfg.backend {
        // Endpoint and bucket only: the credentials are never printed.
        Some(b) => println!(
            "Backend: {} bucket {} (uploads staged in {})",
            b.endpoint,
            b.bucket,
            cfg.data_dir.display()
        ),
        None => println!("Data: {}", cfg.data_dir.display()),
    }
    println!(
        "KMS: {}; auto-encryption {}",
        kms.describe(),
        if cfg.auto_encryption { "on" } else { "off" }
    );
    if matches!(cfg.kms, KmsConfig::Embedded) {
        println!(
            "WARNING: the master key was generated and is kept in {}/.coffer/master.key, next to the data it protects. \
             This mode is for trying Coffer out. For real use point it at KES: set MINIO_KMS_KES_ENDPOINT, \
             MINIO_KMS_KES_CERT_FILE, MINIO_KMS_KES_KEY_FILE, MINIO_KMS_KES_CAPATH and MINIO_KMS_KES_KEY_NAME \
             (or MINIO_KMS_SECRET_KEY=name:base64 for a static key).",
            cfg.data_dir.display()
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
