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
    /// Only watch this namespace (default: all).
    #[arg(long, env = "COFFER_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
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
    tracing::info!(%identity, "became leader; starting controllers");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(reconcile::run_controllers(
        ctx,
        args.namespace.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
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
