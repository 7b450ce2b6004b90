//! Reconcile metrics, served on `/metrics` through one prometheus-client registry per process:
//! reconciles, failures by reason and durations per controller, and the certificate expiry
//! of each Tenant (from its status).
//!
//! Reconciles are rare (seconds apart), so the families' own locks are no cost here.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Upper bounds (seconds) of the reconcile duration histogram.
pub const DURATION_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The operator's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    seconds: Family<Labels, Counter<f64, std::sync::atomic::AtomicU64>>,
    durations: Family<Labels, Histogram>,
    cert_expiry: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<Labels, Counter>::default();
        let failures = Family::<Labels, Counter>::default();
        let seconds = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        let durations = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(DURATION_BUCKETS)) as fn() -> Histogram,
        );
        let cert_expiry = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "coffer_reconciles",
            "Reconciles run, by controller",
            reconciles.clone(),
        );
        registry.register(
            "coffer_reconcile_failures",
            "Reconciles that failed, by controller and reason",
            failures.clone(),
        );
        registry.register(
            "coffer_reconcile_seconds",
            "Time spent reconciling, by controller",
            seconds.clone(),
        );
        registry.register(
            "coffer_reconcile_duration_seconds",
            "How long each reconcile took, by controller",
            durations.clone(),
        );
        registry.register(
            "coffer_tenant_certificate_expiry_timestamp_seconds",
            "When the first of a Tenant's leaf certificates expires (Unix seconds), from its status",
            cert_expiry.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            seconds,
            durations,
            cert_expiry,
        }
    }
}

impl Metrics {
    /// Records one reconcile of `controller` that took `took`; `failure` names why it failed.
    pub fn observe(&self, controller: &'static str, took: Duration, failure: Option<&str>) {
        let by_controller = vec![("controller", controller.to_owned())];
        self.reconciles.get_or_create(&by_controller).inc();
        self.seconds
            .get_or_create(&by_controller)
            .inc_by(took.as_secs_f64());
        self.durations
            .get_or_create(&by_controller)
            .observe(took.as_secs_f64());
        if let Some(reason) = failure {
            let labels = vec![
                ("controller", controller.to_owned()),
                ("reason", reason.to_owned()),
            ];
            self.failures.get_or_create(&labels).inc();
        }
    }

    /// Records the certificate expiry (RFC 3339, from the Tenant's status) of `namespace/tenant`.
    /// An absent or unreadable value removes the sample.
    pub fn tenant_certificate_expiry(&self, namespace: &str, tenant: &str, rfc3339: Option<&str>) {
        let labels = vec![
            ("namespace", namespace.to_owned()),
            ("tenant", tenant.to_owned()),
        ];
        let parsed = rfc3339.and_then(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
        });
        match parsed {
            Some(t) => {
                self.cert_expiry
                    .get_or_create(&labels)
                    .set(t.unix_timestamp() as f64);
            }
            None => {
                self.cert_expiry.remove(&labels);
            }
        }
    }

    /// Forgets the samples of a deleted Tenant.
    pub fn forget_tenant(&self, namespace: &str, tenant: &str) {
        self.tenant_certificate_expiry(namespace, tenant, None);
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Serves `/metrics` (and `/healthz`) on `addr` until the task is dropped.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: std::sync::Arc<super::Context>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (mut sock, _) = listener.accept().await?;
        let ctx = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let (code, body) = if req.starts_with("GET /metrics") {
                ("200 OK", ctx.metrics.render())
            } else if req.starts_with("GET /healthz") {
                ("200 OK", "ok\n".to_string())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {code}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name{labels} value` lines, keyed by everything before the value.
    fn samples(text: &str) -> std::collections::HashMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn renders_counts_reasons_durations_and_expiry() {
        let m = Metrics::default();
        m.observe("tenant", Duration::from_millis(500), None);
        m.observe("tenant", Duration::from_millis(20), Some("kube_api"));
        m.observe("kms", Duration::from_secs(40), Some("spec"));
        m.tenant_certificate_expiry("ns", "t", Some("2027-01-01T00:00:00Z"));
        m.tenant_certificate_expiry("ns", "gone", Some("2027-01-01T00:00:00Z"));
        m.forget_tenant("ns", "gone");
        let s = samples(&m.render());
        assert_eq!(s[r#"coffer_reconciles_total{controller="tenant"}"#], 2.0);
        assert_eq!(s[r#"coffer_reconciles_total{controller="kms"}"#], 1.0);
        assert_eq!(
            s[r#"coffer_reconcile_failures_total{controller="tenant",reason="kube_api"}"#],
            1.0
        );
        assert_eq!(
            s[r#"coffer_reconcile_failures_total{controller="kms",reason="spec"}"#],
            1.0
        );
        assert!((s[r#"coffer_reconcile_seconds_total{controller="tenant"}"#] - 0.52).abs() < 1e-9);
        let bucket = |le: &str| {
            s[&format!(
                r#"coffer_reconcile_duration_seconds_bucket{{controller="tenant",le="{le}"}}"#
            )]
        };
        assert_eq!(
            (
                bucket("0.01"),
                bucket("0.05"),
                bucket("0.5"),
                bucket("+Inf")
            ),
            (0.0, 1.0, 2.0, 2.0)
        );
        assert_eq!(
            s[r#"coffer_reconcile_duration_seconds_bucket{controller="kms",le="30"}"#],
            0.0
        );
        assert_eq!(
            s[r#"coffer_tenant_certificate_expiry_timestamp_seconds{namespace="ns",tenant="t"}"#],
            1798761600.0
        );
        assert!(!s.keys().any(|k| k.contains("gone")));
    }
}
