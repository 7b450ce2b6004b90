//! The IAM policy language, the subset MinIO supports: `Effect`, `Principal` (bucket policies),
//! `Action`/`NotAction` and `Resource`/`NotResource` with `*` and `?` wildcards, and `Condition`
//! blocks ([`super::condition`]). Pure logic: a [`Policy`] is
//! parsed from JSON and evaluated against a [`Request`]; an explicit deny wins over any allow.
use std::collections::HashMap;

use serde_json::Value;

use super::condition::{Condition, parse_conditions};

/// The ARN prefix of S3 resources; patterns are kept without it.
pub const S3_ARN: &str = "arn:aws:s3:::";

/// Why a policy document was refused. Messages name the offending part, as MinIO's do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Not JSON, or not an object.
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    /// `Version` is not a supported version.
    #[error("invalid policy version '{0}'")]
    Version(String),
    /// No statements.
    #[error("policy has no statements")]
    Empty,
    /// A statement is malformed.
    #[error("statement {index}: {reason}")]
    Statement {
        /// 0-based statement number.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else grants.
    Deny,
}

/// The outcome of evaluating policies for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement denies it.
    Deny,
    /// No statement applies.
    NoMatch,
}

impl Decision {
    /// Combines two evaluations: deny wins, then allow.
    pub fn and(self, other: Decision) -> Decision {
        match (self, other) {
            (Decision::Deny, _) | (_, Decision::Deny) => Decision::Deny,
            (Decision::Allow, _) | (_, Decision::Allow) => Decision::Allow,
            _ => Decision::NoMatch,
        }
    }
}

/// Who a bucket-policy statement applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    /// Anyone, anonymous included.
    Anyone,
    /// These access keys (from `"AWS": ["name", "arn:aws:iam::…:user/name"]`).
    Users(Vec<String>),
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principal: Option<Principal>,
    actions: Vec<String>,
    not_actions: Vec<String>,
    resources: Vec<String>,
    not_resources: Vec<String>,
    conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// One request as policies see it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// e.g. `s3:GetObject`, `admin:CreateUser`.
    pub action: &'a str,
    /// Empty for service-level requests.
    pub bucket: &'a str,
    /// Empty for bucket-level requests.
    pub object: &'a str,
    /// The caller's access key; `None` for an anonymous request.
    pub principal: Option<&'a str>,
    /// Condition values by lowercase key.
    pub conditions: &'a HashMap<String, Vec<String>>,
}

impl Request<'_> {
    /// The resource without the ARN prefix: `bucket/`, `bucket/object`, or `` (service).
    fn resource(&self) -> String {
        if self.object.is_empty() {
            format!("{}/", self.bucket)
        } else {
            format!("{}/{}", self.bucket, self.object)
        }
    }
}

/// `*` matches any sequence, `?` one character (MinIO's wildcard rules).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn resource_matches(pattern: &str, resource: &str) -> bool {
    // `arn:aws:s3:::bucket` names the bucket itself (`bucket/`), as MinIO's path.Clean does.
    resource.strip_suffix('/').is_some_and(|b| b == pattern) || wildcard_match(pattern, resource)
}

fn action_matches(pattern: &str, action: &str) -> bool {
    // Action names are case-insensitive in AWS.
    wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

impl Statement {
    fn applies(&self, req: &Request<'_>) -> bool {
        self.targets(req) && self.conditions.iter().all(|c| c.holds(req.conditions))
    }

    /// Whether the statement speaks about this principal, action and resource (its conditions
    /// aside).
    fn targets(&self, req: &Request<'_>) -> bool {
        if let Some(p) = &self.principal {
            let ok = match (p, req.principal) {
                (Principal::Anyone, _) => true,
                (Principal::Users(u), Some(who)) => u.iter().any(|n| n == who || n == "*"),
                (Principal::Users(_), None) => false,
            };
            if !ok {
                return false;
            }
        }
        if !self.actions.is_empty() && !self.actions.iter().any(|a| action_matches(a, req.action)) {
            return false;
        }
        if self
            .not_actions
            .iter()
            .any(|a| action_matches(a, req.action))
        {
            return false;
        }
        // Admin and KMS statements are not about S3 resources (MinIO ignores their Resource).
        let non_s3 = req.action.starts_with("admin:") || req.action.starts_with("kms:");
        if !non_s3 {
            let resource = req.resource();
            if !self.resources.is_empty()
                && !self
                    .resources
                    .iter()
                    .any(|r| resource_matches(r, &resource))
            {
                return false;
            }
            if self
                .not_resources
                .iter()
                .any(|r| resource_matches(r, &resource))
            {
                return false;
            }
        }
        true
    }
}

pub(super) fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    let one = |x: &Value| match x {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("{what} must be a string or a list of strings")),
    };
    match v {
        Value::Array(a) => a.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn parse_principal(v: &Value) -> Result<Principal, String> {
    let users = match v {
        Value::String(s) if s == "*" => return Ok(Principal::Anyone),
        Value::Object(m) => match m.get("AWS") {
            Some(a) => strings(a, "Principal.AWS")?,
            None => return Err("Principal must be \"*\" or {\"AWS\": …}".into()),
        },
        _ => return Err("Principal must be \"*\" or {\"AWS\": …}".into()),
    };
    if users.iter().any(|u| u == "*") {
        return Ok(Principal::Anyone);
    }
    // `arn:aws:iam::<account>:user/<name>` names user `<name>`.
    Ok(Principal::Users(
        users
            .into_iter()
            .map(|u| match u.rsplit_once(":user/") {
                Some((_, name)) => name.to_owned(),
                None => u,
            })
            .collect(),
    ))
}

fn parse_resources(v: &Value) -> Result<Vec<String>, String> {
    strings(v, "Resource")?
        .into_iter()
        .map(|r| {
            if r == "*" {
                return Ok("*".to_owned());
            }
            match r.strip_prefix(S3_ARN) {
                Some(p) if !p.is_empty() => Ok(p.to_owned()),
                _ => Err(format!(
                    "invalid resource '{r}': expected arn:aws:s3:::bucket[/object]"
                )),
            }
        })
        .collect()
}

fn parse_statement(v: &Value, bucket_policy: bool) -> Result<Statement, String> {
    let Value::Object(m) = v else {
        return Err("must be an object".into());
    };
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(format!("unknown field '{k}'"));
        }
    }
    let effect = match m.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("Effect must be \"Allow\" or \"Deny\"".into()),
    };
    let principal = match m.get("Principal") {
        Some(p) => Some(parse_principal(p)?),
        None if bucket_policy => return Err("a bucket policy statement needs a Principal".into()),
        None => None,
    };
    let actions = m
        .get("Action")
        .map(|a| strings(a, "Action"))
        .transpose()?
        .unwrap_or_default();
    let not_actions = m
        .get("NotAction")
        .map(|a| strings(a, "NotAction"))
        .transpose()?
        .unwrap_or_default();
    if actions.is_empty() && not_actions.is_empty() {
        return Err("Action is missing".into());
    }
    for a in actions.iter().chain(&not_actions) {
        let ok = a == "*"
            || ["s3:", "admin:", "kms:", "sts:"]
                .iter()
                .any(|p| a.to_ascii_lowercase().starts_with(p) && a.len() > p.len());
        if !ok {
            return Err(format!("invalid action '{a}'"));
        }
    }
    let resources = m
        .get("Resource")
        .map(parse_resources)
        .transpose()?
        .unwrap_or_default();
    let not_resources = m
        .get("NotResource")
        .map(parse_resources)
        .transpose()?
        .unwrap_or_default();
    let s3_only = actions
        .iter()
        .chain(&not_actions)
        .all(|a| a == "*" || a.to_ascii_lowercase().starts_with("s3:"));
    if s3_only && resources.is_empty() && not_resources.is_empty() {
        return Err("Resource is missing".into());
    }
    let conditions = m
        .get("Condition")
        .map(parse_conditions)
        .transpose()?
        .unwrap_or_default();
    Ok(Statement {
        effect,
        principal,
        actions,
        not_actions,
        resources,
        not_resources,
        conditions,
    })
}

impl Policy {
    /// Parses an identity policy (statements without `Principal`).
    pub fn parse(json: &[u8]) -> Result<Policy, PolicyError> {
        Self::parse_as(json, false)
    }

    /// Parses a bucket policy (every statement names a `Principal`).
    pub fn parse_bucket_policy(json: &[u8]) -> Result<Policy, PolicyError> {
        Self::parse_as(json, true)
    }

    /// A bucket policy that denies every action on `bucket` and its objects to everyone: what
    /// a stored bucket policy that cannot be read stands for (failing closed).
    pub fn deny_everything(bucket: &str) -> Policy {
        let doc = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["*"],
                "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            }],
        });
        Self::parse_bucket_policy(doc.to_string().as_bytes())
            .expect("the deny-everything policy is well formed")
    }

    fn parse_as(json: &[u8], bucket_policy: bool) -> Result<Policy, PolicyError> {
        let v: Value =
            serde_json::from_slice(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        let Value::Object(m) = &v else {
            return Err(PolicyError::Json("expected an object".into()));
        };
        match m.get("Version").and_then(Value::as_str) {
            None | Some("2012-10-17") | Some("2008-10-17") => {}
            Some(other) => return Err(PolicyError::Version(other.to_owned())),
        }
        let statements = match m.get("Statement") {
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            Some(o @ Value::Object(_)) => vec![o],
            _ => return Err(PolicyError::Empty),
        };
        if statements.is_empty() {
            return Err(PolicyError::Empty);
        }
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, s)| {
                parse_statement(s, bucket_policy)
                    .map_err(|reason| PolicyError::Statement { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { statements })
    }

    /// Evaluates the request: [`Decision::Deny`] if any statement denies it, else
    /// [`Decision::Allow`] if one allows it.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let mut decision = Decision::NoMatch;
        for s in &self.statements {
            if s.applies(req) {
                match s.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }

    /// Whether a statement that speaks about this request (principal, action, resource) tests a
    /// condition key starting with `prefix`: what tells whether a value that costs something to
    /// find (an object's tags) can change the decision. `req.conditions` is not looked at.
    pub fn may_test(&self, req: &Request<'_>, prefix: &str) -> bool {
        self.statements
            .iter()
            .any(|s| s.conditions.iter().any(|c| c.key().starts_with(prefix)) && s.targets(req))
    }

    /// Whether every resource the policy names is in `bucket` (a bucket policy may only speak
    /// about its own bucket).
    pub fn only_about_bucket(&self, bucket: &str) -> bool {
        self.statements.iter().all(|s| {
            s.resources.iter().chain(&s.not_resources).all(|r| {
                r == bucket
                    || r.strip_prefix(bucket)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        })
    }

    /// Whether a statement allows anyone (anonymous included) without conditions: the
    /// `IsPublic` of GetBucketPolicyStatus.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && s.principal == Some(Principal::Anyone)
                && s.conditions.is_empty()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry((*k).to_owned()).or_default().push((*v).to_owned());
        }
        m
    }

    fn req<'a>(
        action: &'a str,
        bucket: &'a str,
        object: &'a str,
        c: &'a HashMap<String, Vec<String>>,
    ) -> Request<'a> {
        Request {
            action,
            bucket,
            object,
            principal: Some("app"),
            conditions: c,
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("bucket/*", "bucket/x/y"));
        assert!(!wildcard_match("bucket/*", "bucket2/x"));
        assert!(wildcard_match("*.txt", "a/b.txt"));
        assert!(!wildcard_match("*.txt", "a/b.txt.gz"));
    }

    #[test]
    fn actions_resources_and_deny_wins() {
        let p = Policy::parse(
            br#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":["s3:Get*","s3:ListBucket"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]},
              {"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/private/*"}]}"#,
        )
        .unwrap();
        let c = HashMap::new();
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "photos", "a.jpg", &c)),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&req("s3:getobject", "photos", "a.jpg", &c)),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&req("s3:ListBucket", "photos", "", &c)),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "photos", "private/x", &c)),
            Decision::Deny
        );
        assert_eq!(
            p.evaluate(&req("s3:PutObject", "photos", "a", &c)),
            Decision::NoMatch
        );
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "other", "a", &c)),
            Decision::NoMatch
        );
    }

    #[test]
    fn deny_unencrypted_put() {
        let p = Policy::parse_bucket_policy(
            br#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",
              "Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
              "Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":["AES256","aws:kms"]}}}]}"#,
        )
        .unwrap();
        let none = HashMap::new();
        assert_eq!(
            p.evaluate(&req("s3:PutObject", "b", "o", &none)),
            Decision::Deny
        );
        let sse = cond(&[("s3:x-amz-server-side-encryption", "AES256")]);
        assert_eq!(
            p.evaluate(&req("s3:PutObject", "b", "o", &sse)),
            Decision::NoMatch
        );
        let null = Policy::parse_bucket_policy(
            br#"{"Statement":[{"Effect":"Deny","Principal":{"AWS":["*"]},"Action":"s3:PutObject",
              "Resource":"arn:aws:s3:::b/*","Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            null.evaluate(&req("s3:PutObject", "b", "o", &none)),
            Decision::Deny
        );
        assert_eq!(
            null.evaluate(&req("s3:PutObject", "b", "o", &sse)),
            Decision::NoMatch
        );
    }

    #[test]
    fn conditions() {
        let p = Policy::parse(
            br#"{"Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
              "Condition":{"StringLike":{"s3:prefix":["home/*"]},"Bool":{"aws:SecureTransport":true}}}]}"#,
        )
        .unwrap();
        let ok = cond(&[("s3:prefix", "home/a"), ("aws:securetransport", "true")]);
        assert_eq!(
            p.evaluate(&req("s3:ListBucket", "b", "", &ok)),
            Decision::Allow
        );
        let plain = cond(&[("s3:prefix", "home/a"), ("aws:securetransport", "false")]);
        assert_eq!(
            p.evaluate(&req("s3:ListBucket", "b", "", &plain)),
            Decision::NoMatch
        );
        let other = cond(&[("s3:prefix", "etc/"), ("aws:securetransport", "true")]);
        assert_eq!(
            p.evaluate(&req("s3:ListBucket", "b", "", &other)),
            Decision::NoMatch
        );
        let ip = Policy::parse(
            br#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*",
              "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
        )
        .unwrap();
        let inside = cond(&[("aws:sourceip", "10.1.2.3")]);
        let outside = cond(&[("aws:sourceip", "192.168.1.1")]);
        assert_eq!(
            ip.evaluate(&req("s3:GetObject", "b", "o", &inside)),
            Decision::Allow
        );
        assert_eq!(
            ip.evaluate(&req("s3:GetObject", "b", "o", &outside)),
            Decision::NoMatch
        );
    }

    #[test]
    fn principals() {
        let p = Policy::parse_bucket_policy(
            br#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123:user/app"]},
              "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        )
        .unwrap();
        let c = HashMap::new();
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "b", "o", &c)),
            Decision::Allow
        );
        let anon = Request {
            principal: None,
            ..req("s3:GetObject", "b", "o", &c)
        };
        assert_eq!(p.evaluate(&anon), Decision::NoMatch);
        assert!(!p.is_public());
        assert!(p.only_about_bucket("b"));
        assert!(!p.only_about_bucket("bb"));
    }

    #[test]
    fn bad_documents_are_refused() {
        for (doc, want) in [
            (&br#"{"Statement":[]}"#[..], "no statements"),
            (br#"{"Version":"2020-01-01","Statement":[]}"#, "version"),
            (br#"{"Statement":[{"Effect":"Maybe","Action":"s3:*","Resource":"*"}]}"#, "Effect"),
            (br#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#, "Action is missing"),
            (br#"{"Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#, "Resource is missing"),
            (br#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"bucket"}]}"#, "invalid resource"),
            (br#"{"Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#, "invalid action"),
            (br#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"x:y":"z"}}}]}"#, "condition key"),
            (br#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Fancy":{"s3:prefix":"z"}}}]}"#, "operator"),
            (b"not json", "JSON"),
        ] {
            let e = Policy::parse(doc).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
        let e = Policy::parse_bucket_policy(
            br#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Principal"));
    }

    /// Only a statement that could decide the request counts: its principal, action and
    /// resource match.
    #[test]
    fn may_test_looks_only_at_statements_that_apply() {
        let p = Policy::parse_bucket_policy(
            br#"{"Statement":[
              {"Effect":"Allow","Principal":{"AWS":["app"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/tagged/*",
               "Condition":{"StringEquals":{"s3:ExistingObjectTag/env":"prod"}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
               "Condition":{"StringEquals":{"s3:x-amz-server-side-encryption":"AES256"}}}]}"#,
        )
        .unwrap();
        let c = HashMap::new();
        let tag = "s3:existingobjecttag/";
        assert!(p.may_test(&req("s3:GetObject", "b", "tagged/x", &c), tag));
        assert!(!p.may_test(&req("s3:GetObject", "b", "other/x", &c), tag));
        assert!(!p.may_test(&req("s3:PutObject", "b", "tagged/x", &c), tag));
        let anon = Request {
            principal: None,
            ..req("s3:GetObject", "b", "tagged/x", &c)
        };
        assert!(!p.may_test(&anon, tag));
        assert!(p.may_test(&anon, "s3:x-amz-server-side"));
    }

    #[test]
    fn admin_statements_ignore_resources() {
        let p =
            Policy::parse(br#"{"Statement":[{"Effect":"Allow","Action":["admin:*"]}]}"#).unwrap();
        let c = HashMap::new();
        assert_eq!(
            p.evaluate(&req("admin:CreateUser", "", "", &c)),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "b", "o", &c)),
            Decision::NoMatch
        );
    }
}
