//! Users provisioned from a file (`COFFER_USERS_FILE`), as the operator mounts them from
//! Kubernetes Secrets:
//!
//! ```json
//! {"users":[{"accessKey":"app1","secretKey":"…","policies":["readonly"]}]}
//! ```
//!
//! `policies` is optional (default `["readwrite"]`). The file is re-read when its content
//! changes (polled every `COFFER_USERS_RELOAD_SECONDS`, default 5, and on SIGHUP): its users
//! exist with its keys and policies, users it provisioned before and no longer lists are
//! removed, users made with the admin API are left alone. An invalid file is logged (never its
//! secrets) and the last good set stays in effect.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::store::{Source, StoredUser};
use super::{Iam, IamError, check_credentials, now_ms};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    #[serde(rename = "accessKey")]
    access_key: String,
    #[serde(rename = "secretKey")]
    secret_key: Zeroizing<String>,
    #[serde(default)]
    policies: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersDoc {
    users: Vec<FileUser>,
}

/// One user the file asks for.
pub struct Wanted {
    access_key: String,
    secret_key: Zeroizing<String>,
    policies: Vec<String>,
}

/// Parses and checks the file (`root_user` may not appear in it). Errors never quote a
/// secret key.
pub fn parse(data: &[u8], root_user: &str) -> Result<Vec<Wanted>, String> {
    let doc: UsersDoc = serde_json::from_slice(data).map_err(|e| redact(&e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for u in doc.users {
        check_credentials(&u.access_key, &u.secret_key)
            .map_err(|e| format!("user '{}': {e}", u.access_key))?;
        if u.access_key == root_user {
            return Err(format!("user '{}' is the root user", u.access_key));
        }
        if !seen.insert(u.access_key.clone()) {
            return Err(format!("user '{}' is listed twice", u.access_key));
        }
        let policies = u.policies.unwrap_or_else(|| vec!["readwrite".to_owned()]);
        out.push(Wanted {
            access_key: u.access_key,
            secret_key: u.secret_key,
            policies,
        });
    }
    Ok(out)
}

/// serde_json quotes a value of the wrong type (`invalid type: string \`…\``): drop what
/// is quoted there, it may be a secret.
fn redact(msg: &str) -> String {
    if !msg.starts_with("invalid") {
        return msg.to_owned();
    }
    let mut out = String::new();
    let mut quoted = false;
    for c in msg.chars() {
        if c == '`' {
            quoted = !quoted;
            if quoted {
                out.push_str("`…`");
            }
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// What one sync changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Users added or changed.
    pub set: usize,
    /// Users removed.
    pub removed: usize,
}

impl Iam {
    /// Makes the file's users exist exactly as listed and removes users the file provisioned
    /// before that it no longer lists.
    pub async fn sync_file_users(&self, wanted: &[Wanted]) -> Result<Changes, IamError> {
        let snap = self.snapshot().await?;
        // A policy that does not exist yet grants nothing; it takes effect once it is created.
        for w in wanted {
            for p in w.policies.iter().filter(|p| !snap.has_policy(p)) {
                tracing::warn!(user = %w.access_key, policy = %p, "COFFER_USERS_FILE names a policy that does not exist (yet); it grants nothing until it is created");
            }
        }
        // Seal only what changed: the secret differs, or the user is new.
        let mut sealed = BTreeMap::new();
        for w in wanted {
            let same_secret = snap
                .users
                .get(&w.access_key)
                .is_some_and(|u| u.secret.expose() == w.secret_key.as_str());
            if !same_secret {
                let s =
                    super::store::seal(self.kms().as_ref(), &w.access_key, &w.secret_key).await?;
                sealed.insert(w.access_key.clone(), s);
            }
        }
        let wanted: BTreeMap<String, Vec<String>> = wanted
            .iter()
            .map(|w| (w.access_key.clone(), w.policies.clone()))
            .collect();
        let changes = self
            .backing()
            .update_users(move |f| {
                // A lost race runs this again on what won: start from the whole plan each time.
                let mut sealed = sealed.clone();
                let mut c = Changes::default();
                let before = f.users.len();
                f.users
                    .retain(|name, u| u.source != Source::File || wanted.contains_key(name));
                c.removed = before - f.users.len();
                for (name, policies) in wanted.clone() {
                    let new_secret = sealed.remove(&name);
                    match f.users.get_mut(&name) {
                        Some(u) => {
                            let changed = new_secret.is_some()
                                || u.policies != policies
                                || !u.enabled
                                || u.source != Source::File;
                            if changed {
                                if let Some(s) = new_secret {
                                    u.secret = s;
                                }
                                u.policies = policies;
                                u.enabled = true;
                                u.source = Source::File;
                                u.updated_ms = now_ms();
                                c.set += 1;
                            }
                        }
                        None => {
                            let Some(secret) = new_secret else { continue };
                            f.users.insert(
                                name,
                                StoredUser {
                                    secret,
                                    enabled: true,
                                    policies,
                                    source: Source::File,
                                    updated_ms: now_ms(),
                                },
                            );
                            c.set += 1;
                        }
                    }
                }
                let write = c != Changes::default();
                (c, write)
            })
            .await?;
        self.snapshot_current().await?;
        Ok(changes)
    }
}

/// Watches `path`: applies it now, then whenever its content changes (checked every `every`)
/// or SIGHUP arrives.
pub async fn watch(iam: Arc<Iam>, path: PathBuf, every: Duration) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; polling only");
            None
        }
    };
    let mut last: Option<[u8; 32]> = None;
    loop {
        apply_if_changed(&iam, &path, &mut last).await;
        let tick = tokio::time::sleep(every);
        match hup.as_mut() {
            Some(h) => tokio::select! {
                _ = tick => {}
                _ = h.recv() => {
                    tracing::info!(file = %path.display(), "SIGHUP: re-reading the users file");
                    last = None;
                }
            },
            None => tick.await,
        }
    }
}

async fn apply_if_changed(iam: &Iam, path: &Path, last: &mut Option<[u8; 32]>) {
    let data = match tokio::fs::read(path).await {
        Ok(d) => Zeroizing::new(d),
        Err(e) => {
            let digest = [0u8; 32];
            if *last != Some(digest) {
                tracing::error!(file = %path.display(), error = %e, "cannot read COFFER_USERS_FILE; keeping the users in effect");
                *last = Some(digest);
            }
            return;
        }
    };
    let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &data)
        .as_ref()
        .try_into()
        .expect("32 bytes");
    if *last == Some(digest) {
        return;
    }
    *last = Some(digest);
    let wanted = match parse(&data, iam.root_user()) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "COFFER_USERS_FILE is invalid; keeping the users in effect");
            return;
        }
    };
    match iam.sync_file_users(&wanted).await {
        Ok(c) => tracing::info!(
            file = %path.display(),
            users = wanted.len(),
            changed = c.set,
            removed = c.removed,
            "users file applied"
        ),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "COFFER_USERS_FILE not applied; keeping the users in effect");
            // Retry at the next poll: the KMS may come back, a policy may be created.
            *last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_without_leaking_secrets() {
        let w = parse(
            br#"{"users":[{"accessKey":"app1","secretKey":"secret-one-1"},{"accessKey":"app2","secretKey":"secret-two-2","policies":["readonly"]}]}"#,
            "root",
        )
        .unwrap();
        assert_eq!(w[0].policies, ["readwrite"]);
        assert_eq!(w[1].policies, ["readonly"]);
        for bad in [
            &br#"{"users":[{"accessKey":"ap","secretKey":"topsecret-xyz"}]}"#[..],
            br#"{"users":[{"accessKey":"app1","secretKey":"short"}]}"#,
            br#"{"users":[{"accessKey":"root","secretKey":"topsecret-xyz"}]}"#,
            br#"{"users":[{"accessKey":"app1","secretKey":"topsecret-xyz"},{"accessKey":"app1","secretKey":"topsecret-xyz"}]}"#,
            br#"{"users":[{"accessKey":"app1","secretKey":"topsecret-xyz","extra":1}]}"#,
            br#"{"users":[{"accessKey":"app1","secretKey":"topsecret-xyz""#,
            br#"{"users":[{"accessKey":"app1","secretKey":["topsecret-xyz"]}]}"#,
            br#"{"users":[{"accessKey":"app1","secretKey":12345678901}]}"#,
        ] {
            let e = parse(bad, "root").err().expect("refused");
            assert!(!e.contains("topsecret") && !e.contains("12345678901"), "{e}");
        }
    }
}
