//! The console's listener and route table. Every route but the sign-in page and the assets
//! needs a live session; every method other than GET and HEAD needs the session's CSRF token.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::service::S3Service;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::http_util::{self, Response, redirect};
use super::rates::Rates;
use super::s3call::S3Caller;
use super::session::{self, Session, Sessions};
use super::throttle::{SignInLimits, SignInThrottle};
use super::{assets, csrf, pages};
use crate::kms::Kms;
use crate::storage::Store;

/// What the console is started with.
pub struct ConsoleDeps {
    /// The S3 service of the S3 port.
    pub service: S3Service,
    /// The S3 port's address.
    pub s3_address: SocketAddr,
    /// The store (an object's KMS key name, after S3 allowed reading it).
    pub store: Store,
    /// In gateway mode the engine that holds the objects: key names are read there instead.
    pub engine: Option<Arc<dyn crate::storage::engine::Storage>>,
    /// The KMS (its status page).
    pub kms: Arc<dyn Kms>,
    /// TLS, as on the S3 port.
    pub tls: Option<TlsAcceptor>,
    /// How long sessions last.
    pub session_lifetime: Duration,
    /// The S3 port's request counters (the server page's rates).
    pub s3_stats: Arc<crate::metrics::s3::S3Stats>,
    /// When failed sign-ins lock an address out.
    pub sign_in_limits: SignInLimits,
}

/// The console's state.
pub struct Console {
    /// The in-process S3 client.
    pub s3: S3Caller,
    /// Signed-in browsers.
    pub sessions: Sessions,
    /// See [`ConsoleDeps::store`].
    pub store: Store,
    /// See [`ConsoleDeps::engine`].
    pub engine: Option<Arc<dyn crate::storage::engine::Storage>>,
    /// See [`ConsoleDeps::kms`].
    pub kms: Arc<dyn Kms>,
    /// Whether the console is served over TLS (Secure cookies).
    pub tls: bool,
    /// When the server started (the server page's uptime).
    pub started: Instant,
    /// Request rates (the server page).
    pub rates: Rates,
    /// Failed sign-ins per address.
    pub throttle: SignInThrottle,
}

/// One request as the pages see it.
pub struct Req {
    /// The method.
    pub method: Method,
    /// The decoded path.
    pub path: String,
    /// The query's pairs.
    pub query: Vec<(String, String)>,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Incoming,
    /// The browser's address.
    pub peer: SocketAddr,
}

impl Req {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        http_util::field(&self.query, name)
    }
}

/// A signed-in request: the session and its id.
pub struct Signed {
    /// The session.
    pub session: Arc<Session>,
    /// Its id (sign-out removes it).
    pub id: String,
}

/// Serves the console on `listener` until the process ends.
pub async fn serve(listener: TcpListener, deps: ConsoleDeps) {
    let console = Arc::new(Console {
        s3: S3Caller::new(deps.service, deps.s3_address),
        sessions: Sessions::new(deps.session_lifetime),
        store: deps.store,
        engine: deps.engine,
        kms: deps.kms,
        tls: deps.tls.is_some(),
        started: Instant::now(),
        rates: Rates::new(deps.s3_stats),
        throttle: SignInThrottle::new(deps.sign_in_limits),
    });
    let sampled = Arc::downgrade(&console);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(super::rates::SAMPLE_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            match sampled.upgrade() {
                Some(c) => c.rates.sample(),
                None => return,
            }
        }
    });
    let mut http = ConnBuilder::new(TokioExecutor::new());
    http.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "console accept");
                continue;
            }
        };
        let console = console.clone();
        let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let console = console.clone();
            async move { Ok::<_, Infallible>(handle(console, req, peer).await) }
        });
        let http = http.clone();
        let tls = deps.tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acc) => {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await
                    else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                }
            }
        });
    }
}

async fn handle(console: Arc<Console>, req: http::Request<Incoming>, peer: SocketAddr) -> Response {
    let (parts, body) = req.into_parts();
    let path = match percent_decode(parts.uri.path()) {
        Some(p) => p,
        None => return http_util::text(StatusCode::BAD_REQUEST, "The path is not valid UTF-8."),
    };
    let req = Req {
        method: parts.method,
        query: http_util::pairs(parts.uri.query().unwrap_or("").as_bytes()),
        path,
        headers: parts.headers,
        body,
        peer,
    };
    let get = req.method == Method::GET || req.method == Method::HEAD;
    match (get, req.path.as_str()) {
        (true, p) if p.starts_with("/static/") || p == "/favicon.ico" => return assets::serve(p),
        (true, "/login") => return pages::login::form(&console, &req, None),
        (false, "/login") if req.method == Method::POST => {
            return pages::login::submit(&console, req).await;
        }
        _ => {}
    }
    let Some(signed) = signed_in(&console, &req.headers) else {
        if req.path.starts_with("/api/") {
            http_util::drain(req.body).await;
            return http_util::json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "Your session has ended; sign in again."}),
            );
        }
        if !get {
            http_util::drain(req.body).await;
        }
        return redirect("/login?expired=1");
    };
    // The token of a change: the header (the upload script), else checked by the form's
    // handler from its body (`pages::form`).
    if !get && req.path.starts_with("/api/") {
        let given = req.headers.get(csrf::HEADER).and_then(|v| v.to_str().ok());
        if !csrf::matches(&signed.session.csrf, given) {
            http_util::drain(req.body).await;
            return http_util::json(
                StatusCode::FORBIDDEN,
                &serde_json::json!({"error": "The request has no valid CSRF token."}),
            );
        }
    }
    pages::route(&console, signed, req).await
}

fn signed_in(console: &Console, headers: &http::HeaderMap) -> Option<Signed> {
    let id = session::cookie(headers, session::COOKIE)?;
    let session = console.sessions.get(id)?;
    Some(Signed {
        session,
        id: id.to_owned(),
    })
}

fn percent_decode(path: &str) -> Option<String> {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
        .map(|p| p.into_owned())
}
