//! The Coffer side of IAM: MinIO's policies, users and their attachments written through Coffer's
//! own IAM store, the paths `mc admin` takes, so every check a client's request gets applies
//! (names, key lengths, policy syntax, the root user refused). Each user keeps its access and
//! secret key; the secret is sealed under a fresh data key of Coffer's KMS.
//!
//! Coffer has no groups: the policies of an enabled group are attached to each of its members,
//! and the group is listed in the report with what was done. A disabled group's policies are
//! not given to anyone.
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Importer;
use super::minio_iam::{self, MinioIam};
use crate::iam::policy::Policy;
use crate::iam::{builtin, check_credentials};

impl Importer {
    /// Imports MinIO's policies, then its users with their own and their groups' policies.
    pub(super) async fn import_iam(&mut self, drives: &[PathBuf]) {
        let minio = match minio_iam::read(drives, self.kms.as_ref()).await {
            Ok(m) => m,
            Err(e) => {
                self.report.skip_iam("IAM", e);
                return;
            }
        };
        let MinioIam {
            users,
            policies,
            groups,
            left_out,
        } = minio;
        for (what, why) in left_out {
            self.report.skip_iam(&what, why);
        }
        let mut known: Vec<String> = Vec::new();
        for (name, doc) in &policies {
            if builtin::document(name).is_some() {
                self.report.skip_iam(
                    &format!("policy {name}"),
                    "a built-in policy: Coffer's own built-in of that name applies",
                );
                known.push(name.clone());
                continue;
            }
            if let Err(e) = Policy::parse(doc.as_bytes()) {
                self.report
                    .skip_iam(&format!("policy {name}"), format!("refused: {e}"));
                continue;
            }
            if !self.dry_run
                && let Err(e) = self.iam.put_policy(name, doc).await
            {
                self.report
                    .skip_iam(&format!("policy {name}"), format!("refused: {e}"));
                continue;
            }
            known.push(name.clone());
            self.report.policies.push(name.clone());
        }
        let mut from_groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, g) in &groups {
            let what = format!("group {name}");
            if g.members.is_empty() {
                self.report.skip_iam(
                    &what,
                    format!(
                        "no MinIO members (an LDAP or OpenID group?): its policies ({}) are attached to no one",
                        g.policies.join(",")
                    ),
                );
                continue;
            }
            if !g.enabled {
                self.report.skip_iam(
                    &what,
                    "Coffer has no groups, and this one was disabled: its policies are given to no one",
                );
                continue;
            }
            for m in &g.members {
                from_groups.entry(m).or_default().extend(g.policies.clone());
            }
            self.report.skip_iam(
                &what,
                format!(
                    "Coffer has no groups: its policies ({}) are attached to its members ({}) directly",
                    g.policies.join(","),
                    g.members.join(",")
                ),
            );
        }
        for (access_key, user) in &users {
            let what = format!("user {access_key}");
            if access_key == self.iam.root_user() {
                self.report
                    .skip_iam(&what, "has the access key of Coffer's root user");
                continue;
            }
            if let Err(e) = check_credentials(access_key, user.secret.expose()) {
                self.report.skip_iam(&what, e);
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
                if known.contains(p) || builtin::document(p).is_some() {
                    attach.push(p.clone());
                } else {
                    self.report
                        .skip_iam(&what, format!("policy {p} was not imported: not attached"));
                }
            }
            if !self.dry_run {
                let done = async {
                    self.iam
                        .set_user(access_key, user.secret.expose(), user.enabled)
                        .await?;
                    self.iam.set_policies(access_key, &attach).await
                }
                .await;
                if let Err(e) = done {
                    self.report.skip_iam(&what, format!("refused: {e}"));
                    continue;
                }
            }
            self.report.users.push(access_key.clone());
        }
    }
}
