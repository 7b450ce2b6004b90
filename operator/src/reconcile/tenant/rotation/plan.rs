//! One pass of the rotation schedule, on a scripted-able Vault ([`KeyApi`]), object-server
//! ([`RewrapApi`]) and clock (`now`).
//!
//! **No state in memory, no double rotation.** A key is due when its newest version is one
//! period old, by the creation time Vault keeps for that version. Rotating makes a version
//! created now, so the key is not due again for a whole period, whatever the operator
//! remembers: a restart, a second operator replica, a lost status write or a retried reconcile
//! finds the new version and does not rotate again.
//!
//! **Re-wrap.** A re-wrap is needed when some key's newest version (beyond the first) is newer
//! than the start of the object-server's last re-wrap job, whose state the object-server keeps
//! on disk. So a rotation whose re-wrap could not be started (pods down, a job running: 409)
//! is re-wrapped on a later pass, and one already started is not started twice.

use futures::future::BoxFuture;
use std::time::Duration;
use time::OffsetDateTime;

use crate::crd::tenant::{KeyVersionStatus, RewrapStatus, RotationStatus};

/// A key's versions, as Vault says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// The newest version.
    pub newest: u32,
    /// The oldest version that decrypts.
    pub min_version: u32,
    /// When the newest version was made.
    pub newest_created: OffsetDateTime,
}

/// The keys in Vault (Transit).
pub trait KeyApi: Send + Sync {
    /// Every key name starting with `prefix`.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>>;
    /// One key's versions.
    fn info<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<KeyState, String>>;
    /// Adds a version; the key's versions afterwards.
    fn rotate<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<KeyState, String>>;
}

/// Why a re-wrap did not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartRefused {
    /// A job is running (409): try again when it is done.
    Running,
    /// Anything else (unreachable, refused): the text says what.
    Failed(String),
}

/// The object-server's re-wrap job.
pub trait RewrapApi: Send + Sync {
    /// `GET /minio/admin/v3/coffer/rewrap`: the current or last job, `None` if there never was one.
    fn status(&self) -> BoxFuture<'_, Result<Option<RewrapStatus>, String>>;
    /// `POST /minio/admin/v3/coffer/rewrap`: starts a job onto each key's newest version.
    fn start(&self) -> BoxFuture<'_, Result<RewrapStatus, StartRefused>>;
}

/// An event to publish: `(warning, reason, note)`.
pub type Note = (bool, &'static str, String);

/// What a pass found and did.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// The new `status.rotation`.
    pub status: RotationStatus,
    /// Events, in order.
    pub events: Vec<Note>,
    /// When to look again.
    pub next: Duration,
}

/// While a re-wrap runs or waits to start, how often it is looked at.
pub const REWRAP_POLL: Duration = Duration::from_secs(30);

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// Rotates the due keys under `prefix` (rotation `period`), starts or follows the re-wrap,
/// from the `previous` status, at `now`.
pub async fn run(
    keys: &dyn KeyApi,
    rewrap: &dyn RewrapApi,
    prefix: &str,
    period: Duration,
    previous: Option<&RotationStatus>,
    now: OffsetDateTime,
) -> Outcome {
    let mut status = RotationStatus {
        last_rotation: previous.and_then(|p| p.last_rotation.clone()),
        rewrap: previous.and_then(|p| p.rewrap.clone()),
        ..Default::default()
    };
    let mut events = Vec::new();
    let names = match keys.list(prefix).await {
        Ok(n) => n,
        Err(e) => {
            status.keys = previous.map(|p| p.keys.clone()).unwrap_or_default();
            status.message = Some(format!("listing the keys in Vault: {e}"));
            return Outcome {
                status,
                events,
                next: REWRAP_POLL,
            };
        }
    };
    let mut next_due: Option<OffsetDateTime> = None;
    let mut problems = Vec::new();
    for name in names {
        let mut state = match keys.info(&name).await {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("key {name}: {e}"));
                continue;
            }
        };
        if now >= state.newest_created + period {
            match keys.rotate(&name).await {
                Ok(rotated) => {
                    events.push((
                        false,
                        "KeyRotated",
                        format!(
                            "key {name} rotated: version {} (was {})",
                            rotated.newest, state.newest
                        ),
                    ));
                    status.last_rotation = Some(rfc3339(now));
                    state = rotated;
                }
                Err(e) => {
                    events.push((true, "KeyRotationFailed", format!("key {name}: {e}")));
                    problems.push(format!("rotating key {name}: {e}"));
                }
            }
        }
        let due = state.newest_created + period;
        next_due = Some(next_due.map_or(due, |d| d.min(due)));
        status.keys.push(KeyVersionStatus {
            name,
            version: state.newest,
            min_version: state.min_version,
            created: rfc3339(state.newest_created),
        });
    }
    status.next_rotation = next_due.map(rfc3339);
    let rewrap_busy;
    match rewrap.status().await {
        Err(e) => {
            problems.push(format!("re-wrap status: {e}"));
            rewrap_busy = status.keys.iter().any(|k| k.version > 1);
        }
        Ok(job) => {
            let was_running = previous
                .and_then(|p| p.rewrap.as_ref())
                .is_some_and(|j| j.state == "running");
            if let Some(j) = &job {
                if j.state == "done" && was_running {
                    let failed = j.failed > 0;
                    events.push((
                        failed,
                        if failed { "RewrapFailed" } else { "RewrapDone" },
                        format!(
                            "re-wrap {} done: {} re-wrapped, {} skipped, {} failed of {} scanned",
                            j.id, j.rewrapped, j.skipped, j.failed, j.scanned
                        ),
                    ));
                }
                status.rewrap = Some(j.clone());
            }
            let started = job.as_ref().and_then(|j| parse(&j.started));
            let needed = status.keys.iter().any(|k| {
                k.version > 1
                    && match (parse(&k.created), started) {
                        (Some(created), Some(started)) => {
                            created.unix_timestamp() > started.unix_timestamp()
                        }
                        _ => true,
                    }
            });
            let running = job.as_ref().is_some_and(|j| j.state == "running");
            rewrap_busy = running || needed;
            if needed && !running {
                match rewrap.start().await {
                    Ok(j) => {
                        events.push((
                            false,
                            "RewrapStarted",
                            format!("re-wrap {} started onto the newest key versions", j.id),
                        ));
                        status.rewrap = Some(j);
                    }
                    Err(StartRefused::Running) => {}
                    Err(StartRefused::Failed(e)) => {
                        events.push((true, "RewrapFailed", format!("re-wrap not started: {e}")));
                        problems.push(format!("starting the re-wrap: {e}"));
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        status.message = Some(problems.join("; "));
    }
    let until_due = next_due
        .map(|d| (d - now).whole_seconds().max(1) as u64)
        .map(Duration::from_secs);
    let next = match (until_due, rewrap_busy || !problems.is_empty()) {
        (Some(d), true) => d.min(REWRAP_POLL),
        (Some(d), false) => d,
        (None, _) => REWRAP_POLL.max(Duration::from_secs(300)),
    };
    Outcome {
        status,
        events,
        next,
    }
}
