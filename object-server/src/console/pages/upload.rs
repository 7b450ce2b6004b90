//! Uploads. The script ([`crate::console::assets`]) sends a file as a multipart upload, one
//! part per request (`/api/upload/part`), and shows the bytes sent on a progress bar; each part
//! streams through to UploadPart without being held here. Without the script the form posts the
//! file whole (`/upload/{bucket}`), held in memory up to [`FORM_UPLOAD_LIMIT`].
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::json;

use super::{Refusal, error_page, ok};
use crate::console::csrf;
use crate::console::http_util::{self, Response, json, query_escape, redirect};
use crate::console::router::{Console, Req, Signed};
use crate::console::s3call::{Call, read_body};
use crate::console::xml::{self, InitiateMultipart};

/// The largest file the plain form takes (the script has no limit but S3's).
pub const FORM_UPLOAD_LIMIT: usize = 64 << 20;

fn refused(r: Refusal) -> Response {
    json(r.status, &json!({ "error": r.message }))
}

#[derive(Deserialize)]
struct Start {
    key: String,
    #[serde(default)]
    content_type: String,
}

#[derive(Deserialize)]
struct PartRef {
    number: u32,
    etag: String,
}

#[derive(Deserialize)]
struct Complete {
    key: String,
    upload_id: String,
    parts: Vec<PartRef>,
}

#[derive(Deserialize)]
struct Abort {
    key: String,
    upload_id: String,
}

async fn json_body<T: for<'de> Deserialize<'de>>(req: Req) -> Result<T, Response> {
    let body = http_util::read_limited(req.body, 1 << 20)
        .await
        .ok_or_else(|| {
            json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "The request is too large."}),
            )
        })?;
    serde_json::from_slice(&body).map_err(|e| {
        json(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("Bad request: {e}")}),
        )
    })
}

/// `POST|PUT /api/upload/{start,part,complete,abort}/{bucket}` (the CSRF header was checked).
pub async fn api(console: &Console, signed: &Signed, req: Req, rest: &str) -> Response {
    let Some((step, bucket)) = rest.split_once('/') else {
        return json(StatusCode::NOT_FOUND, &json!({"error": "No such step."}));
    };
    let bucket = bucket.to_owned();
    let peer = req.peer;
    match step {
        "start" => {
            let start: Start = match json_body(req).await {
                Ok(s) => s,
                Err(r) => return r,
            };
            let mut call = Call::object(Method::POST, &bucket, &start.key).query("uploads", "");
            if !start.content_type.is_empty() {
                call = call.header("content-type", start.content_type);
            }
            let doing = format!("upload {}", start.key);
            match super::ok_xml::<InitiateMultipart>(console, signed, peer, &doing, call).await {
                Ok(i) => json(StatusCode::OK, &json!({"upload_id": i.upload_id})),
                Err(r) => refused(r),
            }
        }
        "part" => {
            let (Some(key), Some(upload), Some(part)) =
                (req.param("key"), req.param("upload"), req.param("part"))
            else {
                return json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "key, upload and part are needed."}),
                );
            };
            let (key, upload, part) = (key.to_owned(), upload.to_owned(), part.to_owned());
            let Some(len) = req
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return json(
                    StatusCode::LENGTH_REQUIRED,
                    &json!({"error": "A part needs its length."}),
                );
            };
            let call = Call::object(Method::PUT, &bucket, &key)
                .query("partNumber", part)
                .query("uploadId", upload)
                .stream(s3s::Body::from(req.body), len);
            match ok(console, signed, peer, &format!("upload {key}"), call).await {
                Ok(a) => {
                    let etag = a
                        .headers()
                        .get(header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    json(StatusCode::OK, &json!({"etag": etag}))
                }
                Err(r) => refused(r),
            }
        }
        "complete" => {
            let c: Complete = match json_body(req).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            let parts: Vec<(u32, String)> =
                c.parts.into_iter().map(|p| (p.number, p.etag)).collect();
            let call = Call::object(Method::POST, &bucket, &c.key)
                .query("uploadId", c.upload_id)
                .body(Bytes::from(xml::complete_multipart(&parts)));
            let doing = format!("upload {}", c.key);
            let answer = match ok(console, signed, peer, &doing, call).await {
                Ok(a) => a,
                Err(r) => return refused(r),
            };
            // CompleteMultipartUpload may fail after its 200 (an error document in the body).
            match read_body(answer, 64 * 1024).await {
                Ok((_, body)) if !String::from_utf8_lossy(&body).contains("<Error>") => {
                    let folder = c
                        .key
                        .rsplit_once('/')
                        .map(|(p, _)| format!("{p}/"))
                        .unwrap_or_default();
                    let href = format!(
                        "/b/{bucket}?prefix={}&uploaded={}",
                        query_escape(&folder),
                        query_escape(&c.key)
                    );
                    json(StatusCode::OK, &json!({"href": href}))
                }
                Ok((_, body)) => {
                    let e = xml::parse::<xml::S3ErrorDoc>(&body).unwrap_or_default();
                    json(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": format!("Could not upload {}: {} ({}).", c.key, e.message, e.code)}),
                    )
                }
                Err(e) => refused(Refusal::internal(e)),
            }
        }
        "abort" => {
            let a: Abort = match json_body(req).await {
                Ok(a) => a,
                Err(r) => return r,
            };
            let call = Call::object(Method::DELETE, &bucket, &a.key).query("uploadId", a.upload_id);
            match ok(
                console,
                signed,
                peer,
                &format!("abort the upload of {}", a.key),
                call,
            )
            .await
            {
                Ok(_) => json(StatusCode::OK, &json!({})),
                Err(r) => refused(r),
            }
        }
        _ => json(StatusCode::NOT_FOUND, &json!({"error": "No such step."})),
    }
}

/// `POST /upload/{bucket}` (multipart/form-data: `csrf` first, `prefix`, `file`).
pub async fn form_upload(console: &Console, signed: &Signed, req: Req, bucket: &str) -> Response {
    let peer: SocketAddr = req.peer;
    let boundary = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        return http_util::text(
            StatusCode::BAD_REQUEST,
            "Expected a multipart/form-data upload.",
        );
    };
    // Bounded, so that a refused form's rest is not read without limit.
    let whole = (FORM_UPLOAD_LIMIT + http_util::DRAIN_LIMIT) as u64;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole));
    let mut form =
        multer::Multipart::with_constraints(req.body.into_data_stream(), boundary, constraints);
    let mut token_ok = false;
    let mut prefix = String::new();
    loop {
        let mut fieldv = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return http_util::text(
                    StatusCode::BAD_REQUEST,
                    &format!("The upload form is malformed: {e}"),
                );
            }
        };
        match fieldv.name() {
            Some("csrf") => {
                let v = fieldv.text().await.unwrap_or_default();
                token_ok = csrf::matches(&signed.session.csrf, Some(&v));
            }
            Some("prefix") => prefix = fieldv.text().await.unwrap_or_default(),
            Some("file") => {
                if !token_ok {
                    // The refusal is sent once the rest is read (see `http_util::drain`).
                    drop(fieldv);
                    while let Ok(Some(_)) = form.next_field().await {}
                    break;
                }
                let name = fieldv.file_name().unwrap_or("").to_owned();
                if name.is_empty() {
                    return http_util::text(StatusCode::BAD_REQUEST, "Choose a file to upload.");
                }
                let content_type = fieldv.content_type().map(|m| m.to_string());
                let mut data = Vec::new();
                loop {
                    match fieldv.chunk().await {
                        Ok(Some(c)) => {
                            if data.len() + c.len() > FORM_UPLOAD_LIMIT {
                                return http_util::text(
                                    StatusCode::PAYLOAD_TOO_LARGE,
                                    "The file is too large for the plain form; use a browser with JavaScript on (it uploads in parts).",
                                );
                            }
                            data.extend_from_slice(&c);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            return http_util::text(
                                StatusCode::BAD_REQUEST,
                                &format!("The upload was cut short: {e}"),
                            );
                        }
                    }
                }
                let key = format!("{prefix}{name}");
                let mut call = Call::object(Method::PUT, bucket, &key).body(Bytes::from(data));
                if let Some(ct) = content_type {
                    call = call.header("content-type", ct);
                }
                return match ok(console, signed, peer, &format!("upload {key}"), call).await {
                    Ok(_) => redirect(&format!(
                        "/b/{bucket}?prefix={}&uploaded={}",
                        query_escape(&prefix),
                        query_escape(&key)
                    )),
                    Err(r) => error_page(signed, r),
                };
            }
            _ => {}
        }
    }
    if !token_ok {
        return http_util::text(
            StatusCode::FORBIDDEN,
            "The form has no valid CSRF token; nothing was changed. Reload the page and try again.",
        );
    }
    http_util::text(StatusCode::BAD_REQUEST, "Choose a file to upload.")
}
