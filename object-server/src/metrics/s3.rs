//! Per-API request statistics of the S3 service: MinIO's `minio_s3_*` families.
//!
//! Every counter is an atomic in a table allocated once at start, one row per operation
//! ([`super::api`]); a request touches its row with relaxed adds and takes no lock. A row's
//! counters are read independently by a scrape, so a request finishing during the read may
//! show in one counter and not yet in another; Prometheus tolerates that, as it does MinIO's.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::api;
use super::histogram::Histogram;

/// One operation's counters.
#[derive(Debug, Default)]
struct ApiRow {
    requests: AtomicU64,
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
    /// Any answer outside 2xx (MinIO's `requests_errors_total` counts every unsuccessful one).
    errors: AtomicU64,
    /// Requests whose future was dropped before a response (the client went away).
    canceled: AtomicU64,
    ttfb: Histogram,
}

/// The service's request statistics.
#[derive(Debug)]
pub struct S3Stats {
    rows: Box<[ApiRow]>,
    received_bytes: AtomicU64,
    sent_bytes: AtomicU64,
    /// Requests being served (their operation is known only at the end, so there is no
    /// per-API in-flight gauge).
    inflight: AtomicI64,
}

impl Default for S3Stats {
    fn default() -> Self {
        Self {
            rows: (0..api::COUNT).map(|_| ApiRow::default()).collect(),
            received_bytes: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            inflight: AtomicI64::new(0),
        }
    }
}

/// One request being served. Created when the request arrives; [`Self::finish`] records its
/// outcome. Dropped unfinished (hyper dropped the future: the client disconnected), it counts
/// as canceled, and the in-flight gauges are restored either way.
pub struct RequestGuard<'a> {
    stats: &'a S3Stats,
    started: Instant,
    finished: bool,
}

impl S3Stats {
    /// Starts counting a request that carries `received` body bytes (its `Content-Length`).
    pub fn start(&self, received: u64) -> RequestGuard<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.received_bytes.fetch_add(received, Ordering::Relaxed);
        RequestGuard {
            stats: self,
            started: Instant::now(),
            finished: false,
        }
    }

    fn row(&self, index: usize) -> &ApiRow {
        &self.rows[index.min(api::OTHER)]
    }

    /// Requests and unsuccessful answers so far, per operation that had any: (MinIO's `api`
    /// label, requests, errors). The console's server page reads it.
    pub fn per_api(&self) -> Vec<(&'static str, u64, u64)> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    api::label(i),
                    r.requests.load(Ordering::Relaxed),
                    r.errors.load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n, _)| *n > 0)
            .collect()
    }

    /// All requests counted, whatever their operation (the legacy `coffer_s3_requests_total`).
    fn total(&self, f: impl Fn(&ApiRow) -> u64) -> u64 {
        self.rows.iter().map(f).sum()
    }
}

impl RequestGuard<'_> {
    /// Records the answer: status, time to first byte (now), `sent` body bytes, for the
    /// operation the access hook recorded.
    pub fn finish(mut self, status: u16, sent: u64) {
        self.finished = true;
        let row = self.stats.row(api::current());
        row.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            200..=299 => {}
            400..=499 => {
                row.errors_4xx.fetch_add(1, Ordering::Relaxed);
                row.errors.fetch_add(1, Ordering::Relaxed);
            }
            500.. => {
                row.errors_5xx.fetch_add(1, Ordering::Relaxed);
                row.errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                row.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        row.ttfb.observe(self.started.elapsed());
        self.stats.sent_bytes.fetch_add(sent, Ordering::Relaxed);
    }

    /// The time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.stats.inflight.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            let row = self.stats.row(api::current());
            row.requests.fetch_add(1, Ordering::Relaxed);
            row.canceled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Labels<'a> = [(&'static str, &'a str); 1];

impl S3Stats {
    /// Writes the `minio_s3_*` families and the legacy `coffer_s3_*` totals.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let per_api = |encoder: &mut DescriptorEncoder,
                       name: &str,
                       help: &str,
                       read: &dyn Fn(&ApiRow) -> u64|
         -> std::fmt::Result {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            // Every API called at least once has every counter (0 included), so a rate of
            // errors starts from a sample instead of from nothing.
            for (i, row) in self.rows.iter().enumerate() {
                if row.requests.load(Ordering::Relaxed) > 0 {
                    let labels: Labels = [("api", api::label(i))];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<Labels, _, f64>(&read(row), None)?;
                }
            }
            Ok(())
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        per_api(
            encoder,
            "minio_s3_requests",
            "Total number of S3 requests",
            &|r| load(&r.requests),
        )?;
        per_api(
            encoder,
            "minio_s3_requests_errors",
            "Total number of S3 requests with (4xx and 5xx) errors",
            &|r| load(&r.errors),
        )?;
        per_api(
            encoder,
            "minio_s3_requests_4xx_errors",
            "Total number of S3 requests with (4xx) errors",
            &|r| load(&r.errors_4xx),
        )?;
        per_api(
            encoder,
            "minio_s3_requests_5xx_errors",
            "Total number of S3 requests with (5xx) errors",
            &|r| load(&r.errors_5xx),
        )?;
        per_api(
            encoder,
            "minio_s3_requests_canceled",
            "Total number of S3 requests that were canceled by the client",
            &|r| load(&r.canceled),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "minio_s3_ttfb_seconds_distribution",
                "Distribution of time to first byte across API calls",
                None,
                MetricType::Gauge,
            )?;
            for (i, row) in self.rows.iter().enumerate() {
                if row.ttfb.is_empty() {
                    continue;
                }
                for (le, n) in row.ttfb.read().buckets {
                    let labels = [("api", api::label(i)), ("le", le.as_str())];
                    family.encode_family(&labels)?.encode_gauge(&n)?;
                }
            }
        }
        // Counters without the `_total` suffix: typed `untyped` (`MetricType::Unknown`), the
        // text format's way to keep MinIO's exact names.
        for (name, help, value) in [
            (
                "minio_s3_traffic_received_bytes",
                "Total number of s3 bytes received",
                load(&self.received_bytes),
            ),
            (
                "minio_s3_traffic_sent_bytes",
                "Total number of s3 bytes sent",
                load(&self.sent_bytes),
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Unknown)?
                .encode_gauge(&value)?;
        }
        // Coffer's own names from before the MinIO families (tests and docs use them).
        for (name, help, value) in [
            (
                "coffer_s3_requests",
                "S3 requests served",
                self.total(|r| load(&r.requests)),
            ),
            (
                "coffer_s3_requests_4xx_errors",
                "S3 requests answered 4xx",
                self.total(|r| load(&r.errors_4xx)),
            ),
            (
                "coffer_s3_requests_5xx_errors",
                "S3 requests answered 5xx",
                self.total(|r| load(&r.errors_5xx)),
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<Labels, _, f64>(&value, None)?;
        }
        let inflight = self.inflight.load(Ordering::Relaxed);
        encoder
            .encode_descriptor(
                "coffer_s3_requests_inflight_total",
                "S3 requests being served",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&inflight.max(0))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_is_counted_once_under_its_api() {
        let stats = S3Stats::default();
        api::scope(async {
            let g = stats.start(10);
            api::record("PutObject");
            g.finish(200, 0);
        })
        .await;
        api::scope(async {
            let g = stats.start(0);
            api::record("GetObject");
            drop(g); // the client went away
        })
        .await;
        let put = stats.row(api::index_of("PutObject"));
        let get = stats.row(api::index_of("GetObject"));
        assert_eq!(put.requests.load(Ordering::Relaxed), 1);
        assert_eq!(get.canceled.load(Ordering::Relaxed), 1);
        assert_eq!(stats.inflight.load(Ordering::Relaxed), 0);
        assert_eq!(stats.received_bytes.load(Ordering::Relaxed), 10);
    }

    /// What the request path pays for metrics: `cargo test -p object-server --release --lib
    /// per_request_cost -- --ignored --nocapture` prints nanoseconds per request.
    #[tokio::test]
    #[ignore]
    async fn per_request_cost() {
        let stats = S3Stats::default();
        let n = 2_000_000u32;
        let started = Instant::now();
        for i in 0..n {
            api::scope(async {
                let g = stats.start(4096);
                api::record(if i % 2 == 0 { "PutObject" } else { "GetObject" });
                g.finish(200, 4096);
            })
            .await;
        }
        let per = started.elapsed() / n;
        println!("metrics cost per request: {per:?}");
    }
}
