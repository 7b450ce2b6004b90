//! Status conditions: set one without losing its transition time, and read one back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type: every leaf certificate is issued and current.
pub const CERTIFICATES_READY: &str = "CertificatesReady";
/// Condition type: the referenced KMS exists, its Secret is complete, and Vault answers.
pub const KMS_READY: &str = "KMSReady";
/// Condition type: every Secret of `spec.users` is valid and in effect.
pub const USERS_READY: &str = "UsersReady";
/// Condition type: every replica serves S3.
pub const READY: &str = "Ready";
/// Condition type: a rollout or an issuance is under way.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something needs a human (the reason says what).
pub const DEGRADED: &str = "Degraded";
/// Condition type (Tenant, KMS): the object was deleted but stays; the reason says why
/// (`deletionProtection`, Tenants that still use a KMS).
pub const DELETION_BLOCKED: &str = "DeletionBlocked";
/// Condition type: the pods run the image the Tenant should run (`spec.image`, else the
/// operator's default); its reasons say why not (paused, waiting for an upgrade slot…).
pub const UP_TO_DATE: &str = "UpToDate";
/// Condition type (KMS): the auth Secret exists with the expected keys.
pub const SECRET_FOUND: &str = "SecretFound";

/// One condition's value: its status, a reason constant, and a message that names
/// objects and causes only, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    /// `True` or `False`.
    pub status: bool,
    /// Machine-readable cause (a constant of the reconciler that sets it).
    pub reason: &'static str,
    /// What a human reads.
    pub message: String,
}

impl ConditionState {
    /// A `True` condition.
    pub fn holds(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A `False` condition.
    pub fn fails(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: false,
            reason,
            message: message.into(),
        }
    }
}

/// Sets condition `type_` in `conditions` to `state` (see [`set`]).
pub fn set_state(
    conditions: &mut Vec<Condition>,
    type_: &str,
    state: &ConditionState,
    generation: Option<i64>,
    now: Timestamp,
) {
    set(
        conditions,
        type_,
        state.status,
        state.reason,
        state.message.clone(),
        generation,
        now,
    );
}

/// Sets condition `type_` in `conditions`: a changed status gets `now` as its transition time,
/// an unchanged one keeps the old time. Reason and message are always updated.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status_str = if status { "True" } else { "False" };
    let message = message.into();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status_str {
            c.last_transition_time = Time(now);
        }
        c.status = status_str.into();
        c.reason = reason.into();
        c.message = message;
        c.observed_generation = generation;
        return;
    }
    conditions.push(Condition {
        type_: type_.into(),
        status: status_str.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(now),
    });
}

/// Whether condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The reason of condition `type_`, if present.
pub fn reason<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_change() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut c = vec![];
        set(&mut c, READY, false, "Progressing", "starting", Some(1), t0);
        set(
            &mut c,
            READY,
            false,
            "Progressing",
            "still starting",
            Some(2),
            t1,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(t0));
        assert_eq!(c[0].message, "still starting");
        assert_eq!(c[0].observed_generation, Some(2));
        set(&mut c, READY, true, "AllReplicasReady", "ok", Some(2), t1);
        assert_eq!(c[0].last_transition_time, Time(t1));
        assert!(is_true(&c, READY));
        assert_eq!(reason(&c, READY), Some("AllReplicasReady"));
        assert!(!is_true(&c, DEGRADED));
    }
}
