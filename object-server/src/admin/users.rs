//! Users and policies: `mc admin user …` and `mc admin policy …`.
use s3s::{Body, S3Error, S3Response, S3Result};
use serde::Deserialize;
use serde_json::{Value, json as j};

use super::{AdminRoute, Call, iam_err, json, not_implemented, ok};
use crate::iam::{IamError, User, builtin};

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// madmin's `UserInfo` (never with the secret key).
fn user_info(u: &User) -> Value {
    let mut v = j!({
        "status": if u.enabled { "enabled" } else { "disabled" },
    });
    if !u.policies.is_empty() {
        v["policyName"] = Value::String(u.policies.join(","));
    }
    v
}

fn invalid(msg: impl Into<String>) -> S3Error {
    iam_err(IamError::Invalid(msg.into()))
}

#[derive(Deserialize)]
struct AddUserReq {
    #[serde(rename = "secretKey", default)]
    secret_key: zeroize::Zeroizing<String>,
    #[serde(default)]
    status: String,
    /// Newer madmin (`SetUserReq`) may name the user's policies, comma-separated.
    #[serde(default)]
    policy: String,
}

#[derive(Deserialize)]
struct PolicyAssociationReq {
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    group: String,
}

fn split_names(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) async fn handle(a: &AdminRoute, c: &Call) -> S3Result<S3Response<Body>> {
    let iam = &a.iam;
    match c.route.as_str() {
        "/add-user" => {
            let ak = c.require("accessKey")?;
            let body = c.decrypted_body()?;
            let req: AddUserReq = serde_json::from_slice(&body)
                .map_err(|_| invalid("the add-user request is not valid JSON"))?;
            let enabled = !req.status.eq_ignore_ascii_case("disabled");
            let policies = split_names(&req.policy);
            let snap = iam.snapshot_current().await.map_err(iam_err)?;
            if let Some(missing) = policies.iter().find(|p| !snap.has_policy(p)) {
                return Err(iam_err(IamError::NoSuchPolicy(missing.clone())));
            }
            // admin:CreateUser makes users; anything more the body asks for needs its own right.
            if !policies.is_empty() {
                a.require(c, "admin:AttachUserOrGroupPolicy").await?;
            }
            if let Some(existing) = snap.users.get(ak)
                && ak != c.access_key
            {
                // A new secret key for another user is that user, with every policy it has:
                // as much as attaching any policy. (A user may change its own, as in MinIO.)
                a.require(c, "admin:AttachUserOrGroupPolicy").await?;
                if existing.enabled != enabled {
                    a.require(
                        c,
                        if enabled {
                            "admin:EnableUser"
                        } else {
                            "admin:DisableUser"
                        },
                    )
                    .await?;
                }
            }
            iam.set_user(ak, &req.secret_key, enabled)
                .await
                .map_err(iam_err)?;
            if !policies.is_empty() {
                iam.set_policies(ak, &policies).await.map_err(iam_err)?;
            }
            tracing::info!(user = %ak, by = %c.access_key, "user added");
            ok()
        }
        "/remove-user" => {
            let ak = c.require("accessKey")?;
            iam.remove_user(ak).await.map_err(iam_err)?;
            tracing::info!(user = %ak, by = %c.access_key, "user removed");
            ok()
        }
        "/set-user-status" => {
            let ak = c.require("accessKey")?;
            let enabled = match c.require("status")? {
                "enabled" => true,
                "disabled" => false,
                other => return Err(invalid(format!("unknown status '{other}'"))),
            };
            iam.set_enabled(ak, enabled).await.map_err(iam_err)?;
            tracing::info!(user = %ak, enabled, by = %c.access_key, "user status changed");
            ok()
        }
        "/list-users" => {
            let snap = iam.snapshot_current().await.map_err(iam_err)?;
            let users: serde_json::Map<String, Value> = snap
                .users
                .iter()
                .map(|(name, u)| (name.clone(), user_info(u)))
                .collect();
            c.encrypted(&Value::Object(users))
        }
        "/user-info" => {
            let ak = c.require("accessKey")?;
            let snap = iam.snapshot_current().await.map_err(iam_err)?;
            let u = snap
                .users
                .get(ak)
                .ok_or_else(|| iam_err(IamError::NoSuchUser))?;
            json(&user_info(u))
        }
        "/add-canned-policy" => {
            let name = c.require("name")?;
            let doc = std::str::from_utf8(&c.body)
                .map_err(|_| invalid("the policy is not UTF-8 text"))?;
            // Rewriting a policy users have changes what they may do: as much as attaching it.
            let snap = iam.snapshot_current().await.map_err(iam_err)?;
            if snap
                .users
                .values()
                .any(|u| u.policies.iter().any(|p| p == name))
            {
                a.require(c, "admin:AttachUserOrGroupPolicy").await?;
            }
            iam.put_policy(name, doc).await.map_err(iam_err)?;
            tracing::info!(policy = %name, by = %c.access_key, "policy created");
            ok()
        }
        "/remove-canned-policy" => {
            let name = c.require("name")?;
            iam.remove_policy(name).await.map_err(iam_err)?;
            tracing::info!(policy = %name, by = %c.access_key, "policy removed");
            ok()
        }
        "/list-canned-policies" => {
            let snap = iam.snapshot_current().await.map_err(iam_err)?;
            let mut all = serde_json::Map::new();
            for (name, doc) in builtin::BUILTIN {
                all.insert(
                    (*name).to_owned(),
                    serde_json::from_str(doc).expect("valid JSON"),
                );
            }
            for (name, p) in &snap.policies {
                all.insert(
                    name.clone(),
                    serde_json::from_str(&p.document).unwrap_or(Value::Null),
                );
            }
            json(&Value::Object(all))
        }
        "/info-canned-policy" => {
            let name = c.require("name")?;
            let snap = iam.snapshot_current().await.map_err(iam_err)?;
            let (doc, dates) = match (builtin::document(name), snap.policies.get(name)) {
                (Some(d), _) => (serde_json::from_str::<Value>(d).expect("valid"), None),
                (None, Some(p)) => (
                    serde_json::from_str(&p.document).unwrap_or(Value::Null),
                    Some((p.created_ms, p.updated_ms)),
                ),
                (None, None) => return Err(iam_err(IamError::NoSuchPolicy(name.to_owned()))),
            };
            if c.param("v") != Some("2") {
                return json(&doc);
            }
            let mut info = j!({"PolicyName": name, "Policy": doc});
            if let Some((created, updated)) = dates {
                info["CreateDate"] = Value::String(rfc3339(created));
                info["UpdateDate"] = Value::String(rfc3339(updated));
            }
            json(&info)
        }
        "/idp/builtin/policy/attach" | "/idp/builtin/policy/detach" => {
            let attach = c.route.ends_with("/attach");
            let body = c.decrypted_body()?;
            let req: PolicyAssociationReq = serde_json::from_slice(&body)
                .map_err(|_| invalid("the policy association request is not valid JSON"))?;
            if !req.group.is_empty() {
                return Err(not_implemented("groups are not supported"));
            }
            if req.user.is_empty() || req.policies.is_empty() {
                return Err(invalid("name a user and at least one policy"));
            }
            let (add, remove) = if attach {
                (req.policies.clone(), Vec::new())
            } else {
                (Vec::new(), req.policies.clone())
            };
            iam.change_policies(&req.user, &add, &remove)
                .await
                .map_err(iam_err)?;
            tracing::info!(user = %req.user, policies = ?req.policies, attach, by = %c.access_key, "policies changed");
            let key = if attach {
                "policiesAttached"
            } else {
                "policiesDetached"
            };
            c.encrypted(&j!({ key: req.policies, "updatedAt": rfc3339(crate::iam::now_ms()) }))
        }
        "/set-user-or-group-policy" => {
            if c.param("isGroup") == Some("true") {
                return Err(not_implemented("groups are not supported"));
            }
            let user = c.require("userOrGroup")?;
            let names = split_names(c.param("policyName").unwrap_or(""));
            iam.set_policies(user, &names).await.map_err(iam_err)?;
            tracing::info!(user = %user, policies = ?names, by = %c.access_key, "policies set");
            ok()
        }
        other => Err(not_implemented(&format!("{other} is not implemented"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::iam::Iam;
    use crate::kms::static_key::StaticKms;
    use std::collections::HashMap;
    use std::sync::Arc;

    async fn route(dir: &std::path::Path) -> AdminRoute {
        let store = crate::storage::Store::open(dir).unwrap();
        let kms = Arc::new(
            StaticKms::from_secret_key("k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap(),
        );
        let iam = Iam::open(
            dir.to_owned(),
            &store.system_dir(),
            kms,
            "root".into(),
            Secret::new("root-secret".into()),
        )
        .await
        .unwrap();
        AdminRoute::new(iam, store, false)
    }

    fn add_user(caller: (&str, &str), user: &str, body: serde_json::Value) -> Call {
        Call {
            method: http::Method::PUT,
            route: "/add-user".into(),
            query: HashMap::from([("accessKey".to_owned(), user.to_owned())]),
            body: crypt_body(caller.1, &body),
            access_key: caller.0.into(),
            secret_key: caller.1.into(),
            conditions: HashMap::new(),
        }
    }

    fn crypt_body(secret: &str, body: &serde_json::Value) -> bytes::Bytes {
        super::super::crypt::encrypt(secret, body.to_string().as_bytes()).into()
    }

    /// `admin:CreateUser` makes users; the `policy` of an add-user body and a new secret key
    /// for someone else's account need `admin:AttachUserOrGroupPolicy` (issue #18, finding 4).
    #[tokio::test]
    async fn create_user_alone_grants_no_policy_and_takes_over_no_one() {
        let d = tempfile::tempdir().unwrap();
        let a = route(d.path()).await;
        let iam = &a.iam;
        iam.put_policy(
            "user-maker",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:CreateUser"]}]}"#,
        )
        .await
        .unwrap();
        iam.set_user("maker1", "maker1-secret", true).await.unwrap();
        iam.set_policies("maker1", &["user-maker".into()])
            .await
            .unwrap();
        iam.set_user("boss1", "boss1-secret", true).await.unwrap();
        iam.set_policies("boss1", &["consoleAdmin".into()])
            .await
            .unwrap();
        let maker = ("maker1", "maker1-secret");

        // A new user with a policy in the body: refused, and nothing is created.
        let c = add_user(
            maker,
            "evil1",
            j!({"secretKey": "evil1-secret", "status": "enabled", "policy": "consoleAdmin"}),
        );
        let e = handle(&a, &c).await.expect_err("refused");
        assert_eq!(*e.code(), s3s::S3ErrorCode::AccessDenied);
        assert!(!iam.snapshot().await.unwrap().users.contains_key("evil1"));

        // Another user's secret key: refused, the key is unchanged.
        let c = add_user(
            maker,
            "boss1",
            j!({"secretKey": "taken-over", "status": "enabled"}),
        );
        let e = handle(&a, &c).await.expect_err("refused");
        assert_eq!(*e.code(), s3s::S3ErrorCode::AccessDenied);
        let snap = iam.snapshot().await.unwrap();
        assert_eq!(snap.users["boss1"].secret.expose(), "boss1-secret");
        assert_eq!(snap.users["boss1"].policies, ["consoleAdmin"]);

        // What admin:CreateUser is for still works: a new user, one's own key.
        let c = add_user(
            maker,
            "new1",
            j!({"secretKey": "new1-secret", "status": "enabled"}),
        );
        handle(&a, &c).await.unwrap();
        let c = add_user(
            maker,
            "maker1",
            j!({"secretKey": "maker1-other", "status": "enabled"}),
        );
        handle(&a, &c).await.unwrap();
        let snap = iam.snapshot().await.unwrap();
        assert!(snap.users["new1"].policies.is_empty());
        assert_eq!(snap.users["maker1"].secret.expose(), "maker1-other");

        // The root user may do all of it; a policy that does not exist changes nothing.
        let root = ("root", "root-secret");
        let c = add_user(
            root,
            "evil2",
            j!({"secretKey": "evil2-secret", "policy": "no-such-policy"}),
        );
        assert!(handle(&a, &c).await.is_err());
        assert!(!iam.snapshot().await.unwrap().users.contains_key("evil2"));
        let c = add_user(
            root,
            "boss1",
            j!({"secretKey": "boss1-second", "policy": "readonly"}),
        );
        handle(&a, &c).await.unwrap();
        let snap = iam.snapshot().await.unwrap();
        assert_eq!(snap.users["boss1"].secret.expose(), "boss1-second");
        assert_eq!(snap.users["boss1"].policies, ["readonly"]);
    }

    /// Rewriting a policy that users have changes their rights: as much as attaching it.
    #[tokio::test]
    async fn create_policy_alone_cannot_rewrite_an_attached_policy() {
        let d = tempfile::tempdir().unwrap();
        let a = route(d.path()).await;
        let iam = &a.iam;
        let narrow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:CreatePolicy"]}]}"#;
        iam.put_policy("mine", narrow).await.unwrap();
        iam.set_user("author1", "author1-secret", true)
            .await
            .unwrap();
        iam.set_policies("author1", &["mine".into()]).await.unwrap();
        let wide = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:*","s3:*"]}]}"#;
        let call = |name: &str| Call {
            method: http::Method::PUT,
            route: "/add-canned-policy".into(),
            query: HashMap::from([("name".to_owned(), name.to_owned())]),
            body: bytes::Bytes::from(wide),
            access_key: "author1".into(),
            secret_key: "author1-secret".into(),
            conditions: HashMap::new(),
        };
        let e = handle(&a, &call("mine")).await.expect_err("refused");
        assert_eq!(*e.code(), s3s::S3ErrorCode::AccessDenied);
        assert_eq!(
            iam.snapshot().await.unwrap().policies["mine"].document,
            narrow
        );
        // A policy nobody has yet is what admin:CreatePolicy is for.
        handle(&a, &call("unattached")).await.unwrap();
    }
}
