//! Server metrics in the Prometheus text format, with KES's metric names.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the response time histogram: 10ms to 10s, as KES.
const BUCKETS: [f64; 7] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];
/// [`BUCKETS`] in microseconds, what a request's time is compared with.
const BUCKETS_MICROS: [u64; 7] = [
    10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 10_000_000,
];

/// Request counters and the response-time histogram.
///
/// A request costs one atomic add per counter it touches (active twice, its status class, its
/// bucket, the time sum): each bucket counts only the requests that fell into it, and the
/// exposition sums them into Prometheus's cumulative buckets; the total count is the sum of
/// the three status classes.
#[derive(Default)]
pub struct Metrics {
    success: AtomicU64,
    error: AtomicU64,
    failure: AtomicU64,
    active: AtomicU64,
    /// Requests that took at most `BUCKETS[i]` and more than `BUCKETS[i - 1]`.
    buckets: [AtomicU64; 7],
    sum_micros: AtomicU64,
    /// Error log events emitted.
    pub error_events: AtomicU64,
    /// Audit log events emitted.
    pub audit_events: AtomicU64,
}

impl Metrics {
    /// Marks a request as started.
    pub fn start(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished request.
    pub fn finish(&self, status: u16, took: Duration) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        match status {
            500.. => &self.failure,
            400.. => &self.error,
            _ => &self.success,
        }
        .fetch_add(1, Ordering::Relaxed);
        let micros = took.as_micros() as u64;
        if let Some(i) = BUCKETS_MICROS.iter().position(|b| micros <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, uptime: Duration) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str, kind: &str, v: f64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        // Read before the classes, so that a request finishing meanwhile is never in a bucket
        // but missing from the count.
        let buckets = self.buckets.each_ref().map(load);
        let count = load(&self.success) + load(&self.error) + load(&self.failure);
        counter(
            &mut s,
            "kes_http_request_success",
            "Number of requests that have been served successfully.",
            "counter",
            load(&self.success),
        );
        counter(
            &mut s,
            "kes_http_request_error",
            "Number of request that failed due to some error. (HTTP 4xx status code)",
            "counter",
            load(&self.error),
        );
        counter(
            &mut s,
            "kes_http_request_failure",
            "Number of request that failed due to some internal failure. (HTTP 5xx status code)",
            "counter",
            load(&self.failure),
        );
        counter(
            &mut s,
            "kes_http_request_active",
            "Number of active requests that are not finished, yet.",
            "gauge",
            load(&self.active),
        );
        let _ = writeln!(
            s,
            "# HELP kes_http_response_time Histogram of request response times spawning from 10ms to 10s."
        );
        let _ = writeln!(s, "# TYPE kes_http_response_time histogram");
        let mut cumulative = 0.0;
        for (b, n) in BUCKETS.iter().zip(buckets) {
            cumulative += n;
            let _ = writeln!(
                s,
                "kes_http_response_time_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let _ = writeln!(s, "kes_http_response_time_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "kes_http_response_time_sum {}",
            load(&self.sum_micros) / 1e6
        );
        let _ = writeln!(s, "kes_http_response_time_count {count}");
        counter(
            &mut s,
            "kes_log_error_events",
            "Number of error log events written to the error log targets.",
            "counter",
            load(&self.error_events),
        );
        counter(
            &mut s,
            "kes_log_audit_events",
            "Number of audit log events written to the audit log targets.",
            "counter",
            load(&self.audit_events),
        );
        counter(
            &mut s,
            "kes_system_up_time",
            "The time the server has been up and running in seconds.",
            "gauge",
            uptime.as_secs_f64(),
        );
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        counter(
            &mut s,
            "kes_system_num_cpu",
            "The number of logical CPUs available on the system.",
            "gauge",
            cpus,
        );
        counter(
            &mut s,
            "kes_system_num_cpu_used",
            "The number of logical CPUs usable by the server.",
            "gauge",
            cpus,
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_class() {
        let m = Metrics::default();
        for status in [200, 404, 502, 200] {
            m.start();
            m.finish(status, Duration::from_millis(20));
        }
        m.start();
        m.finish(200, Duration::from_millis(300));
        m.start();
        m.finish(200, Duration::from_secs(11));
        let out = m.render(Duration::from_secs(3));
        assert!(out.contains("kes_http_request_success 4\n"));
        assert!(out.contains("kes_http_request_error 1\n"));
        assert!(out.contains("kes_http_request_failure 1\n"));
        assert!(out.contains("kes_http_request_active 0\n"));
        assert!(out.contains("kes_http_response_time_bucket{le=\"0.01\"} 0\n"));
        assert!(out.contains("kes_http_response_time_bucket{le=\"0.05\"} 4\n"));
        assert!(out.contains("kes_http_response_time_bucket{le=\"0.25\"} 4\n"));
        assert!(out.contains("kes_http_response_time_bucket{le=\"0.5\"} 5\n"));
        assert!(out.contains("kes_http_response_time_bucket{le=\"10\"} 5\n"));
        assert!(out.contains("kes_http_response_time_bucket{le=\"+Inf\"} 6\n"));
        assert!(out.contains("kes_http_response_time_count 6\n"));
        assert!(out.contains("kes_system_up_time 3\n"));
    }
}
