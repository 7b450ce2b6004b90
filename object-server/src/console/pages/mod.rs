//! The pages: one file per family (sign-in, buckets, objects, one object, uploads, server).
//! Each turns a request into S3 calls ([`super::s3call`]) and renders an askama template.
//!
//! Routes (a key is always a query parameter, never a path segment, so any key round-trips):
//! `GET /buckets` · `POST /buckets` (create) · `POST /buckets/delete` · `GET /b/{bucket}`
//! (`prefix`, `token`) · `GET /versions/{bucket}` (`prefix`, `key-marker`, `version-marker`) ·
//! `GET /object/{bucket}` (`key`, `version`) · `GET /download/{bucket}` · `POST /delete/{bucket}`
//! · `GET /settings/{bucket}` · `POST /settings/{bucket}` (`do`: the change)
//! · `POST /object-tags/{bucket}` · `POST /object-lock/{bucket}`
//! · `POST /upload/{bucket}` (the form) · `POST /api/upload/{start,part,complete,abort}/{bucket}`
//! (the script) · `GET /users` · `POST /users` (`do`: the change) · `GET /kms` · `POST /kms` (`do`: create or rotate) · `GET /server` · `POST /logout`.
use askama::Template;
use http::{Method, StatusCode};

use super::http_util::{self, Response, redirect};
use super::router::{Console, Req, Signed};
use super::s3call::{Answer, Call, read_body};
use super::xml::{self, S3ErrorDoc};
use super::{csrf, session};

pub mod bucket_lifecycle;
pub mod bucket_policy;
pub mod bucket_settings;
pub mod buckets;
pub mod kms;
pub mod login;
pub mod object;
pub mod object_lock;
pub mod object_tags;
pub mod objects;
pub mod server;
pub mod upload;
pub mod user_changes;
pub mod users;

/// What every signed-in page shows around its content.
pub struct Frame {
    /// The signed-in user.
    pub user: String,
    /// The CSRF token for the page's forms.
    pub csrf: String,
    /// A success message.
    pub notice: Option<String>,
    /// A refusal or failure, said plainly.
    pub error: Option<String>,
}

impl Frame {
    fn new(signed: &Signed) -> Self {
        Frame {
            user: signed.session.user().to_owned(),
            csrf: signed.session.csrf.clone(),
            notice: None,
            error: None,
        }
    }
}

/// A size for people: `512 B`, `20.0 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A refused or failed S3 call, as the page says it.
#[derive(Debug)]
pub struct Refusal {
    /// The status the page answers with.
    pub status: StatusCode,
    /// The message.
    pub message: String,
    /// The S3 error code (empty when the refusal is the console's own).
    pub code: String,
}

impl Refusal {
    fn internal(e: anyhow::Error) -> Self {
        tracing::error!(error = %e, "console request failed");
        Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "The server could not complete the request; see its log.".to_owned(),
            code: String::new(),
        }
    }

    /// Bad input caught before anything was sent: a 400 saying what to fix.
    pub fn input(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            code: String::new(),
        }
    }
}

/// A setting the bucket may not have: `None` when S3 answers with the code `absent` (such as
/// `NoSuchLifecycleConfiguration`), the refusal for any other failure.
pub fn absent_as_none<T>(r: Result<T, Refusal>, absent: &[&str]) -> Result<Option<T>, Refusal> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if absent.contains(&e.code.as_str()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The message for an S3 refusal of `doing` (e.g. "create bucket x").
fn refusal(doing: &str, status: StatusCode, e: &S3ErrorDoc) -> Refusal {
    let why = match e.code.as_str() {
        // An IAM or bucket-policy refusal says only "Access Denied."; any other (object lock's
        // "WORM protected") is S3's own reason, shown as it is.
        "AccessDenied" if matches!(e.message.as_str(), "" | "Access Denied.") => {
            "your policies do not allow it".to_owned()
        }
        "NoSuchBucket" => "the bucket does not exist".to_owned(),
        "NoSuchKey" | "NoSuchVersion" => "the object does not exist".to_owned(),
        "BucketAlreadyOwnedByYou" | "BucketAlreadyExists" => "the bucket already exists".to_owned(),
        "BucketNotEmpty" => "the bucket is not empty".to_owned(),
        "InvalidBucketName" => "the name is not a valid bucket name (3 to 63 lower-case letters, digits, dots and hyphens)".to_owned(),
        _ if !e.message.is_empty() => e.message.clone(),
        _ => format!("the server answered {status}"),
    };
    let code = if e.code.is_empty() {
        status.as_str().to_owned()
    } else {
        e.code.clone()
    };
    Refusal {
        status: if status.is_client_error() || status.is_server_error() {
            status
        } else {
            StatusCode::BAD_GATEWAY
        },
        message: format!("Could not {doing}: {why} ({code})."),
        code: e.code.clone(),
    }
}

/// Sends `call` and returns the answer when it succeeded; a refusal otherwise.
pub async fn ok(
    console: &Console,
    signed: &Signed,
    peer: std::net::SocketAddr,
    doing: &str,
    call: Call,
) -> Result<Answer, Refusal> {
    let answer = console
        .s3
        .send(&signed.session.creds, peer, call)
        .await
        .map_err(Refusal::internal)?;
    if answer.status().is_success() {
        return Ok(answer);
    }
    let (status, body) = read_body(answer, 64 * 1024)
        .await
        .map_err(Refusal::internal)?;
    let doc = xml::parse::<S3ErrorDoc>(&body).unwrap_or_default();
    Err(refusal(doing, status, &doc))
}

/// Sends `call` and parses its XML answer as `T`.
pub async fn ok_xml<T: for<'de> serde::Deserialize<'de>>(
    console: &Console,
    signed: &Signed,
    peer: std::net::SocketAddr,
    doing: &str,
    call: Call,
) -> Result<T, Refusal> {
    let answer = ok(console, signed, peer, doing, call).await?;
    let (_, body) = read_body(answer, 16 << 20)
        .await
        .map_err(Refusal::internal)?;
    xml::parse(&body).map_err(Refusal::internal)
}

/// Sends `call` and reads its (small) answer body.
pub async fn ok_bytes(
    console: &Console,
    signed: &Signed,
    peer: std::net::SocketAddr,
    doing: &str,
    call: Call,
) -> Result<bytes::Bytes, Refusal> {
    let answer = ok(console, signed, peer, doing, call).await?;
    let (_, body) = read_body(answer, 4 << 20)
        .await
        .map_err(Refusal::internal)?;
    Ok(body)
}

/// Sends `call` and parses its answer as the S3 document `T` (s3s's own types, so a
/// configuration read here is written back whole).
pub async fn ok_dto<T: for<'x> s3s::xml::Deserialize<'x>>(
    console: &Console,
    signed: &Signed,
    peer: std::net::SocketAddr,
    doing: &str,
    call: Call,
) -> Result<T, Refusal> {
    let body = ok_bytes(console, signed, peer, doing, call).await?;
    xml::dto(&body).map_err(Refusal::internal)
}

/// Renders a template, or a plain 500 if it fails.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => http_util::html(status, html),
        Err(e) => {
            tracing::error!(error = %e, "console template");
            http_util::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
        }
    }
}

/// The page of a refusal with no better place to show it.
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    frame: Frame,
}

pub fn error_page(signed: &Signed, r: Refusal) -> Response {
    let mut frame = Frame::new(signed);
    frame.error = Some(r.message);
    render(r.status, &ErrorPage { frame })
}

/// Reads a urlencoded form and checks its `csrf` field; `Err` is the answer to send.
pub async fn form(
    signed: &Signed,
    req: Req,
) -> Result<(Vec<(String, String)>, std::net::SocketAddr), Response> {
    let peer = req.peer;
    let Some(body) = http_util::read_limited(req.body, http_util::FORM_LIMIT).await else {
        return Err(http_util::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large.",
        ));
    };
    let pairs = http_util::pairs(&body);
    if !csrf::matches(&signed.session.csrf, http_util::field(&pairs, "csrf")) {
        return Err(http_util::text(
            StatusCode::FORBIDDEN,
            "The form has no valid CSRF token; nothing was changed. Reload the page and try again.",
        ));
    }
    Ok((pairs, peer))
}

/// The bucket named by the rest of a path (`/b/{bucket}`): the S3 service judges the name.
fn bucket_of<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let b = path.strip_prefix(prefix)?;
    (!b.is_empty() && !b.contains('/')).then_some(b)
}

/// Dispatches a signed-in request.
pub async fn route(console: &Console, signed: Signed, req: Req) -> Response {
    let path = req.path.clone();
    let m = req.method.clone();
    let get = m == Method::GET || m == Method::HEAD;
    if get {
        if path == "/" {
            return redirect("/buckets");
        }
        if path == "/buckets" {
            return buckets::list(console, &signed, &req, Frame::new(&signed)).await;
        }
        if path == "/users" {
            return users::page(console, &signed, &req).await;
        }
        if path == "/kms" {
            return kms::page(console, &signed, &req).await;
        }
        if path == "/server" {
            return server::page(console, &signed, Frame::new(&signed)).await;
        }
        if let Some(b) = bucket_of(&path, "/b/") {
            return objects::browse(console, &signed, &req, b).await;
        }
        if let Some(b) = bucket_of(&path, "/settings/") {
            return bucket_settings::page(console, &signed, &req, b).await;
        }
        if let Some(b) = bucket_of(&path, "/versions/") {
            return objects::versions(console, &signed, &req, b).await;
        }
        if let Some(b) = bucket_of(&path, "/object/") {
            return object::details(console, &signed, &req, b).await;
        }
        if let Some(b) = bucket_of(&path, "/download/") {
            return object::download(console, &signed, &req, b).await;
        }
    } else if m == Method::POST || m == Method::PUT {
        if let Some(rest) = path.strip_prefix("/api/upload/") {
            return upload::api(console, &signed, req, rest).await;
        }
        if let Some(b) = bucket_of(&path, "/upload/") {
            return upload::form_upload(console, &signed, req, b).await;
        }
        let (form, peer) = match form(&signed, req).await {
            Ok(f) => f,
            Err(resp) => return resp,
        };
        if path == "/logout" {
            console.sessions.remove(&signed.id);
            return http_util::with_cookie(
                redirect("/login"),
                &session::set_cookie(session::COOKIE, "", std::time::Duration::ZERO, console.tls),
            );
        }
        if path == "/buckets" {
            return buckets::create(console, &signed, peer, &form).await;
        }
        if path == "/kms" {
            return kms::submit(console, &signed, peer, &form).await;
        }
        if path == "/users" {
            return users::submit(console, &signed, peer, &form).await;
        }
        if path == "/buckets/delete" {
            return buckets::delete(console, &signed, peer, &form).await;
        }
        if let Some(b) = bucket_of(&path, "/delete/") {
            return object::delete(console, &signed, peer, &form, b).await;
        }
        if let Some(b) = bucket_of(&path, "/settings/") {
            return bucket_settings::change(console, &signed, peer, &form, b).await;
        }
        if let Some(b) = bucket_of(&path, "/object-tags/") {
            return object_tags::save(console, &signed, peer, &form, b).await;
        }
        if let Some(b) = bucket_of(&path, "/object-lock/") {
            return object_lock::save(console, &signed, peer, &form, b).await;
        }
    }
    http_util::text(StatusCode::NOT_FOUND, "No such page.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(20 << 20), "20.0 MiB");
        assert_eq!(human_size(1536), "1.5 KiB");
    }

    #[test]
    fn refusals_say_what_and_why() {
        let e = S3ErrorDoc {
            code: "AccessDenied".into(),
            message: "Access Denied.".into(),
        };
        let r = refusal("create bucket x", StatusCode::FORBIDDEN, &e);
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(
            r.message,
            "Could not create bucket x: your policies do not allow it (AccessDenied)."
        );
        let r = refusal(
            "list",
            StatusCode::SERVICE_UNAVAILABLE,
            &S3ErrorDoc::default(),
        );
        assert!(r.message.contains("503"), "{}", r.message);
        assert_eq!(bucket_of("/b/photos", "/b/"), Some("photos"));
        assert_eq!(bucket_of("/b/", "/b/"), None);
        assert_eq!(bucket_of("/b/a/b", "/b/"), None);
    }
}
