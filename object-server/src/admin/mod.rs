//! The MinIO admin API subset `mc admin` uses, served beside the S3 API as an s3s custom route
//! (so the SigV4 check is s3s's): `/minio/admin/v3/…` for users, policies and server info, and
//! `/minio/kms/v1/…` (plus the older `/minio/admin/v3/kms/…`) for the KMS. Only the root user,
//! or a user whose policies allow the route's `admin:`/`kms:` action, may call it. Bodies that
//! madmin encrypts are encrypted with the caller's secret key ([`crypt`]).
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::iam::access::Caller;
use crate::iam::action::decode_query;
use crate::iam::{Iam, IamError};
use crate::storage::Store;

mod cluster;
pub mod crypt;
mod info;
mod kms;
mod rewrap;
mod usage;
mod users;

/// Largest admin request body we read (policies and user requests are small).
const MAX_BODY: usize = 1 << 20;

/// The admin route.
pub struct AdminRoute {
    pub(crate) iam: Arc<Iam>,
    pub(crate) store: Store,
    pub(crate) started: Instant,
    pub(crate) tls: bool,
    /// The re-wrap job of this process, if it runs one.
    pub(crate) rewrap: Option<Arc<crate::rewrap::Rewrapper>>,
    /// The server's auto-encryption (what an imported bucket's objects get).
    pub(crate) auto_encryption: bool,
    /// Buckets live on an S3 backend: bucket metadata is not imported or exported here.
    pub(crate) gateway: bool,
    /// What the buckets hold (`datausageinfo`, `info`): the metrics' cache when shared.
    pub(crate) usage: Arc<crate::metrics::usage::UsageCache>,
}

impl AdminRoute {
    /// Serves the admin API for `iam` and `store`.
    pub fn new(iam: Arc<Iam>, store: Store, tls: bool) -> Self {
        Self {
            iam,
            store,
            started: Instant::now(),
            tls,
            rewrap: None,
            auto_encryption: false,
            gateway: false,
            usage: Arc::new(crate::metrics::usage::UsageCache::new(
                crate::metrics::usage::DEFAULT_MAX_AGE,
            )),
        }
    }

    /// Counts buckets with `cache` (the metrics' own), so the admin API and the metrics walk
    /// the store at most once per the cache's age between them.
    pub fn with_usage(mut self, cache: Arc<crate::metrics::usage::UsageCache>) -> Self {
        self.usage = cache;
        self
    }

    /// The server's auto-encryption and mode, for `mc admin cluster bucket import|export`.
    pub fn with_buckets(mut self, auto_encryption: bool, gateway: bool) -> Self {
        self.auto_encryption = auto_encryption;
        self.gateway = gateway;
        self
    }

    /// The offline import's writer over this server's store and IAM (`cluster`'s imports
    /// go through it).
    pub(crate) fn importer(&self) -> crate::import::Importer {
        crate::import::Importer::new(
            self.store.clone(),
            self.iam.clone(),
            self.iam.kms().clone(),
            self.auto_encryption,
            false,
        )
    }

    /// Serves the re-wrap job's admin call ([`rewrap`]) too.
    pub fn with_rewrap(mut self, job: Arc<crate::rewrap::Rewrapper>) -> Self {
        self.rewrap = Some(job);
        self
    }
}

/// One admin request, decoded.
pub(crate) struct Call {
    pub method: Method,
    /// The path after `/minio/admin/v3` or `/minio/kms/v1` (e.g. `/add-user`, `/key/create`).
    pub route: String,
    pub query: HashMap<String, String>,
    pub body: bytes::Bytes,
    pub access_key: String,
    /// The caller's secret key: madmin encrypts bodies with it.
    pub secret_key: String,
    /// The condition values of the request (for the further actions a body may need).
    pub conditions: HashMap<String, Vec<String>>,
}

impl Call {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> S3Result<&str> {
        self.param(name).ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("missing query parameter '{name}'"),
            )
        })
    }

    /// Decrypts the body madmin encrypted with the caller's secret key.
    pub fn decrypted_body(&self) -> S3Result<zeroize::Zeroizing<Vec<u8>>> {
        crypt::decrypt(&self.secret_key, &self.body)
            .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidRequest, e.to_string()))
    }

    /// A JSON answer encrypted for the caller.
    pub fn encrypted(&self, value: &serde_json::Value) -> S3Result<S3Response<Body>> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(value).expect("serializes"));
        Ok(bytes_response(
            crypt::encrypt(&self.secret_key, &plain),
            "application/octet-stream",
        ))
    }
}

pub(crate) fn bytes_response(data: Vec<u8>, content_type: &'static str) -> S3Response<Body> {
    let mut r = S3Response::new(Body::from(bytes::Bytes::from(data)));
    r.status = Some(StatusCode::OK);
    r.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// A plain JSON answer.
pub(crate) fn json(value: &serde_json::Value) -> S3Result<S3Response<Body>> {
    Ok(bytes_response(
        serde_json::to_vec(value).expect("serializes"),
        "application/json",
    ))
}

impl AdminRoute {
    /// Refuses `c` unless its caller may also do `action`: what a body asks for beyond the
    /// route's own action (a policy named in an add-user, another user's secret key) needs the
    /// right to do that, or the route's action would grant more than it names.
    pub(crate) async fn require(&self, c: &Call, action: &str) -> S3Result<()> {
        let caller = self.iam.caller(Some(c.access_key.as_str()));
        self.iam
            .authorize(caller, "", action, "", "", &c.conditions)
            .await
    }
}

pub(crate) fn not_implemented(msg: &str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::NotImplemented, msg.to_owned());
    e.set_status_code(StatusCode::NOT_IMPLEMENTED);
    e
}

/// An empty 200.
pub(crate) fn ok() -> S3Result<S3Response<Body>> {
    Ok(bytes_response(Vec::new(), "application/json"))
}

/// Maps an IAM error to the admin API error MinIO sends.
pub(crate) fn iam_err(e: IamError) -> S3Error {
    let (code, status) = match &e {
        IamError::NoSuchUser => ("XMinioAdminNoSuchUser", 404),
        IamError::NoSuchPolicy(_) => ("XMinioAdminNoSuchPolicy", 404),
        IamError::Invalid(_) | IamError::Policy(_) => ("XMinioAdminInvalidArgument", 400),
        IamError::Store(inner) => {
            tracing::error!(error = %inner, "IAM store");
            ("XMinioAdminInternalError", 500)
        }
    };
    let msg = match &e {
        IamError::Store(_) => "The IAM state could not be changed.".to_owned(),
        IamError::Policy(p) => format!("invalid policy: {p}"),
        other => other.to_string(),
    };
    let mut err = S3Error::with_message(code.parse().unwrap_or(S3ErrorCode::InvalidArgument), msg);
    err.set_status_code(StatusCode::from_u16(status).expect("valid status"));
    err
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(decode_query(k), decode_query(v));
    }
    m
}

/// Gives an admin request a Content-Length: madmin's Go client sends even empty bodies chunked,
/// and s3s needs the length to check the signed payload hash. Admin bodies are small, so they
/// are read here (at most [`MAX_BODY`], else `Err(413)`); every other request passes as it is.
pub async fn with_known_length(req: http::Request<Body>) -> Result<http::Request<Body>, u16> {
    use http_body_util::BodyExt as _;
    if split_path(req.uri().path()).is_none()
        || req.headers().contains_key(http::header::CONTENT_LENGTH)
    {
        return Ok(req);
    }
    let limit = body_limit(req.uri().path());
    let (mut parts, body) = req.into_parts();
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| 413u16)?
        .to_bytes();
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    Ok(http::Request::from_parts(parts, Body::from(bytes)))
}

/// The largest body of an admin request to `path`: an import's archive, or [`MAX_BODY`].
fn body_limit(path: &str) -> usize {
    match split_path(path) {
        Some((route, false)) if cluster::is_import(route) => cluster::MAX_IMPORT_BODY,
        _ => MAX_BODY,
    }
}

/// `(route, kms_prefix)` of an admin path, or `None` when it is not an admin path.
fn split_path(path: &str) -> Option<(&str, bool)> {
    for p in ["/minio/admin/v3", "/minio/admin/v4"] {
        if let Some(r) = path.strip_prefix(p)
            && (r.is_empty() || r.starts_with('/'))
        {
            return Some((r, false));
        }
    }
    path.strip_prefix("/minio/kms/v1")
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .map(|r| (r, true))
}

/// The `admin:`/`kms:` action a route needs (MinIO's names).
fn action(
    method: &Method,
    route: &str,
    kms_prefix: bool,
    query: &HashMap<String, String>,
) -> Option<&'static str> {
    let r = route.trim_end_matches('/');
    if kms_prefix || r.starts_with("/kms/") {
        let r = r.strip_prefix("/kms").unwrap_or(r);
        return Some(match r {
            "/status" => "kms:Status",
            "/metrics" => "kms:Metrics",
            "/apis" => "kms:API",
            "/version" => "kms:Version",
            "/key/create" => "kms:CreateKey",
            "/key/rotate" if method == Method::POST => "kms:RotateKey",
            "/key/list" => "kms:ListKeys",
            "/key/status" => "kms:KeyStatus",
            _ => return None,
        });
    }
    Some(match (method.as_str(), r) {
        ("PUT", "/add-user") => "admin:CreateUser",
        ("DELETE", "/remove-user") => "admin:DeleteUser",
        ("PUT", "/set-user-status") => match query.get("status").map(String::as_str) {
            Some("disabled") => "admin:DisableUser",
            _ => "admin:EnableUser",
        },
        ("GET", "/list-users") => "admin:ListUsers",
        ("GET", "/user-info") => "admin:GetUser",
        ("PUT", "/add-canned-policy") => "admin:CreatePolicy",
        ("DELETE", "/remove-canned-policy") => "admin:DeletePolicy",
        ("GET", "/list-canned-policies") => "admin:ListUserPolicies",
        ("GET", "/info-canned-policy") => "admin:GetPolicy",
        ("POST", "/idp/builtin/policy/attach")
        | ("POST", "/idp/builtin/policy/detach")
        | ("PUT", "/set-user-or-group-policy") => "admin:AttachUserOrGroupPolicy",
        ("GET", "/info") => "admin:ServerInfo",
        ("GET", "/datausageinfo") => "admin:DataUsageInfo",
        ("GET", "/export-bucket-metadata") => "admin:ExportBucketMetadata",
        ("PUT", "/import-bucket-metadata") => "admin:ImportBucketMetadata",
        ("GET", "/export-iam") => "admin:ExportIAM",
        ("PUT", "/import-iam") | ("PUT", "/import-iam-v2") => "admin:ImportIAM",
        ("POST", "/coffer/rewrap") => "admin:CofferRewrap",
        ("GET", "/coffer/rewrap") => "admin:CofferRewrapStatus",
        _ => return None,
    })
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        _method: &Method,
        uri: &http::Uri,
        _headers: &http::HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        split_path(uri.path()).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        match &req.credentials {
            Some(_) => Ok(()),
            None => Err(s3_error!(
                AccessDenied,
                "The admin API needs signed requests."
            )),
        }
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let creds = req
            .credentials
            .take()
            .ok_or_else(|| s3_error!(AccessDenied, "The admin API needs signed requests."))?;
        let (route, kms_prefix) = split_path(req.uri.path()).expect("matched");
        let query = parse_query(req.uri.query());
        let Some(action) = action(&req.method, route, kms_prefix, &query) else {
            let mut e = S3Error::with_message(
                S3ErrorCode::NotImplemented,
                format!(
                    "{} {} is not implemented by this server",
                    req.method,
                    req.uri.path()
                ),
            );
            e.set_status_code(StatusCode::NOT_IMPLEMENTED);
            return Err(e);
        };
        let caller = self.iam.caller(Some(creds.access_key.as_str()));
        let conditions = crate::iam::action::condition_values(&crate::iam::action::RequestFacts {
            headers: &req.headers,
            query: req.uri.query(),
            secure: self.tls,
            source_ip: req
                .extensions
                .get::<crate::iam::access::ClientAddr>()
                .map(|a| a.0.ip()),
            user: Some(&creds.access_key),
            root: matches!(caller, Caller::Root(_)),
        });
        // Anyone may read their own user info (as MinIO allows).
        let own_info = action == "admin:GetUser"
            && query.get("accessKey").map(String::as_str) == Some(creds.access_key.as_str());
        if !own_info {
            self.iam
                .authorize(caller, "", action, "", "", &conditions)
                .await?;
        }
        let body = req
            .input
            .store_all_limited(body_limit(req.uri.path()))
            .await
            .map_err(|_| {
                s3_error!(
                    InvalidRequest,
                    "The request body could not be read or is too large."
                )
            })?;
        let call = Call {
            method: req.method.clone(),
            route: route.trim_end_matches('/').to_owned(),
            query,
            body,
            access_key: creds.access_key.clone(),
            secret_key: creds.secret_key.expose().to_owned(),
            conditions,
        };
        tracing::debug!(method = %call.method, route = %call.route, caller = %call.access_key, "admin request");
        if action.starts_with("kms:") {
            return kms::handle(self, &call, action).await;
        }
        match call.route.as_str() {
            "/info" => info::server_info(self).await,
            "/datausageinfo" => {
                usage::data_usage_info(self, call.param("capacity") == Some("true")).await
            }
            "/coffer/rewrap" => rewrap::handle(self, &call).await,
            r if r.starts_with("/export-") || r.starts_with("/import-") => {
                cluster::handle(self, &call).await
            }
            _ => users::handle(self, &call).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_actions() {
        assert_eq!(
            split_path("/minio/admin/v3/add-user"),
            Some(("/add-user", false))
        );
        assert_eq!(
            split_path("/minio/kms/v1/key/status"),
            Some(("/key/status", true))
        );
        assert_eq!(split_path("/minio/admin/v33/x"), None);
        assert_eq!(split_path("/minio/health/live"), None);
        assert_eq!(split_path("/bucket/minio/admin/v3"), None);
        let q = HashMap::new();
        assert_eq!(
            action(&Method::PUT, "/add-user", false, &q),
            Some("admin:CreateUser")
        );
        assert_eq!(action(&Method::GET, "/add-user", false, &q), None);
        assert_eq!(
            action(&Method::GET, "/datausageinfo", false, &q),
            Some("admin:DataUsageInfo")
        );
        assert_eq!(
            action(&Method::POST, "/key/create", true, &q),
            Some("kms:CreateKey")
        );
        assert_eq!(
            action(&Method::POST, "/kms/key/create", false, &q),
            Some("kms:CreateKey")
        );
        assert_eq!(
            action(&Method::POST, "/key/rotate", true, &q),
            Some("kms:RotateKey")
        );
        assert_eq!(action(&Method::GET, "/key/rotate", true, &q), None);
        let dis = HashMap::from([("status".to_owned(), "disabled".to_owned())]);
        assert_eq!(
            action(&Method::PUT, "/set-user-status", false, &dis),
            Some("admin:DisableUser")
        );
    }

    #[test]
    fn queries_decode() {
        let q = parse_query(Some("accessKey=a%2Bb&policyName=readonly%2Cdiag&x"));
        assert_eq!(q["accessKey"], "a+b");
        assert_eq!(q["policyName"], "readonly,diag");
        assert_eq!(q["x"], "");
    }
}
