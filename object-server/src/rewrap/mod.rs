//! The online, metadata-only re-wrap: after a KMS key is rotated, every KMS ciphertext of a
//! data key that the data directory keeps — each object file's (every version's; a multipart
//! object's is in its object file, its parts carry none), each multipart upload's, the
//! metadata key's and each user's sealed secret key's — is moved onto the key's newest version,
//! or onto another key ([`state::Job::target_key`], moving a bucket to a new key as MinIO's
//! `keyrotate` batch job did). Started with `POST /minio/admin/v3/coffer/rewrap`, followed with
//! `GET` of the same path and the `coffer_kms_rewrap_*` metrics.
//!
//! **What changes.** Only the KMS ciphertext, never the data key under it ([`wrap`]): the
//! object key sealed under the data key stays valid, so no object body is decrypted, re-
//! encrypted or otherwise changed. An object file is its body followed by its metadata; a new
//! file with the same body bytes (copied by the kernel) and the new metadata is renamed over it
//! ([`crate::storage::replace`]), as every metadata change does. A file read with plain
//! digests (written before they were sealed) gets them sealed in the same write.
//!
//! **Races.** The file is replaced only if it is still the file that was read, checked under
//! every lock a change of the key takes: a version overwritten or deleted meanwhile is left to
//! its writer (counted as skipped). Since the data key does not change, a reader or a
//! multipart Complete that read the old ciphertext still decrypts it, until the key's minimum
//! version is raised past it — which is what this job makes safe, once it reports done with no
//! failures.
//!
//! **Several processes, crashes.** The job and each unit's progress are files
//! ([`state`]); every process serving the directory runs [`Rewrapper::run`], which polls the
//! job and works on a unit only while it holds the unit's lease, an exclusive `flock` that
//! dies with its process ([`crate::storage`]'s lock files). So a unit is worked on by one
//! process at a time, and after a `kill -9` the next process (or the restarted one) resumes it
//! from the last saved cursor; the keys done since are current and skipped.
//!
//! **Rate and parallelism.** Re-wraps (KMS calls and file writes) are paced to at most
//! `COFFER_REWRAP_RATE` per second and process (default [`DEFAULT_RATE`]; `0`: unpaced), one
//! limiter shared by every unit and task of the process, so the job does not crowd out the
//! clients' own KMS calls. Within a bucket, up to `COFFER_REWRAP_PARALLELISM` keys (default
//! [`DEFAULT_PARALLELISM`]) are in flight at once: each re-wrap waits on two KMS round trips and
//! two fsyncs, so one at a time leaves the KMS and the disk idle most of the time. The saved
//! cursor moves only past keys that are all done ([`cursor`]), so a crash skips none.
//!
//! **Deleted keys.** A ciphertext whose key the KMS says does not exist (crypto-shredded) is
//! counted as failed and its key named in the status (`missingKeys`), so the admin sees why.
pub mod cursor;
pub mod state;
pub mod units;
pub mod wrap;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Serialize;

use crate::kms::{Kms, KmsError};
use crate::storage::{StorageError, Store};
use state::{Counts, Job, JobDir, SYSTEM_UNIT};

/// Re-wraps per second and process unless `COFFER_REWRAP_RATE` says otherwise.
pub const DEFAULT_RATE: u32 = 200;

/// Keys of a bucket in flight at once unless `COFFER_REWRAP_PARALLELISM` says otherwise: enough
/// to keep a KMS's round trips and the disk's fsyncs overlapping, few enough that a KMS serving
/// the clients too (Vault's default request limits, KES's) never sees a burst from the job.
pub const DEFAULT_PARALLELISM: usize = 8;

/// How often an idle process looks for a job (a start in the same process wakes it at once).
const POLL: Duration = Duration::from_secs(2);

/// Paces re-wraps to a rate.
pub struct Limiter {
    interval: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Limiter {
    /// At most `per_second` passes a second; 0: no limit.
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for the next pass.
    pub async fn wait(&self) {
        let Some(step) = self.interval else {
            return;
        };
        let mut next = self.next.lock().await;
        let now = tokio::time::Instant::now();
        if *next < now {
            *next = now;
        }
        let at = *next;
        *next += step;
        drop(next);
        tokio::time::sleep_until(at).await;
    }
}

/// Why a job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A job is running (or another process is starting one).
    #[error("a re-wrap job is already running")]
    Running,
    /// The bucket named as the scope does not exist.
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// The target key does not exist, or the KMS refuses to encrypt under it.
    #[error("the target key: {0}")]
    Kms(#[from] KmsError),
    /// The job's state could not be written.
    #[error("re-wrap state: {0}")]
    Io(#[from] std::io::Error),
    /// Listing buckets failed.
    #[error("re-wrap: {0}")]
    Storage(StorageError),
}

/// What the status call and the metrics show of the current job.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The job's id.
    pub id: String,
    /// `running` or `done`.
    pub state: &'static str,
    /// When it was started, RFC 3339.
    pub started: String,
    /// The key everything in scope moves to (absent: each key's newest version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_key: Option<String>,
    /// The one bucket in scope (absent: all, and the system unit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Counts summed over the units.
    #[serde(flatten)]
    pub counts: Counts,
    /// Keys the KMS says do not exist (deleted: what is under them is unreadable), each with
    /// the number of stored ciphertexts under it (counted in `failed`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_keys: BTreeMap<String, u64>,
    /// Units finished, and in all.
    pub units_done: usize,
    pub units_total: usize,
}

/// The re-wrap of one process: starts jobs, works on them, reports them.
pub struct Rewrapper {
    store: Store,
    kms: Arc<dyn Kms>,
    dir: JobDir,
    limiter: Limiter,
    parallelism: usize,
    wake: tokio::sync::Notify,
    /// The status as last read (for the metrics, which are encoded without I/O).
    last: Mutex<Option<JobStatus>>,
}

fn unit_of_bucket(bucket: &str) -> String {
    format!("bucket-{bucket}")
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Rewrapper {
    /// The re-wrap of the data directory of `store` through `kms`, pacing re-wraps to `rate`
    /// a second (0: unpaced), with up to `parallelism` keys of a bucket in flight.
    pub fn new(
        store: Store,
        kms: Arc<dyn Kms>,
        rate: u32,
        parallelism: usize,
    ) -> std::io::Result<Arc<Self>> {
        let dir = JobDir::open(&store.system_dir())?;
        Ok(Arc::new(Self {
            store,
            kms,
            dir,
            limiter: Limiter::new(rate),
            parallelism: parallelism.max(1),
            wake: tokio::sync::Notify::new(),
            last: Mutex::new(None),
        }))
    }

    /// Starts a job: everything (or only `bucket`) onto the newest version of its key, or onto
    /// `target_key`. Refused while a job is running.
    pub async fn start(
        &self,
        target_key: Option<String>,
        bucket: Option<String>,
    ) -> Result<JobStatus, StartError> {
        // One start at a time across processes; the loser is told a job is running.
        let root = self.store.root().to_owned();
        let Some(_starting) =
            crate::storage::blocking(move || crate::storage::try_lock_named(&root, "rewrap-start"))
                .await?
        else {
            return Err(StartError::Running);
        };
        if let Some(s) = self.read_status().await?
            && s.state == "running"
        {
            return Err(StartError::Running);
        }
        if let Some(t) = &target_key {
            wrap::Wrapper::new(self.kms.as_ref())
                .newest_version(t)
                .await?;
        }
        let units = match &bucket {
            Some(b) => {
                let unit = unit_of_bucket(b);
                // A name that is no bucket's (`a/../b`) never becomes a unit nobody can finish.
                if !state::valid_unit(&unit) || !self.store.bucket_exists(b) {
                    return Err(StartError::NoSuchBucket);
                }
                vec![unit]
            }
            None => {
                let mut u: Vec<String> = self
                    .store
                    .list_buckets()
                    .await
                    .map_err(StartError::Storage)?
                    .into_iter()
                    .map(|(b, _)| unit_of_bucket(&b))
                    .collect();
                u.push(SYSTEM_UNIT.to_owned());
                u
            }
        };
        let mut id = [0u8; 8];
        rand::fill(&mut id);
        let job = Job {
            id: hex::encode(id),
            started_ms: crate::s3::now_ms(),
            target_key,
            bucket,
            units,
        };
        let dir = self.dir.clone();
        let j = job.clone();
        crate::storage::blocking(move || dir.write_job(&j)).await?;
        tracing::info!(job = %job.id, target = ?job.target_key, bucket = ?job.bucket, units = job.units.len(), "re-wrap job started");
        self.wake.notify_one();
        Ok(self.read_status().await?.expect("the job was just written"))
    }

    /// The current (or last) job's status, read from disk.
    pub async fn read_status(&self) -> std::io::Result<Option<JobStatus>> {
        let dir = self.dir.clone();
        let status = crate::storage::blocking(move || -> std::io::Result<Option<JobStatus>> {
            let Some(job) = dir.job()? else {
                return Ok(None);
            };
            let mut counts = Counts::default();
            let mut missing_keys = BTreeMap::new();
            let mut done = 0;
            for u in &job.units {
                let s = dir.unit(&job, u)?;
                counts.add(&s.counts);
                state::add_missing(&mut missing_keys, &s.missing_keys);
                done += usize::from(s.done);
            }
            Ok(Some(JobStatus {
                id: job.id.clone(),
                state: if done == job.units.len() {
                    "done"
                } else {
                    "running"
                },
                started: rfc3339(job.started_ms),
                target_key: job.target_key.clone(),
                bucket: job.bucket.clone(),
                counts,
                missing_keys,
                units_done: done,
                units_total: job.units.len(),
            }))
        })
        .await?;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = status.clone();
        Ok(status)
    }

    /// Works on the jobs, forever: each unit not done whose lease this process gets.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.work().await {
                tracing::warn!(error = %e, "re-wrap");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn work(&self) -> Result<(), units::UnitError> {
        let Some(status) = self.read_status().await? else {
            return Ok(());
        };
        if status.state == "done" {
            return Ok(());
        }
        let Some(job) = self.dir.job()? else {
            return Ok(());
        };
        let wrapper = wrap::Wrapper::new(self.kms.as_ref());
        for unit in &job.units {
            if !state::valid_unit(unit) || self.dir.unit(&job, unit)?.done {
                continue;
            }
            let root = self.store.root().to_owned();
            let name = format!("rewrap-{unit}");
            let Some(_lease) =
                crate::storage::blocking(move || crate::storage::try_lock_named(&root, &name))
                    .await?
            else {
                continue;
            };
            // Read again under the lease: its last holder may have finished it.
            let progress = self.dir.unit(&job, unit)?;
            if progress.done {
                continue;
            }
            let started = Instant::now();
            let before = progress.counts;
            let ctx = units::Ctx {
                store: &self.store,
                wrapper: &wrapper,
                job: &job,
                limiter: &self.limiter,
            };
            let mut run = units::UnitRun::new(ctx, &self.dir, unit, progress, self.parallelism);
            match unit.strip_prefix("bucket-") {
                Some(bucket) => run.run_bucket(bucket).await?,
                None => run.run_system(&self.store.system_dir()).await?,
            }
            let counts = run.finish()?;
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                job = %job.id,
                unit,
                rewrapped = counts.rewrapped - before.rewrapped,
                scanned = counts.scanned - before.scanned,
                seconds = secs,
                "re-wrap unit done"
            );
            let _ = self.read_status().await;
        }
        Ok(())
    }

    /// The metrics of the current job ([`Collector`]): register it with the metrics.
    pub fn collector(self: &Arc<Self>) -> Box<dyn Collector> {
        Box::new(JobMetrics(self.clone()))
    }
}

#[derive(Debug)]
struct JobMetrics(Arc<Rewrapper>);

impl std::fmt::Debug for Rewrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrapper").finish_non_exhaustive()
    }
}

impl Collector for JobMetrics {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::metrics::MetricType::Gauge;
        let Some(s) = self
            .0
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return Ok(());
        };
        let c = s.counts;
        let results = BTreeMap::from([
            ("scanned", c.scanned),
            ("rewrapped", c.rewrapped),
            ("skipped", c.skipped),
            ("failed", c.failed),
        ]);
        crate::metrics::family(
            &mut e,
            "coffer_kms_rewrap_objects",
            "Stored KMS ciphertexts of the current re-wrap job, by outcome",
            Gauge,
            results
                .into_iter()
                .map(|(r, v)| ([("result", r)], v as f64)),
        )?;
        crate::metrics::family(
            &mut e,
            "coffer_kms_rewrap_units",
            "Units of work of the current re-wrap job, by state",
            Gauge,
            [
                ([("state", "done")], s.units_done as f64),
                ([("state", "total")], s.units_total as f64),
            ],
        )?;
        crate::metrics::family(
            &mut e,
            "coffer_kms_rewrap_running",
            "Whether a re-wrap job is running",
            Gauge,
            [(
                [("job", s.id.as_str())],
                f64::from(u8::from(s.state == "running")),
            )],
        )
    }
}

#[cfg(test)]
mod tests;
