//! Watching a rolling update from outside, as a user's client lives through it: a reader that
//! keeps reading the object back through the Service and counts what failed, and a watcher
//! that samples the Tenant's pods and keeps the largest number of replicas not Ready at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coffer_e2e::scenario::Client;

use crate::run::Run;

/// What a roll looked like from outside.
#[derive(Debug, Default)]
pub struct RollReport {
    /// `client.sh get` runs while the roll went on.
    pub reads: usize,
    /// Those that failed, with the first failure's output.
    pub failed: usize,
    pub first_failure: Option<String>,
    /// The largest number of replicas not Ready (missing, or without the Ready condition) in
    /// one sample of the pods.
    pub max_unready: usize,
    /// How many samples of the pods were taken.
    pub samples: usize,
    pub took: Duration,
}

impl std::fmt::Display for RollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} reads, {} failed; at most {} replica(s) not Ready at once ({} samples); {:.1?}",
            self.reads, self.failed, self.max_unready, self.samples, self.took
        )?;
        match &self.first_failure {
            Some(out) => write!(f, "\n  first failed read: {}", out.trim()),
            None => Ok(()),
        }
    }
}

/// Runs `roll` (which returns once the roll is over) while a client reads through `client` in a
/// loop and the pods of Tenant `tenant` (`replicas` of them) are sampled.
pub fn under_reads(
    run: &Run,
    tenant: &str,
    replicas: usize,
    client: &Client,
    roll: impl FnOnce(),
) -> RollReport {
    let reads = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let first_failure = Mutex::new(None);
    let max_unready = AtomicUsize::new(0);
    let samples = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let (ok, out) = run.try_client_step("get", client);
                reads.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                    first_failure
                        .lock()
                        .expect("not poisoned")
                        .get_or_insert(out);
                }
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(ready) = ready_pods(run, tenant) {
                    max_unready.fetch_max(replicas.saturating_sub(ready), Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        // The flag goes up even when `roll` panics, or the scope would wait for ever.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _done = Done(&done);
        roll();
    });
    RollReport {
        reads: reads.into_inner(),
        failed: failed.into_inner(),
        first_failure: first_failure.into_inner().expect("not poisoned"),
        max_unready: max_unready.into_inner(),
        samples: samples.into_inner(),
        took: started.elapsed(),
    }
}

/// How many pods of Tenant `tenant` are Ready and not being deleted (one read); `None` when
/// the API server did not answer (no sample, rather than a false "none Ready").
fn ready_pods(run: &Run, tenant: &str) -> Option<usize> {
    let out = run
        .node
        .api
        .kubectl()
        .args(["get", "pods", "-n", run.ns(), "-l"])
        .arg(format!("app.kubernetes.io/instance={tenant}"))
        .arg(
            "-o=jsonpath={range .items[*]}{.metadata.deletionTimestamp}|\
             {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        )
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let ready = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.split_once('|')
                .is_some_and(|(d, r)| d.is_empty() && r == "True")
        })
        .count();
    Some(ready)
}
