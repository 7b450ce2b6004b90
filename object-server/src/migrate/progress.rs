//! The migration's progress file: one line per version or delete marker committed into Coffer,
//! so that a second run (after an interruption, or to pick up what was written to MinIO since)
//! skips what is done and never commits a version twice.
//!
//! A version is known by its bucket, key, MinIO version id and modification time (the null
//! version's id is the same for every null version a key ever had; its time tells them apart).
//! The line is appended after the commit and flushed, with its own length prefix-free JSON; a
//! process killed between the commit and the line leaves that one version to be copied again by
//! the next run (a duplicate of it, the only one possible); a torn last line is ignored.
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One committed version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Done {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub modified_ms: i64,
}

/// The versions a previous run committed, and the file this run appends to.
pub struct Progress {
    path: PathBuf,
    done: HashSet<Done>,
    file: Mutex<Option<std::fs::File>>,
}

impl Progress {
    /// Reads `path` (missing: nothing done yet). `write`: open it for appending (not in a dry run).
    pub fn open(path: &Path, write: bool) -> std::io::Result<Self> {
        let mut done = HashSet::new();
        match std::fs::File::open(path) {
            Ok(f) => {
                for line in std::io::BufReader::new(f).lines() {
                    if let Ok(d) = serde_json::from_str::<Done>(&line?) {
                        done.insert(d);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = match write {
            true => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                // A torn last line of a killed run must not swallow the first new one.
                if f.metadata()?.len() > 0 {
                    f.write_all(b"\n")?;
                }
                Some(f)
            }
            false => None,
        };
        Ok(Self {
            path: path.to_owned(),
            done,
            file: Mutex::new(file),
        })
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a previous run committed `d`.
    pub fn is_done(&self, d: &Done) -> bool {
        self.done.contains(d)
    }

    /// Records `d` as committed.
    pub fn record(&self, d: &Done) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(d).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        match file.as_mut() {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_knows_what_the_first_recorded_and_ignores_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sys/progress.jsonl");
        let d = |v: &str| Done {
            bucket: "b".into(),
            key: "k".into(),
            version_id: v.into(),
            modified_ms: 7,
        };
        let p = Progress::open(&path, true).unwrap();
        assert!(!p.is_done(&d("1")));
        p.record(&d("1")).unwrap();
        drop(p);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"bucket\":\"b\",\"ke")
            .unwrap();
        let p = Progress::open(&path, true).unwrap();
        assert!(p.is_done(&d("1")) && !p.is_done(&d("2")));
        p.record(&d("2")).unwrap();
        drop(p);
        let p = Progress::open(&path, false).unwrap();
        assert!(p.is_done(&d("1")) && p.is_done(&d("2")));
    }
}
