//! Responses and request bodies of the console: HTML with the security headers every page
//! gets, redirects, small form bodies read with a limit.
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt as _;

/// A console response.
pub type Response = http::Response<s3s::Body>;

/// The most bytes a form body (not an upload) may have.
pub const FORM_LIMIT: usize = 64 * 1024;

/// Headers every console response gets: only our own scripts and styles, no framing (no
/// clickjacking), no sniffing, no referrer (a URL names buckets and keys), nothing cached.
fn secure(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Any response, with the security headers.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<s3s::Body>,
) -> Response {
    let mut resp = http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("valid response");
    secure(&mut resp);
    resp
}

/// An HTML page.
pub fn html(status: StatusCode, page: String) -> Response {
    respond(status, "text/html; charset=utf-8", page)
}

/// A JSON answer (the upload script's).
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    respond(status, "application/json", value.to_string())
}

/// `303 See Other` to a path of the console.
pub fn redirect(to: &str) -> Response {
    let mut resp = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Adds a `Set-Cookie`.
pub fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A plain-text error.
pub fn text(status: StatusCode, message: &str) -> Response {
    respond(status, "text/plain; charset=utf-8", message.to_owned())
}

/// The decoded pairs of a query string or urlencoded body.
pub fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// The first value of `name` in `pairs`.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads a body of at most `limit` bytes (`None`: larger, or the client went away).
pub async fn read_limited<B>(body: B, limit: usize) -> Option<Bytes>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limited = http_body_util::Limited::new(body, limit);
    limited.collect().await.ok().map(|c| c.to_bytes())
}

/// How much of a refused request's body [`drain`] reads, and for how long.
pub const DRAIN_LIMIT: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and discards what is left of a body that is answered without being read (a refusal),
/// up to [`DRAIN_LIMIT`] bytes and a few seconds. A connection closed with request bytes still
/// unread is reset by the kernel (RST), and the client may then see "connection reset" instead
/// of the refusal it was sent; draining lets the answer arrive. A larger body is left to that
/// reset: reading it all would let anyone make the server read without limit.
pub async fn drain<B>(body: B)
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = http_body_util::Limited::new(body, DRAIN_LIMIT);
    let read_all = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(DRAIN_TIME, read_all).await;
}

/// `s` for an HTML attribute or a URL query value.
pub fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
