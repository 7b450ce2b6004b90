//! The Coffer side of IAM: MinIO's policies, users and their attachments written through Coffer's
//! own IAM store, the paths `mc admin` takes, so every check a client's request gets applies
//! (names, key lengths, policy syntax, the root user refused). Each user keeps its access and
//! secret key; the secret is sealed under a fresh data key of Coffer's KMS.
//!
//! Coffer has no groups: the policies of an enabled group are attached to each of its members,
//! and the group is listed in the report with what was done. A disabled group's policies are
//! not given to anyone.
//!
//! Two steps, so a caller can refuse bad input before anything is written: [`plan`] decides
//! everything from MinIO's state (pure), [`Importer::apply_iam`] writes it. The offline import
//! and the online migration report what the plan refused and import the rest; the admin API's
//! `import-iam` (`crate::admin::cluster`) refuses the whole archive instead.
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Importer;
use super::minio_iam::{self, MinioIam};
use crate::config::Secret;
use crate::iam::{Snapshot, builtin, check_credentials, check_policy};

/// A user as it will be written.
pub(crate) struct PlannedUser {
    pub access_key: String,
    pub secret: Secret,
    pub enabled: bool,
    /// Its own and its groups' policies, each one known.
    pub policies: Vec<String>,
}

/// What importing a MinIO IAM state does, decided before anything is written.
#[derive(Default)]
pub(crate) struct IamPlan {
    /// Policies to create or replace: (name, document), each checked as `put_policy` checks it.
    pub policies: Vec<(String, String)>,
    pub users: Vec<PlannedUser>,
    /// Items left out by design (built-ins, groups, service accounts): (what, why).
    pub notes: Vec<(String, String)>,
    /// Items refused as invalid (a policy that does not parse, a bad key, an unknown policy,
    /// the root user): (what, why).
    pub refused: Vec<(String, String)>,
}

/// Decides what importing `minio` into Coffer does (`existing`: Coffer's IAM now, whose
/// policies may be attached too; `root_user`: Coffer's root, never overwritten).
pub(crate) fn plan(minio: MinioIam, root_user: &str, existing: &Snapshot) -> IamPlan {
    let MinioIam {
        users,
        policies,
        groups,
        left_out,
    } = minio;
    let mut out = IamPlan {
        notes: left_out,
        ..Default::default()
    };
    let mut known: Vec<String> = Vec::new();
    for (name, doc) in policies {
        if builtin::document(&name).is_some() {
            out.notes.push((
                format!("policy {name}"),
                "a built-in policy: Coffer's own built-in of that name applies".into(),
            ));
            known.push(name);
            continue;
        }
        match check_policy(&name, &doc) {
            Ok(()) => {
                known.push(name.clone());
                out.policies.push((name, doc));
            }
            Err(e) => out
                .refused
                .push((format!("policy {name}"), format!("refused: {e}"))),
        }
    }
    let mut from_groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, g) in &groups {
        let what = format!("group {name}");
        if g.members.is_empty() {
            out.notes.push((
                what,
                format!(
                    "no MinIO members (an LDAP or OpenID group?): its policies ({}) are attached to no one",
                    g.policies.join(",")
                ),
            ));
            continue;
        }
        if !g.enabled {
            out.notes.push((
                what,
                "Coffer has no groups, and this one was disabled: its policies are given to no one"
                    .into(),
            ));
            continue;
        }
        for m in &g.members {
            from_groups.entry(m).or_default().extend(g.policies.clone());
        }
        out.notes.push((
            what,
            format!(
                "Coffer has no groups: its policies ({}) are attached to its members ({}) directly",
                g.policies.join(","),
                g.members.join(",")
            ),
        ));
    }
    for (access_key, user) in users {
        let what = format!("user {access_key}");
        if access_key == root_user {
            out.refused
                .push((what, "has the access key of Coffer's root user".into()));
            continue;
        }
        if let Err(e) = check_credentials(&access_key, user.secret.expose()) {
            out.refused.push((what, e.to_string()));
            continue;
        }
        let mut attach: Vec<String> = Vec::new();
        let wanted = user
            .policies
            .iter()
            .chain(from_groups.get(access_key.as_str()).into_iter().flatten());
        for p in wanted {
            if attach.contains(p) {
                continue;
            }
            if known.contains(p) || existing.has_policy(p) {
                attach.push(p.clone());
            } else {
                out.refused.push((
                    what.clone(),
                    format!("policy {p} was not imported: not attached"),
                ));
            }
        }
        out.users.push(PlannedUser {
            access_key,
            secret: user.secret,
            enabled: user.enabled,
            policies: attach,
        });
    }
    out
}

impl Importer {
    /// Imports MinIO's policies, then its users with their own and their groups' policies;
    /// what cannot be is reported, the rest imported.
    pub(super) async fn import_iam(&mut self, drives: &[PathBuf]) {
        let minio = match minio_iam::read(drives, self.kms.as_ref()).await {
            Ok(m) => m,
            Err(e) => {
                self.report.skip_iam("IAM", e);
                return;
            }
        };
        let existing = match self.iam.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                self.report.skip_iam("IAM", e.to_string());
                return;
            }
        };
        let mut plan = plan(minio, self.iam.root_user(), &existing);
        for (what, why) in std::mem::take(&mut plan.notes)
            .into_iter()
            .chain(std::mem::take(&mut plan.refused))
        {
            self.report.skip_iam(&what, why);
        }
        self.apply_iam(plan).await;
    }

    /// Writes what `plan` decided (nothing in a dry run), reporting each policy and user
    /// written and each write Coffer's IAM refused. Its notes and refusals are the caller's.
    pub(crate) async fn apply_iam(&mut self, plan: IamPlan) {
        let mut failed_policies = Vec::new();
        for (name, doc) in &plan.policies {
            if !self.dry_run
                && let Err(e) = self.iam.put_policy(name, doc).await
            {
                self.report
                    .skip_iam(&format!("policy {name}"), format!("refused: {e}"));
                failed_policies.push(name.as_str());
                continue;
            }
            self.report.policies.push(name.clone());
        }
        for user in &plan.users {
            let attach: Vec<String> = user
                .policies
                .iter()
                .filter(|p| !failed_policies.contains(&p.as_str()))
                .cloned()
                .collect();
            if !self.dry_run {
                let done = async {
                    self.iam
                        .set_user(&user.access_key, user.secret.expose(), user.enabled)
                        .await?;
                    self.iam.set_policies(&user.access_key, &attach).await
                }
                .await;
                if let Err(e) = done {
                    self.report.skip_iam(
                        &format!("user {}", user.access_key),
                        format!("refused: {e}"),
                    );
                    continue;
                }
            }
            self.report.users.push(user.access_key.clone());
        }
    }
}
