//! One object: its details (HeadObject), its bytes (GetObject, streamed through), deleting it
//! or one of its versions. Encryption shows the mode, the KMS key's name and the key version the
//! object's data key is sealed under (the version its KMS ciphertext names); the sealed key and
//! the KMS ciphertext stay on the server. Its tags ([`super::object_tags`]) and its retention and
//! legal hold ([`super::object_lock`]) are shown and changed on the same page.
use std::net::SocketAddr;

use askama::Template;
use http::{HeaderValue, Method, StatusCode, header};

use super::object_lock::{self, LockState};
use super::object_tags;
use super::{Frame, error_page, ok, render};
use crate::console::http_util::{Response, field, query_escape, redirect};
use crate::console::router::{Console, Req, Signed};
use crate::console::s3call::Call;

/// An object's encryption as the console shows it.
#[derive(Debug, Clone, Default)]
pub struct Encryption {
    /// `SSE-S3`, `SSE-KMS`, `SSE-C`, `none`, or `unknown` when the object could not be read.
    pub mode: String,
    /// The KMS key's name (SSE-S3, SSE-KMS).
    pub key: Option<String>,
    /// What protects the data key: `version N` of the KMS key, or the S3 Bucket Key it is
    /// sealed under (whose own version is the bucket key's).
    pub key_version: Option<String>,
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{} (key {k})", self.mode),
            None => f.write_str(&self.mode),
        }
    }
}

fn head_call(bucket: &str, key: &str, version: Option<&str>) -> Call {
    Call::object(Method::HEAD, bucket, key).query_opt("versionId", version)
}

fn header_str<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The encryption from a HEAD's headers; the KMS key name of an SSE-S3 object (which S3 does
/// not send) from the object's metadata, read only after the HEAD was allowed.
async fn encryption(
    console: &Console,
    headers: &http::HeaderMap,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Encryption {
    let mode = match header_str(headers, "x-amz-server-side-encryption") {
        Some("AES256") => "SSE-S3",
        Some("aws:kms") => "SSE-KMS",
        _ if headers.contains_key("x-amz-server-side-encryption-customer-algorithm") => "SSE-C",
        _ => "none",
    };
    let mut key_name = header_str(headers, "x-amz-server-side-encryption-aws-kms-key-id")
        .map(|k| crate::sse::headers::kms_key_name(k).to_owned());
    let mut key_version = None;
    if mode == "SSE-S3" || mode == "SSE-KMS" {
        let meta = match (&console.engine, version) {
            // The gateway's engine has no versions: a HEAD naming one was refused already.
            (Some(engine), _) => engine.open_object(bucket, key).await.ok().map(|o| o.meta),
            (None, Some(v)) => console
                .store
                .open_version(bucket, key, v)
                .await
                .ok()
                .map(|o| o.meta),
            (None, None) => console
                .store
                .open_latest(bucket, key)
                .await
                .ok()
                .map(|o| o.meta),
        };
        let encryption = meta.and_then(|m| m.encryption);
        if let Some(e) = &encryption {
            key_version = protected_by(e);
        }
        if key_name.is_none() {
            key_name = encryption.and_then(|e| e.kms_key);
        }
    }
    Encryption {
        mode: mode.to_owned(),
        key: key_name,
        key_version,
    }
}

/// What the object's data key is sealed under, said without key material.
fn protected_by(e: &crate::storage::meta::EncryptionMeta) -> Option<String> {
    use base64::Engine as _;
    if let Some(id) = &e.bucket_key {
        return Some(format!("S3 Bucket Key {id}"));
    }
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(e.kms_ciphertext.as_deref()?)
        .ok()?;
    Some(format!(
        "version {}",
        crate::kms::ciphertext_version(&ciphertext)
    ))
}

/// The encryption of one object as the signed-in user may see it.
pub async fn encryption_of(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Encryption {
    match ok(
        console,
        signed,
        peer,
        "read the object",
        head_call(bucket, key, version),
    )
    .await
    {
        Ok(a) => encryption(console, a.headers(), bucket, key, version).await,
        Err(_) => Encryption {
            mode: "unknown".into(),
            key: None,
            key_version: None,
        },
    }
}

#[derive(Template)]
#[template(path = "console/object.html")]
struct ObjectPage {
    frame: Frame,
    bucket: String,
    key: String,
    version: String,
    size: String,
    etag: String,
    content_type: String,
    modified: String,
    encryption: Encryption,
    metadata: Vec<(String, String)>,
    download: String,
    versions_href: String,
    folder_href: String,
    /// The version the page was asked for (empty: the latest), for its forms.
    asked_version: String,
    /// The tags, `None` when the user may not read them.
    tags: Option<Vec<(String, String)>>,
    tags_text: String,
    /// Retention and legal hold, `None` when the bucket has no object lock.
    lock: Option<LockState>,
}

/// What a change on the object page reports when it is done (`done=`).
fn done_message(done: &str) -> Option<&'static str> {
    Some(match done {
        "tags" => "Tags saved.",
        "retention" => "Retention saved.",
        "legal-hold" => "Legal hold saved.",
        _ => return None,
    })
}

/// The object page's address after a change.
pub fn page_href(bucket: &str, key: &str, version: Option<&str>, done: &str) -> String {
    let mut href = format!("/object/{bucket}?key={}", query_escape(key));
    if let Some(v) = version {
        href.push_str(&format!("&version={}", query_escape(v)));
    }
    href.push_str(&format!("&done={done}"));
    href
}

/// `GET /object/{bucket}?key=&version=`.
pub async fn details(console: &Console, signed: &Signed, req: &Req, bucket: &str) -> Response {
    let key = req.param("key").unwrap_or("");
    let version = req.param("version").filter(|v| !v.is_empty());
    let mut frame = Frame::new(signed);
    frame.notice = req.param("done").and_then(done_message).map(str::to_owned);
    show(
        console,
        signed,
        req.peer,
        bucket,
        key,
        version,
        frame,
        StatusCode::OK,
    )
    .await
}

/// The object page, with `frame`'s message (a refused change answers with its `status`).
#[allow(clippy::too_many_arguments)]
pub async fn show(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    mut frame: Frame,
    status: StatusCode,
) -> Response {
    let doing = format!("read {key}");
    let answer = match ok(
        console,
        signed,
        peer,
        &doing,
        head_call(bucket, key, version),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return error_page(signed, r),
    };
    let h = answer.headers();
    let get = |n: &str| header_str(h, n).unwrap_or("").to_owned();
    let metadata = h
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().strip_prefix("x-amz-meta-")?.to_owned(),
                v.to_str().ok()?.to_owned(),
            ))
        })
        .collect();
    let q = match version {
        Some(v) => format!("key={}&version={}", query_escape(key), query_escape(v)),
        None => format!("key={}", query_escape(key)),
    };
    let folder = key
        .rsplit_once('/')
        .map(|(p, _)| format!("{p}/"))
        .unwrap_or_default();
    let tags = match object_tags::read(console, signed, peer, bucket, key, version).await {
        Ok(t) => Some(t),
        Err(r) => {
            frame.error.get_or_insert(r.message);
            None
        }
    };
    let lock = match object_lock::read(console, signed, peer, bucket, key, version).await {
        Ok(l) => l,
        Err(r) => {
            frame.error.get_or_insert(r.message);
            None
        }
    };
    let page = ObjectPage {
        size: get("content-length"),
        etag: get("etag"),
        content_type: get("content-type"),
        modified: get("last-modified"),
        version: get("x-amz-version-id"),
        metadata,
        encryption: encryption(console, h, bucket, key, version).await,
        download: format!("/download/{bucket}?{q}"),
        versions_href: format!("/versions/{bucket}?prefix={}", query_escape(key)),
        folder_href: format!("/b/{bucket}?prefix={}", query_escape(&folder)),
        asked_version: version.unwrap_or("").to_owned(),
        tags_text: tags
            .as_deref()
            .map(object_tags::as_text)
            .unwrap_or_default(),
        tags,
        lock,
        frame,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    render(status, &page)
}

/// `GET /download/{bucket}?key=&version=`: the bytes, streamed, as an attachment (never rendered
/// on the console's origin).
pub async fn download(console: &Console, signed: &Signed, req: &Req, bucket: &str) -> Response {
    let key = req.param("key").unwrap_or("").to_owned();
    let version = req.param("version").filter(|v| !v.is_empty());
    let call = Call::object(Method::GET, bucket, &key).query_opt("versionId", version);
    let answer = match ok(console, signed, req.peer, &format!("download {key}"), call).await {
        Ok(a) => a,
        Err(r) => return error_page(signed, r),
    };
    let length = answer.headers().get(header::CONTENT_LENGTH).cloned();
    let name = key.rsplit('/').next().unwrap_or(&key);
    let mut resp = crate::console::http_util::respond(
        StatusCode::OK,
        "application/octet-stream",
        answer.into_body(),
    );
    let h = resp.headers_mut();
    if let Some(l) = length {
        h.insert(header::CONTENT_LENGTH, l);
    }
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `POST /delete/{bucket}`: `key`, `version` (a version removed for good; without it, a
/// versioned bucket gets a delete marker).
pub async fn delete(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Response {
    let key = field(form, "key").unwrap_or("").to_owned();
    let version = field(form, "version").filter(|v| !v.is_empty());
    let call = Call::object(Method::DELETE, bucket, &key).query_opt("versionId", version);
    if let Err(r) = ok(console, signed, peer, &format!("delete {key}"), call).await {
        return error_page(signed, r);
    }
    match version {
        Some(_) => redirect(&format!("/versions/{bucket}?prefix={}", query_escape(&key))),
        None => {
            let folder = key
                .rsplit_once('/')
                .map(|(p, _)| format!("{p}/"))
                .unwrap_or_default();
            redirect(&format!(
                "/b/{bucket}?prefix={}&deleted={}",
                query_escape(&folder),
                query_escape(&key)
            ))
        }
    }
}
