//! MinIO's users, groups, policies and policy attachments, as it keeps them under
//! `.minio.sys/config/iam/` (facts from MinIO's public `cmd/iam-store.go` and
//! `cmd/iam-object-store.go`), each file opened with [`super::sealed_config`]:
//!
//! | file | content |
//! |---|---|
//! | `users/<user>/identity.json` | `{"credentials":{"accessKey","secretKey","status":"on"\|"off"}}` |
//! | `policies/<name>/policy.json` | `{"Version":1,"Policy":{…}}` (older files: the policy itself) |
//! | `policydb/users/<user>.json`, `policydb/groups/<group>.json` | `{"policy":"a,b"}` |
//! | `groups/<group>/members.json` | `{"status":"enabled"\|"disabled","members":[…]}` |
//!
//! Service accounts, STS credentials and their mappings are derived credentials: listed as not
//! imported. Secret keys stay in [`Secret`] (zeroized, never printed).
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{sealed_config, system};
use crate::config::Secret;
use crate::kms::Kms;

/// Where MinIO keeps IAM under `.minio.sys/`.
const IAM_DIR: &str = "config/iam";

/// A MinIO user.
pub struct MinioUser {
    /// The secret key.
    pub secret: Secret,
    /// `false` for a disabled user.
    pub enabled: bool,
    /// Policies attached to the user itself.
    pub policies: Vec<String>,
}

/// A MinIO group.
#[derive(Debug, Default)]
pub struct MinioGroup {
    /// `false` for a disabled group (its policies do not apply).
    pub enabled: bool,
    /// Member access keys.
    pub members: Vec<String>,
    /// Policies attached to the group.
    pub policies: Vec<String>,
}

/// MinIO's IAM state, and what of it could not be read.
#[derive(Default)]
pub struct MinioIam {
    /// Users by access key.
    pub users: BTreeMap<String, MinioUser>,
    /// Policy documents (JSON) by name.
    pub policies: BTreeMap<String, String>,
    /// Groups by name.
    pub groups: BTreeMap<String, MinioGroup>,
    /// Items left out: (what, why).
    pub left_out: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Identity {
    credentials: Credentials,
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(rename = "accessKey", default)]
    access_key: String,
    #[serde(rename = "secretKey", default)]
    secret_key: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct Mapped {
    #[serde(default)]
    policy: String,
}

#[derive(Deserialize)]
struct Members {
    #[serde(default)]
    status: String,
    #[serde(default)]
    members: Option<Vec<String>>,
}

fn policy_names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads MinIO's IAM state from the drives, opening sealed files through `kms`.
pub async fn read(drives: &[PathBuf], kms: &dyn Kms) -> Result<MinioIam, String> {
    let mut out = MinioIam::default();
    let mut user_policies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in system::list(drives, IAM_DIR)? {
        let rel = format!("{IAM_DIR}/{item}");
        let parts: Vec<&str> = item.split('/').collect();
        let what = match parts.as_slice() {
            ["format.json"] => continue,
            ["users", u, "identity.json"] => format!("user {u}"),
            ["policies", p, "policy.json"] => format!("policy {p}"),
            ["policydb", "users", f] => format!("policy attachment of user {}", trim_json(f)),
            ["groups", g, "members.json"] => format!("group {g}"),
            ["policydb", "groups", f] => format!("policy attachment of group {}", trim_json(f)),
            ["service-accounts", a, ..] => {
                out.left_out.push((
                    format!("service account {a}"),
                    "service accounts are not imported (Coffer has none): make the parent user a new key".into(),
                ));
                continue;
            }
            ["sts", ..] | ["policydb", "sts-users", ..] | ["policydb", "service-accounts", ..] => {
                continue;
            }
            _ => {
                out.left_out.push((rel, "unknown IAM file".into()));
                continue;
            }
        };
        let raw = match system::read(drives, &rel) {
            Ok(Some(raw)) => raw,
            Ok(None) => continue,
            Err(e) => {
                out.left_out.push((what, format!("unreadable: {e}")));
                continue;
            }
        };
        let plain = match sealed_config::open(kms, &rel, &raw).await {
            Ok(p) => p,
            Err(e) => {
                out.left_out.push((what, e.to_string()));
                continue;
            }
        };
        let bad = |e: serde_json::Error| format!("malformed JSON at line {}", e.line());
        let parsed: Result<(), String> =
            match parts.as_slice() {
                ["users", u, _] => serde_json::from_slice::<Identity>(&plain)
                    .map_err(bad)
                    .and_then(|id| {
                        let c = id.credentials;
                        if c.access_key != *u {
                            return Err("its access key differs from its directory".into());
                        }
                        out.users.insert(
                            c.access_key,
                            MinioUser {
                                secret: Secret::new(c.secret_key),
                                enabled: c.status != "off",
                                policies: Vec::new(),
                            },
                        );
                        Ok(())
                    }),
                ["policies", p, _] => serde_json::from_slice::<serde_json::Value>(&plain)
                    .map_err(bad)
                    .map(|doc| {
                        let policy = match doc.get("Policy") {
                            Some(p) => p.clone(),
                            None => doc,
                        };
                        out.policies.insert((*p).to_owned(), policy.to_string());
                    }),
                ["policydb", "users", f] => serde_json::from_slice::<Mapped>(&plain)
                    .map_err(bad)
                    .map(|m| {
                        user_policies.insert(trim_json(f).to_owned(), policy_names(&m.policy));
                    }),
                ["groups", g, _] => {
                    serde_json::from_slice::<Members>(&plain)
                        .map_err(bad)
                        .map(|m| {
                            let group = out.groups.entry((*g).to_owned()).or_default();
                            group.enabled = m.status != "disabled";
                            group.members = m.members.unwrap_or_default();
                        })
                }
                ["policydb", "groups", f] => serde_json::from_slice::<Mapped>(&plain)
                    .map_err(bad)
                    .map(|m| {
                        out.groups
                            .entry(trim_json(f).to_owned())
                            .or_default()
                            .policies = policy_names(&m.policy);
                    }),
                _ => Ok(()),
            };
        if let Err(e) = parsed {
            out.left_out.push((what, e));
        }
    }
    for (user, policies) in user_policies {
        match out.users.get_mut(&user) {
            Some(u) => u.policies = policies,
            None => out.left_out.push((
                format!("policy attachment of {user}"),
                format!(
                    "{user} is not a MinIO user (an LDAP or OpenID identity?); policies {} not attached",
                    policies.join(",")
                ),
            )),
        }
    }
    Ok(out)
}

fn trim_json(f: &str) -> &str {
    f.strip_suffix(".json").unwrap_or(f)
}
