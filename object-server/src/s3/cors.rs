//! CORS as AWS S3 does it: Put/Get/DeleteBucketCors store a bucket's rules (`.cors.json`),
//! preflight `OPTIONS` requests are answered from them without authentication, and every other
//! response to a request with an `Origin` the rules allow for its method carries the
//! `Access-Control-*` headers (error responses and presigned requests included).
//!
//! Guarantees: a bucket without rules (and without `MINIO_API_CORS_ALLOW_ORIGIN`) gets no CORS
//! header at all, so nothing is opened to browsers unless an owner asked for it; bucket rules win
//! over the global list; the first matching rule decides, as in AWS. A stored configuration that
//! cannot be read or parsed allows nothing (a preflight is refused, no header is added).
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use super::{CofferS3, custom_error, storage_err};
use crate::storage::{StorageError, Store};
use crate::vhost::Domains;

/// The bucket configuration file of the CORS rules.
const CONFIG: &str = "cors";
/// Rules a configuration may have (AWS's limit).
const MAX_RULES: usize = 100;
/// The methods a rule may allow.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// The variable of the global list of allowed origins (MinIO's name).
pub const GLOBAL_ORIGINS_VAR: &str = "MINIO_API_CORS_ALLOW_ORIGIN";
/// The response headers the global rule lets browsers read.
const GLOBAL_EXPOSE: [&str; 6] = [
    "ETag",
    "Content-Length",
    "Content-Type",
    "Last-Modified",
    "x-amz-version-id",
    "x-amz-request-id",
];

/// One CORS rule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// Whether `value` matches `pattern`, which has at most one `*` standing for any run of
/// characters (`https://*.example.com`).
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

impl CorsRule {
    /// The allowed-origin pattern that matches `origin` (origins compare exactly, as AWS).
    fn origin_pattern(&self, origin: &str) -> Option<&str> {
        self.allowed_origins
            .iter()
            .find(|p| wildcard_match(p, origin))
            .map(String::as_str)
    }

    fn allows_method(&self, method: &str) -> bool {
        self.allowed_methods.iter().any(|m| m == method)
    }

    /// Header names compare case-insensitively (HTTP header names are).
    fn allows_header(&self, header: &str) -> bool {
        let header = header.to_ascii_lowercase();
        self.allowed_headers
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &header))
    }
}

/// A rule that matched a request, with the origin pattern that matched.
#[derive(Debug, PartialEq)]
pub struct Matched<'a> {
    pub rule: &'a CorsRule,
    /// The `Access-Control-Allow-Origin` value: `*` for a rule whose origin is exactly `*`,
    /// else the request's origin.
    pub allow_origin: String,
}

/// The first rule that allows `origin` to use `method` with every one of `headers`.
pub fn find_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<Matched<'a>> {
    rules.iter().find_map(|rule| {
        let pattern = rule.origin_pattern(origin)?;
        if !rule.allows_method(method) || !headers.iter().all(|h| rule.allows_header(h)) {
            return None;
        }
        Some(Matched {
            rule,
            allow_origin: if pattern == "*" {
                "*".to_owned()
            } else {
                origin.to_owned()
            },
        })
    })
}

/// Checks a PutBucketCors body against AWS's rules and makes it the stored form.
pub fn validate_cors(cfg: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    if cfg.cors_rules.is_empty() || cfg.cors_rules.len() > MAX_RULES {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let mut out = Vec::with_capacity(cfg.cors_rules.len());
    for r in cfg.cors_rules {
        if r.allowed_methods.is_empty() || r.allowed_origins.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        for m in &r.allowed_methods {
            if !METHODS.contains(&m.as_str()) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
        }
        for o in &r.allowed_origins {
            if o.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                ));
            }
        }
        let allowed_headers = r.allowed_headers.unwrap_or_default();
        for h in &allowed_headers {
            if h.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                ));
            }
        }
        if r.max_age_seconds.is_some_and(|s| s < 0) {
            return Err(custom_error(
                "InvalidArgument",
                400,
                "MaxAgeSeconds must not be negative",
            ));
        }
        out.push(CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers,
            expose_headers: r.expose_headers.unwrap_or_default(),
            max_age_seconds: r.max_age_seconds,
        });
    }
    Ok(out)
}

/// Parses `MINIO_API_CORS_ALLOW_ORIGIN`'s comma-separated origins (`None`: no origin listed); an
/// origin with more than one `*` is an error, as in a bucket's rules.
pub fn parse_global_origins(list: &str) -> Result<Option<Vec<String>>, String> {
    let origins: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(o) = origins.iter().find(|o| o.matches('*').count() > 1) {
        return Err(format!(
            "{GLOBAL_ORIGINS_VAR}: origin '{o}' can not have more than one wildcard"
        ));
    }
    Ok(Some(origins).filter(|o| !o.is_empty()))
}

/// The rule `MINIO_API_CORS_ALLOW_ORIGIN`'s origins make for buckets without rules of their own:
/// every S3 method, any request header.
pub fn global_rule(origins: Option<Vec<String>>) -> Option<CorsRule> {
    Some(CorsRule {
        id: None,
        allowed_origins: origins.filter(|o| !o.is_empty())?,
        allowed_methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
        allowed_headers: vec!["*".to_owned()],
        expose_headers: GLOBAL_EXPOSE.iter().map(|h| (*h).to_owned()).collect(),
        max_age_seconds: None,
    })
}

/// Answers preflights and decorates responses; shared by every connection.
pub struct CorsGate {
    store: Store,
    domains: Option<Domains>,
    global: Option<CorsRule>,
}

/// The rules that apply to one request's bucket.
enum Rules {
    /// The bucket's own rules, or the global rule.
    Some(Vec<CorsRule>),
    /// No bucket, no rules, or rules that cannot be read.
    None,
}

/// Headers a decorated response gets, decided before the request is handed on.
pub struct CorsHeaders(Vec<(http::HeaderName, HeaderValue)>);

impl CorsHeaders {
    /// Adds the headers to `resp` (`Vary` is appended to any the response has).
    pub fn apply<B>(self, resp: &mut Response<B>) {
        let h = resp.headers_mut();
        for (name, value) in self.0 {
            if name == http::header::VARY {
                h.append(name, value);
            } else {
                h.insert(name, value);
            }
        }
    }
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// The headers every allowed cross-origin response carries.
fn common_headers(m: &Matched<'_>) -> Vec<(http::HeaderName, HeaderValue)> {
    use http::header::*;
    let mut out = Vec::new();
    if let Some(v) = header_value(&m.allow_origin) {
        out.push((ACCESS_CONTROL_ALLOW_ORIGIN, v));
    }
    if let Some(v) = header_value(&m.rule.allowed_methods.join(", ")) {
        out.push((ACCESS_CONTROL_ALLOW_METHODS, v));
    }
    if !m.rule.expose_headers.is_empty()
        && let Some(v) = header_value(&m.rule.expose_headers.join(", "))
    {
        out.push((ACCESS_CONTROL_EXPOSE_HEADERS, v));
    }
    if let Some(age) = m.rule.max_age_seconds {
        out.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age)));
    }
    if m.allow_origin != "*" {
        out.push((
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    out
}

/// A valid bucket name, so a request path never names a file outside the buckets.
fn is_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !b.starts_with('.')
}

/// AWS's 403 for a refused preflight.
fn refused(message: &str, method: Option<&str>, object: bool) -> Response<s3s::Body> {
    // The method comes from the request: only a plain token is echoed, never markup.
    let method = method
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|m| format!("<Method>{m}</Method>"))
        .unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessForbidden</Code>\
         <Message>{message}</Message>{method}<ResourceType>{}</ResourceType></Error>",
        if object { "OBJECT" } else { "BUCKET" }
    );
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(s3s::Body::from(body))
        .expect("valid response")
}

fn bad_request(message: &str) -> Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>BadRequest</Code>\
         <Message>{message}</Message></Error>"
    );
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(s3s::Body::from(body))
        .expect("valid response")
}

const NOT_ENABLED: &str = "CORSResponse: CORS is not enabled for this bucket.";
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";

impl CorsGate {
    /// `global_origins`: `MINIO_API_CORS_ALLOW_ORIGIN`'s origins, if set.
    pub fn new(
        store: Store,
        domains: Option<Domains>,
        global_origins: Option<Vec<String>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            domains,
            global: global_rule(global_origins),
        })
    }

    /// The bucket a request addresses and whether it names an object.
    fn target(&self, headers: &HeaderMap, uri: &http::Uri) -> Option<(String, bool)> {
        let path = uri.path().trim_start_matches('/');
        if let Some(d) = &self.domains
            && let Some(host) = headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
            && let Some(bucket) = d.bucket_of(host)
        {
            return Some((bucket, !path.is_empty()));
        }
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        Some((bucket.to_owned(), !key.is_empty())).filter(|(b, _)| !b.is_empty())
    }

    async fn rules(&self, bucket: &str) -> Rules {
        if !is_bucket_name(bucket) {
            return Rules::None;
        }
        match self.store.read_bucket_json(bucket, CONFIG).await {
            Ok(Some(rules)) => Rules::Some(rules),
            Err(StorageError::Damaged) => {
                tracing::error!(bucket, "unreadable CORS configuration; allowing nothing");
                Rules::None
            }
            Ok(None) => match &self.global {
                Some(g) => Rules::Some(vec![g.clone()]),
                None => Rules::None,
            },
            // No such bucket (or unreadable): nothing is allowed.
            Err(_) => Rules::None,
        }
    }

    /// Answers a preflight `OPTIONS` request (no authentication, as AWS).
    pub async fn preflight(&self, headers: &HeaderMap, uri: &http::Uri) -> Response<s3s::Body> {
        let text = |n: http::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
        let Some(origin) = text(http::header::ORIGIN) else {
            return bad_request("Insufficient information. Origin request header needed.");
        };
        let Some(method) = text(http::header::ACCESS_CONTROL_REQUEST_METHOD) else {
            return bad_request("Invalid Access-Control-Request-Method: null");
        };
        let requested: Vec<&str> = text(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .map(|h| {
                h.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let Some((bucket, object)) = self.target(headers, uri) else {
            return refused(NOT_ENABLED, Some(method), false);
        };
        let Rules::Some(rules) = self.rules(&bucket).await else {
            return refused(NOT_ENABLED, Some(method), object);
        };
        let Some(m) = find_rule(&rules, origin, method, &requested) else {
            return refused(NOT_ALLOWED, Some(method), object);
        };
        let mut resp = Response::builder()
            .status(StatusCode::OK)
            .body(s3s::Body::empty())
            .expect("valid response");
        let mut out = common_headers(&m);
        if !requested.is_empty()
            && let Some(v) = header_value(&requested.join(", "))
        {
            out.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, v));
        }
        out.push((
            http::header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
            ),
        ));
        CorsHeaders(out).apply(&mut resp);
        resp
    }

    /// The headers the response to an actual (non-preflight) request gets: `None` without an
    /// `Origin`, or when no rule allows the origin for the request's method.
    pub async fn for_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        uri: &http::Uri,
    ) -> Option<CorsHeaders> {
        let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?;
        let (bucket, _) = self.target(headers, uri)?;
        let Rules::Some(rules) = self.rules(&bucket).await else {
            return None;
        };
        let m = find_rule(&rules, origin, method.as_str(), &[])?;
        let mut out = common_headers(&m);
        out.push((http::header::VARY, HeaderValue::from_static("Origin")));
        Some(CorsHeaders(out))
    }
}

fn to_dto(rules: Vec<CorsRule>) -> CORSRules {
    rules
        .into_iter()
        .map(|r| CORSRule {
            allowed_headers: Some(r.allowed_headers).filter(|h| !h.is_empty()),
            allowed_methods: r.allowed_methods,
            allowed_origins: r.allowed_origins,
            expose_headers: Some(r.expose_headers).filter(|h| !h.is_empty()),
            id: r.id,
            max_age_seconds: r.max_age_seconds,
        })
        .collect()
}

impl CofferS3 {
    pub(crate) async fn do_put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        let rules = validate_cors(input.cors_configuration)?;
        self.store
            .write_bucket_json(&input.bucket, CONFIG, &rules)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(crate) async fn do_get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let rules: Option<Vec<CorsRule>> = self
            .store
            .read_bucket_json(&req.input.bucket, CONFIG)
            .await
            .map_err(storage_err)?;
        let Some(rules) = rules else {
            return Err(s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            ));
        };
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(to_dto(rules)),
        }))
    }

    pub(crate) async fn do_delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.store
            .write_bucket_config(&req.input.bucket, CONFIG, None)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            allowed_methods: methods.iter().map(|s| (*s).to_owned()).collect(),
            allowed_headers: headers.iter().map(|s| (*s).to_owned()).collect(),
            expose_headers: vec![],
            max_age_seconds: None,
        }
    }

    #[test]
    fn origin_wildcards_match_one_run_of_characters() {
        assert!(wildcard_match(
            "https://*.example.com",
            "https://a.example.com"
        ));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://a.b.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "http://a.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://a.example.com.evil.net"
        ));
        // Prefix and suffix may not overlap: "ab*ba" does not match "aba".
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("https://x.com", "https://x.com"));
        assert!(!wildcard_match("https://x.com", "https://x.co"));
    }

    #[test]
    fn first_matching_rule_decides_and_star_origin_answers_star() {
        let rules = vec![
            rule(&["https://*.example.com"], &["GET", "PUT"], &["x-amz-*"]),
            rule(&["*"], &["GET"], &[]),
        ];
        let m = find_rule(&rules, "https://app.example.com", "PUT", &["X-Amz-Date"]).unwrap();
        assert_eq!(m.allow_origin, "https://app.example.com");
        assert_eq!(m.rule, &rules[0]);
        // Not allowed by the first rule's headers; the second allows GET without headers only.
        assert!(find_rule(&rules, "https://app.example.com", "PUT", &["content-md5"]).is_none());
        let m = find_rule(&rules, "https://other.net", "GET", &[]).unwrap();
        assert_eq!(m.allow_origin, "*");
        assert_eq!(m.rule, &rules[1]);
        assert!(find_rule(&rules, "https://other.net", "DELETE", &[]).is_none());
        // Methods compare exactly (browsers send them upper-case).
        assert!(find_rule(&rules, "https://other.net", "get", &[]).is_none());
    }

    #[test]
    fn headers_compare_case_insensitively() {
        let rules = vec![rule(&["*"], &["PUT"], &["Content-Type", "X-Custom-*"])];
        assert!(find_rule(&rules, "o", "PUT", &["content-type", "x-custom-a"]).is_some());
        assert!(find_rule(&rules, "o", "PUT", &["CONTENT-TYPE"]).is_some());
        assert!(find_rule(&rules, "o", "PUT", &["content-type", "authorization"]).is_none());
    }

    fn dto(origins: &[&str], methods: &[&str], headers: Option<&[&str]>) -> CORSRule {
        CORSRule {
            allowed_headers: headers.map(|h| h.iter().map(|s| (*s).to_owned()).collect()),
            allowed_methods: methods.iter().map(|s| (*s).to_owned()).collect(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            expose_headers: None,
            id: None,
            max_age_seconds: None,
        }
    }

    fn code(r: S3Result<Vec<CorsRule>>) -> String {
        r.unwrap_err().code().as_str().to_owned()
    }

    #[test]
    fn validation_refuses_as_aws() {
        let cfg = |rules: Vec<CORSRule>| CORSConfiguration { cors_rules: rules };
        assert!(validate_cors(cfg(vec![dto(&["*"], &["GET"], None)])).is_ok());
        assert_eq!(
            code(validate_cors(cfg(vec![dto(&["*"], &["PATCH"], None)]))),
            "InvalidRequest"
        );
        assert_eq!(
            code(validate_cors(cfg(vec![dto(
                &["https://*.*.x"],
                &["GET"],
                None
            )]))),
            "InvalidRequest"
        );
        assert_eq!(
            code(validate_cors(cfg(vec![dto(
                &["*"],
                &["GET"],
                Some(&["a*b*"])
            )]))),
            "InvalidRequest"
        );
        assert_eq!(
            code(validate_cors(cfg(vec![dto(&[], &["GET"], None)]))),
            "MalformedXML"
        );
        assert_eq!(code(validate_cors(cfg(vec![]))), "MalformedXML");
        let hundred = (0..100).map(|_| dto(&["*"], &["GET"], None)).collect();
        assert!(validate_cors(cfg(hundred)).is_ok());
        let too_many = (0..101).map(|_| dto(&["*"], &["GET"], None)).collect();
        assert_eq!(code(validate_cors(cfg(too_many))), "MalformedXML");
    }

    #[test]
    fn global_list_is_a_rule_only_when_set() {
        assert_eq!(global_rule(None), None);
        assert_eq!(parse_global_origins(" , "), Ok(None));
        assert!(parse_global_origins("https://a.com,https://*.*.b.com").is_err());
        let origins = parse_global_origins("https://a.com, https://b.com").unwrap();
        let g = global_rule(origins).unwrap();
        assert_eq!(g.allowed_origins, ["https://a.com", "https://b.com"]);
        let rules = [g];
        assert!(find_rule(&rules, "https://b.com", "DELETE", &["x-anything"]).is_some());
        assert!(find_rule(&rules, "https://c.com", "GET", &[]).is_none());
    }
}
