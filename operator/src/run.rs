//! `operator run`: logging, kubeconfig discovery, leader election, metrics, the controllers,
//! and graceful shutdown on SIGTERM / Ctrl-C.

use std::net::SocketAddr;

use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::Reporter;
use kube::{Api, Client};

use crate::crd::tenant::DEFAULT_IMAGE;
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
    /// The image of every Tenant without `spec.image`: the chart sets it to the operator's own
    /// image, so that upgrading the operator rolls those Tenants onto the same build.
    #[arg(long, env = DEFAULT_IMAGE_ENV, default_value = DEFAULT_IMAGE)]
    pub default_image: String,
    /// When the default image changes, how many Tenants without `spec.image` move to it at a
    /// time, each next one once a moved one is Ready on it (0: none moves).
    #[arg(long, env = "COFFER_MAX_CONCURRENT_UPGRADES", default_value_t = reconcile::DEFAULT_MAX_CONCURRENT_UPGRADES)]
    pub max_concurrent_upgrades: usize,
}

/// The environment variable that tells the operator its own image.
pub const DEFAULT_IMAGE_ENV: &str = "COFFER_DEFAULT_IMAGE";

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

    /// The default Tenant image; a blank value (an empty variable) is refused rather than
    /// written into every pod template.
    pub fn default_image(&self) -> anyhow::Result<String> {
        let image = self.default_image.trim();
        anyhow::ensure!(
            !image.is_empty() && !image.contains(char::is_whitespace),
            "--default-image ({DEFAULT_IMAGE_ENV}): {:?} is not an image reference",
            self.default_image
        );
        Ok(image.to_string())
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
    let default_image = args.default_image()?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::try_default().await?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let ctx = Context::with_default_image(
        client.clone(),
        Reporter {
            controller: "coffer-operator".into(),
            instance: Some(identity.clone()),
        },
        default_image.clone(),
    );
    ctx.set_max_concurrent_upgrades(args.max_concurrent_upgrades);
    if let Ok(ns) = std::env::var("POD_NAMESPACE") {
        ctx.set_operator_namespace(ns);
    }
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
        tracing::info!(%identity, %default_image, max_concurrent_upgrades = args.max_concurrent_upgrades, "became leader; starting controllers for all namespaces");
    } else {
        tracing::info!(%identity, %default_image, namespaces = %namespaces.join(","), "became leader; starting controllers for these namespaces only");
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
            default_image: DEFAULT_IMAGE.into(),
            max_concurrent_upgrades: 1,
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn the_default_image_is_the_flag_else_the_constant_and_never_blank() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["operator"], args].concat())
                .unwrap()
                .run
        };
        // The test's environment does not set COFFER_DEFAULT_IMAGE (the chart does).
        assert!(std::env::var_os(DEFAULT_IMAGE_ENV).is_none());
        assert_eq!(parse(&[]).default_image().unwrap(), DEFAULT_IMAGE);
        assert_eq!(
            parse(&["--default-image", " ghcr.io/coffer-dev/coffer:0.2.0 "])
                .default_image()
                .unwrap(),
            "ghcr.io/coffer-dev/coffer:0.2.0"
        );
        for bad in ["", "  ", "a b"] {
            let e = parse(&["--default-image", bad])
                .default_image()
                .unwrap_err();
            assert!(e.to_string().contains(DEFAULT_IMAGE_ENV), "{e}");
        }
    }
}
