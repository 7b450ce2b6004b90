//! Object lock: buckets created with object lock (versioning forced on), the default retention,
//! Put/GetObjectLockConfiguration, Put/GetObjectRetention, Put/GetObjectLegalHold, and the
//! refusals that protect a locked version from deletion.
//!
//! A version's retention and legal hold are stored in its own metadata (on disk, so they hold
//! across restarts and for every process). COMPLIANCE retention can be neither shortened nor
//! bypassed by anyone, the root user included; GOVERNANCE retention yields to
//! `x-amz-bypass-governance-retention: true` from a caller allowed to bypass it
//! ([`governance_bypass_permitted`]).
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use super::versioning::{check_version_id, version_err};
use super::{CofferS3, now_ms, storage_err, timestamp};
use crate::storage::{LockMode, ObjectMeta, Retention, StorageError, Versioning};

/// The bucket configuration file of object lock.
const CONFIG: &str = crate::storage::versions::OBJECT_LOCK_CONFIG;

/// What `.object-lock.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockConfig {
    /// The bucket's default retention for new versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<BucketRetention>,
}

/// A bucket's default retention.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct BucketRetention {
    pub mode: LockMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<i32>,
}

impl BucketRetention {
    /// The retention a version written at `now_ms` gets.
    fn at(&self, now_ms: i64) -> Retention {
        let days =
            self.days.map(i64::from).unwrap_or(0) + self.years.map(i64::from).unwrap_or(0) * 365;
        Retention {
            mode: self.mode,
            until_ms: now_ms + days * day_ms(),
        }
    }
}

/// Milliseconds of a retention "day" (`COFFER_LIFECYCLE_DAY_SECONDS` shortens it for tests).
pub(crate) fn day_ms() -> i64 {
    crate::lifecycle::day_seconds() as i64 * 1000
}

/// The refusal of a change to a WORM-protected version (MinIO's words, AWS's code).
pub(crate) fn worm_protected() -> S3Error {
    s3_error!(
        AccessDenied,
        "Object is WORM protected and cannot be overwritten"
    )
}

/// Whether the caller of `req` may bypass GOVERNANCE retention: the access check decided
/// `s3:BypassGovernanceRetention` (`crate::iam::access`) when the request asked for it.
pub(crate) fn governance_bypass_permitted<T>(req: &S3Request<T>) -> bool {
    req.extensions
        .get::<crate::iam::access::GovernanceBypass>()
        .is_some_and(|b| b.0)
}

fn parse_mode(s: &str) -> S3Result<LockMode> {
    match s {
        "GOVERNANCE" => Ok(LockMode::Governance),
        "COMPLIANCE" => Ok(LockMode::Compliance),
        _ => Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema."
        )),
    }
}

fn ms_of(t: &Timestamp) -> i64 {
    (time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos() / 1_000_000) as i64
}

/// A retention the caller asked for: a known mode and a date still to come.
fn future_retention(mode: &str, until: &Timestamp) -> S3Result<Retention> {
    let until_ms = ms_of(until);
    if until_ms <= now_ms() {
        return Err(s3_error!(
            InvalidArgument,
            "The retain until date must be in the future!"
        ));
    }
    Ok(Retention {
        mode: parse_mode(mode)?,
        until_ms,
    })
}

/// Whether a version's retention `current` may become `wanted` at `now` (ms); `bypass` is a
/// permitted governance bypass. An expired retention protects nothing. Extending a retention in
/// its own mode needs nothing; GOVERNANCE may be shortened, removed or changed to another mode
/// only with the bypass; COMPLIANCE may only be extended, by anyone, never bypassed (AWS's rules).
pub(crate) fn retention_change_allowed(
    current: Option<Retention>,
    wanted: Option<Retention>,
    bypass: bool,
    now: i64,
) -> S3Result<()> {
    let Some(cur) = current.filter(|c| c.until_ms > now) else {
        return Ok(());
    };
    let extends = wanted.is_some_and(|w| w.mode == cur.mode && w.until_ms >= cur.until_ms);
    match cur.mode {
        _ if extends => Ok(()),
        LockMode::Governance if bypass => Ok(()),
        _ => Err(worm_protected()),
    }
}

/// Whether `meta` may be removed now; `bypass` is a permitted governance bypass.
pub(crate) fn deletion_allowed(meta: &ObjectMeta, bypass: bool, now: i64) -> bool {
    if meta.legal_hold {
        return false;
    }
    match meta.retention {
        Some(r) if r.until_ms > now => r.mode == LockMode::Governance && bypass,
        _ => true,
    }
}

/// Checks a PutObjectLockConfiguration body as AWS does and converts it into what
/// `.object-lock.json` holds. Pure: the fuzz target drives it too.
pub fn validate_lock_configuration(
    configuration: Option<ObjectLockConfiguration>,
) -> S3Result<LockConfig> {
    let Some(conf) = configuration else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema."
        ));
    };
    if conf.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some(ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema."
        ));
    }
    let default = match conf.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => {
            let mode = parse_mode(d.mode.as_ref().map(|m| m.as_str()).unwrap_or(""))?;
            match (d.days, d.years) {
                (Some(n), None) | (None, Some(n)) if n > 0 => {}
                (Some(_), Some(_)) => {
                    return Err(s3_error!(
                        MalformedXML,
                        "The XML you provided was not well-formed or did not validate against our published schema."
                    ));
                }
                _ => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period must be a positive integer value"
                    ));
                }
            }
            Some(BucketRetention {
                mode,
                days: d.days,
                years: d.years,
            })
        }
    };
    Ok(LockConfig { default })
}

impl CofferS3 {
    /// The bucket's object lock configuration, `None` if it was not created with object lock.
    pub(crate) async fn lock_config(&self, bucket: &str) -> S3Result<Option<LockConfig>> {
        if self.gateway.is_some() {
            // No gateway bucket has object lock yet (`Capabilities`; creating one is refused).
            return Ok(None);
        }
        self.store
            .read_bucket_json(bucket, CONFIG)
            .await
            .map_err(storage_err)
    }

    /// Whether the bucket was created with object lock.
    pub(crate) async fn object_lock_enabled(&self, bucket: &str) -> S3Result<bool> {
        Ok(self.lock_config(bucket).await?.is_some())
    }

    async fn write_lock_config(&self, bucket: &str, c: &LockConfig) -> S3Result<()> {
        self.store
            .write_bucket_json(bucket, CONFIG, c)
            .await
            .map_err(storage_err)
    }

    /// Creates a bucket with object lock (and versioning, which it needs) from its first moment.
    pub(crate) async fn create_lock_bucket(&self, bucket: &str) -> S3Result<()> {
        let lock = serde_json::to_vec(&LockConfig::default()).expect("serializes");
        self.store
            .create_bucket_with(
                bucket,
                vec![
                    (
                        crate::storage::versions::VERSIONING_CONFIG,
                        crate::storage::versions::versioning_file(true),
                    ),
                    (CONFIG, lock),
                ],
            )
            .await
            .map_err(storage_err)
    }

    /// The retention and legal hold a new version of `bucket` starts with: the request's
    /// headers, else the bucket's default. Refused where the bucket has no object lock.
    /// `versioning` is the bucket's state: a lock bucket is always versioned, so an unversioned
    /// bucket's write needs no look at the lock configuration.
    pub(crate) async fn new_version_lock(
        &self,
        bucket: &str,
        versioning: Versioning,
        mode: Option<&ObjectLockMode>,
        until: Option<&Timestamp>,
        legal_hold: Option<&ObjectLockLegalHoldStatus>,
    ) -> S3Result<(Option<Retention>, bool)> {
        let config = match versioning {
            Versioning::Unversioned => None,
            _ => self.lock_config(bucket).await?,
        };
        let asked = mode.is_some() || until.is_some() || legal_hold.is_some();
        let Some(config) = config else {
            if asked {
                return Err(s3_error!(
                    InvalidRequest,
                    "Bucket is missing Object Lock Configuration"
                ));
            }
            return Ok((None, false));
        };
        let hold = legal_hold.is_some_and(|h| h.as_str() == ObjectLockLegalHoldStatus::ON);
        let retention = match (mode, until) {
            (Some(m), Some(u)) => Some(future_retention(m.as_str(), u)?),
            (None, None) => config.default.map(|d| d.at(now_ms())),
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
                ));
            }
        };
        Ok((retention, hold))
    }

    pub(crate) async fn do_put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let input = req.input;
        let bucket = input.bucket.as_str();
        self.store.require_bucket(bucket).map_err(storage_err)?;
        let config = validate_lock_configuration(input.object_lock_configuration)?;
        if !self.object_lock_enabled(bucket).await? {
            // AWS allows enabling it later only on a versioned bucket; we follow MinIO: only
            // at creation, so every version of the bucket is born under it.
            return Err(s3_error!(
                InvalidBucketState,
                "Object Lock configuration cannot be enabled on existing buckets"
            ));
        }
        self.write_lock_config(bucket, &config).await?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(crate) async fn do_get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let bucket = req.input.bucket.as_str();
        self.store.require_bucket(bucket).map_err(storage_err)?;
        let Some(c) = self.lock_config(bucket).await? else {
            return Err(s3_error!(
                ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket"
            ));
        };
        let rule = c.default.map(|d| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                days: d.days,
                years: d.years,
                mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_owned())),
            }),
        });
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(
                    ObjectLockEnabled::ENABLED,
                )),
                rule,
            }),
        }))
    }

    async fn require_lock_bucket(&self, bucket: &str) -> S3Result<()> {
        self.store.require_bucket(bucket).map_err(storage_err)?;
        if !self.object_lock_enabled(bucket).await? {
            return Err(s3_error!(
                InvalidRequest,
                "Bucket is missing Object Lock Configuration"
            ));
        }
        Ok(())
    }

    pub(crate) async fn do_put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let bypass = req.input.bypass_governance_retention == Some(true)
            && governance_bypass_permitted(&req);
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        self.require_lock_bucket(bucket).await?;
        if let Some(v) = &input.version_id {
            check_version_id(v)?;
        }
        let wanted = match input.retention {
            Some(ObjectLockRetention {
                mode: Some(m),
                retain_until_date: Some(u),
            }) => Some(future_retention(m.as_str(), &u)?),
            Some(ObjectLockRetention {
                mode: None,
                retain_until_date: None,
            })
            | None => None,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema."
                ));
            }
        };
        let refusal = std::sync::Arc::new(std::sync::Mutex::new(None::<S3Error>));
        let r = refusal.clone();
        let result = self
            .store
            .rewrite_meta(bucket, key, input.version_id.as_deref(), move |meta| {
                if let Err(e) = retention_change_allowed(meta.retention, wanted, bypass, now_ms()) {
                    *r.lock().expect("not poisoned") = Some(e);
                    return Err(StorageError::Refused);
                }
                meta.retention = wanted;
                Ok(())
            })
            .await;
        match result {
            Ok(_) => Ok(S3Response::new(PutObjectRetentionOutput::default())),
            Err(StorageError::Refused) => Err(refusal
                .lock()
                .expect("not poisoned")
                .take()
                .unwrap_or_else(worm_protected)),
            Err(e) => Err(version_err(e)),
        }
    }

    pub(crate) async fn do_get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let input = req.input;
        self.require_lock_bucket(&input.bucket).await?;
        let obj = self
            .open_named(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let Some(r) = obj.meta.retention else {
            return Err(s3_error!(
                NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration"
            ));
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(r.mode.as_str().to_owned())),
                retain_until_date: Some(timestamp(r.until_ms)),
            }),
        }))
    }

    pub(crate) async fn do_put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let input = req.input;
        self.require_lock_bucket(&input.bucket).await?;
        if let Some(v) = &input.version_id {
            check_version_id(v)?;
        }
        let on = match input.legal_hold.and_then(|h| h.status) {
            Some(s) if s.as_str() == ObjectLockLegalHoldStatus::ON => true,
            Some(s) if s.as_str() == ObjectLockLegalHoldStatus::OFF => false,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema."
                ));
            }
        };
        self.store
            .rewrite_meta(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                move |m| {
                    m.legal_hold = on;
                    Ok(())
                },
            )
            .await
            .map_err(version_err)?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(crate) async fn do_get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = req.input;
        self.require_lock_bucket(&input.bucket).await?;
        let obj = self
            .open_named(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let status = if obj.meta.legal_hold {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from_static(status)),
            }),
        }))
    }
}

/// The lock headers of a GET/HEAD answer: mode, retain-until date, legal hold.
pub(crate) fn lock_headers(
    meta: &ObjectMeta,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    (
        meta.retention
            .map(|r| ObjectLockMode::from(r.mode.as_str().to_owned())),
        meta.retention.map(|r| timestamp(r.until_ms)),
        meta.legal_hold
            .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_change_a_retention() {
        let now = 1_000_000;
        let r = |mode, until_ms| Some(Retention { mode, until_ms });
        let (g, c) = (LockMode::Governance, LockMode::Compliance);
        let ok = |cur, want, bypass| retention_change_allowed(cur, want, bypass, now).is_ok();
        // Nothing, or an expired retention, protects nothing.
        assert!(ok(None, r(c, now + 5), false));
        assert!(ok(r(c, now - 1), None, false));
        assert!(ok(r(c, now - 1), r(g, now + 5), false));
        // Extending in the same mode needs no bypass.
        assert!(ok(r(g, now + 10), r(g, now + 20), false));
        assert!(ok(r(g, now + 10), r(g, now + 10), false));
        assert!(ok(r(c, now + 10), r(c, now + 20), false));
        // GOVERNANCE: shortening, removing or another mode only with the bypass.
        for want in [r(g, now + 5), None, r(c, now + 20), r(c, now + 5)] {
            assert!(!ok(r(g, now + 10), want, false), "{want:?} without bypass");
            assert!(ok(r(g, now + 10), want, true), "{want:?} with bypass");
        }
        // COMPLIANCE: never shortened, removed or turned into GOVERNANCE, bypass or not.
        for want in [r(c, now + 5), None, r(g, now + 20)] {
            assert!(!ok(r(c, now + 10), want, true), "{want:?}");
        }
    }

    #[test]
    fn who_may_delete() {
        let now = 1_000_000;
        let mut m = ObjectMeta::default();
        assert!(deletion_allowed(&m, false, now));
        m.retention = Some(Retention {
            mode: LockMode::Governance,
            until_ms: now + 1,
        });
        assert!(!deletion_allowed(&m, false, now));
        assert!(deletion_allowed(&m, true, now));
        m.retention = Some(Retention {
            mode: LockMode::Compliance,
            until_ms: now + 1,
        });
        assert!(!deletion_allowed(&m, true, now));
        assert!(deletion_allowed(&m, true, now + 2), "expired retention");
        m.retention = None;
        m.legal_hold = true;
        assert!(!deletion_allowed(&m, true, now));
    }
}
