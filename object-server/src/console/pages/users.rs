//! Users and policies, as `mc admin user list` and `mc admin policy list` show them: the
//! admin API called in-process with the signed-in user's keys (so `admin:ListUsers` and
//! `admin:ListUserPolicies` decide), its encrypted answer opened with the same secret key, as
//! madmin does. Secret keys are never part of the answer. Changes: [`super::user_changes`].
use std::collections::BTreeMap;

use askama::Template;
use http::{Method, StatusCode};

use super::{Frame, Refusal, ok, render, user_changes};
use crate::console::http_util::{Response, redirect};
use crate::console::router::{Console, Req, Signed};
use crate::console::s3call::{Call, read_body};

struct UserRow {
    name: String,
    status: String,
    policies: Vec<String>,
}

impl UserRow {
    /// The policy its dropdown shows first: its own (the first attached), else none.
    fn first_policy(&self) -> &str {
        self.policies.first().map_or("", String::as_str)
    }
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    frame: Frame,
    users: Vec<UserRow>,
    /// (name, document, whether it is one of the server's own, which cannot be deleted).
    policies: Vec<(String, String, bool)>,
}

async fn admin_json(
    console: &Console,
    signed: &Signed,
    peer: std::net::SocketAddr,
    doing: &str,
    path: &str,
    encrypted: bool,
) -> Result<serde_json::Value, Refusal> {
    let answer = ok(console, signed, peer, doing, Call::admin(Method::GET, path)).await?;
    let (_, body) = read_body(answer, 8 << 20)
        .await
        .map_err(Refusal::internal)?;
    let plain = if encrypted {
        crate::admin::crypt::decrypt(signed.session.creds.secret_key(), &body)
            .map_err(|e| Refusal::internal(anyhow::anyhow!("admin answer: {e}")))?
            .to_vec()
    } else {
        body.to_vec()
    };
    serde_json::from_slice(&plain).map_err(|e| Refusal::internal(e.into()))
}

/// `GET /users`; after a change, its query names what was done.
pub async fn page(console: &Console, signed: &Signed, req: &Req) -> Response {
    let mut frame = Frame::new(signed);
    frame.notice = user_changes::notice(|k| req.param(k));
    show(console, signed, req.peer, frame, StatusCode::OK).await
}

/// `POST /users`: a change ([`user_changes`]), then a redirect to the page that says it was
/// done, or the page with the refusal.
pub async fn submit(
    console: &Console,
    signed: &Signed,
    peer: std::net::SocketAddr,
    form: &[(String, String)],
) -> Response {
    match user_changes::change(console, signed, peer, form).await {
        Ok(done) => redirect(&done.location()),
        Err(r) => {
            let mut frame = Frame::new(signed);
            let status = r.status;
            frame.error = Some(r.message);
            show(console, signed, peer, frame, status).await
        }
    }
}

async fn show(
    console: &Console,
    signed: &Signed,
    peer: std::net::SocketAddr,
    mut frame: Frame,
    mut status: StatusCode,
) -> Response {
    let mut users = Vec::new();
    match admin_json(
        console,
        signed,
        peer,
        "list the users",
        "/minio/admin/v3/list-users",
        true,
    )
    .await
    {
        Ok(serde_json::Value::Object(map)) => {
            for (name, info) in map {
                users.push(UserRow {
                    name,
                    status: info["status"].as_str().unwrap_or("").to_owned(),
                    policies: info["policyName"]
                        .as_str()
                        .unwrap_or("")
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                });
            }
        }
        Ok(_) => {}
        Err(r) => {
            if status.is_success() {
                status = r.status;
            }
            frame.error.get_or_insert(r.message);
        }
    }
    let mut policies = Vec::new();
    match admin_json(
        console,
        signed,
        peer,
        "list the policies",
        "/minio/admin/v3/list-canned-policies",
        false,
    )
    .await
    {
        Ok(serde_json::Value::Object(map)) => {
            let sorted: BTreeMap<_, _> = map.into_iter().collect();
            for (name, doc) in sorted {
                let builtin = crate::iam::builtin::document(&name).is_some();
                policies.push((
                    name,
                    serde_json::to_string_pretty(&doc).unwrap_or_default(),
                    builtin,
                ));
            }
        }
        Ok(_) => {}
        Err(r) => {
            if status.is_success() {
                status = r.status;
            }
            frame.error.get_or_insert(r.message);
        }
    }
    render(
        status,
        &UsersPage {
            frame,
            users,
            policies,
        },
    )
}
