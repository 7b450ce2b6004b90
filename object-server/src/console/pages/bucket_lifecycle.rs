//! Lifecycle rules on the settings page: listed from GetBucketLifecycleConfiguration, and
//! simple expiration rules (a prefix, a number of days) added or rules deleted by writing the
//! whole configuration back with PutBucketLifecycleConfiguration (DeleteBucketLifecycle when
//! none is left). The configuration is read and written as s3s's own type, so rules the form
//! cannot make (noncurrent versions, tags, dates) are kept as they were.
use std::net::SocketAddr;

use http::Method;
use s3s::dto::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};

use super::{Refusal, absent_as_none, ok, ok_dto};
use crate::console::http_util::field;
use crate::console::router::{Console, Signed};
use crate::console::s3call::Call;
use crate::console::xml;

/// One rule as the page lists it.
pub struct RuleRow {
    pub id: String,
    pub prefix: String,
    pub status: String,
    /// What the rule does, in words.
    pub action: String,
}

fn prefix_of(r: &LifecycleRule) -> String {
    r.filter
        .as_ref()
        .and_then(|f| {
            f.prefix
                .clone()
                .or_else(|| f.and.as_ref().and_then(|a| a.prefix.clone()))
        })
        .or_else(|| r.prefix.clone())
        .unwrap_or_default()
}

fn action_of(r: &LifecycleRule) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &r.expiration {
        if let Some(d) = e.days {
            parts.push(format!("expire after {d} days"));
        }
        if let Some(date) = &e.date {
            parts.push(format!("expire on {}", super::object_lock::rfc3339(date)));
        }
        if e.expired_object_delete_marker == Some(true) {
            parts.push("remove expired delete markers".to_owned());
        }
    }
    if let Some(n) = r
        .noncurrent_version_expiration
        .as_ref()
        .and_then(|n| n.noncurrent_days)
    {
        parts.push(format!("expire noncurrent versions after {n} days"));
    }
    if let Some(a) = r
        .abort_incomplete_multipart_upload
        .as_ref()
        .and_then(|a| a.days_after_initiation)
    {
        parts.push(format!("abort incomplete uploads after {a} days"));
    }
    if parts.is_empty() {
        "other".to_owned()
    } else {
        parts.join("; ")
    }
}

async fn read(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
) -> Result<Vec<LifecycleRule>, Refusal> {
    let config = ok_dto::<BucketLifecycleConfiguration>(
        console,
        signed,
        peer,
        "read the lifecycle rules",
        Call::bucket(Method::GET, bucket).query("lifecycle", ""),
    )
    .await;
    Ok(absent_as_none(config, &["NoSuchLifecycleConfiguration"])?
        .map(|c| c.rules)
        .unwrap_or_default())
}

/// The rules as the page lists them.
pub async fn rows(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
) -> Result<Vec<RuleRow>, Refusal> {
    Ok(read(console, signed, peer, bucket)
        .await?
        .iter()
        .map(|r| RuleRow {
            id: r.id.clone().unwrap_or_default(),
            prefix: prefix_of(r),
            status: r.status.as_str().to_owned(),
            action: action_of(r),
        })
        .collect())
}

async fn write(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
    rules: Vec<LifecycleRule>,
    doing: &str,
) -> Result<(), Refusal> {
    let call = if rules.is_empty() {
        Call::bucket(Method::DELETE, bucket).query("lifecycle", "")
    } else {
        Call::bucket(Method::PUT, bucket)
            .query("lifecycle", "")
            .body(xml::body_of(&BucketLifecycleConfiguration { rules }))
    };
    ok(console, signed, peer, doing, call).await.map(drop)
}

/// A new expiration rule from the form: `id` (optional), `prefix`, `days`.
fn rule_of(
    form: &[(String, String)],
    existing: &[LifecycleRule],
) -> Result<LifecycleRule, Refusal> {
    let days = field(form, "days")
        .and_then(|d| d.trim().parse::<i32>().ok())
        .filter(|d| *d >= 1)
        .ok_or_else(|| {
            Refusal::input(
                "Could not add the rule: the days must be a whole number of at least 1; nothing was changed.",
            )
        })?;
    let prefix = field(form, "prefix").unwrap_or("").to_owned();
    let id = match field(form, "id").map(str::trim).filter(|i| !i.is_empty()) {
        Some(i) => i.to_owned(),
        // A name a person can tell apart, unique among the bucket's rules.
        None => (1..)
            .map(|n| format!("expire-{days}d-{n}"))
            .find(|i| !existing.iter().any(|r| r.id.as_deref() == Some(i)))
            .expect("an unused name"),
    };
    Ok(LifecycleRule {
        id: Some(id),
        status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
        filter: Some(LifecycleRuleFilter {
            prefix: Some(prefix),
            ..Default::default()
        }),
        expiration: Some(LifecycleExpiration {
            days: Some(days),
            ..Default::default()
        }),
        abort_incomplete_multipart_upload: None,
        noncurrent_version_expiration: None,
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    })
}

/// Adds an expiration rule (S3 refuses a duplicate ID).
pub async fn add(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Result<(), Refusal> {
    let mut rules = read(console, signed, peer, bucket).await?;
    let rule = rule_of(form, &rules)?;
    rules.push(rule);
    write(
        console,
        signed,
        peer,
        bucket,
        rules,
        "add the lifecycle rule",
    )
    .await
}

/// Deletes the rule with the form's `id`.
pub async fn delete(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Result<(), Refusal> {
    let id = field(form, "id").unwrap_or("");
    let mut rules = read(console, signed, peer, bucket).await?;
    let before = rules.len();
    rules.retain(|r| r.id.as_deref().unwrap_or("") != id);
    if rules.len() == before {
        return Err(Refusal::input(format!(
            "Could not delete lifecycle rule {id}: the bucket has no such rule."
        )));
    }
    write(
        console,
        signed,
        peer,
        bucket,
        rules,
        "delete the lifecycle rule",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_new_rule_gets_an_unused_name_and_needs_days() {
        let first = rule_of(&form(&[("prefix", "logs/"), ("days", "30")]), &[]).unwrap();
        assert_eq!(first.id.as_deref(), Some("expire-30d-1"));
        assert_eq!(prefix_of(&first), "logs/");
        assert_eq!(action_of(&first), "expire after 30 days");
        let second = rule_of(&form(&[("days", "30")]), &[first]).unwrap();
        assert_eq!(second.id.as_deref(), Some("expire-30d-2"));
        for bad in ["0", "-1", "soon", ""] {
            assert!(rule_of(&form(&[("days", bad)]), &[]).is_err(), "{bad}");
        }
    }
}
