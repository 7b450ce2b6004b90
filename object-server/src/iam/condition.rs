//! `Condition` blocks of the IAM policy language: the string, boolean, null, numeric and IP
//! operators with MinIO's semantics (`StringNotEquals` holds when the key is absent, `Null`
//! tests presence, `ForAllValues:`/`ForAnyValue:` qualifiers, `…IfExists`), on the condition
//! keys MinIO knows. Pure logic.
//!
//! Condition keys are case-insensitive, except the tag key of `s3:ExistingObjectTag/<key>` and
//! `s3:RequestObjectTag/<key>`: object tags are case-sensitive, so `…/Env` and `…/env` name two
//! tags (keys are kept as the lowercase prefix followed by the tag key as written).
use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

use super::object_tags::{EXISTING_OBJECT_TAG, REQUEST_OBJECT_TAG, REQUEST_OBJECT_TAG_KEYS};
use super::policy::{strings, wildcard_match};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Bool,
    Null,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    IpAddress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    /// Some request value matches some policy value (the default).
    AnyValue,
    /// Every request value matches a policy value (true when the key is absent).
    AllValues,
}

#[derive(Debug, Clone)]
pub(super) struct Condition {
    operator: Operator,
    negate: bool,
    if_exists: bool,
    qualifier: Qualifier,
    /// Lowercase key, e.g. `s3:x-amz-server-side-encryption` (a tag key keeps its case).
    key: String,
    values: Vec<String>,
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse().ok()
}

fn ip_in_cidr(ip: &str, cidr: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Condition {
    fn value_matches(&self, got: &str, want: &str) -> bool {
        match self.operator {
            Operator::StringEquals | Operator::Bool => got == want,
            Operator::StringEqualsIgnoreCase => got.eq_ignore_ascii_case(want),
            Operator::StringLike => wildcard_match(want, got),
            Operator::NumericEquals => parse_number(got) == parse_number(want),
            Operator::NumericLessThan => cmp_num(got, want, |a, b| a < b),
            Operator::NumericLessThanEquals => cmp_num(got, want, |a, b| a <= b),
            Operator::NumericGreaterThan => cmp_num(got, want, |a, b| a > b),
            Operator::NumericGreaterThanEquals => cmp_num(got, want, |a, b| a >= b),
            Operator::IpAddress => ip_in_cidr(got, want),
            Operator::Null => unreachable!("Null is evaluated on presence"),
        }
    }

    /// The condition key it tests, as [`normalize_key`] spells it.
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    pub(super) fn holds(&self, values: &HashMap<String, Vec<String>>) -> bool {
        let got: &[String] = values.get(&self.key).map(Vec::as_slice).unwrap_or(&[]);
        if self.operator == Operator::Null {
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return got.is_empty() == want_absent;
        }
        if got.is_empty() && self.if_exists {
            return true;
        }
        let matches = |g: &String| self.values.iter().any(|w| self.value_matches(g, w));
        let result = match self.qualifier {
            Qualifier::AnyValue => got.iter().any(matches),
            Qualifier::AllValues => got.iter().all(matches),
        };
        result != self.negate
    }
}

fn cmp_num(got: &str, want: &str, f: impl Fn(f64, f64) -> bool) -> bool {
    match (parse_number(got), parse_number(want)) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    }
}

/// Condition keys policies may name (lowercase); anything else is refused, as MinIO does.
const KNOWN_KEYS: &[&str] = &[
    "aws:securetransport",
    "aws:sourceip",
    "aws:useragent",
    "aws:referer",
    "aws:username",
    "aws:userid",
    "aws:principaltype",
    "aws:currenttime",
    "aws:epochtime",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:versionid",
    "s3:signatureversion",
    "s3:authtype",
    "s3:locationconstraint",
];

/// The key as conditions are matched on (lowercase; a tag key as written), or `None` for a key
/// policies may not name (anything else is refused, as MinIO does).
fn normalize_key(key: &str) -> Option<String> {
    let lower = key.to_ascii_lowercase();
    for prefix in [EXISTING_OBJECT_TAG, REQUEST_OBJECT_TAG] {
        if lower.starts_with(prefix) {
            // ASCII lowercasing keeps byte offsets: the tag key starts at the same place.
            let tag = &key[prefix.len()..];
            return (!tag.is_empty()).then(|| format!("{prefix}{tag}"));
        }
    }
    // Request headers are condition keys too: s3:x-amz-server-side-encryption, s3:x-amz-acl, ...
    let known = KNOWN_KEYS.contains(&lower.as_str())
        || lower == REQUEST_OBJECT_TAG_KEYS
        || lower.starts_with("s3:x-amz-");
    known.then_some(lower)
}

fn parse_operator(name: &str) -> Result<(Operator, bool, bool, Qualifier), String> {
    let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAllValues:") {
        (Qualifier::AllValues, r)
    } else if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (Qualifier::AnyValue, r)
    } else {
        (Qualifier::AnyValue, name)
    };
    let (rest, if_exists) = match rest.strip_suffix("IfExists") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (op, negate) = match rest {
        "StringEquals" => (Operator::StringEquals, false),
        "StringNotEquals" => (Operator::StringEquals, true),
        "StringEqualsIgnoreCase" => (Operator::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Operator::StringEqualsIgnoreCase, true),
        "StringLike" => (Operator::StringLike, false),
        "StringNotLike" => (Operator::StringLike, true),
        "Bool" => (Operator::Bool, false),
        "Null" => (Operator::Null, false),
        "NumericEquals" => (Operator::NumericEquals, false),
        "NumericNotEquals" => (Operator::NumericEquals, true),
        "NumericLessThan" => (Operator::NumericLessThan, false),
        "NumericLessThanEquals" => (Operator::NumericLessThanEquals, false),
        "NumericGreaterThan" => (Operator::NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (Operator::NumericGreaterThanEquals, false),
        "IpAddress" => (Operator::IpAddress, false),
        "NotIpAddress" => (Operator::IpAddress, true),
        _ => return Err(format!("unsupported condition operator '{name}'")),
    };
    Ok((op, negate, if_exists, qualifier))
}

pub(super) fn parse_conditions(v: &Value) -> Result<Vec<Condition>, String> {
    let Value::Object(ops) = v else {
        return Err("Condition must be an object".into());
    };
    let mut out = Vec::new();
    for (name, keys) in ops {
        let (operator, negate, if_exists, qualifier) = parse_operator(name)?;
        let Value::Object(keys) = keys else {
            return Err(format!("Condition '{name}' must map keys to values"));
        };
        for (key, values) in keys {
            let Some(normalized) = normalize_key(key) else {
                return Err(format!("unsupported condition key '{key}'"));
            };
            let values = strings(values, "a condition value")?;
            if operator == Operator::Bool
                && values
                    .iter()
                    .any(|v| !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false"))
            {
                return Err(format!("Bool condition on '{key}' needs true or false"));
            }
            let values = if operator == Operator::Bool {
                values.iter().map(|v| v.to_ascii_lowercase()).collect()
            } else {
                values
            };
            out.push(Condition {
                operator,
                negate,
                if_exists,
                qualifier,
                key: normalized,
                values,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Condition {
        let v: Value = serde_json::from_str(json).unwrap();
        let mut c = parse_conditions(&v).unwrap();
        assert_eq!(c.len(), 1);
        c.remove(0)
    }

    fn values(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry((*k).to_owned()).or_default().push((*v).to_owned());
        }
        m
    }

    /// The tag key of the object-tag condition keys keeps its case (object tags are
    /// case-sensitive); the rest of a key does not matter; an empty tag key is refused.
    #[test]
    fn object_tag_keys() {
        let c = one(r#"{"StringEquals":{"S3:ExistingObjectTag/Env":"prod"}}"#);
        assert_eq!(c.key(), "s3:existingobjecttag/Env");
        assert!(c.holds(&values(&[("s3:existingobjecttag/Env", "prod")])));
        assert!(!c.holds(&values(&[("s3:existingobjecttag/env", "prod")])));
        let r = one(r#"{"StringLike":{"s3:RequestObjectTag/team":"a*"}}"#);
        assert_eq!(r.key(), "s3:requestobjecttag/team");
        let keys = one(
            r#"{"ForAllValues:StringEquals":{"s3:RequestObjectTagKeys":["Owner","CreationDate"]}}"#,
        );
        assert_eq!(keys.key(), "s3:requestobjecttagkeys");
        let tagged = |ks: &[&str]| {
            let pairs: Vec<_> = ks.iter().map(|k| ("s3:requestobjecttagkeys", *k)).collect();
            values(&pairs)
        };
        assert!(keys.holds(&tagged(&["Owner"])));
        assert!(keys.holds(&tagged(&["Owner", "CreationDate"])));
        assert!(!keys.holds(&tagged(&["Owner", "Secret"])));
        assert!(
            keys.holds(&tagged(&[])),
            "ForAllValues holds on no tags, as AWS's does"
        );
        let any = one(r#"{"ForAnyValue:StringEquals":{"s3:RequestObjectTagKeys":["Owner"]}}"#);
        assert!(any.holds(&tagged(&["Secret", "Owner"])));
        assert!(!any.holds(&tagged(&[])));
        for bad in [
            r#"{"StringEquals":{"s3:ExistingObjectTag/":"x"}}"#,
            r#"{"StringEquals":{"s3:RequestObjectTag":"x"}}"#,
            r#"{"StringEquals":{"s3:ExistingObjectTags":"x"}}"#,
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(parse_conditions(&v).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert!(ip_in_cidr("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_in_cidr("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_in_cidr("127.0.0.1", "127.0.0.1"));
        assert!(ip_in_cidr("::1", "::/0"));
        assert!(!ip_in_cidr("::1", "10.0.0.0/8"));
        assert!(!ip_in_cidr("nonsense", "10.0.0.0/8"));
    }

    #[test]
    fn qualifiers_if_exists_and_numbers() {
        let all = one(r#"{"ForAllValues:StringLike":{"s3:prefix":["home/*"]}}"#);
        assert!(all.holds(&values(&[])));
        assert!(all.holds(&values(&[("s3:prefix", "home/a"), ("s3:prefix", "home/b")])));
        assert!(!all.holds(&values(&[("s3:prefix", "home/a"), ("s3:prefix", "etc")])));
        let any = one(r#"{"ForAnyValue:StringEquals":{"s3:prefix":["a","b"]}}"#);
        assert!(any.holds(&values(&[("s3:prefix", "x"), ("s3:prefix", "b")])));
        assert!(!any.holds(&values(&[])));
        let if_exists =
            one(r#"{"StringEqualsIfExists":{"s3:x-amz-server-side-encryption":"AES256"}}"#);
        assert!(if_exists.holds(&values(&[])));
        assert!(!if_exists.holds(&values(&[("s3:x-amz-server-side-encryption", "aws:kms")])));
        let max = one(r#"{"NumericLessThanEquals":{"s3:max-keys":10}}"#);
        assert!(max.holds(&values(&[("s3:max-keys", "10")])));
        assert!(!max.holds(&values(&[("s3:max-keys", "11")])));
        assert!(!max.holds(&values(&[("s3:max-keys", "many")])));
        let ci = one(r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#);
        assert!(!ci.holds(&values(&[("aws:username", "alice")])));
        assert!(ci.holds(&values(&[("aws:username", "bob")])));
        let null = one(r#"{"Null":{"s3:x-amz-server-side-encryption":false}}"#);
        assert!(null.holds(&values(&[("s3:x-amz-server-side-encryption", "AES256")])));
        assert!(!null.holds(&values(&[])));
    }
}
