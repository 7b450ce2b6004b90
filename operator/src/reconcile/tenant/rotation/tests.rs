//! The rotation schedule on a scripted Vault, object-server and clock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use time::OffsetDateTime;

use super::plan::{KeyApi, KeyState, RewrapApi, StartRefused, run};
use crate::crd::tenant::{RewrapStatus, RotationStatus};

const DAY: Duration = Duration::from_secs(86_400);

/// Keys as Transit keeps them: name → creation times of its versions.
struct ScriptedVault {
    keys: Mutex<BTreeMap<String, Vec<OffsetDateTime>>>,
    clock: Mutex<OffsetDateTime>,
    rotations: Mutex<u32>,
}

impl ScriptedVault {
    fn new(now: OffsetDateTime, names: &[&str]) -> Self {
        Self {
            keys: Mutex::new(names.iter().map(|n| (n.to_string(), vec![now])).collect()),
            clock: Mutex::new(now),
            rotations: Mutex::new(0),
        }
    }
    fn state(&self, name: &str) -> Result<KeyState, String> {
        let keys = self.keys.lock().unwrap();
        let v = keys.get(name).ok_or("no such key")?;
        Ok(KeyState {
            newest: v.len() as u32,
            min_version: 1,
            newest_created: *v.last().unwrap(),
        })
    }
}

impl KeyApi for ScriptedVault {
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>> {
        let names = self
            .keys
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        async move {
            Ok(names
                .into_iter()
                .filter(|n| n.starts_with(prefix))
                .collect())
        }
        .boxed()
    }
    fn info<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<KeyState, String>> {
        let s = self.state(name);
        async move { s }.boxed()
    }
    fn rotate<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<KeyState, String>> {
        let now = *self.clock.lock().unwrap();
        self.keys.lock().unwrap().get_mut(name).unwrap().push(now);
        *self.rotations.lock().unwrap() += 1;
        let s = self.state(name);
        async move { s }.boxed()
    }
}

/// The object-server's job: started jobs run until `finish`.
#[derive(Default)]
struct ScriptedServer {
    job: Mutex<Option<RewrapStatus>>,
    starts: Mutex<u32>,
    clock: Mutex<Option<OffsetDateTime>>,
    down: Mutex<bool>,
}

impl ScriptedServer {
    fn finish(&self, failed: u64) {
        let mut j = self.job.lock().unwrap();
        let j = j.as_mut().unwrap();
        j.state = "done".into();
        (j.scanned, j.rewrapped, j.failed) = (10, 10 - failed, failed);
    }
}

impl RewrapApi for ScriptedServer {
    fn status(&self) -> BoxFuture<'_, Result<Option<RewrapStatus>, String>> {
        let r = if *self.down.lock().unwrap() {
            Err("connection refused".into())
        } else {
            Ok(self.job.lock().unwrap().clone())
        };
        async move { r }.boxed()
    }
    fn start(&self) -> BoxFuture<'_, Result<RewrapStatus, StartRefused>> {
        let mut job = self.job.lock().unwrap();
        let r = if job.as_ref().is_some_and(|j| j.state == "running") {
            Err(StartRefused::Running)
        } else {
            *self.starts.lock().unwrap() += 1;
            let started = self.clock.lock().unwrap().unwrap();
            let j = RewrapStatus {
                id: format!("job{}", self.starts.lock().unwrap()),
                state: "running".into(),
                started: started
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
                ..Default::default()
            };
            *job = Some(j.clone());
            Ok(j)
        };
        async move { r }.boxed()
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

struct World {
    vault: ScriptedVault,
    server: ScriptedServer,
    status: Option<RotationStatus>,
    events: Vec<&'static str>,
}

impl World {
    fn new(names: &[&str]) -> Self {
        Self {
            vault: ScriptedVault::new(t0(), names),
            server: ScriptedServer::default(),
            status: None,
            events: vec![],
        }
    }
    /// One pass at `at`, the status kept as the Tenant would keep it.
    async fn pass(&mut self, at: OffsetDateTime) -> Duration {
        *self.vault.clock.lock().unwrap() = at;
        *self.server.clock.lock().unwrap() = Some(at);
        let o = run(
            &self.vault,
            &self.server,
            "photos_",
            90 * DAY,
            self.status.as_ref(),
            at,
        )
        .await;
        self.events.extend(o.events.iter().map(|e| e.1));
        self.status = Some(o.status);
        o.next
    }
}

#[tokio::test]
async fn rotates_once_per_period_then_rewraps_and_reports() {
    let mut w = World::new(&["photos_default", "photos_b", "videos_default"]);
    // Before the period: nothing, next look when the first key is due.
    let next = w.pass(t0() + 10 * DAY).await;
    assert_eq!(next, 80 * DAY);
    assert!(w.events.is_empty());
    let st = w.status.clone().unwrap();
    assert_eq!(st.keys.len(), 2, "only the Tenant's prefix: {st:?}");
    assert_eq!(st.next_rotation.as_deref(), Some("2027-04-15T08:00:00Z"));
    assert_eq!(st.last_rotation, None);

    // Due: both keys rotate, one re-wrap starts.
    let at = t0() + 90 * DAY + Duration::from_secs(5);
    let next = w.pass(at).await;
    assert_eq!(
        w.events,
        ["KeyRotated", "KeyRotated", "RewrapStarted"],
        "{:?}",
        w.status
    );
    assert_eq!(next, super::plan::REWRAP_POLL, "the re-wrap is followed");
    let st = w.status.clone().unwrap();
    assert!(st.keys.iter().all(|k| k.version == 2), "{st:?}");
    assert_eq!(st.rewrap.as_ref().unwrap().state, "running");
    assert!(st.last_rotation.is_some());

    // Passes in the same period (a retried reconcile, a restart with the status lost): no
    // second rotation, no second job.
    w.status = None;
    w.pass(at + Duration::from_secs(30)).await;
    w.pass(at + 30 * DAY).await;
    assert_eq!(*w.vault.rotations.lock().unwrap(), 2);
    assert_eq!(*w.server.starts.lock().unwrap(), 1);

    // The job finishes: one RewrapDone with its counts.
    w.server.finish(0);
    w.events.clear();
    let next = w.pass(at + 31 * DAY).await;
    assert_eq!(w.events, ["RewrapDone"]);
    assert_eq!(next, 59 * DAY, "idle until the next period");
    let r = w.status.clone().unwrap().rewrap.unwrap();
    assert_eq!((r.state.as_str(), r.rewrapped), ("done", 10));
    w.pass(at + 32 * DAY).await;
    assert_eq!(w.events, ["RewrapDone"], "reported once");

    // The next period: version 3.
    w.pass(at + 90 * DAY).await;
    assert_eq!(*w.vault.rotations.lock().unwrap(), 4);
    assert!(w.status.unwrap().keys.iter().all(|k| k.version == 3));
}

#[tokio::test]
async fn a_rewrap_that_could_not_start_starts_later_and_failures_warn() {
    let mut w = World::new(&["photos_default"]);
    *w.server.down.lock().unwrap() = true;
    let at = t0() + 91 * DAY;
    let next = w.pass(at).await;
    assert_eq!(w.events, ["KeyRotated"]);
    assert_eq!(next, super::plan::REWRAP_POLL);
    let message = w.status.clone().unwrap().message.unwrap();
    assert!(message.contains("connection refused"), "{message}");
    // Back: the rotation's re-wrap starts now, without a second rotation.
    *w.server.down.lock().unwrap() = false;
    w.pass(at + Duration::from_secs(60)).await;
    assert_eq!(w.events, ["KeyRotated", "RewrapStarted"]);
    assert_eq!(*w.vault.rotations.lock().unwrap(), 1);
    assert_eq!(
        w.status.as_ref().unwrap().message,
        None,
        "all is well again"
    );
    // Done with failures: a warning.
    w.server.finish(3);
    w.pass(at + Duration::from_secs(120)).await;
    assert_eq!(w.events.last(), Some(&"RewrapFailed"));
    // A failed job is not restarted by itself (an admin looks at it first).
    w.pass(at + Duration::from_secs(180)).await;
    assert_eq!(*w.server.starts.lock().unwrap(), 1);
}

#[tokio::test]
async fn no_keys_yet_means_nothing_to_do() {
    let mut w = World::new(&[]);
    let next = w.pass(t0()).await;
    assert!(w.events.is_empty());
    assert_eq!(next, Duration::from_secs(300));
    assert_eq!(w.status.unwrap().keys, vec![]);
}
