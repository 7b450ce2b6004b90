//! S3 users from the Secrets that `spec.users` names: reading and checking each one, and the
//! owned Secret `<t>-users` whose `users.json` the object-server reads (`COFFER_USERS_FILE`).
//!
//! The file is mounted as a directory volume, so the kubelet replaces it in place when the
//! Secret changes and the object-server reloads it: adding, changing or removing a user
//! never restarts a pod (its hash is deliberately not on the pod template).
//!
//! A Secret that is missing or invalid contributes no user and is reported by name with what
//! is wrong; the valid ones still apply. No report ever carries a key's value.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};

use super::{Names, meta};
use crate::crd::Tenant;
use crate::crd::tenant::UserRef;

/// Key of the users file in `<t>-users` (and its file name in the pod).
pub const USERS_FILE: &str = "users.json";
/// Key of a user's access key in its Secret.
pub const ACCESS_KEY: &str = "accessKey";
/// Key of a user's secret key in its Secret.
pub const SECRET_KEY: &str = "secretKey";
/// Key of a user's comma-separated policy names in its Secret (optional).
pub const POLICY: &str = "policy";
/// MinIO operator's key for a user's access key, read when `accessKey` is absent.
pub const CONSOLE_ACCESS_KEY: &str = "CONSOLE_ACCESS_KEY";
/// MinIO operator's key for a user's secret key, read when `secretKey` is absent.
pub const CONSOLE_SECRET_KEY: &str = "CONSOLE_SECRET_KEY";
/// The policy of a user whose Secret names none.
pub const DEFAULT_POLICY: &str = "readwrite";
/// MinIO's shortest access key.
pub const MIN_ACCESS_KEY_LEN: usize = 3;
/// The object-server's longest access key (it refuses a users file with a longer one).
pub const MAX_ACCESS_KEY_LEN: usize = 128;
/// MinIO's shortest secret key.
pub const MIN_SECRET_KEY_LEN: usize = 8;
/// The longest secret key of MinIO's admin API and of the object-server.
pub const MAX_SECRET_KEY_LEN: usize = 40;

/// One user as the object-server reads it from `users.json`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The access key (the user's name).
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
    /// Names of the policies attached to the user.
    pub policies: Vec<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("policies", &self.policies)
            .finish()
    }
}

/// The whole of `users.json`: `{"users": [...]}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UsersFile {
    /// Every user in effect, in the order of `spec.users`.
    pub users: Vec<User>,
}

/// What is wrong with one user Secret. Names keys and rules, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserProblem {
    /// The Secret does not exist.
    #[error("does not exist")]
    Missing,
    /// A required key is absent or empty.
    #[error("has no key {0:?}")]
    MissingKey(&'static str),
    /// A value is not UTF-8 text.
    #[error("key {0:?} is not UTF-8 text")]
    NotText(&'static str),
    /// A value holds a control character, usually a trailing newline from `echo`.
    #[error("key {0:?} contains a control character (a trailing newline? use `echo -n`)")]
    ControlCharacter(&'static str),
    /// The access key is not 3 to 128 bytes long (counted in bytes, as MinIO does).
    #[error("the access key must be {MIN_ACCESS_KEY_LEN} to {MAX_ACCESS_KEY_LEN} characters long")]
    AccessKeyLength,
    /// The secret key is not 8 to 40 bytes long.
    #[error("the secret key must be {MIN_SECRET_KEY_LEN} to {MAX_SECRET_KEY_LEN} characters long")]
    SecretKeyLength,
    /// The access key holds a character that MinIO reserves or that breaks S3 signatures.
    #[error("the access key contains {0}, which is not allowed")]
    AccessKeyCharacter(&'static str),
    /// The `policy` key is present but names no policy.
    #[error("key {POLICY:?} names no policy (leave it out for {DEFAULT_POLICY})")]
    EmptyPolicy,
    /// The access key is the root user's.
    #[error("the access key is the root user's")]
    RootUser,
    /// Another Secret earlier in `spec.users` has the same access key.
    #[error("the access key is already used by Secret {0:?}")]
    Duplicate(String),
}

/// A user Secret that contributes no user, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidUser {
    /// The Secret's name.
    pub secret: String,
    /// What is wrong with it.
    pub problem: UserProblem,
}

impl std::fmt::Display for InvalidUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {:?}: {}", self.secret, self.problem)
    }
}

/// The users of a Tenant: those in effect and the Secrets that were left out.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Users {
    /// Users in effect, in the order of `spec.users`.
    pub users: Vec<User>,
    /// Secrets that contribute no user, in the order of `spec.users`.
    pub invalid: Vec<InvalidUser>,
}

/// A Secret's value under `key` (`data`, or `stringData` of an object not yet stored);
/// `None` when absent or empty.
fn value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b: &ByteString| b.0.as_slice());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes())
    };
    from_data
        .or_else(from_string_data)
        .filter(|v| !v.is_empty())
}

/// A Secret's value under `key` as text, if present, non-empty and UTF-8.
pub fn read_text(secret: &Secret, key: &str) -> Option<String> {
    value(secret, key).and_then(|v| String::from_utf8(v.to_vec()).ok())
}

fn text(secret: &Secret, keys: &[&'static str]) -> Result<Option<String>, UserProblem> {
    let Some((key, bytes)) = keys.iter().find_map(|k| value(secret, k).map(|v| (*k, v))) else {
        return Ok(None);
    };
    let s = std::str::from_utf8(bytes).map_err(|_| UserProblem::NotText(key))?;
    if s.chars().any(char::is_control) {
        return Err(UserProblem::ControlCharacter(key));
    }
    Ok(Some(s.to_owned()))
}

/// Characters an access key must not hold: `=` and `,` (MinIO reserves them), `/` (it
/// separates the parts of a SigV4 credential scope) and whitespace (it ends a header field).
fn forbidden_in_access_key(c: char) -> Option<&'static str> {
    match c {
        '=' => Some("'='"),
        ',' => Some("','"),
        '/' => Some("'/'"),
        c if c.is_whitespace() => Some("whitespace"),
        _ => None,
    }
}

/// Reads and checks one user Secret on its own (the root user and duplicates are checked
/// by [`collect`]).
pub fn read_user(secret: &Secret) -> Result<User, UserProblem> {
    let access_key = text(secret, &[ACCESS_KEY, CONSOLE_ACCESS_KEY])?
        .ok_or(UserProblem::MissingKey(ACCESS_KEY))?;
    let secret_key = text(secret, &[SECRET_KEY, CONSOLE_SECRET_KEY])?
        .ok_or(UserProblem::MissingKey(SECRET_KEY))?;
    // The object-server refuses a whole users file over one bad user: every rule it applies
    // is checked here first, so that only the bad Secret is left out.
    if !(MIN_ACCESS_KEY_LEN..=MAX_ACCESS_KEY_LEN).contains(&access_key.len()) {
        return Err(UserProblem::AccessKeyLength);
    }
    if let Some(what) = access_key.chars().find_map(forbidden_in_access_key) {
        return Err(UserProblem::AccessKeyCharacter(what));
    }
    if !(MIN_SECRET_KEY_LEN..=MAX_SECRET_KEY_LEN).contains(&secret_key.len()) {
        return Err(UserProblem::SecretKeyLength);
    }
    let policies = match text(secret, &[POLICY])? {
        None => vec![DEFAULT_POLICY.to_owned()],
        Some(list) => {
            let names: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            if names.is_empty() {
                return Err(UserProblem::EmptyPolicy);
            }
            names
        }
    };
    Ok(User {
        access_key,
        secret_key,
        policies,
    })
}

/// The users of `refs`, looking each Secret up with `lookup`. A Secret that is missing,
/// invalid, has the root user's access key (`root_user`) or repeats an earlier Secret's
/// access key contributes no user; the first Secret with an access key keeps it.
pub fn collect<'a>(
    refs: &[UserRef],
    lookup: impl Fn(&str) -> Option<&'a Secret>,
    root_user: Option<&str>,
) -> Users {
    let mut out = Users::default();
    let mut owner_of: BTreeMap<String, &str> = BTreeMap::new();
    let mut seen_secrets = std::collections::BTreeSet::new();
    for r in refs {
        // The schema keeps names unique (a list-map); a repeat would add nothing.
        if !seen_secrets.insert(r.name.as_str()) {
            continue;
        }
        let user = lookup(&r.name)
            .ok_or(UserProblem::Missing)
            .and_then(read_user)
            .and_then(|u| {
                if root_user == Some(u.access_key.as_str()) {
                    return Err(UserProblem::RootUser);
                }
                match owner_of.get(&u.access_key) {
                    Some(first) => Err(UserProblem::Duplicate(first.to_string())),
                    None => Ok(u),
                }
            });
        match user {
            Ok(u) => {
                owner_of.insert(u.access_key.clone(), &r.name);
                out.users.push(u);
            }
            Err(problem) => out.invalid.push(InvalidUser {
                secret: r.name.clone(),
                problem,
            }),
        }
    }
    out
}

/// `users.json` for `users`.
pub fn users_json(users: &[User]) -> String {
    let file = UsersFile {
        users: users.to_vec(),
    };
    serde_json::to_string_pretty(&file).expect("users always serialize") + "\n"
}

/// `<t>-users`: the users file. Always present (possibly with no user), so that the pods'
/// volume never waits for it.
pub fn secret(tenant: &Tenant, users: &[User]) -> Secret {
    Secret {
        metadata: meta(tenant, Names::of(tenant).users()),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            USERS_FILE.to_string(),
            ByteString(users_json(users).into_bytes()),
        )])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
