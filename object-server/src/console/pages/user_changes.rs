//! Changes on the users page, as `mc admin user add|remove|enable|disable`, `mc admin policy
//! attach|detach|create|remove` make them: the same admin API routes, called in-process with
//! the signed-in user's keys, so the admin API's `admin:*` decision is the only one. Bodies
//! that carry secrets (a new user's secret key) or user names are encrypted with the caller's
//! secret key, as madmin does. A new user's secret key is never written back into a page.
use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::{Refusal, ok};
use crate::console::http_util::field;
use crate::console::router::{Console, Signed};
use crate::console::s3call::Call;

const ADMIN: &str = "/minio/admin/v3";

fn sealed(signed: &Signed, value: &serde_json::Value) -> Bytes {
    Bytes::from(crate::admin::crypt::encrypt(
        signed.session.creds.secret_key(),
        value.to_string().as_bytes(),
    ))
}

fn required<'a>(form: &'a [(String, String)], name: &str, what: &str) -> Result<&'a str, Refusal> {
    field(form, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal::input(format!("Enter {what}; nothing was changed.")))
}

async fn policy_association(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    user: &str,
    policy: &str,
    attach: bool,
) -> Result<(), Refusal> {
    let (route, doing) = if attach {
        ("attach", format!("attach {policy} to {user}"))
    } else {
        ("detach", format!("detach {policy} from {user}"))
    };
    let body = sealed(signed, &json!({"policies": [policy], "user": user}));
    let call = Call::admin(Method::POST, &format!("{ADMIN}/idp/builtin/policy/{route}")).body(body);
    ok(console, signed, peer, &doing, call).await.map(drop)
}

/// `POST /users`: `do` names the change. Returns the notice to show.
pub async fn change(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
) -> Result<String, Refusal> {
    match field(form, "do").unwrap_or("") {
        "create-user" => {
            let user = required(form, "access_key", "an access key")?;
            // Not trimmed: a secret key is taken exactly as typed.
            let secret = field(form, "secret_key")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Refusal::input("Enter a secret key; nothing was changed."))?;
            let body = sealed(signed, &json!({"secretKey": secret, "status": "enabled"}));
            let call = Call::admin(Method::PUT, &format!("{ADMIN}/add-user"))
                .query("accessKey", user)
                .body(body);
            ok(console, signed, peer, &format!("create user {user}"), call).await?;
            match field(form, "policy").filter(|p| !p.is_empty()) {
                Some(p) => {
                    policy_association(console, signed, peer, user, p, true).await?;
                    Ok(format!("User {user} created with policy {p}."))
                }
                None => Ok(format!("User {user} created.")),
            }
        }
        "delete-user" => {
            let user = required(form, "user", "a user")?;
            let call = Call::admin(Method::DELETE, &format!("{ADMIN}/remove-user"))
                .query("accessKey", user);
            ok(console, signed, peer, &format!("delete user {user}"), call).await?;
            Ok(format!("User {user} deleted."))
        }
        "user-status" => {
            let user = required(form, "user", "a user")?;
            let status = match field(form, "status") {
                Some(s @ ("enabled" | "disabled")) => s,
                _ => return Err(Refusal::input("Choose enabled or disabled.")),
            };
            let verb = if status == "enabled" {
                "enable"
            } else {
                "disable"
            };
            let call = Call::admin(Method::PUT, &format!("{ADMIN}/set-user-status"))
                .query("accessKey", user)
                .query("status", status);
            ok(console, signed, peer, &format!("{verb} user {user}"), call).await?;
            Ok(format!("User {user} {status}."))
        }
        what @ ("attach" | "detach") => {
            let user = required(form, "user", "a user")?;
            let policy = required(form, "policy", "a policy")?;
            let attach = what == "attach";
            policy_association(console, signed, peer, user, policy, attach).await?;
            Ok(format!(
                "Policy {policy} {} {user}.",
                if attach {
                    "attached to"
                } else {
                    "detached from"
                }
            ))
        }
        "create-policy" => {
            let name = required(form, "name", "a policy name")?;
            let doc = field(form, "document").unwrap_or("");
            let call = Call::admin(Method::PUT, &format!("{ADMIN}/add-canned-policy"))
                .query("name", name)
                .body(Bytes::from(doc.to_owned()));
            ok(
                console,
                signed,
                peer,
                &format!("create policy {name}"),
                call,
            )
            .await?;
            Ok(format!("Policy {name} saved."))
        }
        "delete-policy" => {
            let name = required(form, "name", "a policy name")?;
            let call = Call::admin(Method::DELETE, &format!("{ADMIN}/remove-canned-policy"))
                .query("name", name);
            ok(
                console,
                signed,
                peer,
                &format!("delete policy {name}"),
                call,
            )
            .await?;
            Ok(format!("Policy {name} deleted."))
        }
        _ => Err(Refusal::input("Unknown change.")),
    }
}
