//! Identity and access: the root user, users with secret keys and attached policies, policy
//! documents, bucket policies, and the decision for each request.
//!
//! - [`policy`]: the IAM policy language (pure), with [`condition`] for `Condition` blocks.
//! - [`builtin`]: MinIO's built-in policies.
//! - [`action`]: the action of each S3 operation and a request's condition values.
//! - [`object_tags`]: the object-tag condition keys, and holding a decision made on an
//!   object's tags against the version the operation opens.
//! - [`decider`]: one caller's decisions on one bucket, policies captured.
//! - [`store`]: `DIR/.coffer/iam/` on disk or the gateway's backend bucket, secret keys sealed
//!   by the KMS.
//! - [`access`]: s3s's `S3Auth` (secret lookup for SigV4) and `S3Access` (the per-request check).
//! - [`users_file`]: users provisioned from `COFFER_USERS_FILE`.
//!
//! Every process serving a directory sees every change at once: before answering, [`Iam`]
//! compares the identity of `users.json` and `policies.json` with what it loaded and reloads
//! on a difference (one `stat` per file per request). Gateways over one backend bucket see a
//! change within [`store::SHARED_REFRESH`] (one conditional GET per document per second), and
//! an unknown access key looks again at once.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::Secret;
use crate::kms::Kms;
use policy::{Decision, Policy, PolicyError, Request};
use store::{Backing, Dir, SealedSecret, Source, Stamp, StoreError, StoredUser, Versions};

pub mod access;
pub mod action;
pub mod builtin;
pub mod condition;
pub mod decider;
pub mod object_tags;
pub mod policy;
pub mod store;
pub mod users_file;

/// Why an IAM change was refused.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// No such user.
    #[error("The specified user does not exist")]
    NoSuchUser,
    /// No such policy.
    #[error("The canned policy does not exist: {0}")]
    NoSuchPolicy(String),
    /// The request names the root user or bad values.
    #[error("{0}")]
    Invalid(String),
    /// The policy document is invalid.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// Storage or KMS trouble.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One user in effect.
#[derive(Debug, Clone)]
pub struct User {
    /// The secret key.
    pub secret: Secret,
    /// `false` when disabled.
    pub enabled: bool,
    /// Attached policy names.
    pub policies: Vec<String>,
    /// Where it came from.
    pub source: Source,
    /// The sealed form it was loaded from (to skip the KMS when it did not change).
    sealed: SealedSecret,
}

/// A policy made with the admin API.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    /// The document as given.
    pub document: String,
    /// Parsed.
    pub policy: Policy,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Last change (ms).
    pub updated_ms: i64,
}

/// What is in effect now.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Users by access key.
    pub users: HashMap<String, User>,
    /// Policies made with the admin API, by name.
    pub policies: HashMap<String, NamedPolicy>,
    versions: Versions,
    /// Set when a secret key could not be unsealed (the KMS was away): that user is left out
    /// and the files are read again after this instant.
    retry_at: Option<std::time::Instant>,
}

impl Snapshot {
    fn retry_due(&self) -> bool {
        self.retry_at
            .is_some_and(|t| std::time::Instant::now() >= t)
    }
}

impl Snapshot {
    /// The policy `name`: a built-in or one made with the admin API.
    pub fn policy(&self, name: &str) -> Option<Policy> {
        builtin::policy(name).or_else(|| self.policies.get(name).map(|p| p.policy.clone()))
    }

    /// Whether policy `name` exists.
    pub fn has_policy(&self, name: &str) -> bool {
        builtin::document(name).is_some() || self.policies.contains_key(name)
    }

    /// Evaluates the policies attached to `user` (unknown names grant nothing).
    pub fn evaluate_user(&self, user: &User, req: &Request<'_>) -> Decision {
        user.policies
            .iter()
            .filter_map(|n| {
                builtin::policy(n)
                    .map(|p| p.evaluate(req))
                    .or_else(|| self.policies.get(n).map(|p| p.policy.evaluate(req)))
            })
            .fold(Decision::NoMatch, Decision::and)
    }
}

/// A bucket's policy as last read, with the stamp of its file then.
type CachedBucketPolicy = (Stamp, Option<Arc<Policy>>);

/// Users, policies and bucket policies of one data directory.
pub struct Iam {
    backing: Backing,
    /// When the shared state was last found unchanged (or loaded), and when an unknown access
    /// key last made this process look ([`store::MISS_REFRESH`]).
    checked: std::sync::Mutex<(std::time::Instant, std::time::Instant)>,
    data_dir: PathBuf,
    kms: Arc<dyn Kms>,
    root_user: String,
    root_secret: Secret,
    current: RwLock<Arc<Snapshot>>,
    reload: tokio::sync::Mutex<()>,
    bucket_policies: RwLock<HashMap<String, CachedBucketPolicy>>,
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Access keys: 3–128 characters without `=`, `,` or whitespace (MinIO's rule); secret keys:
/// 8–40 characters.
pub fn check_credentials(access_key: &str, secret_key: &str) -> Result<(), IamError> {
    let bad_char = |c: char| c == '=' || c == ',' || c.is_whitespace() || c.is_control();
    if access_key.len() < 3 || access_key.len() > 128 || access_key.chars().any(bad_char) {
        return Err(IamError::Invalid(
            "access key length should be between 3 and 128 characters and may not contain '=', ',' or spaces".into(),
        ));
    }
    if secret_key.len() < 8 || secret_key.len() > 40 {
        return Err(IamError::Invalid(
            "secret key length should be between 8 and 40 characters".into(),
        ));
    }
    Ok(())
}

/// Refuses a policy [`Iam::put_policy`] would refuse: a bad name, a built-in's name, a document
/// that does not parse.
pub fn check_policy(name: &str, document: &str) -> Result<(), IamError> {
    if name.is_empty() || name.contains([',', '/', ' ']) {
        return Err(IamError::Invalid(format!("invalid policy name '{name}'")));
    }
    if builtin::document(name).is_some() {
        return Err(IamError::Invalid(format!(
            "'{name}' is a built-in policy and cannot be changed"
        )));
    }
    Policy::parse(document.as_bytes())?;
    Ok(())
}

impl Iam {
    /// Opens the IAM state of the data directory `data_dir` (system directory `system_dir`).
    pub async fn open(
        data_dir: PathBuf,
        system_dir: &std::path::Path,
        kms: Arc<dyn Kms>,
        root_user: String,
        root_secret: Secret,
    ) -> Result<Arc<Self>, IamError> {
        let dir = Dir::open(system_dir).map_err(StoreError::from)?;
        Self::open_backing(data_dir, Backing::Local(dir), kms, root_user, root_secret).await
    }

    /// Opens the IAM state kept in `backing` (bucket policies: under `data_dir`).
    pub async fn open_backing(
        data_dir: PathBuf,
        backing: Backing,
        kms: Arc<dyn Kms>,
        root_user: String,
        root_secret: Secret,
    ) -> Result<Arc<Self>, IamError> {
        let long_ago = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs(3600))
            .unwrap_or_else(std::time::Instant::now);
        let iam = Arc::new(Self {
            backing,
            checked: std::sync::Mutex::new((long_ago, long_ago)),
            data_dir,
            kms,
            root_user,
            root_secret,
            current: RwLock::new(Arc::new(Snapshot::default())),
            reload: tokio::sync::Mutex::new(()),
            bucket_policies: RwLock::new(HashMap::new()),
        });
        // A KMS that is away now only delays the users: the root user works regardless.
        if let Err(e) = iam.snapshot().await {
            tracing::error!(error = %e, "users cannot be loaded yet; retrying on each request");
        }
        Ok(iam)
    }

    /// The root user's access key.
    pub fn root_user(&self) -> &str {
        &self.root_user
    }

    /// The root user's secret key.
    pub fn root_secret(&self) -> &Secret {
        &self.root_secret
    }

    /// The KMS (for `mc admin kms`).
    pub fn kms(&self) -> &Arc<dyn Kms> {
        &self.kms
    }

    /// What is in effect now, reloading whatever another process (or this one) changed.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, IamError> {
        self.snapshot_fresh(false).await
    }

    /// What the store holds now, even on a gateway whose snapshot is not due for a look yet:
    /// for admin calls (rare; a listing or a policy check on any gateway sees every change).
    pub async fn snapshot_current(&self) -> Result<Arc<Snapshot>, IamError> {
        self.snapshot_fresh(true).await
    }

    /// What is in effect now, after looking at the shared state at once (within
    /// [`store::MISS_REFRESH`]) when an access key is not known: a user just added on another
    /// gateway signs in on this one without waiting for [`store::SHARED_REFRESH`].
    pub async fn snapshot_for_unknown(&self) -> Result<Arc<Snapshot>, IamError> {
        let look = self.backing.is_shared() && {
            let mut c = self.checked.lock().expect("lock");
            let due = c.1.elapsed() >= store::MISS_REFRESH;
            if due {
                c.1 = std::time::Instant::now();
            }
            due
        };
        self.snapshot_fresh(look).await
    }

    /// Whether `snap` may be used without reading the store: on disk, when both files' identities
    /// (one `stat` each) are those it was loaded from; in the backend, for [`store::SHARED_REFRESH`]
    /// after the last look unless `now`.
    fn trusted(&self, snap: &Snapshot, now: bool) -> bool {
        if snap.retry_due() || snap.versions == Versions::None {
            return false;
        }
        match self.backing.local_versions() {
            Some(v) => v == snap.versions,
            None => !now && self.checked.lock().expect("lock").0.elapsed() < store::SHARED_REFRESH,
        }
    }

    async fn snapshot_fresh(&self, now: bool) -> Result<Arc<Snapshot>, IamError> {
        let cur = self.current.read().expect("lock").clone();
        if self.trusted(&cur, now) {
            return Ok(cur);
        }
        let asked = std::time::Instant::now();
        let _g = self.reload.lock().await;
        let cur = self.current.read().expect("lock").clone();
        // Another request began a look after this one asked: what it found is fresh enough.
        if self.backing.is_shared()
            && !cur.retry_due()
            && cur.versions != Versions::None
            && self.checked.lock().expect("lock").0 >= asked
        {
            return Ok(cur);
        }
        let known = if cur.retry_due() {
            Versions::None
        } else {
            cur.versions.clone()
        };
        // When the look began: all written before then is in what it finds.
        let looked = std::time::Instant::now();
        let loaded = self.backing.load_if_changed(&known).await?;
        if self.backing.is_shared() {
            self.checked.lock().expect("lock").0 = looked;
        }
        let Some(loaded) = loaded else {
            return Ok(cur);
        };
        let (users_file, policies_file) = (loaded.users, loaded.policies);
        let mut users = HashMap::new();
        let mut retry_at = None;
        for (name, u) in users_file.users {
            let secret = match cur.users.get(&name) {
                Some(old) if old.sealed == u.secret => old.secret.clone(),
                _ => match store::unseal(self.kms.as_ref(), &name, &u.secret).await {
                    Ok(s) => s,
                    // The others keep working; this one is tried again in a second.
                    Err(e) => {
                        tracing::error!(user = %name, error = %e, "cannot unseal the user's secret key; the user cannot sign in until it can");
                        retry_at =
                            Some(std::time::Instant::now() + std::time::Duration::from_secs(1));
                        continue;
                    }
                },
            };
            users.insert(
                name,
                User {
                    secret,
                    enabled: u.enabled,
                    policies: u.policies,
                    source: u.source,
                    sealed: u.secret,
                },
            );
        }
        let mut policies = HashMap::new();
        for (name, p) in policies_file.policies {
            match Policy::parse(p.document.as_bytes()) {
                Ok(policy) => {
                    policies.insert(
                        name,
                        NamedPolicy {
                            document: p.document,
                            policy,
                            created_ms: p.created_ms,
                            updated_ms: p.updated_ms,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(policy = %name, error = %e, "stored policy does not parse; ignored")
                }
            }
        }
        let snap = Arc::new(Snapshot {
            users,
            policies,
            versions: loaded.versions,
            retry_at,
        });
        *self.current.write().expect("lock") = snap.clone();
        Ok(snap)
    }

    /// Adds a user or changes its secret key and status (`mc admin user add`), keeping the
    /// policies it has. A user from `COFFER_USERS_FILE` is refused (the file manages it).
    pub async fn set_user(
        &self,
        access_key: &str,
        secret_key: &str,
        enabled: bool,
    ) -> Result<(), IamError> {
        self.refuse_root(access_key)?;
        check_credentials(access_key, secret_key)?;
        let sealed = store::seal(self.kms.as_ref(), access_key, secret_key).await?;
        let ak = access_key.to_owned();
        self.blocking_users(access_key, move |f| {
            let e = f.users.entry(ak.clone()).or_insert_with(|| StoredUser {
                secret: sealed.clone(),
                enabled,
                policies: Vec::new(),
                source: Source::Admin,
                updated_ms: 0,
            });
            e.secret = sealed.clone();
            e.enabled = enabled;
            e.updated_ms = now_ms();
            (Ok(()), true)
        })
        .await
    }

    /// Removes a user.
    pub async fn remove_user(&self, access_key: &str) -> Result<(), IamError> {
        self.refuse_root(access_key)?;
        let ak = access_key.to_owned();
        self.blocking_users(access_key, move |f| match f.users.remove(&ak) {
            Some(_) => (Ok(()), true),
            None => (Err(IamError::NoSuchUser), false),
        })
        .await
    }

    /// Enables or disables a user.
    pub async fn set_enabled(&self, access_key: &str, enabled: bool) -> Result<(), IamError> {
        self.refuse_root(access_key)?;
        let ak = access_key.to_owned();
        self.blocking_users(access_key, move |f| match f.users.get_mut(&ak) {
            Some(u) => {
                u.enabled = enabled;
                u.updated_ms = now_ms();
                (Ok(()), true)
            }
            None => (Err(IamError::NoSuchUser), false),
        })
        .await
    }

    /// Changes the policies of a user: `attach` adds, `detach` removes (both lists may be
    /// empty). Returns the policies now attached.
    pub async fn change_policies(
        &self,
        access_key: &str,
        attach: &[String],
        detach: &[String],
    ) -> Result<Vec<String>, IamError> {
        self.refuse_root(access_key)?;
        let snap = self.snapshot_current().await?;
        if let Some(missing) = attach.iter().find(|p| !snap.has_policy(p)) {
            return Err(IamError::NoSuchPolicy(missing.clone()));
        }
        let (ak, attach, detach) = (access_key.to_owned(), attach.to_vec(), detach.to_vec());
        self.blocking_users(access_key, move |f| match f.users.get_mut(&ak) {
            Some(u) => {
                if let Some(d) = detach.iter().find(|d| !u.policies.contains(d)) {
                    return (
                        Err(IamError::Invalid(format!(
                            "policy '{d}' is not attached to user '{ak}'"
                        ))),
                        false,
                    );
                }
                u.policies.retain(|p| !detach.contains(p));
                for a in &attach {
                    if !u.policies.contains(a) {
                        u.policies.push(a.clone());
                    }
                }
                u.updated_ms = now_ms();
                (Ok(u.policies.clone()), true)
            }
            None => (Err(IamError::NoSuchUser), false),
        })
        .await
    }

    /// Replaces the policies of a user (the older `set-user-or-group-policy`).
    pub async fn set_policies(&self, access_key: &str, names: &[String]) -> Result<(), IamError> {
        self.refuse_root(access_key)?;
        let snap = self.snapshot_current().await?;
        if let Some(missing) = names.iter().find(|p| !snap.has_policy(p)) {
            return Err(IamError::NoSuchPolicy(missing.clone()));
        }
        let (ak, names) = (access_key.to_owned(), names.to_vec());
        self.blocking_users(access_key, move |f| match f.users.get_mut(&ak) {
            Some(u) => {
                u.policies = names.clone();
                u.updated_ms = now_ms();
                (Ok(()), true)
            }
            None => (Err(IamError::NoSuchUser), false),
        })
        .await
    }

    /// Creates or replaces policy `name`.
    pub async fn put_policy(&self, name: &str, document: &str) -> Result<(), IamError> {
        check_policy(name, document)?;
        let (name, document) = (name.to_owned(), document.to_owned());
        self.backing
            .update_policies(move |f| {
                let now = now_ms();
                let created = f.policies.get(&name).map_or(now, |p| p.created_ms);
                f.policies.insert(
                    name.clone(),
                    store::StoredPolicy {
                        document: document.clone(),
                        created_ms: created,
                        updated_ms: now,
                    },
                );
                ((), true)
            })
            .await?;
        self.snapshot_fresh(true).await?;
        Ok(())
    }

    /// Removes policy `name`; refused while a user has it attached (as MinIO does).
    pub async fn remove_policy(&self, name: &str) -> Result<(), IamError> {
        if builtin::document(name).is_some() {
            return Err(IamError::Invalid(format!(
                "'{name}' is a built-in policy and cannot be removed"
            )));
        }
        let snap = self.snapshot_current().await?;
        if let Some((u, _)) = snap
            .users
            .iter()
            .find(|(_, u)| u.policies.iter().any(|p| p == name))
        {
            return Err(IamError::Invalid(format!(
                "policy '{name}' is attached to user '{u}'; detach it first"
            )));
        }
        let name = name.to_owned();
        self.backing
            .update_policies(move |f| match f.policies.remove(&name) {
                Some(_) => (Ok(()), true),
                None => (Err(IamError::NoSuchPolicy(name.clone())), false),
            })
            .await??;
        self.snapshot_fresh(true).await?;
        Ok(())
    }

    fn refuse_root(&self, access_key: &str) -> Result<(), IamError> {
        if access_key == self.root_user {
            return Err(IamError::Invalid(
                "the root user cannot be changed through the admin API".into(),
            ));
        }
        Ok(())
    }

    /// Runs `change` on `users.json` under the lock, then reloads. A user provisioned by
    /// `COFFER_USERS_FILE` is the file's to change: the admin API is refused there.
    async fn blocking_users<T: Send + 'static>(
        &self,
        access_key: &str,
        mut change: impl FnMut(&mut store::UsersFile) -> (Result<T, IamError>, bool) + Send + 'static,
    ) -> Result<T, IamError> {
        let ak = access_key.to_owned();
        let out = self
            .backing
            .update_users(move |f| {
                if f.users.get(&ak).is_some_and(|u| u.source == Source::File) {
                    let msg =
                        format!("user '{ak}' is provisioned by COFFER_USERS_FILE; change it there");
                    return (Err(IamError::Invalid(msg)), false);
                }
                change(f)
            })
            .await??;
        self.snapshot_fresh(true).await?;
        Ok(out)
    }

    /// Where the users and policies are kept.
    pub(crate) fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The policy of `bucket`, if it has one (re-read when its file changes).
    pub fn bucket_policy(&self, bucket: &str) -> Option<Arc<Policy>> {
        let path =
            crate::storage::layout::bucket_dir(&self.data_dir, bucket).join(BUCKET_POLICY_FILE);
        let st = store::stamp(&path);
        if let Some((s, p)) = self.bucket_policies.read().expect("lock").get(bucket)
            && *s == st
        {
            return p.clone();
        }
        // A policy that is there but cannot be read or parsed fails closed: ignoring it would
        // drop its denies (a deny-unencrypted or deny-delete policy would silently stop
        // applying). Everything on the bucket is refused until the owner replaces or deletes it
        // (the root user may always manage bucket policies).
        let p = if st.exists() {
            match std::fs::read(&path).map(|b| Policy::parse_bucket_policy(&b)) {
                Ok(Ok(p)) => Some(Arc::new(p)),
                Ok(Err(e)) => {
                    tracing::error!(%bucket, error = %e, "stored bucket policy does not parse: every request to the bucket is denied until it is replaced");
                    Some(Arc::new(Policy::deny_everything(bucket)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::error!(%bucket, error = %e, "stored bucket policy cannot be read: every request to the bucket is denied until it is replaced");
                    Some(Arc::new(Policy::deny_everything(bucket)))
                }
            }
        } else {
            None
        };
        self.bucket_policies
            .write()
            .expect("lock")
            .insert(bucket.to_owned(), (st, p.clone()));
        p
    }
}

/// The bucket configuration name of the bucket policy (`DIR/<bucket>/.policy.json`).
pub const BUCKET_POLICY: &str = "policy";
const BUCKET_POLICY_FILE: &str = ".policy.json";

#[cfg(test)]
mod tests;
