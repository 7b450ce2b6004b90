//! KMS keys, as `mc admin kms key list|status|create` show and make them, and rotated: MinIO's
//! KMS API routes (`/minio/kms/v1/...`, and Coffer's `key/rotate`) called in-process with the
//! signed-in user's keys, so `kms:ListKeys`, `kms:KeyStatus`, `kms:CreateKey`, `kms:RotateKey`
//! and `kms:Status` decide. A key's status is the server's round trip (a data key generated and
//! decrypted again); only names, states and version numbers reach the page, never key
//! material. A change that succeeded is answered with a redirect to the page (Post/Redirect/Get:
//! a reload does not repeat it); a refusal is shown at once.
use std::net::SocketAddr;

use askama::Template;
use http::{Method, StatusCode};
use serde_json::Value;

use super::{Frame, Refusal, ok, ok_bytes, render};
use crate::console::http_util::{Response, field, query_escape, redirect};
use crate::console::router::{Console, Req, Signed};
use crate::console::s3call::Call;

const KMS: &str = "/minio/kms/v1";

/// Most keys whose status one page load checks (each is a KMS round trip).
const MAX_STATUS_CHECKS: usize = 25;

struct KeyRow {
    name: String,
    /// `OK`, the failure, or empty when not checked.
    status: String,
}

#[derive(Template)]
#[template(path = "console/kms.html")]
struct KmsPage {
    frame: Frame,
    /// The KMS as the server describes it, its default key and whether it is reachable.
    kms: Option<(String, String, bool)>,
    keys: Option<Vec<KeyRow>>,
    more: usize,
}

async fn kms_json(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    doing: &str,
    call: Call,
) -> Result<Value, Refusal> {
    let body = ok_bytes(console, signed, peer, doing, call).await?;
    serde_json::from_slice(&body).map_err(|e| Refusal::internal(e.into()))
}

fn key_status(v: &Value) -> String {
    let failure = v["encryption-error"]
        .as_str()
        .or_else(|| v["decryption-error"].as_str());
    match failure {
        Some(e) => format!("failing: {e}"),
        None => "OK".to_owned(),
    }
}

/// `GET /kms`; `done` (with `key`, `version`) names the change the redirect reports.
pub async fn page(console: &Console, signed: &Signed, req: &Req) -> Response {
    let mut frame = Frame::new(signed);
    let key = req.param("key").unwrap_or("");
    frame.notice = match (req.param("done"), req.param("version")) {
        (Some("created"), _) if !key.is_empty() => Some(format!("Key {key} created.")),
        (Some("rotated"), Some(v)) if !key.is_empty() && v.parse::<u32>().is_ok() => Some(format!(
            "Key {key} rotated: new data keys are made under its version {v}; objects under older versions still decrypt."
        )),
        _ => None,
    };
    show(console, signed, req.peer, frame, StatusCode::OK).await
}

async fn show(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    mut frame: Frame,
    status: StatusCode,
) -> Response {
    let kms = match kms_json(
        console,
        signed,
        peer,
        "read the KMS status",
        Call::admin(Method::GET, &format!("{KMS}/status")),
    )
    .await
    {
        Ok(v) => Some((
            v["name"].as_str().unwrap_or("").to_owned(),
            v["defaultKeyID"].as_str().unwrap_or("").to_owned(),
            v["state"]["keyStoreReachable"].as_bool().unwrap_or(false),
        )),
        Err(r) => {
            frame.error.get_or_insert(r.message);
            None
        }
    };
    let list = kms_json(
        console,
        signed,
        peer,
        "list the KMS keys",
        Call::admin(Method::GET, &format!("{KMS}/key/list")).query("pattern", "*"),
    )
    .await;
    let mut more = 0;
    let keys = match list {
        Ok(Value::Array(entries)) => {
            let mut names: Vec<String> = entries
                .iter()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            more = names.len().saturating_sub(MAX_STATUS_CHECKS);
            let mut rows = Vec::new();
            for (i, name) in names.into_iter().enumerate() {
                let status = if i < MAX_STATUS_CHECKS {
                    let call = Call::admin(Method::GET, &format!("{KMS}/key/status"))
                        .query("key-id", name.as_str());
                    match kms_json(console, signed, peer, "check the key", call).await {
                        Ok(v) => key_status(&v),
                        Err(r) => r.message,
                    }
                } else {
                    String::new()
                };
                rows.push(KeyRow { name, status });
            }
            Some(rows)
        }
        Ok(_) => Some(Vec::new()),
        Err(r) => {
            frame.error.get_or_insert(r.message);
            None
        }
    };
    render(
        status,
        &KmsPage {
            frame,
            kms,
            keys,
            more,
        },
    )
}

/// `POST /kms`: `do` is `create` (a new key `name`) or `rotate` (a new version of key `name`).
pub async fn submit(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
) -> Response {
    let name = field(form, "name").unwrap_or("").trim();
    let result = match (field(form, "do").unwrap_or("create"), name) {
        (_, "") => Err(Refusal::input("Enter a key name; nothing was changed.")),
        ("create", _) => {
            let call =
                Call::admin(Method::POST, &format!("{KMS}/key/create")).query("key-id", name);
            ok(console, signed, peer, &format!("create key {name}"), call)
                .await
                .map(|_| format!("/kms?done=created&key={}", query_escape(name)))
        }
        ("rotate", _) => {
            let call =
                Call::admin(Method::POST, &format!("{KMS}/key/rotate")).query("key-id", name);
            match kms_json(console, signed, peer, &format!("rotate key {name}"), call).await {
                Ok(v) => match v["version"].as_u64() {
                    Some(version) => Ok(format!(
                        "/kms?done=rotated&key={}&version={version}",
                        query_escape(name)
                    )),
                    None => Err(Refusal::internal(anyhow::anyhow!(
                        "the rotate answer has no version"
                    ))),
                },
                Err(r) => Err(r),
            }
        }
        _ => Err(Refusal::input("Unknown change.")),
    };
    match result {
        Ok(to) => redirect(&to),
        Err(r) => {
            let mut frame = Frame::new(signed);
            let status = r.status;
            frame.error = Some(r.message);
            show(console, signed, peer, frame, status).await
        }
    }
}
