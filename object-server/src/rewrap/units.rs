//! The work of one unit: a bucket (every object file of every key, in key order, several keys
//! in flight at once, then the bucket's multipart uploads) or the system unit (the metadata key,
//! the users' secret keys). Keys in flight are different keys, so no two tasks ever touch the
//! same object file; the lock each replacement takes ([`crate::storage::replace`]) orders them
//! against the clients' writes as before.
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::Limiter;
use super::cursor::{Advance, Window};
use super::state::{Counts, Job, JobDir, Tally, UnitState};
use super::wrap::{Outcome, Wrapper};
use crate::kms::{KmsError, object_context};
use crate::storage::replace::StoredFile;
use crate::storage::{EncryptionMeta, SseMode, StorageError, Store};

/// Progress is written after this many keys, or this long, whichever comes first.
const SAVE_EVERY_KEYS: u64 = 64;
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Why a unit stopped before its end (its progress so far is saved).
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// The job's state could not be written.
    #[error("re-wrap state: {0}")]
    State(#[from] std::io::Error),
    /// Listing the bucket failed.
    #[error("re-wrap listing: {0}")]
    Storage(#[from] StorageError),
}

/// What the work on one key or one ciphertext needs; copied into each task in flight.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub store: &'a Store,
    pub wrapper: &'a Wrapper<'a>,
    pub job: &'a Job,
    pub limiter: &'a Limiter,
}

/// One unit's run: its progress, saved as it moves.
pub(super) struct UnitRun<'a> {
    ctx: Ctx<'a>,
    dir: &'a JobDir,
    name: &'a str,
    state: UnitState,
    /// Keys of a bucket in flight at once.
    parallelism: usize,
    saved_at: Instant,
    unsaved: u64,
}

/// What became of one key of a bucket.
enum KeyDone {
    Done(Tally),
    /// The bucket was deleted meanwhile: the unit has nothing left to do.
    BucketGone,
}

/// The KMS refused the ciphertext of an upload under key `.0`.
#[derive(Debug, thiserror::Error)]
#[error("{1}")]
struct UploadKmsError(String, KmsError);

/// Counts `e`, a KMS refusal of a ciphertext under key `name`.
fn kms_failed(t: &mut Tally, name: &str, e: &KmsError) {
    match e {
        KmsError::KeyNotFound => t.key_missing(name),
        _ => t.counts.failed += 1,
    }
}

impl<'a> UnitRun<'a> {
    pub fn new(
        ctx: Ctx<'a>,
        dir: &'a JobDir,
        name: &'a str,
        state: UnitState,
        parallelism: usize,
    ) -> Self {
        Self {
            ctx,
            dir,
            name,
            state,
            parallelism: parallelism.max(1),
            saved_at: Instant::now(),
            unsaved: 0,
        }
    }

    fn save(&mut self) -> std::io::Result<()> {
        self.dir.write_unit(self.name, &self.state)?;
        self.saved_at = Instant::now();
        self.unsaved = 0;
        Ok(())
    }

    /// The keys up to `a.cursor` are done (all of them: see [`Window`]).
    fn advance(&mut self, a: Advance, keys: u64) -> std::io::Result<()> {
        self.state.cursor = Some(a.cursor);
        self.state.add(&a.tally);
        self.unsaved += keys;
        if self.unsaved >= SAVE_EVERY_KEYS || self.saved_at.elapsed() >= SAVE_EVERY {
            self.save()?;
        }
        Ok(())
    }

    /// Finishes the unit.
    pub fn finish(mut self) -> std::io::Result<Counts> {
        self.state.done = true;
        self.save()?;
        Ok(self.state.counts)
    }

    fn count(&mut self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.state.counts);
    }

    /// Every key of `bucket` after the cursor, up to [`Self::parallelism`] at once, then its
    /// uploads.
    pub async fn run_bucket(&mut self, bucket: &str) -> Result<(), UnitError> {
        use futures::StreamExt;
        let keys = match self.ctx.store.list_version_keys(bucket, "", false).await {
            Ok(k) => k,
            // Deleted since the job started: nothing left to do.
            Err(StorageError::NoSuchBucket) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let after = self.state.cursor.clone();
        let mut keys = keys
            .into_iter()
            .filter(|k| after.as_ref().is_none_or(|c| k > c));
        let ctx = self.ctx;
        let mut window = Window::default();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        loop {
            while window.in_flight() < self.parallelism {
                let Some(key) = keys.next() else { break };
                window.start(key.clone());
                in_flight.push(async move {
                    let done = ctx.key(bucket, &key).await;
                    (key, done)
                });
            }
            let Some((key, done)) = in_flight.next().await else {
                break;
            };
            let tally = match done {
                KeyDone::Done(t) => t,
                KeyDone::BucketGone => return Ok(()),
            };
            if let Some(a) = window.finish(&key, tally) {
                self.advance(a, 1)?;
            }
        }
        // (Done again after a crash in them: each upload is then current, and skipped.)
        self.uploads(bucket).await?;
        self.bucket_keys(bucket).await
    }

    /// The bucket's S3 Bucket Key records ([`crate::sse::bucket_key`]): each one's KMS
    /// ciphertext, re-wrapped and written back under the same id (the key does not change, so
    /// the objects sealed under it are not touched). Nobody else changes a record once it is
    /// written, and this unit's lease keeps other re-wrappers out, so a record is replaced
    /// without a check; a reader meanwhile reads the old or the new file, both the same key.
    async fn bucket_keys(&mut self, bucket: &str) -> Result<(), UnitError> {
        use crate::sse::bucket_key::{self, RECORD_PREFIX};
        let dir = crate::storage::layout::bucket_dir(self.ctx.store.root(), bucket);
        let mut ids = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(UnitError::State(e)),
        };
        while let Some(e) = entries.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_prefix(RECORD_PREFIX))
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|id| bucket_key::valid_id(id))
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        for id in ids {
            self.count(|c| c.scanned += 1);
            match self.bucket_key(bucket, &id).await {
                Ok(true) => self.count(|c| c.rewrapped += 1),
                Ok(false) => self.count(|c| c.skipped += 1),
                Err(e) => {
                    tracing::warn!(bucket, id, error = %e, "re-wrap of a bucket key failed");
                    self.count(|c| c.failed += 1);
                }
            }
        }
        Ok(())
    }

    async fn bucket_key(
        &self,
        bucket: &str,
        id: &str,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        use crate::sse::bucket_key;
        let name = bucket_key::record_name(id);
        let Some(raw) = self.ctx.store.read_bucket_config(bucket, &name).await? else {
            return Ok(false);
        };
        let record = bucket_key::parse_record(&raw)?;
        let ct = B64.decode(&record.ciphertext)?;
        let Some((key, ct)) = self
            .ctx
            .rewrap_raw(&record.kms_key, &ct, &bucket_key::kms_context(bucket, id))
            .await?
        else {
            return Ok(false);
        };
        let new = bucket_key::Record {
            kms_key: key,
            ciphertext: B64.encode(ct),
            ..record
        };
        self.ctx
            .store
            .write_bucket_json(bucket, &name, &new)
            .await?;
        Ok(true)
    }

    /// Counts `e`, a KMS refusal of a ciphertext under key `name`.
    fn kms_failed(&mut self, name: &str, e: &KmsError) {
        let mut t = Tally::default();
        kms_failed(&mut t, name, e);
        self.state.add(&t);
    }

    /// The bucket's multipart uploads: the `encryption` of each `upload.json` (its parts carry
    /// no KMS ciphertext). An upload is never changed after it is created, so a file that is
    /// no longer there (completed, aborted) is all a race can leave.
    async fn uploads(&mut self, bucket: &str) -> Result<(), UnitError> {
        let dir = self.ctx.store.uploads_dir(bucket);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(UnitError::State(e)),
        };
        while let Some(e) = entries.next_entry().await? {
            let path = e.path().join(crate::storage::layout::UPLOAD_FILE);
            let Ok(raw) = tokio::fs::read(&path).await else {
                continue;
            };
            self.count(|c| c.scanned += 1);
            match self.ctx.upload(bucket, &raw, &path).await {
                Ok(true) => self.count(|c| c.rewrapped += 1),
                Ok(false) => self.count(|c| c.skipped += 1),
                Err(err) => {
                    tracing::warn!(bucket, upload = %e.file_name().to_string_lossy(), error = %err, "re-wrap of an upload failed");
                    match err.downcast_ref::<UploadKmsError>() {
                        Some(UploadKmsError(name, kms)) => self.kms_failed(name, kms),
                        None => self.count(|c| c.failed += 1),
                    }
                }
            }
        }
        Ok(())
    }

    /// The metadata key and every user's secret key.
    pub async fn run_system(&mut self, system_dir: &std::path::Path) -> Result<(), UnitError> {
        use crate::sse::metadata_key;
        self.count(|c| c.scanned += 1);
        match metadata_key::stored_ciphertext(system_dir) {
            Ok(None) => self.count(|c| c.skipped += 1),
            Ok(Some((name, ct))) => {
                let r = self
                    .ctx
                    .rewrap_raw(&name, &ct, metadata_key::KMS_CONTEXT)
                    .await;
                match r {
                    Ok(None) => self.count(|c| c.skipped += 1),
                    Ok(Some((key, ct))) => {
                        match metadata_key::replace_ciphertext(system_dir, &key, &ct) {
                            Ok(()) => self.count(|c| c.rewrapped += 1),
                            Err(e) => {
                                tracing::warn!(error = %e, "re-wrap of the metadata key failed");
                                self.count(|c| c.failed += 1);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "re-wrap of the metadata key failed");
                        self.kms_failed(&name, &e);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-wrap: the metadata key file");
                self.count(|c| c.failed += 1);
            }
        }
        self.users(system_dir).await;
        Ok(())
    }

    /// Each user's sealed secret key, replaced under the IAM store's lock if it is still the
    /// one that was read (a user changed meanwhile was sealed anew by its writer).
    async fn users(&mut self, system_dir: &std::path::Path) {
        use crate::iam::store::{Dir, kms_context};
        let dir = match Dir::open(system_dir) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "re-wrap: the IAM store");
                self.count(|c| c.failed += 1);
                return;
            }
        };
        let users = match dir.read_users() {
            Ok(u) => u.users,
            Err(e) => {
                tracing::warn!(error = %e, "re-wrap: the IAM store");
                self.count(|c| c.failed += 1);
                return;
            }
        };
        for (access_key, user) in users {
            self.count(|c| c.scanned += 1);
            let old = user.secret.kms_ciphertext.clone();
            let Ok(ct) = B64.decode(&old) else {
                self.count(|c| c.failed += 1);
                continue;
            };
            let r = self
                .ctx
                .rewrap_raw(&user.secret.kms_key, &ct, &kms_context(&access_key))
                .await;
            let (key, ct) = match r {
                Ok(None) => {
                    self.count(|c| c.skipped += 1);
                    continue;
                }
                Ok(Some(new)) => new,
                Err(e) => {
                    tracing::warn!(user = %access_key, error = %e, "re-wrap of a user's secret key failed");
                    self.kms_failed(&user.secret.kms_key, &e);
                    continue;
                }
            };
            let new = B64.encode(ct);
            let replaced = dir.update_users(|f| match f.users.get_mut(&access_key) {
                Some(u) if u.secret.kms_ciphertext == old => {
                    u.secret.kms_key = key;
                    u.secret.kms_ciphertext = new;
                    (true, true)
                }
                _ => (false, false),
            });
            match replaced {
                Ok(true) => self.count(|c| c.rewrapped += 1),
                Ok(false) => self.count(|c| c.skipped += 1),
                Err(e) => {
                    tracing::warn!(user = %access_key, error = %e, "re-wrap: the IAM store");
                    self.count(|c| c.failed += 1);
                }
            }
        }
    }
}

impl Ctx<'_> {
    /// Every object file of `bucket/key`.
    async fn key(self, bucket: &str, key: &str) -> KeyDone {
        let mut t = Tally::default();
        match self.store.stored_files(bucket, key).await {
            Ok(files) => {
                for file in files {
                    self.object_file(bucket, key, file, &mut t).await;
                }
            }
            Err(StorageError::NoSuchBucket) => return KeyDone::BucketGone,
            Err(e) => {
                tracing::warn!(bucket, key, error = %e, "re-wrap: key not readable");
                t.counts.failed += 1;
            }
        }
        KeyDone::Done(t)
    }

    /// Whether a ciphertext of key `key` must move: onto the job's other target key, or onto
    /// its key's newest version.
    async fn needs_rewrap(self, key: &str, ciphertext: &[u8]) -> Result<bool, KmsError> {
        match &self.job.target_key {
            Some(t) if t != key => Ok(true),
            _ => Ok(crate::kms::ciphertext_version(ciphertext)
                < self.wrapper.newest_version(key).await?),
        }
    }

    /// Re-wraps `enc`'s ciphertext (context of `bucket/key`) if it needs it: `Ok(None)` when
    /// it is current.
    async fn rewrap_meta(
        self,
        bucket: &str,
        key: &str,
        enc: &EncryptionMeta,
    ) -> Result<Option<EncryptionMeta>, KmsError> {
        if enc.bucket_key.is_some() {
            // Its ciphertext is the bucket key's record's ([`UnitRun::bucket_keys`]); moved
            // onto another key, the object says so (what HEAD shows).
            return Ok(match &self.job.target_key {
                Some(t) if enc.kms_key.as_ref() != Some(t) => Some(EncryptionMeta {
                    kms_key: Some(t.clone()),
                    ..enc.clone()
                }),
                _ => None,
            });
        }
        let (Some(name), Some(ct)) = (&enc.kms_key, &enc.kms_ciphertext) else {
            return Ok(None);
        };
        let ct = B64.decode(ct).map_err(|_| KmsError::DecryptionFailed)?;
        let ctx = object_context(bucket, key, &enc.kms_context);
        Ok(self
            .rewrap_raw(name, &ct, &ctx)
            .await?
            .map(|(key, ciphertext)| EncryptionMeta {
                kms_key: Some(key),
                kms_ciphertext: Some(B64.encode(ciphertext)),
                ..enc.clone()
            }))
    }

    async fn object_file(self, bucket: &str, key: &str, file: StoredFile, t: &mut Tally) {
        t.counts.scanned += 1;
        let Some(enc) = &file.meta.encryption else {
            t.counts.skipped += 1;
            return;
        };
        let rewrapped = if enc.mode == SseMode::C {
            Ok(None)
        } else {
            self.rewrap_meta(bucket, key, enc).await
        };
        let meta = match rewrapped {
            Ok(Some(enc)) => {
                let mut m = file.meta.clone();
                m.encryption = Some(enc);
                m
            }
            // Current, but its digests are still plain (written before they were sealed):
            // the rewrite seals them.
            Ok(None) if !file.digests_sealed => file.meta.clone(),
            Ok(None) => {
                t.counts.skipped += 1;
                return;
            }
            Err(e) => {
                tracing::warn!(bucket, key, error = %e, "re-wrap: the KMS refused");
                kms_failed(t, enc.kms_key.as_deref().unwrap_or_default(), &e);
                return;
            }
        };
        match self
            .store
            .replace_meta_if_unchanged(bucket, key, &file, &meta)
            .await
        {
            Ok(true) => t.counts.rewrapped += 1,
            // A writer replaced or removed it meanwhile: what it wrote is new.
            Ok(false) => t.counts.skipped += 1,
            Err(e) => {
                tracing::warn!(bucket, key, error = %e, "re-wrap: the object file was not replaced");
                t.counts.failed += 1;
            }
        }
    }

    /// Moves ciphertext `ct` of key `name` (bound to `context`) if it needs it, paced by the
    /// process's limiter: the new key and ciphertext, `None` when it is current.
    async fn rewrap_raw(
        self,
        name: &str,
        ct: &[u8],
        context: &[u8],
    ) -> Result<Option<(String, Vec<u8>)>, KmsError> {
        if !self.needs_rewrap(name, ct).await? {
            return Ok(None);
        }
        self.limiter.wait().await;
        match self
            .wrapper
            .rewrap(name, ct, context, self.job.target_key.as_deref(), true)
            .await?
        {
            Outcome::Current => Ok(None),
            Outcome::Rewrapped { key, ciphertext } => Ok(Some((key, ciphertext))),
        }
    }

    async fn upload(
        self,
        bucket: &str,
        raw: &[u8],
        path: &std::path::Path,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let mut doc: serde_json::Value = serde_json::from_slice(raw)?;
        let Some(enc) = doc.get("encryption").filter(|v| !v.is_null()) else {
            return Ok(false);
        };
        let enc: EncryptionMeta = serde_json::from_value(enc.clone())?;
        let key = doc["key"].as_str().ok_or("upload without key")?.to_owned();
        let Some(new) = self
            .rewrap_meta(bucket, &key, &enc)
            .await
            .map_err(|e| UploadKmsError(enc.kms_key.clone().unwrap_or_default(), e))?
        else {
            return Ok(false);
        };
        doc["encryption"] = serde_json::to_value(&new)?;
        let data = serde_json::to_vec(&doc)?;
        let tmp = self.store.tmp_dir().join(crate::storage::random_name());
        let path = path.to_owned();
        let before = crate::storage::stamp::stamp(&path);
        crate::storage::blocking(move || -> std::io::Result<bool> {
            std::fs::write(&tmp, &data)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            // Still the upload that was read (a rename into a directory moved or removed
            // meanwhile fails, and the temp file goes).
            if crate::storage::stamp::stamp(&path) != before {
                let _ = std::fs::remove_file(&tmp);
                return Ok(false);
            }
            std::fs::rename(&tmp, &path).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            Ok(true)
        })
        .await
        .map_err(Into::into)
    }
}
