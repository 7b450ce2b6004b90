//! Policy and identity APIs (read-only: policies come from the config file).

use super::error::{self, ApiError};
use super::names::{valid_name, valid_pattern};
use super::{Body, Req, Shared, json};
use crate::auth::{Identity, Policy};
use http::{Response, StatusCode};
use serde_json::{Map, Value, json as j};

type Result = std::result::Result<Response<Body>, ApiError>;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn set(paths: &[String]) -> Value {
    Value::Object(
        paths
            .iter()
            .map(|p| (p.clone(), Value::Object(Map::new())))
            .collect(),
    )
}

fn policy_json(s: &Shared, name: &str, p: &Policy, admin: &Identity) -> Value {
    let mut v =
        j!({ "name": name, "created_at": rfc3339(s.started), "created_by": admin.as_str() });
    if !p.allow.is_empty() {
        v["allow"] = set(&p.allow);
    }
    if !p.deny.is_empty() {
        v["deny"] = set(&p.deny);
    }
    v
}

fn prefix_of(pattern: &str) -> std::result::Result<&str, ApiError> {
    if !valid_pattern(pattern) {
        return Err(error::invalid_pattern(pattern));
    }
    Ok(pattern.trim_end_matches('*'))
}

pub fn describe_policy(s: &Shared, req: Req<'_>) -> Result {
    if !valid_name(req.resource) {
        return Err(error::invalid_name("policy name", req.resource));
    }
    let auth = s.auth();
    if !auth.policies.contains_key(req.resource) {
        return Err(error::POLICY_NOT_FOUND);
    }
    Ok(json(
        StatusCode::OK,
        &j!({ "name": req.resource, "created_at": rfc3339(s.started), "created_by": auth.admin.as_str() }),
    ))
}

pub fn read_policy(s: &Shared, req: Req<'_>) -> Result {
    if !valid_name(req.resource) {
        return Err(error::invalid_name("policy name", req.resource));
    }
    let auth = s.auth();
    let p = auth
        .policies
        .get(req.resource)
        .ok_or(error::POLICY_NOT_FOUND)?;
    Ok(json(
        StatusCode::OK,
        &policy_json(s, req.resource, p, &auth.admin),
    ))
}

pub fn list_policies(s: &Shared, req: Req<'_>) -> Result {
    let prefix = prefix_of(req.resource)?;
    let auth = s.auth();
    let names: Vec<&String> = auth
        .policies
        .keys()
        .filter(|n| n.starts_with(prefix))
        .collect();
    Ok(json(
        StatusCode::OK,
        &j!({ "names": names, "continue_at": "" }),
    ))
}

pub fn describe_identity(s: &Shared, req: Req<'_>) -> Result {
    if !valid_name(req.resource) {
        return Err(error::invalid_name("identity", req.resource));
    }
    let auth = s.auth();
    let id = Identity::new(req.resource);
    if !auth.admin.is_empty() && id == auth.admin {
        return Ok(json(
            StatusCode::OK,
            &j!({ "admin": true, "created_at": rfc3339(s.started) }),
        ));
    }
    let policy = auth.identities.get(&id).ok_or(error::IDENTITY_NOT_FOUND)?;
    Ok(json(
        StatusCode::OK,
        &j!({ "policy": policy, "created_at": rfc3339(s.started), "created_by": auth.admin.as_str() }),
    ))
}

pub fn list_identities(s: &Shared, req: Req<'_>) -> Result {
    let prefix = prefix_of(req.resource)?;
    let auth = s.auth();
    let mut ids: Vec<String> = auth.identities.keys().map(|i| i.to_string()).collect();
    if !auth.admin.is_empty() {
        ids.push(auth.admin.to_string());
    }
    ids.retain(|i| i.starts_with(prefix));
    ids.sort();
    Ok(json(
        StatusCode::OK,
        &j!({ "identities": ids, "continue_at": "" }),
    ))
}

pub fn self_describe(s: &Shared, req: Req<'_>) -> Result {
    let auth = s.auth();
    let id = req.identity;
    if !auth.admin.is_empty() && *id == auth.admin {
        return Ok(json(
            StatusCode::OK,
            &j!({ "identity": id.as_str(), "admin": true, "created_at": rfc3339(s.started) }),
        ));
    }
    let name = auth.identities.get(id).ok_or(error::IDENTITY_NOT_FOUND)?;
    let p = auth.policies.get(name).cloned().unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &j!({
            "identity": id.as_str(),
            "created_at": rfc3339(s.started),
            "created_by": auth.admin.as_str(),
            "policy": policy_json(s, name, &p, &auth.admin),
        }),
    ))
}
