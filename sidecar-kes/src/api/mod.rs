//! The KES HTTP API v1: the route table, authentication and dispatch.
//!
//! Every request goes through [`handle`]: find the route, check the method (POST is
//! accepted for PUT routes), limit the body, authenticate (admin, or a policy bound to
//! the identity), run the handler under the route's timeout, and write the audit event.
//!
//! Besides KES's routes, two of Coffer's own, under `/v1/coffer/` so that they can never
//! collide with a route a later KES adds, and so that a policy granting `/v1/key/*` does not
//! grant them (a policy must name them):
//! - `PUT|POST /v1/coffer/key/rotate/<name>` `{"add_version"?: bool, "min_version"?: N}` adds a
//!   key version and/or sets the oldest version allowed to decrypt; answers with the versions;
//! - `GET /v1/coffer/key/info/<name>`: `{algorithm, versions: [{version, created_at}], newest,
//!   min_version}`.

pub mod error;
mod key;
pub mod names;
mod policy;
mod sys;

#[doc(hidden)]
pub use key::exercise_request_body as exercise_key_request_body;

use crate::auth::{Identity, Policy};
use crate::crypto::Cipher;
use crate::header_wait::HeaderWait;
use crate::keys::Keys;
use crate::log::{AuditEvent, AuditKey, AuditLog, AuditRequest, AuditResponse, LogStream};
use crate::metrics::Metrics;
use bytes::Bytes;
use error::ApiError;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// This server's version string (`/version`).
pub fn sys_version() -> &'static str {
    sys::VERSION
}

/// The response body type of the API.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Per-API settings from the config (`api: /v1/ready: {skip_auth, timeout}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiSettings {
    /// Serve the API to any client certificate.
    pub skip_auth: bool,
    /// Override the route's timeout.
    pub timeout: Option<Duration>,
}

/// Who may do what; replaced as a whole on config reload.
#[derive(Clone, Debug, Default)]
pub struct AuthState {
    /// The admin identity (may call every API); empty = no admin.
    pub admin: Identity,
    /// Policies by name.
    pub policies: BTreeMap<String, Policy>,
    /// The policy name bound to each identity.
    pub identities: HashMap<Identity, String>,
    /// Per-API settings by path.
    pub api: HashMap<String, ApiSettings>,
}

impl AuthState {
    /// Whether `id` may call `path` (the full request path).
    pub fn allowed(&self, id: &Identity, path: &str) -> bool {
        if !self.admin.is_empty() && *id == self.admin {
            return true;
        }
        // The bare `/v1/key/list` is a list with an empty pattern: MinIO's KES grants it to a
        // policy allowing `/v1/key/list/*` (seen with `mc admin kms key list`), and so do we.
        let path = if path == "/v1/key/list" {
            "/v1/key/list/"
        } else {
            path
        };
        self.identities
            .get(id)
            .and_then(|name| self.policies.get(name))
            .is_some_and(|p| p.verify(path))
    }
}

/// Everything the handlers share.
pub struct Shared {
    /// Identities, policies and API settings (reloadable).
    pub auth: RwLock<Arc<AuthState>>,
    /// The keys: cached from a keystore, or in Vault Transit.
    pub keys: Keys,
    /// Counters for `/v1/metrics`.
    pub metrics: Metrics,
    /// The audit log stream.
    pub audit: LogStream,
    /// The error log stream.
    pub errors: LogStream,
    /// Where audit events are written besides the stream (`log.audit`), if anywhere.
    pub audit_log: Option<AuditLog>,
    /// Start time.
    pub started: time::OffsetDateTime,
    started_at: Instant,
    /// Cipher of newly created keys.
    pub cipher: Cipher,
}

impl Shared {
    /// Shared state over the keys (a [`crate::cache::KeyCache`] or Transit).
    pub fn new(auth: AuthState, keys: impl Into<Keys>) -> Self {
        Shared {
            auth: RwLock::new(Arc::new(auth)),
            keys: keys.into(),
            metrics: Metrics::default(),
            audit: LogStream::default(),
            errors: LogStream::default(),
            audit_log: None,
            started: time::OffsetDateTime::now_utc(),
            started_at: Instant::now(),
            cipher: Cipher::Aes256,
        }
    }

    /// The current auth state.
    pub fn auth(&self) -> Arc<AuthState> {
        self.auth.read().expect("lock").clone()
    }

    /// Replaces the auth state (config reload).
    pub fn set_auth(&self, auth: AuthState) {
        *self.auth.write().expect("lock") = Arc::new(auth);
    }

    /// How long the server has been up.
    pub fn uptime(&self) -> Duration {
        self.started_at.elapsed()
    }

    /// Logs an error event (to tracing and the error stream).
    pub fn log_error(&self, message: &str) {
        tracing::warn!("{message}");
        self.metrics
            .error_events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.errors.send(&crate::log::ErrorEvent { message });
    }
}

/// The connection facts a request carries.
#[derive(Debug)]
pub struct Conn {
    /// Identity of the client certificate (empty if none).
    pub identity: Identity,
    /// Client IP.
    pub ip: String,
    /// Whether the connection waits for a request head, and since when (HTTP/1: a request
    /// marks it busy while served; HTTP/2 streams run concurrently and nobody watches it).
    pub header_wait: HeaderWait,
}

/// A request as handlers see it (borrowing from the connection and the path: no copies).
pub struct Req<'a> {
    /// The caller.
    pub identity: &'a Identity,
    /// The path after the route prefix (e.g. the key name).
    pub resource: &'a str,
    /// The body (already size-limited).
    pub body: Bytes,
    /// When the request arrived (the one clock read it gets before its response).
    pub received: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    /// No identity needed (`/version`).
    None,
    /// Any client certificate (self-describe, or `skip_auth`).
    IdentifyOnly,
    /// Admin or policy.
    Verify,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Version,
    Ready,
    Status,
    Metrics,
    Apis,
    KeyCreate,
    KeyImport,
    KeyDescribe,
    KeyList,
    KeyDelete,
    KeyGenerate,
    KeyEncrypt,
    KeyDecrypt,
    KeyHmac,
    KeyRotate,
    KeyInfo,
    PolicyDescribe,
    PolicyRead,
    PolicyList,
    IdentityDescribe,
    IdentityList,
    SelfDescribe,
    LogError,
    LogAudit,
}

/// One API: method, path (a trailing `/` takes a resource), body limit, timeout.
struct Route {
    method: Method,
    path: &'static str,
    max_body: usize,
    timeout: Duration,
    auth: Auth,
    op: Op,
}

const MB: usize = 1 << 20;

fn routes() -> &'static [Route] {
    use std::sync::OnceLock;
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let r = |method, path, max_body, secs, auth, op| Route {
            method,
            path,
            max_body,
            timeout: Duration::from_secs(secs),
            auth,
            op,
        };
        use Auth::*;
        vec![
            r(Method::GET, "/version", 0, 10, None, Op::Version),
            r(Method::GET, "/v1/ready", 0, 15, Verify, Op::Ready),
            r(Method::GET, "/v1/status", 0, 15, Verify, Op::Status),
            r(Method::GET, "/v1/metrics", 0, 15, Verify, Op::Metrics),
            r(Method::GET, "/v1/api", 0, 10, Verify, Op::Apis),
            r(Method::PUT, "/v1/key/create/", 0, 15, Verify, Op::KeyCreate),
            r(
                Method::PUT,
                "/v1/key/import/",
                MB,
                15,
                Verify,
                Op::KeyImport,
            ),
            r(
                Method::GET,
                "/v1/key/describe/",
                0,
                15,
                Verify,
                Op::KeyDescribe,
            ),
            r(Method::GET, "/v1/key/list/", 0, 15, Verify, Op::KeyList),
            r(
                Method::DELETE,
                "/v1/key/delete/",
                0,
                15,
                Verify,
                Op::KeyDelete,
            ),
            r(
                Method::PUT,
                "/v1/key/generate/",
                MB,
                15,
                Verify,
                Op::KeyGenerate,
            ),
            r(
                Method::PUT,
                "/v1/key/encrypt/",
                MB,
                15,
                Verify,
                Op::KeyEncrypt,
            ),
            r(
                Method::PUT,
                "/v1/key/decrypt/",
                MB,
                15,
                Verify,
                Op::KeyDecrypt,
            ),
            r(Method::PUT, "/v1/key/hmac/", MB, 15, Verify, Op::KeyHmac),
            r(
                Method::PUT,
                "/v1/coffer/key/rotate/",
                MB,
                15,
                Verify,
                Op::KeyRotate,
            ),
            r(
                Method::GET,
                "/v1/coffer/key/info/",
                0,
                15,
                Verify,
                Op::KeyInfo,
            ),
            r(
                Method::GET,
                "/v1/policy/describe/",
                0,
                15,
                Verify,
                Op::PolicyDescribe,
            ),
            r(
                Method::GET,
                "/v1/policy/read/",
                0,
                15,
                Verify,
                Op::PolicyRead,
            ),
            r(
                Method::GET,
                "/v1/policy/list/",
                0,
                15,
                Verify,
                Op::PolicyList,
            ),
            r(
                Method::GET,
                "/v1/identity/describe/",
                0,
                15,
                Verify,
                Op::IdentityDescribe,
            ),
            r(
                Method::GET,
                "/v1/identity/list/",
                0,
                15,
                Verify,
                Op::IdentityList,
            ),
            r(
                Method::GET,
                "/v1/identity/self/describe",
                0,
                15,
                IdentifyOnly,
                Op::SelfDescribe,
            ),
            r(Method::GET, "/v1/log/error", 0, 0, Verify, Op::LogError),
            r(Method::GET, "/v1/log/audit", 0, 0, Verify, Op::LogAudit),
        ]
    })
}

/// Finds the route of a path and the resource after its prefix.
fn find(path: &str) -> Option<(&'static Route, &str)> {
    routes().iter().find_map(|r| {
        if let Some(prefix) = r.path.strip_suffix('/') {
            if path == prefix {
                return Some((r, ""));
            }
            path.strip_prefix(r.path).map(|res| (r, res))
        } else {
            (path == r.path).then_some((r, ""))
        }
    })
}

/// A response with `status` and `body`, typed `application/json` if `json`.
fn response(status: StatusCode, json: bool, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    if json {
        // A static value: no copy of the header per response.
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    // Room for a generate response (two base64 keys) without growing.
    let mut body = Vec::with_capacity(256);
    if serde_json::to_writer(&mut body, v).is_err() {
        body.clear();
    }
    // Exactly sized, so that `Bytes` takes it over without allocating a shared header (mimalloc
    // shrinks a block in place down to half its size).
    response(status, true, body.into_boxed_slice())
}

/// An empty 200.
pub fn ok() -> Response<Body> {
    response(StatusCode::OK, false, Bytes::new())
}

/// A body from bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn error_response(e: &ApiError) -> Response<Body> {
    response(e.status, true, e.body())
}

/// The decoded path; borrowed when it has no `%` escape (no copy per request).
fn percent_decode(path: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy()
}

/// Serves one request of a connection.
///
/// It reads the clock twice: when the request arrives (also the key cache's "now") and when its
/// response is ready (the response time, and when the connection starts waiting for the next
/// head). The audit event's wall-clock time is read only if someone subscribes to it or an audit
/// log is configured.
pub async fn handle<B>(shared: Arc<Shared>, conn: Arc<Conn>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    conn.header_wait.busy();
    let start = Instant::now();
    shared.metrics.start();
    let (head, body) = req.into_parts();
    let path = percent_decode(head.uri.path());
    let (resp, failure) = match serve(&shared, &conn, &path, &head.method, body, start).await {
        Ok(r) => (r, None),
        Err(e) => (error_response(&e), Some(e.message)),
    };
    let end = Instant::now();
    let took = end.saturating_duration_since(start);
    // A streamed response (the log APIs) keeps the connection busy until it ends, which is
    // when the client goes away.
    if hyper::body::Body::size_hint(resp.body()).exact().is_some() {
        conn.header_wait.waiting(end);
    }
    let status = resp.status().as_u16();
    shared.metrics.finish(status, took);
    if !path.starts_with("/v1/log/") && path != "/version" {
        shared
            .metrics
            .audit_events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if shared.audit.has_subscribers() || shared.audit_log.is_some() {
            let event = AuditEvent {
                time: time::OffsetDateTime::now_utc(),
                request: AuditRequest {
                    ip: &conn.ip,
                    path: &path,
                    identity: conn.identity.as_str(),
                },
                response: AuditResponse {
                    code: status,
                    time: took.as_micros() as u64,
                    error: failure.as_deref(),
                },
                key: audited_key(&path, &resp),
            };
            if let Ok(mut line) = serde_json::to_string(&event) {
                line.push('\n');
                if let Some(log) = &shared.audit_log {
                    log.write(&line);
                }
                shared.audit.send_line(line);
            }
        }
    }
    resp
}

/// The key version a key handler used, which its response carries (as an extension, never
/// sent) for the audit event.
#[derive(Clone, Copy, Debug)]
pub struct UsedVersion(pub u32);

/// The key part of the audit event of a key operation on `path`: the operation, the key's
/// name and the version used where the handler knows it.
fn audited_key<'a>(path: &'a str, resp: &Response<Body>) -> Option<AuditKey<'a>> {
    let (route, name) = find(path)?;
    let operation = match route.op {
        Op::KeyCreate => "create",
        Op::KeyImport => "import",
        Op::KeyDescribe => "describe",
        Op::KeyDelete => "delete",
        Op::KeyGenerate => "generate",
        Op::KeyEncrypt => "encrypt",
        Op::KeyDecrypt => "decrypt",
        Op::KeyHmac => "hmac",
        Op::KeyRotate => "rotate",
        Op::KeyInfo => "info",
        _ => return None,
    };
    Some(AuditKey {
        operation,
        name,
        version: resp.extensions().get::<UsedVersion>().map(|v| v.0),
    })
}

async fn serve<B>(
    shared: &Arc<Shared>,
    conn: &Conn,
    path: &str,
    method: &Method,
    body: B,
    received: Instant,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (route, resource) =
        find(path).ok_or(ApiError::new(StatusCode::NOT_FOUND, "404 page not found"))?;
    if *method != route.method && !(*method == Method::POST && route.method == Method::PUT) {
        return Err(ApiError::msg(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("received method '{method}' expected '{}'", route.method),
        ));
    }
    let auth = shared.auth();
    let settings = auth.api.get(route.path.trim_end_matches('/'));
    let mode = match settings {
        Some(s) if s.skip_auth && route.auth == Auth::Verify => Auth::IdentifyOnly,
        _ => route.auth,
    };
    if mode != Auth::None {
        if conn.identity.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "tls: client certificate is required",
            ));
        }
        if mode == Auth::Verify && !auth.allowed(&conn.identity, path) {
            return Err(error::NOT_ALLOWED);
        }
    }
    let body = read_body(body, route.max_body).await?;
    let api_req = Req {
        identity: &conn.identity,
        resource,
        body,
        received,
    };
    let timeout = settings.and_then(|s| s.timeout).unwrap_or(route.timeout);
    let mut fut = std::pin::pin!(dispatch(shared.clone(), route.op, api_req));
    if timeout.is_zero() {
        return fut.await;
    }
    // Most requests (a cached key) finish on their first poll: only one that has to wait gets
    // a timer (and its clock read). The timeout then counts from that first wait.
    if let std::task::Poll::Ready(r) = futures::poll!(fut.as_mut()) {
        return r;
    }
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request timed out",
        )))
}

async fn dispatch(s: Arc<Shared>, op: Op, req: Req<'_>) -> Result<Response<Body>, ApiError> {
    match op {
        Op::Version => sys::version(),
        Op::Ready => sys::ready(&s).await,
        Op::Status => sys::status(&s).await,
        Op::Metrics => sys::metrics(&s),
        Op::Apis => sys::apis(&s),
        Op::LogError => sys::log_stream(&s.errors),
        Op::LogAudit => sys::log_stream(&s.audit),
        Op::KeyCreate => key::create(&s, req).await,
        Op::KeyImport => key::import(&s, req).await,
        Op::KeyDescribe => key::describe(&s, req).await,
        Op::KeyList => key::list(&s, req).await,
        Op::KeyDelete => key::delete(&s, req).await,
        Op::KeyGenerate => key::generate(&s, req).await,
        Op::KeyEncrypt => key::encrypt(&s, req).await,
        Op::KeyDecrypt => key::decrypt(&s, req).await,
        Op::KeyHmac => key::hmac(&s, req).await,
        Op::KeyRotate => key::rotate(&s, req).await,
        Op::KeyInfo => key::info(&s, req).await,
        Op::PolicyDescribe => policy::describe_policy(&s, req),
        Op::PolicyRead => policy::read_policy(&s, req),
        Op::PolicyList => policy::list_policies(&s, req),
        Op::IdentityDescribe => policy::describe_identity(&s, req),
        Op::IdentityList => policy::list_identities(&s, req),
        Op::SelfDescribe => policy::self_describe(&s, req),
    }
}

/// How much of an oversized body is read (and dropped) before answering, so that a client
/// still writing it gets the 400 instead of a broken pipe.
const DRAIN_LIMIT: usize = 8 * MB;

/// Reads at most `max` bytes; a larger body is 400 `invalid request body` (routes without a
/// body ignore one).
async fn read_body<B>(body: B, max: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    // A body in one frame (a small request) is kept as it came, without a copy.
    let (mut first, mut rest) = (Bytes::new(), bytes::BytesMut::new());
    let (mut seen, mut too_large) = (0usize, false);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(error::INVALID_BODY);
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > max {
                too_large = true;
            } else if seen == data.len() {
                first = data;
            } else {
                if rest.is_empty() {
                    rest.extend_from_slice(&first);
                }
                rest.extend_from_slice(&data);
            }
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    match (too_large, max) {
        (true, 0) => Ok(Bytes::new()),
        (true, _) => Err(error::INVALID_BODY),
        (false, _) if rest.is_empty() => Ok(first),
        (false, _) => Ok(rest.freeze()),
    }
}

/// Decodes a JSON request body; anything malformed is 400 `invalid request body`.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| error::INVALID_BODY)
}

/// Base64 (standard, as Go's `[]byte`) for JSON fields; `null` or missing = empty.
pub mod b64 {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use serde::de::{self, Visitor};
    use zeroize::{Zeroize, Zeroizing};

    /// Serializes bytes as standard base64. A short value (a key, a ciphertext) is encoded on
    /// the stack, and the encoding (of a secret, often) is wiped afterwards.
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 256];
        match STANDARD.encode_slice(v, &mut buf) {
            Ok(n) => {
                let r = s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
                buf[..n].zeroize();
                r
            }
            Err(_) => s.serialize_str(&Zeroizing::new(STANDARD.encode(v))),
        }
    }

    /// Deserializes standard base64 (or null); line breaks in it are ignored, as Go does.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        d.deserialize_option(Base64)
    }

    /// Decodes the string in place (serde_json hands over a borrowed one when it has no
    /// escapes): no copy of it is made unless it has line breaks to remove.
    struct Base64;

    impl<'de> Visitor<'de> for Base64 {
        type Value = Zeroizing<Vec<u8>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a base64 string or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            let decoded = if s.contains(['\r', '\n']) {
                let cleaned: Zeroizing<String> =
                    Zeroizing::new(s.chars().filter(|c| *c != '\r' && *c != '\n').collect());
                STANDARD.decode(cleaned.as_bytes())
            } else {
                STANDARD.decode(s)
            };
            decoded.map(Zeroizing::new).map_err(de::Error::custom)
        }
    }
}

/// The routes as `/v1/api` lists them.
fn route_list(auth: &AuthState) -> Vec<serde_json::Value> {
    routes()
        .iter()
        .map(|r| {
            let timeout = auth
                .api
                .get(r.path.trim_end_matches('/'))
                .and_then(|s| s.timeout)
                .unwrap_or(r.timeout);
            serde_json::json!({
                "method": r.method.as_str(),
                "path": r.path,
                "max_body": r.max_body,
                "timeout": timeout.as_secs(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_routes_and_resources() {
        assert_eq!(
            find("/v1/key/create/k1").map(|(r, res)| (r.op, res)),
            Some((Op::KeyCreate, "k1"))
        );
        assert_eq!(
            find("/v1/key/list").map(|(r, res)| (r.op, res)),
            Some((Op::KeyList, ""))
        );
        assert_eq!(
            find("/v1/key/list/a*").map(|(r, res)| (r.op, res)),
            Some((Op::KeyList, "a*"))
        );
        assert_eq!(find("/version").map(|(r, _)| r.op), Some(Op::Version));
        assert_eq!(
            find("/v1/identity/self/describe").map(|(r, _)| r.op),
            Some(Op::SelfDescribe)
        );
        assert!(find("/v1/nope").is_none());
        assert!(find("/version/x").is_none());
    }

    #[test]
    fn admin_and_policy_authorization() {
        let admin = Identity::new("aa");
        let user = Identity::new("bb");
        let mut auth = AuthState {
            admin: admin.clone(),
            ..Default::default()
        };
        auth.policies.insert(
            "p".into(),
            Policy {
                allow: vec!["/v1/key/generate/minio-*".into()],
                deny: vec![],
            },
        );
        auth.policies.insert(
            "lister".into(),
            Policy {
                allow: vec!["/v1/key/list/*".into()],
                deny: vec![],
            },
        );
        let lister = Identity::new("dd");
        auth.identities.insert(lister.clone(), "lister".into());
        assert!(auth.allowed(&lister, "/v1/key/list"));
        assert!(auth.allowed(&lister, "/v1/key/list/minio-"));
        auth.identities.insert(user.clone(), "p".into());
        assert!(auth.allowed(&admin, "/v1/key/delete/x"));
        assert!(auth.allowed(&user, "/v1/key/generate/minio-1"));
        assert!(!auth.allowed(&user, "/v1/key/delete/minio-1"));
        assert!(!auth.allowed(&user, "/v1/key/list"));
        assert!(!auth.allowed(&Identity::new("cc"), "/v1/ready"));
        // An empty admin identity never matches.
        let none = AuthState::default();
        assert!(!none.allowed(&Identity::new(""), "/v1/ready"));
    }
}
