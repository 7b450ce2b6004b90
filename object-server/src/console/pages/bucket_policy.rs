//! The bucket policy on the settings page: an editor (PutBucketPolicy with the text as typed,
//! so S3's own parser validates it and a malformed policy is refused with S3's error and
//! changes nothing; an empty editor deletes the policy) and anonymous access presets as
//! `mc anonymous set none|download|upload|public` makes them: the policy's statements for
//! everyone (`"Principal": "*"`) are replaced by the preset's, other statements are kept.
use std::collections::BTreeSet;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::{Refusal, absent_as_none, ok, ok_bytes};
use crate::console::http_util::field;
use crate::console::router::{Console, Signed};
use crate::console::s3call::Call;

/// The presets, with mc's actions: (name, on the bucket, on its objects).
const PRESETS: [(&str, &[&str], &[&str]); 3] = [
    (
        "download",
        &["s3:GetBucketLocation", "s3:ListBucket"],
        &["s3:GetObject"],
    ),
    (
        "upload",
        &["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
        &[
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:ListMultipartUploadParts",
            "s3:PutObject",
        ],
    ),
    (
        "public",
        &[
            "s3:GetBucketLocation",
            "s3:ListBucket",
            "s3:ListBucketMultipartUploads",
        ],
        &[
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:ListMultipartUploadParts",
            "s3:PutObject",
        ],
    ),
];

/// The bucket's policy as stored, empty when it has none.
pub async fn read(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
) -> Result<String, Refusal> {
    let body = ok_bytes(
        console,
        signed,
        peer,
        "read the bucket policy",
        Call::bucket(Method::GET, bucket).query("policy", ""),
    )
    .await;
    Ok(absent_as_none(body, &["NoSuchBucketPolicy"])?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default())
}

async fn write(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
    policy: &str,
    doing: &str,
) -> Result<(), Refusal> {
    let call = if policy.trim().is_empty() {
        Call::bucket(Method::DELETE, bucket).query("policy", "")
    } else {
        Call::bucket(Method::PUT, bucket)
            .query("policy", "")
            .body(Bytes::from(policy.to_owned()))
    };
    ok(console, signed, peer, doing, call).await.map(drop)
}

/// Saves the editor's `policy` as typed.
pub async fn save(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Result<(), Refusal> {
    let policy = field(form, "policy").unwrap_or("");
    write(
        console,
        signed,
        peer,
        bucket,
        policy,
        "save the bucket policy",
    )
    .await
}

fn is_everyone(principal: &Value) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(m) => match m.get("AWS") {
            Some(Value::String(s)) => s == "*",
            Some(Value::Array(a)) => a.iter().any(|v| v == "*"),
            _ => false,
        },
        _ => false,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// A policy document's statements, whether one object or a list.
fn statements(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn preset_pairs(
    bucket: &str,
    on_bucket: &[&str],
    on_objects: &[&str],
) -> BTreeSet<(String, String)> {
    let b = format!("arn:aws:s3:::{bucket}");
    let o = format!("arn:aws:s3:::{bucket}/*");
    on_bucket
        .iter()
        .map(|a| (b.clone(), (*a).to_owned()))
        .chain(on_objects.iter().map(|a| (o.clone(), (*a).to_owned())))
        .collect()
}

/// Which preset the policy's statements for everyone amount to: `none`, a preset's name, or
/// `custom` (anything else: other actions, conditions, denials).
pub fn anonymous_preset(bucket: &str, policy: &str) -> &'static str {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return if policy.trim().is_empty() {
            "none"
        } else {
            "custom"
        };
    };
    let mut pairs = BTreeSet::new();
    for s in statements(&doc)
        .iter()
        .filter(|s| s.get("Principal").is_some_and(is_everyone))
    {
        if s.get("Effect") != Some(&json!("Allow")) || s.get("Condition").is_some() {
            return "custom";
        }
        for r in strings(s.get("Resource")) {
            for a in strings(s.get("Action")) {
                pairs.insert((r.clone(), a));
            }
        }
    }
    if pairs.is_empty() {
        return "none";
    }
    PRESETS
        .iter()
        .find(|(_, b, o)| preset_pairs(bucket, b, o) == pairs)
        .map_or("custom", |(name, _, _)| name)
}

/// The policy with its statements for everyone replaced by `preset`'s (`""`: no statement left).
fn with_preset(bucket: &str, policy: &str, preset: &str) -> Result<String, Refusal> {
    let mut doc = if policy.trim().is_empty() {
        json!({"Version": "2012-10-17"})
    } else {
        serde_json::from_str::<Value>(policy).map_err(|_| {
            Refusal::input("The bucket policy could not be read; edit it below instead.")
        })?
    };
    let mut kept: Vec<Value> = statements(&doc)
        .into_iter()
        .filter(|s| !s.get("Principal").is_some_and(is_everyone))
        .collect();
    if preset != "none" {
        let (_, on_bucket, on_objects) = PRESETS
            .iter()
            .find(|(name, _, _)| *name == preset)
            .ok_or_else(|| Refusal::input("Choose none, download, upload or public."))?;
        let everyone = json!({"AWS": ["*"]});
        kept.push(json!({"Effect": "Allow", "Principal": everyone, "Action": on_bucket, "Resource": [format!("arn:aws:s3:::{bucket}")]}));
        kept.push(json!({"Effect": "Allow", "Principal": everyone, "Action": on_objects, "Resource": [format!("arn:aws:s3:::{bucket}/*")]}));
    }
    if kept.is_empty() {
        return Ok(String::new());
    }
    doc["Statement"] = Value::Array(kept);
    Ok(doc.to_string())
}

/// Sets anonymous access to the form's `preset`.
pub async fn set_anonymous(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Result<(), Refusal> {
    let preset = field(form, "preset").unwrap_or("");
    let current = read(console, signed, peer, bucket).await?;
    let policy = with_preset(bucket, &current, preset)?;
    write(
        console,
        signed,
        peer,
        bucket,
        &policy,
        "set anonymous access",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_and_other_statements_are_kept() {
        assert_eq!(anonymous_preset("b", ""), "none");
        for name in ["download", "upload", "public"] {
            let p = with_preset("b", "", name).unwrap();
            assert_eq!(anonymous_preset("b", &p), name, "{p}");
            assert_eq!(anonymous_preset("other", &p), "custom");
        }
        let own = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":{"AWS":["arn:aws:iam:::user/x"]},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}}"#;
        let p = with_preset("b", own, "download").unwrap();
        assert_eq!(anonymous_preset("b", &p), "download");
        assert_eq!(statements(&serde_json::from_str(&p).unwrap()).len(), 3);
        let back = with_preset("b", &p, "none").unwrap();
        assert_eq!(anonymous_preset("b", &back), "none");
        assert_eq!(statements(&serde_json::from_str(&back).unwrap()).len(), 1);
        assert_eq!(
            with_preset("b", &with_preset("b", "", "public").unwrap(), "none").unwrap(),
            ""
        );
        assert!(with_preset("b", "", "everything").is_err());
        let conditional = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
        assert_eq!(anonymous_preset("b", conditional), "custom");
    }
}
