//! What a re-wrap job keeps on disk, under `DIR/.coffer/rewrap/`, so that any process serving
//! the directory sees it, takes it over, and resumes it after a crash:
//!
//! - `job.json`: the job ([`Job`]): its id, what it moves to ([`Job::target_key`]), its scope
//!   ([`Job::bucket`]) and its units of work (one per bucket, and `system` for the metadata key
//!   and the users' secret keys). A new job replaces it whole (temp file, rename).
//! - `unit-<unit>.json`: the progress of one unit ([`UnitState`]): the last key done (the
//!   cursor: keys are walked in sorted order), the counts so far, whether it is done. Written
//!   (atomically) by the process holding the unit's lease every few keys and at its end.
//!
//! A crash loses at most the progress since the unit's last write; the keys done since are
//! looked at again and, being on the newest version already, counted as skipped.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::iam::store::atomic_write;

/// The unit of the data directory's own keys (metadata key, users' secret keys).
pub const SYSTEM_UNIT: &str = "system";

/// A re-wrap job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Random, so that unit files of an older job are never read as this one's.
    pub id: String,
    /// When it was started, Unix milliseconds.
    pub started_ms: i64,
    /// Every KMS ciphertext in scope is moved onto this key; `None`: each stays on its own key
    /// and moves to that key's newest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key: Option<String>,
    /// Only this bucket (then the system unit is not in scope); `None`: everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The units, each done by one process at a time.
    pub units: Vec<String>,
}

/// Counts of one unit (and, summed, of a job).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Stored ciphertexts looked at (object files, versions, uploads, keys of the system unit).
    pub scanned: u64,
    /// Re-wrapped.
    pub rewrapped: u64,
    /// Nothing to do (no KMS ciphertext, already on the target, or changed meanwhile by a
    /// writer, which made it new).
    pub skipped: u64,
    /// The KMS or the disk failed; left as it was (a later job tries again).
    pub failed: u64,
}

impl Counts {
    /// Adds `other`.
    pub fn add(&mut self, other: &Counts) {
        self.scanned += other.scanned;
        self.rewrapped += other.rewrapped;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }
}

/// What a piece of work found: its counts, and the keys the KMS says do not exist (deleted:
/// crypto-shredded), each with the number of ciphertexts under it that failed for that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub counts: Counts,
    pub missing_keys: BTreeMap<String, u64>,
}

impl Tally {
    /// Adds `other`.
    pub fn add(&mut self, other: &Tally) {
        self.counts.add(&other.counts);
        add_missing(&mut self.missing_keys, &other.missing_keys);
    }

    /// One ciphertext failed because its key `name` does not exist.
    pub fn key_missing(&mut self, name: &str) {
        self.counts.failed += 1;
        *self.missing_keys.entry(name.to_owned()).or_default() += 1;
    }
}

/// Adds the missing-key counts of `from` to `to`.
pub fn add_missing(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, n) in from {
        *to.entry(k.clone()).or_default() += n;
    }
}

/// The progress of one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    /// The job it belongs to (a file of another job is no progress of this one).
    pub job: String,
    /// The last key done, in the unit's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Counts so far.
    #[serde(default)]
    pub counts: Counts,
    /// Keys found missing so far (their ciphertexts are among the failed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_keys: BTreeMap<String, u64>,
    /// Whether the unit is finished.
    #[serde(default)]
    pub done: bool,
}

/// The job directory of a data directory's system directory.
#[derive(Debug, Clone)]
pub struct JobDir {
    path: PathBuf,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl UnitState {
    /// Adds what the keys up to the cursor found.
    pub fn add(&mut self, t: &Tally) {
        self.counts.add(&t.counts);
        add_missing(&mut self.missing_keys, &t.missing_keys);
    }
}

impl JobDir {
    /// `system_dir/rewrap`, created.
    pub fn open(system_dir: &Path) -> std::io::Result<Self> {
        let path = system_dir.join("rewrap");
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    fn job_path(&self) -> PathBuf {
        self.path.join("job.json")
    }

    fn unit_path(&self, unit: &str) -> PathBuf {
        self.path.join(format!("unit-{unit}.json"))
    }

    /// The current job, if one was ever started.
    pub fn job(&self) -> std::io::Result<Option<Job>> {
        read_json(&self.job_path())
    }

    /// Makes `job` the current one.
    pub fn write_job(&self, job: &Job) -> std::io::Result<()> {
        atomic_write(
            &self.job_path(),
            &serde_json::to_vec_pretty(job).expect("serializes"),
        )
    }

    /// The progress of `unit` in `job` (none yet: a fresh state).
    pub fn unit(&self, job: &Job, unit: &str) -> std::io::Result<UnitState> {
        Ok(read_json::<UnitState>(&self.unit_path(unit))?
            .filter(|u| u.job == job.id)
            .unwrap_or_else(|| UnitState {
                job: job.id.clone(),
                ..Default::default()
            }))
    }

    /// Records the progress of `unit`.
    pub fn write_unit(&self, unit: &str, state: &UnitState) -> std::io::Result<()> {
        atomic_write(
            &self.unit_path(unit),
            &serde_json::to_vec(state).expect("serializes"),
        )
    }
}

/// Whether `name` can be a unit's name: a bucket name (S3's rules keep it to lower-case
/// letters, digits, `.` and `-`) or [`SYSTEM_UNIT`]; nothing else names a file.
pub fn valid_unit(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_another_job_are_no_progress() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::open(d.path()).unwrap();
        assert_eq!(dir.job().unwrap(), None);
        let job = Job {
            id: "a".into(),
            started_ms: 1,
            target_key: None,
            bucket: None,
            units: vec!["b1".into(), SYSTEM_UNIT.into()],
        };
        dir.write_job(&job).unwrap();
        assert_eq!(dir.job().unwrap(), Some(job.clone()));
        let mut u = dir.unit(&job, "b1").unwrap();
        assert_eq!((u.cursor.as_deref(), u.done), (None, false));
        u.cursor = Some("k".into());
        u.counts.rewrapped = 3;
        dir.write_unit("b1", &u).unwrap();
        assert_eq!(dir.unit(&job, "b1").unwrap(), u);
        let next = Job {
            id: "b".into(),
            ..job
        };
        assert_eq!(dir.unit(&next, "b1").unwrap().cursor, None);
    }

    #[test]
    fn unit_names() {
        assert!(valid_unit("my-bucket.1") && valid_unit(SYSTEM_UNIT));
        for bad in ["", "../x", ".coffer", "a/b", "A"] {
            assert!(!valid_unit(bad), "{bad}");
        }
    }
}
