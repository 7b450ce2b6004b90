//! Put/Get/DeleteBucketLifecycleConfiguration: the S3 form of [`crate::lifecycle`]'s rules,
//! checked as AWS checks them, stored in the bucket's `.lifecycle.json` (where every process's
//! scanner reads it).
use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::tagging::tag_set;
use super::{CofferS3, storage_err, timestamp};
use crate::lifecycle::scanner::CONFIG;
use crate::lifecycle::{LifecycleConfig, Rule};

/// Rules a configuration may hold.
const MAX_RULES: usize = 1000;

fn malformed() -> S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema."
    )
}

fn positive(n: Option<i32>, what: &'static str) -> S3Result<Option<i32>> {
    match n {
        Some(d) if d <= 0 => Err(s3_error!(
            InvalidArgument,
            "{what} must be a positive integer"
        )),
        other => Ok(other),
    }
}

fn ms_of(t: &Timestamp) -> i64 {
    (time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos() / 1_000_000) as i64
}

/// An expiration date, which AWS accepts only at midnight UTC (the scanner acts on whole days).
fn midnight_utc(t: &Timestamp) -> S3Result<i64> {
    let ms = ms_of(t);
    if ms.rem_euclid(86_400_000) != 0 {
        return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
    }
    Ok(ms)
}

/// Converts and checks one S3 rule.
fn rule_of(r: LifecycleRule) -> S3Result<Rule> {
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "Transitions are not supported: this server has no other storage tiers."
        ));
    }
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    let id = r.id.unwrap_or_default();
    if id.chars().count() > 255 {
        return Err(s3_error!(
            InvalidArgument,
            "ID length should not exceed allowed limit of 255"
        ));
    }
    let mut rule = Rule {
        id,
        enabled,
        ..Default::default()
    };
    let mut tags = Vec::new();
    match r.filter {
        Some(f) => {
            let set = [
                f.prefix.is_some(),
                f.tag.is_some(),
                f.and.is_some(),
                f.object_size_greater_than.is_some() || f.object_size_less_than.is_some(),
            ];
            // One of them per filter (combinations go in `And`), and no rule-level prefix beside it.
            if set.iter().filter(|b| **b).count() > 1
                || r.prefix.as_deref().is_some_and(|p| !p.is_empty())
            {
                return Err(malformed());
            }
            rule.prefix = f.prefix.unwrap_or_default();
            if let Some(t) = f.tag {
                tags.push(t);
            }
            rule.size_greater_than = f.object_size_greater_than;
            rule.size_less_than = f.object_size_less_than;
            if let Some(a) = f.and {
                rule.prefix = a.prefix.unwrap_or_default();
                tags.extend(a.tags.unwrap_or_default());
                rule.size_greater_than = a.object_size_greater_than;
                rule.size_less_than = a.object_size_less_than;
            }
        }
        None => rule.prefix = r.prefix.unwrap_or_default(),
    }
    let mut tag_map = BTreeMap::new();
    for t in tags {
        let (k, v) = (t.key.unwrap_or_default(), t.value.unwrap_or_default());
        if k.is_empty() || tag_map.insert(k, v).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Duplicate or empty tag keys in a rule filter"
            ));
        }
    }
    rule.tags = tag_map;
    if let Some(e) = r.expiration {
        if e.days.is_some() && e.date.is_some() {
            return Err(malformed());
        }
        rule.expiration_days = positive(e.days, "'Days' for Expiration action")?;
        rule.expiration_date_ms = e.date.as_ref().map(midnight_utc).transpose()?;
        rule.expired_delete_marker = e.expired_object_delete_marker == Some(true);
        if rule.expired_delete_marker && !rule.tags.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "ExpiredObjectDeleteMarker cannot be specified with tag filters"
            ));
        }
    }
    if let Some(n) = r.noncurrent_version_expiration {
        rule.noncurrent_days = positive(
            n.noncurrent_days,
            "'NoncurrentDays' for NoncurrentVersionExpiration action",
        )?;
        if rule.noncurrent_days.is_none() {
            return Err(malformed());
        }
        rule.newer_noncurrent_versions = n.newer_noncurrent_versions.filter(|n| *n > 0);
    }
    if let Some(a) = r.abort_incomplete_multipart_upload {
        rule.abort_multipart_days = positive(
            a.days_after_initiation,
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action",
        )?;
        if !rule.tags.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "AbortIncompleteMultipartUpload cannot be specified with tag filters"
            ));
        }
    }
    let acts = rule.expiration_days.is_some()
        || rule.expiration_date_ms.is_some()
        || rule.expired_delete_marker
        || rule.noncurrent_days.is_some()
        || rule.abort_multipart_days.is_some();
    if !acts {
        return Err(s3_error!(
            InvalidRequest,
            "At least one action needs to be specified in a rule"
        ));
    }
    Ok(rule)
}

/// The S3 form of a stored rule.
fn dto_of(r: &Rule) -> LifecycleRule {
    let sized = r.size_greater_than.is_some() || r.size_less_than.is_some();
    let filter = if r.tags.is_empty() && !sized {
        LifecycleRuleFilter {
            prefix: Some(r.prefix.clone()),
            ..Default::default()
        }
    } else if r.tags.len() == 1 && r.prefix.is_empty() && !sized {
        LifecycleRuleFilter {
            tag: tag_set(&r.tags).pop(),
            ..Default::default()
        }
    } else {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some(r.prefix.clone()),
                tags: Some(tag_set(&r.tags)),
                object_size_greater_than: r.size_greater_than,
                object_size_less_than: r.size_less_than,
            }),
            ..Default::default()
        }
    };
    let expiration =
        (r.expiration_days.is_some() || r.expiration_date_ms.is_some() || r.expired_delete_marker)
            .then(|| LifecycleExpiration {
                days: r.expiration_days,
                date: r.expiration_date_ms.map(timestamp),
                expired_object_delete_marker: r.expired_delete_marker.then_some(true),
            });
    LifecycleRule {
        id: (!r.id.is_empty()).then(|| r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter: Some(filter),
        expiration,
        noncurrent_version_expiration: r.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: Some(d),
            newer_noncurrent_versions: r.newer_noncurrent_versions,
        }),
        abort_incomplete_multipart_upload: r.abort_multipart_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d),
            }
        }),
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}

/// Checks a PutBucketLifecycleConfiguration body as AWS does and converts it into the rules
/// the scanner applies (what `.lifecycle.json` holds). Pure: the fuzz target drives it too.
pub fn validate_lifecycle(
    configuration: Option<BucketLifecycleConfiguration>,
) -> S3Result<LifecycleConfig> {
    let rules = configuration.map(|c| c.rules).unwrap_or_default();
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(malformed());
    }
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let rule = rule_of(r)?;
        if !rule.id.is_empty() && out.iter().any(|o: &Rule| o.id == rule.id) {
            return Err(s3_error!(
                InvalidArgument,
                "Rule ID must be unique. Found same ID for more than one rule"
            ));
        }
        out.push(rule);
    }
    Ok(LifecycleConfig { rules: out })
}

/// The rules a GetBucketLifecycleConfiguration answers for a stored configuration (they
/// validate back to it: what a client reads it can put again).
pub fn lifecycle_rules_of(config: &LifecycleConfig) -> Vec<LifecycleRule> {
    config.rules.iter().map(dto_of).collect()
}

impl CofferS3 {
    pub(crate) async fn do_put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        self.store
            .require_bucket(&input.bucket)
            .map_err(storage_err)?;
        let config = validate_lifecycle(input.lifecycle_configuration)?;
        self.store
            .write_bucket_json(&input.bucket, CONFIG, &config)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(crate) async fn do_get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let c: Option<LifecycleConfig> = self
            .store
            .read_bucket_json(&req.input.bucket, CONFIG)
            .await
            .map_err(storage_err)?;
        let Some(c) = c else {
            return Err(s3_error!(
                NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist"
            ));
        };
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(lifecycle_rules_of(&c)),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.store
            .write_bucket_config(&req.input.bucket, CONFIG, None)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring_on(date: &str) -> LifecycleRule {
        let t = Timestamp::parse(TimestampFormat::DateTime, date).expect("a date");
        LifecycleRule {
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            filter: Some(LifecycleRuleFilter {
                prefix: Some(String::new()),
                ..Default::default()
            }),
            expiration: Some(LifecycleExpiration {
                date: Some(t),
                ..Default::default()
            }),
            abort_incomplete_multipart_upload: None,
            id: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        }
    }

    #[test]
    fn an_expiration_date_is_midnight_utc() {
        let r = rule_of(expiring_on("2030-01-01T00:00:00.000Z")).unwrap();
        assert_eq!(r.expiration_date_ms, Some(1_893_456_000_000));
        for bad in [
            "2030-01-01T00:00:00.001Z",
            "2030-01-01T12:00:00.000Z",
            "2030-01-01T23:59:59.000Z",
            "1969-12-31T12:00:00.000Z",
        ] {
            let e = rule_of(expiring_on(bad)).expect_err(bad);
            assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidArgument, "{bad}");
        }
    }
}
