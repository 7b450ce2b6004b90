//! `operator run`: logging, kubeconfig discovery, leader election, metrics, the controllers,
//! and graceful shutdown on SIGTERM / Ctrl-C.

use std::net::SocketAddr;

use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::Reporter;
use kube::{Api, Client};

use crate::reconcile::{self, Context, leader};

/// Flags of `operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Only watch this namespace (default: all). Same as a one-entry `--watch-namespaces`.
    #[arg(long, env = "COFFER_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Only watch these namespaces, comma-separated (default: all). The operator then needs
    /// RBAC in these namespaces only, and no cluster-wide read of Secrets (the chart's
    /// `watchNamespaces`).
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "coffer-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: $POD_NAME, else hostname + random).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Address of the `/metrics` and `/healthz` endpoint.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Log as JSON lines.
    #[arg(long, env = "COFFER_LOG_JSON")]
    pub log_json: bool,
}

impl RunArgs {
    /// The namespaces to watch, each once, in the order given; empty means all namespaces.
    /// A name that is not a DNS label is an error (a typo would otherwise watch nothing).
    pub fn watched_namespaces(&self) -> anyhow::Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for ns in self.namespace.iter().chain(&self.watch_namespaces) {
            let ns = ns.trim();
            if ns.is_empty() || out.iter().any(|o| o == ns) {
                continue;
            }
            let label = ns.len() <= 63
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !ns.starts_with('-')
                && !ns.ends_with('-');
            anyhow::ensure!(
                label,
                "--watch-namespaces: {ns:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
            );
            out.push(ns.to_string());
        }
        Ok(out)
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    // Colour codes only for a terminal: log collectors (kubectl logs, files) get plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the operator until shutdown or loss of the Lease.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let namespaces = args.watched_namespaces()?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::try_default().await?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let ctx = Context::new(
        client.clone(),
        Reporter {
            controller: "coffer-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let metrics = tokio::spawn(reconcile::metrics::serve(args.metrics_addr, ctx.clone()));

    let elector = leader::Elector::new(
        Api::<Lease>::namespaced(client.clone(), &args.lease_namespace),
        args.lease_name.clone(),
        identity.clone(),
        leader::LEASE_DURATION,
    );
    tracing::info!(%identity, lease = %args.lease_name, "waiting to become leader");
    tokio::select! {
        _ = elector.acquire() => {},
        _ = shutdown_signal() => { metrics.abort(); return Ok(()); }
    }
    if namespaces.is_empty() {
        tracing::info!(%identity, "became leader; starting controllers for all namespaces");
    } else {
        tracing::info!(%identity, namespaces = %namespaces.join(","), "became leader; starting controllers for these namespaces only");
    }

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(reconcile::run_controllers_in(ctx, namespaces, async move {
        let _ = stop_rx.await;
    }));
    let lost = tokio::select! {
        _ = elector.hold() => true,
        _ = shutdown_signal() => false,
    };
    let _ = stop_tx.send(());
    let _ = controllers.await;
    metrics.abort();
    if lost {
        anyhow::bail!(
            "lost the leader Lease {:?}; exiting so that a fresh process competes again",
            args.lease_name
        );
    }
    elector.release().await;
    tracing::info!("shut down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_namespaces_merge_dedupe_and_refuse_typos() {
        let args = |namespace: Option<&str>, list: &[&str]| RunArgs {
            namespace: namespace.map(Into::into),
            watch_namespaces: list.iter().map(|s| s.to_string()).collect(),
            lease_namespace: "default".into(),
            lease_name: "coffer-operator".into(),
            identity: None,
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            log_json: false,
        };
        assert!(args(None, &[]).watched_namespaces().unwrap().is_empty());
        assert!(args(None, &[""]).watched_namespaces().unwrap().is_empty());
        assert_eq!(
            args(Some("a"), &["b", " a", "c"])
                .watched_namespaces()
                .unwrap(),
            ["a", "b", "c"]
        );
        let e = args(None, &["shop", "Bad_NS"])
            .watched_namespaces()
            .unwrap_err();
        assert!(e.to_string().contains("\"Bad_NS\""), "{e}");
    }
}
