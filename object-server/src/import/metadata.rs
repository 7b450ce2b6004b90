//! What MinIO kept about a version, as Coffer's [`ObjectMeta`] fields: content headers, user
//! metadata, tags, retention, legal hold, and the ETag MinIO answered with.
use std::collections::BTreeMap;

use super::minio_sse::{self, MinioSse, Mode};
use super::xl_meta::ObjectVersion;
use crate::storage::{LockMode, ObjectMeta, Retention};

/// A metadata value by case-insensitive name, from the internal or the user map.
pub(super) fn meta_value<'a>(
    sys: &'a BTreeMap<String, Vec<u8>>,
    user: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<&'a [u8]> {
    sys.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .or_else(|| {
            user.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        })
}

/// The ETag MinIO answered with for this version.
pub(super) fn served_etag(
    v: &ObjectVersion,
    sse: &MinioSse,
    object_key: Option<&[u8; 32]>,
    multipart: bool,
) -> String {
    let stored = v
        .meta_user
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
        .map(|(_, e)| e.clone())
        .unwrap_or_default();
    if multipart || stored.len() == 32 {
        return stored;
    }
    match (sse, object_key) {
        (MinioSse::Kms(k), Some(key)) if k.mode == Mode::S3 => {
            minio_sse::unseal_etag(key, &stored).unwrap_or(stored)
        }
        (MinioSse::Kms(_), _) if stored.len() > 32 => stored[stored.len() - 32..].to_owned(),
        _ => stored,
    }
}

/// Content headers, user metadata, tags, retention and legal hold from MinIO's user map.
pub(crate) fn apply_user_metadata(
    meta: &mut ObjectMeta,
    user: &BTreeMap<String, String>,
) -> Result<(), String> {
    const CONTENT: [&str; 5] = [
        "content-type",
        "content-encoding",
        "content-disposition",
        "content-language",
        "cache-control",
    ];
    let mut lock_mode = None;
    let mut until = None;
    for (k, v) in user {
        let lower = k.to_ascii_lowercase();
        if CONTENT.contains(&lower.as_str()) {
            meta.headers.insert(lower, v.clone());
        } else if let Some(name) = lower.strip_prefix("x-amz-meta-") {
            meta.user.insert(name.to_owned(), v.clone());
        } else if lower == "x-amz-tagging" {
            meta.tags = url::form_urlencoded::parse(v.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        } else if lower == "x-amz-object-lock-mode" {
            lock_mode = Some(match v.as_str() {
                "GOVERNANCE" => LockMode::Governance,
                "COMPLIANCE" => LockMode::Compliance,
                _ => return Err(format!("unknown object lock mode {v:?}")),
            });
        } else if lower == "x-amz-object-lock-retain-until-date" {
            let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map_err(|_| format!("unreadable retain-until date {v:?}"))?;
            until = Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
        } else if lower == "x-amz-object-lock-legal-hold" {
            meta.legal_hold = v.eq_ignore_ascii_case("ON");
        }
    }
    if let (Some(mode), Some(until_ms)) = (lock_mode, until) {
        meta.retention = Some(Retention { mode, until_ms });
    }
    Ok(())
}
