//! MinIO's built-in policies, with MinIO's names and rights. One difference: `readonly` also
//! allows `s3:GetObjectVersion`. MinIO asks only `s3:GetObject` for a GET of a named version, so
//! its readonly users read old versions; here a named version needs the version action, as AWS
//! documents (so that a `Deny s3:GetObjectVersion` works), and readonly keeps what it could do.
use super::policy::Policy;

/// `(name, document)` of every built-in policy.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "readwrite",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "readonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetBucketLocation","s3:GetObject","s3:GetObjectVersion"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "writeonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "diagnostics",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:Profiling","admin:ServerTrace","admin:ConsoleLog","admin:ServerInfo","admin:TopLocksInfo","admin:OBDInfo","admin:BandwidthMonitor","admin:Prometheus"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "consoleAdmin",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:*"]},{"Effect":"Allow","Action":["kms:*"]},{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
];

/// The document of built-in policy `name`.
pub fn document(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// The parsed built-in policy `name`.
pub fn policy(name: &str) -> Option<Policy> {
    document(name).map(|d| Policy::parse(d.as_bytes()).expect("built-in policies parse"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::policy::{Decision, Request};
    use std::collections::HashMap;

    #[test]
    fn builtins_grant_what_minio_grants() {
        let c = HashMap::new();
        let r = |action, object| Request {
            action,
            bucket: "b",
            object,
            principal: Some("u"),
            conditions: &c,
        };
        for (name, _) in BUILTIN {
            assert!(policy(name).is_some(), "{name}");
        }
        let ro = policy("readonly").unwrap();
        assert_eq!(ro.evaluate(&r("s3:GetObject", "o")), Decision::Allow);
        assert_eq!(ro.evaluate(&r("s3:GetObjectVersion", "o")), Decision::Allow);
        assert_eq!(ro.evaluate(&r("s3:PutObject", "o")), Decision::NoMatch);
        let wo = policy("writeonly").unwrap();
        assert_eq!(wo.evaluate(&r("s3:PutObject", "o")), Decision::Allow);
        assert_eq!(wo.evaluate(&r("s3:GetObject", "o")), Decision::NoMatch);
        let rw = policy("readwrite").unwrap();
        assert_eq!(rw.evaluate(&r("s3:DeleteBucket", "")), Decision::Allow);
        assert_eq!(rw.evaluate(&r("admin:CreateUser", "")), Decision::NoMatch);
        let admin = policy("consoleAdmin").unwrap();
        assert_eq!(admin.evaluate(&r("admin:CreateUser", "")), Decision::Allow);
        assert_eq!(admin.evaluate(&r("kms:CreateKey", "")), Decision::Allow);
        let diag = policy("diagnostics").unwrap();
        assert_eq!(diag.evaluate(&r("admin:ServerInfo", "")), Decision::Allow);
        assert_eq!(diag.evaluate(&r("admin:CreateUser", "")), Decision::NoMatch);
    }
}
