//! An object's retention and legal hold on its page, in a bucket with object lock:
//! GetObjectRetention / GetObjectLegalHold to show them, PutObjectRetention (a mode and a number
//! of days from now; GOVERNANCE may be shortened with the bypass, if the user may bypass) and
//! PutObjectLegalHold to set them. Whether a change is allowed is S3's decision: a COMPLIANCE
//! retention cannot be shortened, and the page shows S3's refusal.
use std::net::SocketAddr;

use http::Method;
use s3s::dto::{
    ObjectLockConfiguration, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockRetention,
    ObjectLockRetentionMode, Timestamp, TimestampFormat,
};

use super::object::{page_href, show};
use super::{Frame, Refusal, absent_as_none, ok, ok_dto};
use crate::console::http_util::{Response, field, redirect};
use crate::console::router::{Console, Signed};
use crate::console::s3call::Call;
use crate::console::xml;

/// Longest retention the form sets (S3 allows more; beyond this is surely a typing mistake).
const MAX_DAYS: i64 = 36_500;

/// An object's protection, in a bucket with object lock.
pub struct LockState {
    /// `GOVERNANCE` or `COMPLIANCE`, empty without a retention.
    pub mode: String,
    /// When the retention ends (RFC 3339), empty without one.
    pub until: String,
    /// Whether a legal hold is on.
    pub legal_hold: bool,
}

/// A timestamp as S3 writes it.
pub fn rfc3339(t: &Timestamp) -> String {
    let mut out = Vec::new();
    t.format(TimestampFormat::DateTime, &mut out)
        .map(|()| String::from_utf8_lossy(&out).into_owned())
        .unwrap_or_default()
}

/// The object's protection, `None` when its bucket has no object lock.
pub async fn read(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<LockState>, Refusal> {
    let config = ok_dto::<ObjectLockConfiguration>(
        console,
        signed,
        peer,
        "read the bucket's object lock",
        Call::bucket(Method::GET, bucket).query("object-lock", ""),
    )
    .await;
    if absent_as_none(config, &["ObjectLockConfigurationNotFoundError"])?.is_none() {
        return Ok(None);
    }
    let on_object = |sub: &str| {
        Call::object(Method::GET, bucket, key)
            .query(sub, "")
            .query_opt("versionId", version)
    };
    let retention = ok_dto::<ObjectLockRetention>(
        console,
        signed,
        peer,
        "read the retention",
        on_object("retention"),
    )
    .await;
    let retention = absent_as_none(retention, &["NoSuchObjectLockConfiguration"])?;
    let hold = ok_dto::<ObjectLockLegalHold>(
        console,
        signed,
        peer,
        "read the legal hold",
        on_object("legal-hold"),
    )
    .await;
    let hold = absent_as_none(hold, &["NoSuchObjectLockConfiguration"])?;
    let (mode, until) = retention
        .map(|r| {
            (
                r.mode.map(|m| m.as_str().to_owned()).unwrap_or_default(),
                r.retain_until_date
                    .as_ref()
                    .map(rfc3339)
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    Ok(Some(LockState {
        mode,
        until,
        legal_hold: hold
            .and_then(|h| h.status)
            .is_some_and(|s| s.as_str() == ObjectLockLegalHoldStatus::ON),
    }))
}

/// The retention a form asks for: a mode and a whole number of days from now.
fn retention_of(form: &[(String, String)]) -> Result<ObjectLockRetention, Refusal> {
    let mode = match field(form, "mode") {
        Some(m @ ("GOVERNANCE" | "COMPLIANCE")) => m.to_owned(),
        _ => return Err(Refusal::input("Choose GOVERNANCE or COMPLIANCE.")),
    };
    let days = field(form, "days")
        .and_then(|d| d.trim().parse::<i64>().ok())
        .filter(|d| (1..=MAX_DAYS).contains(d))
        .ok_or_else(|| {
            Refusal::input(format!(
                "Could not set the retention: the days must be a whole number from 1 to {MAX_DAYS}; nothing was changed."
            ))
        })?;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond");
    let until = now + time::Duration::days(days);
    Ok(ObjectLockRetention {
        mode: Some(ObjectLockRetentionMode::from(mode)),
        retain_until_date: Some(Timestamp::from(until)),
    })
}

/// `POST /object-lock/{bucket}`: `key`, `version`, and `do=retention` (`mode`, `days`,
/// `bypass`) or `do=legal-hold` (`status` ON or OFF).
pub async fn save(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Response {
    let key = field(form, "key").unwrap_or("");
    let version = field(form, "version").filter(|v| !v.is_empty());
    let on_object = |sub: &str| {
        Call::object(Method::PUT, bucket, key)
            .query(sub, "")
            .query_opt("versionId", version)
    };
    let (done, result) = match field(form, "do") {
        Some("retention") => {
            let result = match retention_of(form) {
                Err(r) => Err(r),
                Ok(doc) => {
                    let mut call = on_object("retention").body(xml::body_of(&doc));
                    if field(form, "bypass").is_some() {
                        call = call.header("x-amz-bypass-governance-retention", "true");
                    }
                    ok(console, signed, peer, "set the retention", call).await
                }
            };
            ("retention", result)
        }
        Some("legal-hold") => {
            let on = field(form, "status") == Some("ON");
            let doc = ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from_static(if on {
                    ObjectLockLegalHoldStatus::ON
                } else {
                    ObjectLockLegalHoldStatus::OFF
                })),
            };
            let call = on_object("legal-hold").body(xml::body_of(&doc));
            (
                "legal-hold",
                ok(console, signed, peer, "set the legal hold", call).await,
            )
        }
        _ => ("", Err(Refusal::input("Unknown change."))),
    };
    match result {
        Ok(_) => redirect(&page_href(bucket, key, version, done)),
        Err(r) => {
            let mut frame = Frame::new(signed);
            frame.error = Some(r.message);
            show(console, signed, peer, bucket, key, version, frame, r.status).await
        }
    }
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
    fn a_retention_needs_a_mode_and_sensible_days() {
        let r = retention_of(&form(&[("mode", "COMPLIANCE"), ("days", "2")])).unwrap();
        assert_eq!(r.mode.unwrap().as_str(), "COMPLIANCE");
        let until = time::OffsetDateTime::from(r.retain_until_date.unwrap());
        let days = (until - time::OffsetDateTime::now_utc()).whole_hours();
        assert!((47..=48).contains(&days), "{days}");
        for bad in [
            &[("mode", "COMPLIANCE"), ("days", "0")][..],
            &[("mode", "COMPLIANCE"), ("days", "two")],
            &[("mode", "COMPLIANCE"), ("days", "99999")],
            &[("mode", "FOREVER"), ("days", "2")],
            &[("days", "2")],
        ] {
            let e = retention_of(&form(bad)).unwrap_err();
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
