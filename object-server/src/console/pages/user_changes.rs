//! Changes on the users page, as `mc admin user add|remove|enable|disable`, `mc admin policy
//! attach|detach|create|remove` make them: the same admin API routes, called in-process with
//! the signed-in user's keys, so the admin API's `admin:*` decision is the only one. Bodies
//! that carry secrets (a new user's secret key) or user names are encrypted with the caller's
//! secret key, as madmin does. A new user's secret key is never written back into a page.
//!
//! A change that succeeded is answered with a redirect to the users page (Post/Redirect/Get: a
//! reload does not repeat it) whose query names what was done ([`Done`]); the page says it
//! again from there ([`notice`]) with fixed sentences, so a link cannot make it say anything
//! else.
use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::{Refusal, ok};
use crate::console::http_util::{field, query_escape};
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

/// What a change did: its kind (`done`) and the names it was done to, as the redirect's query.
pub struct Done(Vec<(&'static str, String)>);

impl Done {
    fn new(done: &'static str, names: &[(&'static str, &str)]) -> Self {
        let mut pairs = vec![("done", done.to_owned())];
        pairs.extend(names.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Done(pairs)
    }

    /// The users page that reports it.
    pub fn location(&self) -> String {
        let query: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}={}", query_escape(v)))
            .collect();
        format!("/users?{}", query.join("&"))
    }
}

/// The notice for the page a change redirected to; `param` reads its query.
pub fn notice<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let user = param("user").unwrap_or("");
    let policy = param("policy").unwrap_or("");
    let name = param("name").unwrap_or("");
    Some(match param("done")? {
        "create-user" if policy.is_empty() => format!("User {user} created."),
        "create-user" => format!("User {user} created with policy {policy}."),
        "delete-user" => format!("User {user} deleted."),
        "user-status" => match param("status")? {
            s @ ("enabled" | "disabled") => format!("User {user} {s}."),
            _ => return None,
        },
        "attach" => format!("Policy {policy} attached to {user}."),
        "detach" => format!("Policy {policy} detached from {user}."),
        "create-policy" => format!("Policy {name} saved."),
        "delete-policy" => format!("Policy {name} deleted."),
        _ => return None,
    })
}

/// `POST /users`: `do` names the change. Returns what was done.
pub async fn change(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
) -> Result<Done, Refusal> {
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
                    Ok(Done::new("create-user", &[("user", user), ("policy", p)]))
                }
                None => Ok(Done::new("create-user", &[("user", user)])),
            }
        }
        "delete-user" => {
            let user = required(form, "user", "a user")?;
            let call = Call::admin(Method::DELETE, &format!("{ADMIN}/remove-user"))
                .query("accessKey", user);
            ok(console, signed, peer, &format!("delete user {user}"), call).await?;
            Ok(Done::new("delete-user", &[("user", user)]))
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
            Ok(Done::new(
                "user-status",
                &[("user", user), ("status", status)],
            ))
        }
        what @ ("attach" | "detach") => {
            let user = required(form, "user", "a user")?;
            let policy = required(form, "policy", "a policy")?;
            let attach = what == "attach";
            policy_association(console, signed, peer, user, policy, attach).await?;
            let done = if attach { "attach" } else { "detach" };
            Ok(Done::new(done, &[("user", user), ("policy", policy)]))
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
            Ok(Done::new("create-policy", &[("name", name)]))
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
            Ok(Done::new("delete-policy", &[("name", name)]))
        }
        _ => Err(Refusal::input("Unknown change.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(location: &str) -> Option<String> {
        let query = location.strip_prefix("/users?").expect("the users page");
        let pairs = crate::console::http_util::pairs(query.as_bytes());
        notice(|k| crate::console::http_util::field(&pairs, k))
    }

    #[test]
    fn a_redirect_says_what_was_done_and_nothing_else() {
        let done = Done::new(
            "create-user",
            &[("user", "a&b=c"), ("policy", "read write")],
        );
        assert_eq!(
            said(&done.location()).as_deref(),
            Some("User a&b=c created with policy read write.")
        );
        let done = Done::new("user-status", &[("user", "app"), ("status", "disabled")]);
        assert_eq!(
            said(&done.location()).as_deref(),
            Some("User app disabled.")
        );
        assert_eq!(said("/users?done=user-status&user=app&status=hacked"), None);
        assert_eq!(said("/users?done=anything&user=app"), None);
        assert_eq!(said("/users?user=app"), None);
    }
}
