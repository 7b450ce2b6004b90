//! The decision for one caller on one bucket, with everything it needs captured: the caller's
//! policies (a snapshot of the IAM state) and the bucket policy as they were when the request
//! arrived. Deciding is then pure and synchronous, so an operation can decide again later
//! under a lock (see [`super::object_tags::TagDecision`]) and see the same policies the access
//! check saw.
//!
//! Rules: the root user may do everything, except what the bucket policy explicitly denies
//! (bucket-policy management itself stays allowed so an owner is never locked out); a user
//! needs an allow from its policies or from the bucket policy and no deny from either; an
//! anonymous request needs an allow from the bucket policy.
use std::collections::HashMap;
use std::sync::Arc;

use super::Snapshot;
use super::action::manages_bucket_policy;
use super::policy::{Decision, Policy, Request};

/// Who is asking, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Root(String),
    /// A user, and whether it exists and is enabled in the snapshot.
    User(String),
    Anonymous,
}

/// Decides requests of one caller on one bucket (or on no bucket: service-level requests).
#[derive(Clone)]
pub struct Decider {
    who: Who,
    /// The IAM state, for a user.
    snapshot: Option<Arc<Snapshot>>,
    bucket: String,
    bucket_policy: Option<Arc<Policy>>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("who", &self.who)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl Decider {
    pub(super) fn root(name: &str, bucket: &str, bucket_policy: Option<Arc<Policy>>) -> Self {
        Self {
            who: Who::Root(name.to_owned()),
            snapshot: None,
            bucket: bucket.to_owned(),
            bucket_policy,
        }
    }

    pub(super) fn user(
        name: &str,
        snapshot: Arc<Snapshot>,
        bucket: &str,
        bucket_policy: Option<Arc<Policy>>,
    ) -> Self {
        Self {
            who: Who::User(name.to_owned()),
            snapshot: Some(snapshot),
            bucket: bucket.to_owned(),
            bucket_policy,
        }
    }

    pub(super) fn anonymous(bucket: &str, bucket_policy: Option<Arc<Policy>>) -> Self {
        Self {
            who: Who::Anonymous,
            snapshot: None,
            bucket: bucket.to_owned(),
            bucket_policy,
        }
    }

    /// The bucket it decides on (empty for service-level requests).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn request<'a>(
        &'a self,
        action: &'a str,
        object: &'a str,
        conditions: &'a HashMap<String, Vec<String>>,
    ) -> Request<'a> {
        Request {
            action,
            bucket: &self.bucket,
            object,
            principal: match &self.who {
                Who::Root(n) | Who::User(n) => Some(n),
                Who::Anonymous => None,
            },
            conditions,
        }
    }

    fn user_policies(&self) -> Option<(&Snapshot, &super::User)> {
        let (Who::User(name), Some(snap)) = (&self.who, &self.snapshot) else {
            return None;
        };
        snap.users
            .get(name)
            .filter(|u| u.enabled)
            .map(|u| (snap.as_ref(), u))
    }

    /// Whether `action` on `object` (empty for the bucket itself) is allowed, for operation `op`.
    pub fn allows(
        &self,
        op: &str,
        action: &str,
        object: &str,
        conditions: &HashMap<String, Vec<String>>,
    ) -> bool {
        let req = self.request(action, object, conditions);
        let by_bucket = match &self.bucket_policy {
            Some(p) if !self.bucket.is_empty() => p.evaluate(&req),
            _ => Decision::NoMatch,
        };
        let by_user = match &self.who {
            Who::Root(_) => return by_bucket != Decision::Deny || manages_bucket_policy(op),
            Who::Anonymous => Decision::NoMatch,
            Who::User(_) => match self.user_policies() {
                Some((snap, u)) => snap.evaluate_user(u, &req),
                None => return false,
            },
        };
        by_user.and(by_bucket) == Decision::Allow
    }

    /// Whether a policy statement that could decide `action` on `object` for this caller tests
    /// a condition key starting with `prefix` (the caller's policies and the bucket policy).
    pub fn may_test(&self, action: &str, object: &str, prefix: &str) -> bool {
        let none = HashMap::new();
        let req = self.request(action, object, &none);
        let by_bucket = !self.bucket.is_empty()
            && self
                .bucket_policy
                .as_ref()
                .is_some_and(|p| p.may_test(&req, prefix));
        by_bucket
            || self.user_policies().is_some_and(|(snap, u)| {
                u.policies
                    .iter()
                    .filter_map(|n| snap.policy(n))
                    .any(|p| p.may_test(&req, prefix))
            })
    }
}
