//! `mc admin cluster iam export|import`: `GET /export-iam` answers a zip of JSON files under
//! `iam-assets/`, as MinIO's `ExportIAM` writes them (facts from MinIO's public
//! `cmd/admin-handlers-users.go` and madmin-go's `iam-migrate.go`):
//!
//! | file | content |
//! |---|---|
//! | `policies.json` | `{name: policy document}`, the built-ins too |
//! | `users.json` | `{accessKey: {"secretKey", "status": "enabled"\|"disabled"}}` |
//! | `groups.json` | `{group: {"status", "members": [...]}}` |
//! | `svcaccts.json` | `{accessKey: {"parent", "secretKey", "sessionPolicy", ...}}` |
//! | `user_mappings.json`, `group_mappings.json`, `stsuser_mappings.json` | `{name: {"policy": "a,b"}}` |
//!
//! The archive holds every user's secret key in the clear (MinIO's does too): it is as secret as
//! the keys themselves, is never logged, and its buffers are zeroized when dropped. Exporting
//! needs `admin:ExportIAM`, importing `admin:ImportIAM` (MinIO's actions).
//!
//! `PUT /import-iam` and `/import-iam-v2` read the archive into the same [`MinioIam`] the
//! offline import reads from MinIO's drives, and go through the same plan
//! (`crate::import::iam::plan`) and writes. Unlike the offline import, anything the plan refuses
//! (a malformed file, a policy that does not parse, a bad key, a policy no one defines, the root
//! user) refuses the whole archive before anything is written. Coffer has no groups (their
//! policies go to their members) and no service accounts (left out): both are answered as
//! skipped.
use std::collections::BTreeMap;

use s3s::{Body, S3Response, S3Result};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::archive::{self, Limits};
use crate::admin::{AdminRoute, Call, iam_err};
use crate::config::Secret;
use crate::iam::{IamError, builtin};
use crate::import::minio_iam::{MinioGroup, MinioIam, MinioUser};

const DIR: &str = "iam-assets";
const POLICIES: &str = "policies.json";
const USERS: &str = "users.json";
const GROUPS: &str = "groups.json";
const SERVICE_ACCOUNTS: &str = "svcaccts.json";
const USER_MAPPINGS: &str = "user_mappings.json";
const GROUP_MAPPINGS: &str = "group_mappings.json";
const STS_MAPPINGS: &str = "stsuser_mappings.json";

const LIMITS: Limits = Limits {
    entries: 16,
    entry_bytes: 32 << 20,
    total_bytes: 64 << 20,
};

/// `GET /export-iam`.
pub(super) async fn export(a: &AdminRoute) -> S3Result<S3Response<Body>> {
    let snap = a.iam.snapshot().await.map_err(iam_err)?;
    let mut policies = serde_json::Map::new();
    for (name, doc) in builtin::BUILTIN {
        policies.insert(
            (*name).to_owned(),
            serde_json::from_str(doc).expect("valid"),
        );
    }
    for (name, p) in &snap.policies {
        let doc = serde_json::from_str(&p.document).unwrap_or(Value::Null);
        policies.insert(name.clone(), doc);
    }
    let mut users = BTreeMap::new();
    let mut mappings = BTreeMap::new();
    for (ak, u) in &snap.users {
        users.insert(
            ak.as_str(),
            json!({
                "secretKey": u.secret.expose(),
                "status": if u.enabled { "enabled" } else { "disabled" },
            }),
        );
        if !u.policies.is_empty() {
            mappings.insert(
                ak.as_str(),
                json!({"version": 0, "policy": u.policies.join(",")}),
            );
        }
    }
    let users = Zeroizing::new(serde_json::to_vec(&users).expect("serializes"));
    let policies = serde_json::to_vec(&policies).expect("serializes");
    let mappings = serde_json::to_vec(&mappings).expect("serializes");
    let files: [(&str, &[u8]); 7] = [
        (POLICIES, &policies),
        (USERS, &users),
        (GROUPS, b"{}"),
        (SERVICE_ACCOUNTS, b"{}"),
        (USER_MAPPINGS, &mappings),
        (GROUP_MAPPINGS, b"{}"),
        (STS_MAPPINGS, b"{}"),
    ];
    let zip = Zeroizing::new(archive::write(
        files.into_iter().map(|(n, d)| (format!("{DIR}/{n}"), d)),
    ));
    Ok(crate::admin::bytes_response(
        zip.to_vec(),
        "application/octet-stream",
    ))
}

#[derive(Deserialize)]
struct ExportedUser {
    #[serde(rename = "secretKey", default)]
    secret_key: Zeroizing<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    policy: String,
}

#[derive(Deserialize)]
struct ExportedGroup {
    #[serde(default)]
    status: String,
    #[serde(default)]
    members: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Mapping {
    #[serde(default)]
    policy: String,
}

#[derive(Deserialize)]
struct ServiceAccount {
    #[serde(default)]
    parent: String,
}

fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse<'a, T: Deserialize<'a>>(file: &str, data: &'a [u8]) -> Result<T, String> {
    // serde_json's message names a line and column, never the value that failed.
    serde_json::from_slice(data).map_err(|e| format!("{DIR}/{file} is not valid: {e}"))
}

/// The archive as the MinIO IAM state it describes. Any file that does not read is an error.
pub(crate) fn read_archive(zip: &[u8]) -> Result<MinioIam, String> {
    let entries = archive::read(zip, &LIMITS)?;
    let mut out = MinioIam::default();
    let mut user_mappings: BTreeMap<String, Mapping> = BTreeMap::new();
    let mut group_mappings: BTreeMap<String, Mapping> = BTreeMap::new();
    let file = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == format!("{DIR}/{name}"))
            .map(|e| &e.data[..])
    };
    for e in &entries {
        let known = [
            POLICIES,
            USERS,
            GROUPS,
            SERVICE_ACCOUNTS,
            USER_MAPPINGS,
            GROUP_MAPPINGS,
            STS_MAPPINGS,
        ];
        if !known.iter().any(|k| e.name == format!("{DIR}/{k}")) {
            return Err(format!("{} is not a file of an IAM export", e.name));
        }
    }
    if let Some(d) = file(POLICIES) {
        let all: BTreeMap<String, Value> = parse(POLICIES, d)?;
        for (name, doc) in all {
            let empty = doc
                .get("Statement")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if empty {
                out.left_out.push((
                    format!("policy {name}"),
                    "an empty policy: nothing to import".into(),
                ));
                continue;
            }
            out.policies.insert(name, doc.to_string());
        }
    }
    if let Some(d) = file(USERS) {
        let all: BTreeMap<String, ExportedUser> = parse(USERS, d)?;
        for (ak, u) in all {
            let enabled = match u.status.as_str() {
                "" | "enabled" => true,
                "disabled" => false,
                other => return Err(format!("user {ak}: unknown status {other:?}")),
            };
            out.users.insert(
                ak,
                MinioUser {
                    secret: Secret::new(u.secret_key.to_string()),
                    enabled,
                    policies: names(&u.policy),
                },
            );
        }
    }
    if let Some(d) = file(GROUPS) {
        let all: BTreeMap<String, ExportedGroup> = parse(GROUPS, d)?;
        for (name, g) in all {
            out.groups.insert(
                name,
                MinioGroup {
                    enabled: g.status != "disabled",
                    members: g.members.unwrap_or_default(),
                    policies: Vec::new(),
                },
            );
        }
    }
    if let Some(d) = file(SERVICE_ACCOUNTS) {
        let all: BTreeMap<String, ServiceAccount> = parse(SERVICE_ACCOUNTS, d)?;
        for (ak, sa) in all {
            out.left_out.push((
                format!("service account {ak}"),
                format!(
                    "service accounts are not imported (Coffer has none): give {} a new key",
                    sa.parent
                ),
            ));
        }
    }
    if let Some(d) = file(STS_MAPPINGS) {
        let all: BTreeMap<String, Mapping> = parse(STS_MAPPINGS, d)?;
        for (name, m) in all {
            out.left_out.push((
                format!("STS policy mapping {name}"),
                format!(
                    "Coffer has no STS identities: policies {} not attached",
                    m.policy
                ),
            ));
        }
    }
    if let Some(d) = file(USER_MAPPINGS) {
        user_mappings = parse(USER_MAPPINGS, d)?;
    }
    if let Some(d) = file(GROUP_MAPPINGS) {
        group_mappings = parse(GROUP_MAPPINGS, d)?;
    }
    for (user, m) in user_mappings {
        let Some(u) = out.users.get_mut(&user) else {
            return Err(format!(
                "{DIR}/{USER_MAPPINGS} attaches policies to {user}, who is not a user of the archive"
            ));
        };
        for p in names(&m.policy) {
            if !u.policies.contains(&p) {
                u.policies.push(p);
            }
        }
    }
    for (group, m) in group_mappings {
        // A group with policies and no members (an LDAP group's mapping) is reported by the plan.
        out.groups.entry(group).or_default().policies = names(&m.policy);
    }
    Ok(out)
}

/// `PUT /import-iam` (`v2`: answers madmin's `ImportIAMResult`).
pub(super) async fn import(a: &AdminRoute, c: &Call, v2: bool) -> S3Result<S3Response<Body>> {
    let minio = read_archive(&c.body).map_err(|e| iam_err(IamError::Invalid(e)))?;
    let existing = a.iam.snapshot().await.map_err(iam_err)?;
    let mut plan = crate::import::iam::plan(minio, a.iam.root_user(), &existing);
    if let Some((what, why)) = plan.refused.first() {
        return Err(iam_err(IamError::Invalid(format!(
            "nothing was imported: {what}: {why}{}",
            match plan.refused.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            }
        ))));
    }
    let notes = std::mem::take(&mut plan.notes);
    let mut importer = a.importer();
    importer.apply_iam(plan).await;
    let report = importer.into_report();
    tracing::info!(
        by = %c.access_key,
        users = report.users.len(),
        policies = report.policies.len(),
        left_out = notes.len(),
        failed = report.skipped.len(),
        "IAM imported"
    );
    if !report.skipped.is_empty() {
        // Coffer's IAM refused a write the plan had checked (its store or KMS failed).
        let failed: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.iam.as_deref().unwrap_or(""), s.reason))
            .collect();
        return Err(iam_err(IamError::Invalid(format!(
            "the import stopped part way: {}",
            failed.join("; ")
        ))));
    }
    if !v2 {
        return crate::admin::ok();
    }
    let skipped = |prefix: &str| -> Vec<&str> {
        notes
            .iter()
            .filter_map(|(what, _)| what.strip_prefix(prefix))
            .collect()
    };
    crate::admin::json(&json!({
        "added": {"policies": report.policies, "users": report.users},
        "skipped": {
            "policies": skipped("policy "),
            "groups": skipped("group "),
            "serviceAccounts": skipped("service account "),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip(files: &[(&str, &str)]) -> Vec<u8> {
        archive::write(
            files
                .iter()
                .map(|(n, d)| (format!("{DIR}/{n}"), d.as_bytes())),
        )
    }

    /// MinIO's export (its shape as `mc admin cluster iam export` writes it) reads into the
    /// offline import's MinIO state: users with own and mapped policies, groups, left-out items.
    #[test]
    fn minio_export_reads() {
        let z = zip(&[
            (
                POLICIES,
                r#"{"readonly":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"]}]},"getb1":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::bkt1/*"]}]},"void":{}}"#,
            ),
            (
                USERS,
                r#"{"alice":{"secretKey":"alice-secret-key","status":"enabled"},"carol":{"secretKey":"carol-secret-key","status":"disabled"}}"#,
            ),
            (
                GROUPS,
                r#"{"team":{"version":1,"status":"enabled","members":["alice"],"updatedAt":"2026-12-07T17:28:52Z"}}"#,
            ),
            (
                SERVICE_ACCOUNTS,
                r#"{"svc1":{"parent":"alice","accessKey":"svc1","secretKey":"svc-secret-key","sessionPolicy":null}}"#,
            ),
            (USER_MAPPINGS, r#"{"alice":{"version":0,"policy":"getb1"}}"#),
            (GROUP_MAPPINGS, r#"{"team":{"policy":"readonly"}}"#),
            (STS_MAPPINGS, "{}"),
        ]);
        let m = read_archive(&z).unwrap();
        assert_eq!(m.users["alice"].secret.expose(), "alice-secret-key");
        assert_eq!(m.users["alice"].policies, ["getb1"]);
        assert!(!m.users["carol"].enabled);
        assert_eq!(m.groups["team"].members, ["alice"]);
        assert_eq!(m.groups["team"].policies, ["readonly"]);
        assert_eq!(m.policies.keys().collect::<Vec<_>>(), ["getb1", "readonly"]);
        let left: Vec<&str> = m.left_out.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(left, ["policy void", "service account svc1"]);
    }

    #[test]
    fn malformed_exports_are_errors() {
        for (files, want) in [
            (vec![(USERS, "{not json")], "users.json is not valid"),
            (vec![("other.json", "{}")], "not a file of an IAM export"),
            (
                vec![(USER_MAPPINGS, r#"{"ghost":{"policy":"readonly"}}"#)],
                "not a user of the archive",
            ),
            (
                vec![(
                    USERS,
                    r#"{"u1x":{"secretKey":"abcdefgh1","status":"maybe"}}"#,
                )],
                "unknown status",
            ),
        ] {
            let e = read_archive(&zip(&files)).err().expect("refused");
            assert!(e.contains(want), "{e}");
        }
    }
}
