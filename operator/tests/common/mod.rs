//! What the operator's integration tests share: polling until something holds, the controllers
//! run in-process or `operator run` as a child process, conditions read off a status, and our
//! kes started in-process from a parsed config.

// Every test file compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod fixtures;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use coffer_e2e::Process;
use coffer_e2e::kube::KubeApi;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::runtime::events::Reporter;
use operator::reconcile::{self, Context};

/// Polls `f` every 250 ms until it returns `Some`, or fails the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs both controllers in this process on namespace `ns`, publishing events as `instance`,
/// until the returned sender is dropped or used.
pub fn start_operator(
    client: Client,
    ns: &str,
    instance: &str,
) -> tokio::sync::oneshot::Sender<()> {
    start_operator_with(
        client,
        ns,
        instance,
        operator::crd::tenant::DEFAULT_IMAGE,
        reconcile::DEFAULT_MAX_CONCURRENT_UPGRADES,
    )
}

/// [`start_operator`] with `default_image` for Tenants without `spec.image`, moving at most
/// `max_concurrent_upgrades` of them at a time when that is not the image they run.
pub fn start_operator_with(
    client: Client,
    ns: &str,
    instance: &str,
    default_image: &str,
    max_concurrent_upgrades: usize,
) -> tokio::sync::oneshot::Sender<()> {
    let ctx = Context::with_default_image(
        client,
        Reporter {
            controller: "coffer-operator".into(),
            instance: Some(instance.into()),
        },
        default_image.into(),
    );
    ctx.set_max_concurrent_upgrades(max_concurrent_upgrades);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(reconcile::run_controllers(
        ctx,
        Some(ns.to_string()),
        async move {
            let _ = rx.await;
        },
    ));
    tx
}

/// `operator run` against `api` as `identity`, reconciling `namespace` (Lease in `default`),
/// with its metrics on `metrics_addr` and its log (`RUST_LOG=info`) in `log_dir`.
pub fn operator_process(
    api: &KubeApi,
    identity: &str,
    namespace: &str,
    metrics_addr: &str,
    log_dir: &Path,
) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_operator"));
    command
        .args(["run", "--identity", identity, "--namespace", namespace])
        .args([
            "--lease-namespace",
            "default",
            "--metrics-addr",
            metrics_addr,
        ])
        .env("KUBECONFIG", &api.kubeconfig)
        .env("RUST_LOG", "info");
    Process::spawn(
        &format!("operator {identity}"),
        command,
        &log_dir.join(format!("operator-{identity}.log")),
    )
}

/// `(status, reason, message)` of the condition `type_` among `conditions`.
pub fn condition<'a>(
    conditions: impl IntoIterator<Item = &'a Condition>,
    type_: &str,
) -> Option<(String, String, String)> {
    conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// `(status, reason, message)` of a Tenant's condition `type_`.
pub fn tenant_condition(
    t: &operator::crd::Tenant,
    type_: &str,
) -> Option<(String, String, String)> {
    condition(t.status.as_ref()?.conditions.iter(), type_)
}

/// `(status, reason, message)` of a KMS's condition `type_`.
pub fn kms_condition(k: &operator::crd::KMS, type_: &str) -> Option<(String, String, String)> {
    condition(k.status.as_ref()?.conditions.iter(), type_)
}

/// What a finished command printed: stdout, then stderr.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts our kes (sidecar-kes) in this process from `parsed`, as its binary does: TLS from the
/// configured files, the keystore opened (a Vault login), the policies, the listener.
pub async fn start_our_kes(
    parsed: &sidecar_kes::config::ServerConfig,
) -> sidecar_kes::server::Running {
    use sidecar_kes::server::{TlsSettings, auth_state, open_keys, server_config, start};
    let tls = TlsSettings {
        cert_pem: std::fs::read(&parsed.tls.cert).unwrap(),
        key_pem: std::fs::read(&parsed.tls.key).unwrap(),
        client_cas: vec![std::fs::read(parsed.tls.ca.as_ref().unwrap()).unwrap()],
    };
    // K/V behind the cache, or Transit, as the binary opens them.
    let keys = open_keys(&parsed.keystore, parsed.cache)
        .await
        .expect("our kes logs in to Vault");
    let shared = Arc::new(sidecar_kes::api::Shared::new(auth_state(parsed), keys));
    start(
        &parsed.address,
        server_config(&tls).unwrap(),
        shared,
        &parsed.keys,
    )
    .await
    .expect("our kes starts")
}

/// Writes `text` to `dir/name`; its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A leaf certificate of `ca` for an hour.
pub fn leaf(
    ca: &operator::pki::Ca,
    cn: &str,
    sans: &[&str],
    usage: operator::pki::Usage,
) -> operator::pki::Pem {
    ca.issue(
        &operator::pki::LeafRequest {
            common_name: cn.into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            usage,
            lifetime: Duration::from_secs(3600),
        },
        time::OffsetDateTime::now_utc(),
    )
    .unwrap()
}

/// A Tenant's KES as the operator sets it up, its files in a directory: a fresh CA, the KES
/// server certificate (`localhost`, `127.0.0.1`), the object-server's client certificate, and the
/// config `kes_config::build` makes for `tenant`/`kms`, pointed at those files and trusting
/// `vault_ca`.
pub struct KesSetup {
    pub cfg: operator::build::kes_config::KesConfig,
    pub ca: operator::pki::Ca,
    pub client: operator::pki::Pem,
}

pub fn kes_setup(
    tenant: &operator::crd::Tenant,
    kms: &operator::crd::KMS,
    vault_ca: &Path,
    dir: &Path,
) -> KesSetup {
    use operator::pki::{Ca, Usage, ca::CA_LIFETIME};
    let name = format!(
        "coffer {}/{} CA",
        tenant.metadata.namespace.as_deref().unwrap_or_default(),
        tenant.metadata.name.as_deref().unwrap_or_default()
    );
    let ca = Ca::generate(&name, time::OffsetDateTime::now_utc(), CA_LIFETIME).unwrap();
    let server = leaf(&ca, "kes", &["localhost", "127.0.0.1"], Usage::Server);
    let client = leaf(&ca, "object-server", &[], Usage::Client);
    let identity = operator::pki::identity_of_pem(&client.cert).unwrap();
    let mut cfg = operator::build::kes_config::build(tenant, kms, &identity);
    cfg.tls.key = write_file(dir, "server.key", &server.key);
    cfg.tls.cert = write_file(dir, "server.crt", &server.cert);
    cfg.tls.ca = write_file(dir, "ca.crt", &ca.trust_bundle());
    cfg.keystore.vault.tls.as_mut().unwrap().ca = Some(vault_ca.display().to_string());
    KesSetup { cfg, ca, client }
}

/// A SigV4-signed S3 call through `client` to `endpoint` (`path` starting with `/`) as
/// `user`/`password`: the status and the body.
pub async fn s3(
    client: &reqwest::Client,
    endpoint: &str,
    method: rusty_s3::Method,
    path: &str,
    body: &'static str,
    (user, password): (&str, &str),
) -> (u16, String) {
    let url = reqwest::Url::parse(&format!("{endpoint}{path}")).unwrap();
    let signed = rusty_s3::signing::sign(
        &k8s_openapi::jiff::Timestamp::now(),
        method,
        url,
        user,
        password,
        None,
        "us-east-1",
        60,
        std::iter::empty(),
        std::iter::empty(),
    );
    let req = match method {
        rusty_s3::Method::Put => client.put(signed).body(body),
        _ => client.get(signed),
    };
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
