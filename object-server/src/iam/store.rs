//! Users and policies: `users.json` (each secret key sealed under a KMS data key, never plain)
//! and `policies.json` (the documents made with the admin API), kept where the objects are
//! ([`Backing`]):
//!
//! - on disk, in `DIR/.coffer/iam/` ([`Dir`]): every change takes `lock` (an exclusive file
//!   lock), re-reads the file, changes it and renames a new file into place, so any number of
//!   processes serving `DIR` can change it and each one notices a change by the file's identity
//!   (inode, size, mtime);
//! - in the S3 backend of the gateway, as the state documents `iam/users.json` and
//!   `iam/policies.json` ([`StateDocs`]): a change reads the document, changes it and writes it
//!   back conditionally on the version it read; a writer that lost the race reads and changes
//!   again, so two gateways adding users at once lose neither. Processes notice a change by
//!   the document's version (ETag), checked at most every [`SHARED_REFRESH`].
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Secret;
use crate::kms::{Kms, KmsError};
use crate::storage::StorageError;
use crate::storage::engine::state::{DocRead, StateDocs};

/// Where a user came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `mc admin user add` (the admin API).
    #[default]
    Admin,
    /// `COFFER_USERS_FILE`: removed again when the file drops it.
    File,
}

/// A secret key sealed under a KMS data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// The KMS key the data key belongs to.
    pub kms_key: String,
    /// Base64 KMS ciphertext of the data key.
    pub kms_ciphertext: String,
    /// Base64 of nonce ‖ AES-256-GCM(secret key).
    pub sealed: String,
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    /// The sealed secret key.
    pub secret: SealedSecret,
    /// `false` once disabled.
    pub enabled: bool,
    /// Attached policy names.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Who made it.
    #[serde(default)]
    pub source: Source,
    /// Last change, milliseconds since the epoch.
    #[serde(default)]
    pub updated_ms: i64,
}

/// `users.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UsersFile {
    /// By access key.
    #[serde(default)]
    pub users: BTreeMap<String, StoredUser>,
}

/// One policy document made with the admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The JSON document as given.
    pub document: String,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: i64,
    /// Last change, milliseconds since the epoch.
    pub updated_ms: i64,
}

/// `policies.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoliciesFile {
    /// By name.
    #[serde(default)]
    pub policies: BTreeMap<String, StoredPolicy>,
}

pub use crate::storage::stamp::{Stamp, stamp};

/// Why the IAM store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Disk trouble.
    #[error("IAM store: {0}")]
    Io(#[from] std::io::Error),
    /// A file does not parse.
    #[error("IAM store: {0} is damaged: {1}")]
    Damaged(PathBuf, String),
    /// The KMS refused or is away.
    #[error("IAM store: {0}")]
    Kms(#[from] KmsError),
    /// A sealed secret does not open.
    #[error("IAM store: the secret key of '{0}' cannot be unsealed")]
    Unseal(String),
    /// The S3 backend holding the state failed or is away.
    #[error("IAM store: {0}")]
    Backend(#[from] StorageError),
}

/// The `.coffer/iam` directory.
#[derive(Debug, Clone)]
pub struct Dir {
    path: PathBuf,
}

/// Writes `data` to a temp file beside `path`, fsyncs it, renames it over `path` and fsyncs the
/// directory: readers see the old or the new file, whole.
pub(crate) fn atomic_write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    let mut rnd = [0u8; 8];
    rand::fill(&mut rnd);
    let tmp = dir.join(format!(".tmp-{}", hex::encode(rnd)));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn read_json<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| StoreError::Damaged(path.to_owned(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}

impl Dir {
    /// Opens (and creates) `system_dir/iam`.
    pub fn open(system_dir: &Path) -> std::io::Result<Self> {
        let path = system_dir.join("iam");
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// `users.json`.
    pub fn users_path(&self) -> PathBuf {
        self.path.join("users.json")
    }

    /// `policies.json`.
    pub fn policies_path(&self) -> PathBuf {
        self.path.join("policies.json")
    }

    /// Reads `users.json`.
    pub fn read_users(&self) -> Result<UsersFile, StoreError> {
        read_json(&self.users_path())
    }

    /// Reads `policies.json`.
    pub fn read_policies(&self) -> Result<PoliciesFile, StoreError> {
        read_json(&self.policies_path())
    }

    fn locked<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let path = self.path.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        // Polled and bounded: a blocking flock can outlive a killed process on ceph-fuse.
        crate::storage::take_lock(&lock, &path.to_string_lossy(), false)?;
        let r = f();
        let _ = lock.unlock();
        r
    }

    /// Changes `users.json` under the lock; `change` returns its answer and whether to write.
    pub fn update_users<T>(
        &self,
        change: impl FnOnce(&mut UsersFile) -> (T, bool),
    ) -> Result<T, StoreError> {
        self.locked(|| {
            let mut file = self.read_users()?;
            let (out, write) = change(&mut file);
            if write {
                atomic_write(
                    &self.users_path(),
                    &serde_json::to_vec_pretty(&file).expect("serializes"),
                )?;
            }
            Ok(out)
        })
    }

    /// Changes `policies.json` under the lock.
    pub fn update_policies<T>(
        &self,
        change: impl FnOnce(&mut PoliciesFile) -> (T, bool),
    ) -> Result<T, StoreError> {
        self.locked(|| {
            let mut file = self.read_policies()?;
            let (out, write) = change(&mut file);
            if write {
                atomic_write(
                    &self.policies_path(),
                    &serde_json::to_vec_pretty(&file).expect("serializes"),
                )?;
            }
            Ok(out)
        })
    }
}

/// How long a gateway trusts the users and policies it loaded before asking the backend whether
/// they changed (one conditional GET per document; `304` when they did not). A user added or a
/// policy attached on one gateway is in effect on every other within this bound; a request
/// signed with an access key this process does not know yet looks again at once
/// ([`MISS_REFRESH`]).
pub const SHARED_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this often an unknown access key makes a gateway look at the backend before
/// [`SHARED_REFRESH`] is over (a client guessing keys cannot make it ask more often).
pub const MISS_REFRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// How often a conditional write of a state document that keeps losing races is tried again.
const SHARED_ROUNDS: usize = 16;

/// The state document of the users.
const USERS_DOC: &str = "iam/users.json";
/// The state document of the policies.
const POLICIES_DOC: &str = "iam/policies.json";

/// Where the users and policies are kept.
#[derive(Debug, Clone)]
pub enum Backing {
    /// `DIR/.coffer/iam/`.
    Local(Dir),
    /// The state documents of the storage engine (the gateway's backend bucket).
    Shared(Arc<dyn StateDocs>),
}

/// Which version of `users.json` and `policies.json` was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Versions {
    /// Nothing loaded yet.
    #[default]
    None,
    /// File identities.
    Local {
        /// `users.json`'s.
        users: Stamp,
        /// `policies.json`'s.
        policies: Stamp,
    },
    /// Document versions (`None`: absent).
    Shared {
        /// `iam/users.json`'s.
        users: Option<String>,
        /// `iam/policies.json`'s.
        policies: Option<String>,
    },
}

/// The files as loaded, and their versions.
pub struct Loaded {
    /// `users.json`.
    pub users: UsersFile,
    /// `policies.json`.
    pub policies: PoliciesFile,
    /// What was loaded.
    pub versions: Versions,
}

fn parse_doc<T: Default + for<'de> Deserialize<'de>>(
    name: &str,
    data: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(data)
        .map_err(|e| StoreError::Damaged(PathBuf::from(name), e.to_string()))
}

/// Reads a state document: the parsed file and its version (`None`: absent).
async fn read_shared<T: Default + for<'de> Deserialize<'de>>(
    docs: &dyn StateDocs,
    name: &str,
) -> Result<(T, Option<String>), StoreError> {
    match docs.read_doc(name, None).await? {
        DocRead::Present(d) => Ok((parse_doc(name, &d.data)?, Some(d.version))),
        DocRead::Absent | DocRead::Unchanged => Ok((T::default(), None)),
    }
}

/// Read, change, write conditionally on the version read; again on a lost race.
async fn update_shared<F, T>(
    docs: &dyn StateDocs,
    name: &str,
    mut change: impl FnMut(&mut F) -> (T, bool),
) -> Result<T, StoreError>
where
    F: Default + Serialize + for<'de> Deserialize<'de>,
{
    for round in 0..SHARED_ROUNDS {
        if round > 0 {
            // Writers that collided try again at random moments, spreading out more each round,
            // so one of them gets through instead of all of them colliding again.
            let most = 2u64 << round.min(7);
            tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(
                0..most,
            )))
            .await;
        }
        let (mut file, version) = read_shared::<F>(docs, name).await?;
        let (out, write) = change(&mut file);
        if !write {
            return Ok(out);
        }
        let data = serde_json::to_vec_pretty(&file).expect("serializes");
        match docs.write_doc(name, data.into(), version.as_deref()).await {
            Ok(true) => return Ok(out),
            Ok(false) => {}
            // RGW answers a conditional PUT that raced another write of the object with `500`
            // (ECANCELED) instead of `412`: tried again like a lost race, within the same bound.
            Err(StorageError::Unavailable(e)) => {
                tracing::debug!(doc = name, error = %e, "state document write failed; trying again")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Backend(StorageError::Unavailable(format!(
        "{name}: {SHARED_ROUNDS} conditional writes in a row lost a race"
    ))))
}

impl Backing {
    /// The files, unless they are still at `known`.
    pub async fn load_if_changed(&self, known: &Versions) -> Result<Option<Loaded>, StoreError> {
        match self {
            Backing::Local(dir) => {
                let versions = self.local_versions().expect("on disk");
                if versions == *known {
                    return Ok(None);
                }
                Ok(Some(Loaded {
                    users: dir.read_users()?,
                    policies: dir.read_policies()?,
                    versions,
                }))
            }
            Backing::Shared(docs) => {
                if let Versions::Shared { users, policies } = known {
                    let (u, p) = tokio::join!(
                        docs.read_doc(USERS_DOC, users.as_deref()),
                        docs.read_doc(POLICIES_DOC, policies.as_deref())
                    );
                    let unchanged = |r: &DocRead, v: &Option<String>| match r {
                        DocRead::Unchanged => true,
                        DocRead::Absent => v.is_none(),
                        DocRead::Present(_) => false,
                    };
                    if unchanged(&u?, users) && unchanged(&p?, policies) {
                        return Ok(None);
                    }
                }
                let ((users, uv), (policies, pv)) = tokio::try_join!(
                    read_shared::<UsersFile>(docs.as_ref(), USERS_DOC),
                    read_shared::<PoliciesFile>(docs.as_ref(), POLICIES_DOC)
                )?;
                Ok(Some(Loaded {
                    users,
                    policies,
                    versions: Versions::Shared {
                        users: uv,
                        policies: pv,
                    },
                }))
            }
        }
    }

    /// The files' identities now, on disk (`None` in the backend: asking costs a request).
    pub fn local_versions(&self) -> Option<Versions> {
        match self {
            Backing::Local(dir) => Some(Versions::Local {
                users: stamp(&dir.users_path()),
                policies: stamp(&dir.policies_path()),
            }),
            Backing::Shared(_) => None,
        }
    }

    /// Whether changes made elsewhere are noticed only every [`SHARED_REFRESH`].
    pub fn is_shared(&self) -> bool {
        matches!(self, Backing::Shared(_))
    }

    /// The users as stored now.
    pub async fn read_users(&self) -> Result<UsersFile, StoreError> {
        match self {
            Backing::Local(dir) => dir.read_users(),
            Backing::Shared(docs) => Ok(read_shared(docs.as_ref(), USERS_DOC).await?.0),
        }
    }

    /// Changes the users atomically (see the module doc); `change` may run more than once.
    pub async fn update_users<T: Send + 'static>(
        &self,
        change: impl FnMut(&mut UsersFile) -> (T, bool) + Send + 'static,
    ) -> Result<T, StoreError> {
        match self {
            Backing::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || dir.update_users(change))
                    .await
                    .expect("blocking task")
            }
            Backing::Shared(docs) => update_shared(docs.as_ref(), USERS_DOC, change).await,
        }
    }

    /// Changes the policies atomically; `change` may run more than once.
    pub async fn update_policies<T: Send + 'static>(
        &self,
        change: impl FnMut(&mut PoliciesFile) -> (T, bool) + Send + 'static,
    ) -> Result<T, StoreError> {
        match self {
            Backing::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || dir.update_policies(change))
                    .await
                    .expect("blocking task")
            }
            Backing::Shared(docs) => update_shared(docs.as_ref(), POLICIES_DOC, change).await,
        }
    }
}

/// The KMS context of the data key that seals `access_key`'s secret key.
pub(crate) fn kms_context(access_key: &str) -> Vec<u8> {
    serde_json::to_vec(&BTreeMap::from([(
        "coffer-iam",
        format!("user/{access_key}"),
    )]))
    .expect("serializes")
}

fn aad(access_key: &str) -> Vec<u8> {
    format!("coffer-iam-user-v1\0{access_key}").into_bytes()
}

fn cipher(key: &[u8]) -> Result<LessSafeKey, StoreError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| StoreError::Kms(KmsError::Unavailable("data key is not 32 bytes".into())))
}

/// Seals `secret` of `access_key` under a fresh data key of the KMS's default key.
pub async fn seal(
    kms: &dyn Kms,
    access_key: &str,
    secret: &str,
) -> Result<SealedSecret, StoreError> {
    let name = kms.default_key().to_owned();
    let dk = kms.generate_key(&name, &kms_context(access_key)).await?;
    let key = cipher(&dk.plaintext)?;
    let mut nonce = [0u8; 12];
    rand::fill(&mut nonce);
    let mut buf = secret.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(access_key)),
        &mut buf,
    )
    .map_err(|_| StoreError::Unseal(access_key.to_owned()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(SealedSecret {
        kms_key: name,
        kms_ciphertext: B64.encode(&dk.ciphertext),
        sealed: B64.encode(out),
    })
}

/// Opens a sealed secret key.
pub async fn unseal(
    kms: &dyn Kms,
    access_key: &str,
    s: &SealedSecret,
) -> Result<Secret, StoreError> {
    let bad = || StoreError::Unseal(access_key.to_owned());
    let ct = B64.decode(&s.kms_ciphertext).map_err(|_| bad())?;
    let sealed = B64.decode(&s.sealed).map_err(|_| bad())?;
    if sealed.len() < 12 + 16 {
        return Err(bad());
    }
    let dk = kms
        .decrypt_key(&s.kms_key, &ct, &kms_context(access_key))
        .await?;
    let key = cipher(&dk)?;
    let (nonce, body) = sealed.split_at(12);
    let mut buf = Zeroizing::new(body.to_vec());
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad(access_key)), &mut buf)
        .map_err(|_| bad())?;
    let text = std::str::from_utf8(plain).map_err(|_| bad())?;
    Ok(Secret::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::static_key::StaticKms;

    #[tokio::test]
    async fn sealed_secrets_open_only_for_their_user() {
        let kms = StaticKms::from_secret_key(&format!("k:{}", B64.encode([7u8; 32]))).unwrap();
        let s = seal(&kms, "app1", "very-secret-key").await.unwrap();
        assert!(!s.sealed.contains("very-secret-key"));
        assert_eq!(
            unseal(&kms, "app1", &s).await.unwrap().expose(),
            "very-secret-key"
        );
        assert!(unseal(&kms, "app2", &s).await.is_err());
    }

    #[test]
    fn updates_are_atomic_and_stamped() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let before = stamp(&dir.users_path());
        assert!(!before.exists());
        dir.update_users(|f| {
            f.users.insert(
                "u".into(),
                StoredUser {
                    secret: SealedSecret {
                        kms_key: "k".into(),
                        kms_ciphertext: String::new(),
                        sealed: String::new(),
                    },
                    enabled: true,
                    policies: vec!["readonly".into()],
                    source: Source::Admin,
                    updated_ms: 0,
                },
            );
            ((), true)
        })
        .unwrap();
        let after = stamp(&dir.users_path());
        assert_ne!(before, after);
        assert_eq!(dir.read_users().unwrap().users["u"].policies, ["readonly"]);
        dir.update_users(|_| ((), false)).unwrap();
        assert_eq!(after, stamp(&dir.users_path()));
    }

    /// State documents in memory, each write bumping a version, with a pause between the read
    /// and the write of a change (so concurrent changes really race).
    #[derive(Debug, Default)]
    struct RacyDocs(std::sync::Mutex<std::collections::HashMap<String, (Bytes, u64)>>);

    use crate::storage::engine::state::Doc;
    use bytes::Bytes;

    #[async_trait::async_trait]
    impl StateDocs for RacyDocs {
        async fn read_doc(&self, name: &str, known: Option<&str>) -> Result<DocRead, StorageError> {
            let got = self.0.lock().unwrap().get(name).cloned();
            tokio::task::yield_now().await;
            Ok(match got {
                None => DocRead::Absent,
                Some((_, v)) if known == Some(v.to_string().as_str()) => DocRead::Unchanged,
                Some((data, v)) => DocRead::Present(Doc {
                    data,
                    version: v.to_string(),
                }),
            })
        }

        async fn write_doc(
            &self,
            name: &str,
            data: Bytes,
            expected: Option<&str>,
        ) -> Result<bool, StorageError> {
            let mut docs = self.0.lock().unwrap();
            let current = docs.get(name).map(|(_, v)| v.to_string());
            if current.as_deref() != expected {
                return Ok(false);
            }
            let next = docs.get(name).map_or(1, |(_, v)| v + 1);
            docs.insert(name.to_owned(), (data, next));
            Ok(true)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_shared_updates_lose_nothing() {
        let docs: Arc<dyn StateDocs> = Arc::new(RacyDocs::default());
        let backing = Backing::Shared(docs);
        let mut tasks = Vec::new();
        for w in 0..4 {
            let backing = backing.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let name = format!("user-{w}-{i}");
                    backing
                        .update_users(move |f| {
                            f.users.insert(
                                name.clone(),
                                StoredUser {
                                    secret: SealedSecret {
                                        kms_key: "k".into(),
                                        kms_ciphertext: String::new(),
                                        sealed: String::new(),
                                    },
                                    enabled: true,
                                    policies: Vec::new(),
                                    source: Source::Admin,
                                    updated_ms: 0,
                                },
                            );
                            ((), true)
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(backing.read_users().await.unwrap().users.len(), 40);
        // Unchanged since loaded: nothing to load; changed: loaded again.
        let loaded = backing
            .load_if_changed(&Versions::None)
            .await
            .unwrap()
            .unwrap();
        assert!(
            backing
                .load_if_changed(&loaded.versions)
                .await
                .unwrap()
                .is_none()
        );
        backing
            .update_policies(|f| {
                f.policies.insert(
                    "p".into(),
                    StoredPolicy {
                        document: "{}".into(),
                        created_ms: 0,
                        updated_ms: 0,
                    },
                );
                ((), true)
            })
            .await
            .unwrap();
        let again = backing
            .load_if_changed(&loaded.versions)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.users.users.len(), again.policies.policies.len()),
            (40, 1)
        );
    }
}
