//! Lifecycle rules (what a bucket's `.lifecycle.json` holds) and the decisions they make about
//! one key's versions, kept pure so they are tested without a disk; [`scanner`] applies them.
//!
//! A rule's "days" are days of [`day_seconds`] seconds, counted from a version's modification
//! (expiration), from the moment a newer version replaced it (noncurrent expiration), or from
//! the start of a multipart upload. A version under retention or legal hold is never removed.
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::{ObjectMeta, Retention, VersionInfo};

pub mod scanner;

/// Seconds in a lifecycle / retention day: 86400, or `COFFER_LIFECYCLE_DAY_SECONDS` (for tests
/// that need "1 day" to pass quickly).
pub fn day_seconds() -> u64 {
    static DAY: OnceLock<u64> = OnceLock::new();
    *DAY.get_or_init(|| env_seconds("COFFER_LIFECYCLE_DAY_SECONDS").unwrap_or(86_400))
}

/// Pause between two lifecycle scans: `COFFER_LIFECYCLE_INTERVAL_SECONDS`, default one hour.
pub fn scan_interval() -> Duration {
    Duration::from_secs(env_seconds("COFFER_LIFECYCLE_INTERVAL_SECONDS").unwrap_or(3600))
}

fn env_seconds(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|d| *d > 0)
}

/// A bucket's lifecycle configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// Its rules, in the order given.
    pub rules: Vec<Rule>,
}

/// One rule: a filter and its actions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rule {
    /// The client's id for it.
    #[serde(default)]
    pub id: String,
    /// `Status: Enabled`.
    pub enabled: bool,
    /// Keys it applies to start with this.
    #[serde(default)]
    pub prefix: String,
    /// Every one of these tags must be on the version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Only versions larger than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<i64>,
    /// Only versions smaller than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<i64>,
    /// Expire the current version this many days after it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<i32>,
    /// Expire current versions from this date on (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date_ms: Option<i64>,
    /// Remove a delete marker that is the only version left of its key.
    #[serde(default)]
    pub expired_delete_marker: bool,
    /// Remove noncurrent versions this many days after they became noncurrent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<i32>,
    /// Keep this many of the newest noncurrent versions regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<i32>,
    /// Abort multipart uploads this many days after they started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_multipart_days: Option<i32>,
}

impl Rule {
    /// Whether the rule applies to `key` (prefix only: for delete markers and uploads).
    pub fn matches_key(&self, key: &str) -> bool {
        self.enabled && key.starts_with(&self.prefix)
    }

    /// Whether the rule applies to this version of `key`.
    pub fn matches(&self, key: &str, meta: &ObjectMeta) -> bool {
        let size = meta.size as i64;
        self.matches_key(key)
            && self.tags.iter().all(|(k, v)| meta.tags.get(k) == Some(v))
            && self.size_greater_than.is_none_or(|n| size > n)
            && self.size_less_than.is_none_or(|n| size < n)
    }
}

/// What the scanner should do to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Expire the current version, which has this id (`None`: an unversioned object).
    ExpireCurrent {
        /// The id the latest version must still have.
        version_id: Option<String>,
    },
    /// Remove this version for good (a noncurrent version or a lone delete marker).
    RemoveVersion(String),
}

fn days_ms(days: i32, day_ms: i64) -> i64 {
    i64::from(days) * day_ms
}

/// Whether a retention or legal hold protects a version at `now`.
pub fn protected(meta: &ObjectMeta, now: i64) -> bool {
    meta.legal_hold || meta.retention.is_some_and(|r: Retention| r.until_ms > now)
}

/// The actions `rules` ask for on one key, given its versions newest first (the latest first;
/// a single unversioned object is one version with no id).
pub fn decide(
    rules: &[Rule],
    key: &str,
    versions: &[VersionInfo],
    versioned: bool,
    now: i64,
    day_ms: i64,
) -> Vec<Action> {
    let mut out = Vec::new();
    let Some(latest) = versions.first() else {
        return out;
    };
    if !latest.meta.delete_marker {
        let expire = rules.iter().any(|r| {
            r.matches(key, &latest.meta)
                && (r
                    .expiration_days
                    .is_some_and(|d| latest.meta.modified_ms + days_ms(d, day_ms) <= now)
                    || r.expiration_date_ms.is_some_and(|t| t <= now))
        });
        // Unversioned, expiring deletes the object: never one under retention. Versioned, it
        // only adds a delete marker, which removes nothing.
        if expire && (versioned || !protected(&latest.meta, now)) {
            out.push(Action::ExpireCurrent {
                version_id: versioned.then(|| latest.version_id.clone()),
            });
        }
    } else if versions.len() == 1
        && rules
            .iter()
            .any(|r| r.expired_delete_marker && r.matches_key(key))
    {
        out.push(Action::RemoveVersion(latest.version_id.clone()));
        return out;
    }
    // Noncurrent versions: each became noncurrent when the next newer one was written.
    for (i, v) in versions.iter().enumerate().skip(1) {
        let since = versions[i - 1].meta.modified_ms;
        let newer_noncurrent = (i - 1) as i32;
        let remove = rules.iter().any(|r| {
            (if v.meta.delete_marker {
                r.matches_key(key)
            } else {
                r.matches(key, &v.meta)
            }) && r
                .noncurrent_days
                .is_some_and(|d| since + days_ms(d, day_ms) <= now)
                && r.newer_noncurrent_versions
                    .is_none_or(|keep| newer_noncurrent >= keep)
        });
        if remove && !protected(&v.meta, now) {
            out.push(Action::RemoveVersion(v.version_id.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LockMode;

    fn version(id: &str, modified_ms: i64, marker: bool) -> VersionInfo {
        VersionInfo {
            version_id: id.to_owned(),
            meta: ObjectMeta {
                modified_ms,
                delete_marker: marker,
                ..Default::default()
            },
            is_latest: false,
        }
    }

    #[test]
    fn expiration_noncurrent_and_markers() {
        let day = 1000;
        let rules = vec![Rule {
            enabled: true,
            prefix: "logs/".into(),
            expiration_days: Some(2),
            noncurrent_days: Some(1),
            expired_delete_marker: true,
            ..Default::default()
        }];
        let vs = vec![
            version("c", 5000, false),
            version("b", 3000, false),
            version("a", 0, false),
        ];
        // At 5500: the current is young; "b" noncurrent since 5000 (too young); "a" since 3000.
        assert_eq!(
            decide(&rules, "logs/x", &vs, true, 5500, day),
            vec![Action::RemoveVersion("a".into())]
        );
        assert_eq!(
            decide(&rules, "logs/x", &vs, true, 7000, day),
            vec![
                Action::ExpireCurrent {
                    version_id: Some("c".into())
                },
                Action::RemoveVersion("b".into()),
                Action::RemoveVersion("a".into())
            ]
        );
        assert!(decide(&rules, "other", &vs, true, 99_000, day).is_empty());
        // A locked noncurrent version stays.
        let mut locked = vs.clone();
        locked[2].meta.retention = Some(Retention {
            mode: LockMode::Governance,
            until_ms: 1_000_000,
        });
        assert_eq!(
            decide(&rules, "logs/x", &locked, true, 5500, day),
            Vec::<Action>::new()
        );
        locked[2].meta.retention = None;
        locked[2].meta.legal_hold = true;
        assert!(decide(&rules, "logs/x", &locked, true, 5500, day).is_empty());
        // A lone delete marker goes; one with versions behind it stays.
        let lone = vec![version("m", 0, true)];
        assert_eq!(
            decide(&rules, "logs/x", &lone, true, 1, day),
            vec![Action::RemoveVersion("m".into())]
        );
        let behind = vec![version("m", 9000, true), version("a", 0, false)];
        assert!(decide(&rules, "logs/x", &behind, true, 9500, day).is_empty());
    }

    #[test]
    fn filters_and_unversioned_retention() {
        let mut tagged = ObjectMeta {
            size: 10,
            ..Default::default()
        };
        tagged.tags.insert("tmp".into(), "yes".into());
        let rule = Rule {
            enabled: true,
            tags: [("tmp".to_owned(), "yes".to_owned())].into(),
            size_greater_than: Some(5),
            expiration_date_ms: Some(100),
            ..Default::default()
        };
        assert!(rule.matches("k", &tagged));
        assert!(!rule.matches("k", &ObjectMeta::default()));
        let disabled = Rule {
            enabled: false,
            ..rule.clone()
        };
        assert!(!disabled.matches("k", &tagged));
        let v = vec![VersionInfo {
            version_id: "null".into(),
            meta: tagged.clone(),
            is_latest: true,
        }];
        assert_eq!(
            decide(std::slice::from_ref(&rule), "k", &v, false, 200, 1),
            vec![Action::ExpireCurrent { version_id: None }]
        );
        assert!(decide(std::slice::from_ref(&rule), "k", &v, false, 50, 1).is_empty());
    }
}
