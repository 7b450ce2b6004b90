//! Reconcile metrics in the Prometheus text format, served on `/metrics`.

use std::sync::Mutex;
use std::time::Duration;

/// Counters per controller (`tenant`, `kms`).
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<std::collections::BTreeMap<&'static str, Counters>>,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    reconciles: u64,
    failures: u64,
    seconds: f64,
}

impl Metrics {
    /// Records one reconcile of `controller` that took `took`.
    pub fn observe(&self, controller: &'static str, took: Duration, ok: bool) {
        let mut m = self.inner.lock().expect("not poisoned");
        let c = m.entry(controller).or_default();
        c.reconciles += 1;
        c.seconds += took.as_secs_f64();
        if !ok {
            c.failures += 1;
        }
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let m = self.inner.lock().expect("not poisoned");
        let mut out = String::new();
        out.push_str("# HELP coffer_reconciles_total Reconciles run, by controller.\n# TYPE coffer_reconciles_total counter\n");
        for (k, c) in m.iter() {
            out.push_str(&format!(
                "coffer_reconciles_total{{controller=\"{k}\"}} {}\n",
                c.reconciles
            ));
        }
        out.push_str("# HELP coffer_reconcile_failures_total Reconciles that failed, by controller.\n# TYPE coffer_reconcile_failures_total counter\n");
        for (k, c) in m.iter() {
            out.push_str(&format!(
                "coffer_reconcile_failures_total{{controller=\"{k}\"}} {}\n",
                c.failures
            ));
        }
        out.push_str("# HELP coffer_reconcile_seconds_total Time spent reconciling, by controller.\n# TYPE coffer_reconcile_seconds_total counter\n");
        for (k, c) in m.iter() {
            out.push_str(&format!(
                "coffer_reconcile_seconds_total{{controller=\"{k}\"}} {}\n",
                c.seconds
            ));
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

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.observe("tenant", Duration::from_millis(500), true);
        m.observe("tenant", Duration::from_millis(500), false);
        let text = m.render();
        assert!(text.contains("coffer_reconciles_total{controller=\"tenant\"} 2"));
        assert!(text.contains("coffer_reconcile_failures_total{controller=\"tenant\"} 1"));
    }
}
