//! Server metrics in the Prometheus text format, with KES's metric names, served through one
//! prometheus-client registry per process.
//!
//! A request costs relaxed atomic adds (no lock): the registry's collector reads the counters
//! when `/v1/metrics` is scraped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType::{self, Gauge, Unknown};
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the response time histogram: 10ms to 10s, as KES.
const BUCKETS: [f64; 7] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];
/// [`BUCKETS`] in microseconds, what a request's time is compared with.
const BUCKETS_MICROS: [u64; 7] = [
    10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 10_000_000,
];

/// Request counters and the response-time histogram, and the registry that exposes them.
pub struct Metrics {
    counters: Arc<Counters>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let counters = Arc::new(Counters::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(counters.clone()));
        Self { counters, registry }
    }
}

impl std::ops::Deref for Metrics {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
}

/// A request costs one atomic add per counter it touches (active twice, its status class, its
/// bucket, the time sum): each bucket counts only the requests that fell into it, and the
/// exposition sums them into Prometheus's cumulative buckets; the total count is the sum of
/// the three status classes.
#[derive(Debug, Default)]
pub struct Counters {
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
    /// The uptime the last scrape was asked to show.
    uptime_millis: AtomicU64,
}

impl Counters {
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
}

impl Metrics {
    /// The Prometheus text exposition, through this process's registry.
    pub fn render(&self, uptime: Duration) -> String {
        self.counters
            .uptime_millis
            .store(uptime.as_millis() as u64, Ordering::Relaxed);
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// A family with one unlabelled sample.
fn single(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    v: impl EncodeGaugeValue,
) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, kind)?
        .encode_gauge(&v)
}

impl Collector for Counters {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // KES's names are counters without `_total`: typed `untyped` (MetricType::Unknown),
        // the text format's way to keep a name the encoder would otherwise suffix.
        // Read before the classes, so that a request finishing meanwhile is never in a bucket
        // but missing from the count.
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| (*b, load(n)))
            .collect();
        let (success, error, failure) =
            (load(&self.success), load(&self.error), load(&self.failure));
        single(
            &mut e,
            "kes_http_request_success",
            "Number of requests that have been served successfully.",
            Unknown,
            success,
        )?;
        single(
            &mut e,
            "kes_http_request_error",
            "Number of request that failed due to some error. (HTTP 4xx status code)",
            Unknown,
            error,
        )?;
        single(
            &mut e,
            "kes_http_request_failure",
            "Number of request that failed due to some internal failure. (HTTP 5xx status code)",
            Unknown,
            failure,
        )?;
        single(
            &mut e,
            "kes_http_request_active",
            "Number of active requests that are not finished, yet.",
            Gauge,
            load(&self.active),
        )?;
        e.encode_descriptor(
            "kes_http_response_time",
            "Histogram of request response times spawning from 10ms to 10s.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            load(&self.sum_micros) as f64 / 1e6,
            success + error + failure,
            &buckets,
            None,
        )?;
        single(
            &mut e,
            "kes_log_error_events",
            "Number of error log events written to the error log targets.",
            Unknown,
            load(&self.error_events),
        )?;
        single(
            &mut e,
            "kes_log_audit_events",
            "Number of audit log events written to the audit log targets.",
            Unknown,
            load(&self.audit_events),
        )?;
        single(
            &mut e,
            "kes_system_up_time",
            "The time the server has been up and running in seconds.",
            Gauge,
            load(&self.uptime_millis) as f64 / 1e3,
        )?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        single(
            &mut e,
            "kes_system_num_cpu",
            "The number of logical CPUs available on the system.",
            Gauge,
            cpus,
        )?;
        single(
            &mut e,
            "kes_system_num_cpu_used",
            "The number of logical CPUs usable by the server.",
            Gauge,
            cpus,
        )
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
        assert!(out.contains("kes_http_request_success 4\n"), "{out}");
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
        assert!(out.contains("kes_system_up_time 3.0\n"));
    }
}
