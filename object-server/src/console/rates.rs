//! Request rates for the server page, from the S3 port's own request counters
//! ([`crate::metrics::s3::S3Stats`], what `/minio/v2/metrics` exposes): a sample of the totals
//! every [`SAMPLE_EVERY`], the last minute's kept, so the page can say how many requests per
//! second the server answered lately and since it started. The console's own in-process
//! requests do not pass the S3 port and are not counted.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::s3::S3Stats;

/// How often the totals are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The window "lately" means.
const WINDOW: Duration = Duration::from_secs(60);

/// The S3 request counters and recent samples of their totals.
pub struct Rates {
    stats: Arc<S3Stats>,
    started: Instant,
    /// (when, requests, errors), oldest first, covering at most [`WINDOW`].
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

/// What the server page shows.
pub struct RatesView {
    pub requests: u64,
    pub errors: u64,
    /// Requests per second since the start.
    pub overall: f64,
    /// Requests and errors per second over the last minute (or since the oldest sample).
    pub recent: f64,
    pub recent_errors: f64,
    /// The busiest operations: (MinIO's `api` label, requests, errors).
    pub busiest: Vec<(&'static str, u64, u64)>,
}

impl Rates {
    /// Rates of `stats`, counting from now.
    pub fn new(stats: Arc<S3Stats>) -> Self {
        let r = Rates {
            stats,
            started: Instant::now(),
            samples: Mutex::new(VecDeque::new()),
        };
        r.sample();
        r
    }

    fn totals(&self) -> (u64, u64, Vec<(&'static str, u64, u64)>) {
        let per_api = self.stats.per_api();
        let requests = per_api.iter().map(|(_, n, _)| n).sum();
        let errors = per_api.iter().map(|(_, _, e)| e).sum();
        (requests, errors, per_api)
    }

    /// Takes a sample and forgets those older than the window.
    pub fn sample(&self) {
        let now = Instant::now();
        let (requests, errors, _) = self.totals();
        let mut samples = self.samples.lock().expect("rates lock");
        samples.push_back((now, requests, errors));
        while samples
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > WINDOW)
        {
            samples.pop_front();
        }
    }

    /// The figures now.
    pub fn view(&self) -> RatesView {
        let now = Instant::now();
        let (requests, errors, mut busiest) = self.totals();
        let (since, r0, e0) = self
            .samples
            .lock()
            .expect("rates lock")
            .front()
            .copied()
            .unwrap_or((self.started, 0, 0));
        let per_second = |n: u64, from: Instant| {
            let secs = now.duration_since(from).as_secs_f64().max(1.0);
            n as f64 / secs
        };
        busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        busiest.truncate(10);
        RatesView {
            requests,
            errors,
            overall: per_second(requests, self.started),
            recent: per_second(requests.saturating_sub(r0), since),
            recent_errors: per_second(errors.saturating_sub(e0), since),
            busiest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_s3_port_counted() {
        let stats = Arc::new(S3Stats::default());
        let rates = Rates::new(stats.clone());
        assert_eq!(rates.view().requests, 0);
        for status in [200, 200, 404] {
            stats.start(0).finish(status, 0);
        }
        let v = rates.view();
        assert_eq!((v.requests, v.errors), (3, 1));
        assert!(v.recent >= 2.9 && v.recent <= 3.0, "{}", v.recent);
        assert_eq!(v.busiest.iter().map(|b| b.1).sum::<u64>(), 3);
    }
}
