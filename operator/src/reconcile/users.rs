//! The users step of a Tenant's reconcile: read the Secrets `spec.users` names and the root
//! user (which no user may shadow), and check them. A change or deletion of such a Secret is
//! reconciled at once through [`super::secret_refs`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::Error;
use super::status::ConditionState;
use crate::build::secrets::ROOT_USER;
use crate::build::users::{self, Users};
use crate::crd::Tenant;

/// Reason of `UsersReady` when every user Secret is in effect.
pub const ALL_USERS_VALID: &str = "AllUsersValid";
/// Reason of `UsersReady` (and of the Warning event) when some user Secret is left out.
pub const INVALID_USER_SECRET: &str = "InvalidUserSecret";

/// Bytes of the condition message spent on naming invalid Secrets.
const MESSAGE_BUDGET: usize = 900;

/// Reads the root user and every Secret of `spec.users`, and checks them.
pub async fn gather(tenant: &Tenant, secrets_api: &Api<Secret>) -> Result<Users, Error> {
    let root_user = secrets_api
        .get_opt(&tenant.root_secret_name())
        .await?
        .and_then(|s| users::read_text(&s, ROOT_USER));
    let mut found = BTreeMap::new();
    for r in &tenant.spec.users {
        if let Some(s) = secrets_api.get_opt(&r.name).await? {
            found.insert(r.name.clone(), s);
        }
    }
    Ok(users::collect(
        &tenant.spec.users,
        |name| found.get(name),
        root_user.as_deref(),
    ))
}

/// The `UsersReady` condition for `users`. The message names Secrets and problems only.
pub fn condition(tenant: &Tenant, users: &Users) -> ConditionState {
    let listed = tenant.spec.users.len();
    let in_effect = users.users.len();
    if users.invalid.is_empty() {
        return ConditionState::holds(
            ALL_USERS_VALID,
            format!("{in_effect} of {listed} user Secrets in effect"),
        );
    }
    // An event's note must fit in 1 KiB (and a condition message in 32 KiB): name Secrets
    // while they fit, then only count the rest.
    let mut problems: Vec<String> = vec![];
    let mut length = 0;
    for (i, invalid) in users.invalid.iter().enumerate() {
        let text = invalid.to_string();
        if length + text.len() > MESSAGE_BUDGET {
            problems.push(format!("and {} more", users.invalid.len() - i));
            break;
        }
        length += text.len() + 2;
        problems.push(text);
    }
    ConditionState::fails(
        INVALID_USER_SECRET,
        format!(
            "{in_effect} of {listed} user Secrets in effect; left out: {}",
            problems.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::fixtures;
    use crate::build::users::{InvalidUser, UserProblem};
    use crate::crd::tenant::UserRef;

    #[test]
    fn the_condition_counts_and_names_without_values() {
        let (mut t, _) = fixtures();
        t.spec.users = ["a", "b"]
            .iter()
            .map(|n| UserRef {
                name: n.to_string(),
            })
            .collect();
        let ok = Users {
            users: vec![],
            invalid: vec![],
        };
        assert_eq!(condition(&t, &ok).reason, ALL_USERS_VALID);
        let bad = Users {
            users: vec![],
            invalid: vec![InvalidUser {
                secret: "b".into(),
                problem: UserProblem::MissingKey("secretKey"),
            }],
        };
        let ConditionState {
            status,
            reason,
            message,
        } = condition(&t, &bad);
        assert!(!status);
        assert_eq!(reason, INVALID_USER_SECRET);
        assert_eq!(
            message,
            r#"0 of 2 user Secrets in effect; left out: Secret "b": has no key "secretKey""#
        );
        let many = Users {
            users: vec![],
            invalid: (0..300)
                .map(|i| InvalidUser {
                    secret: format!("user-secret-with-a-long-name-{i:03}"),
                    problem: UserProblem::Duplicate(format!("another-long-name-{i:03}")),
                })
                .collect(),
        };
        let message = condition(&t, &many).message;
        assert!(
            message.len() < 1024,
            "fits an event note: {}",
            message.len()
        );
        assert!(message.ends_with(" more"), "{message}");
        assert!(
            message.contains("user-secret-with-a-long-name-000"),
            "{message}"
        );
    }
}
