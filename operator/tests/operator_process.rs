//! The `operator` binary itself against a real kube-apiserver: `operator run` with leader
//! election (two processes, only the Lease holder reconciles; the other takes over when it
//! stops), and a benchmark (ignored by default) of 1 and 50 Tenants.
//!
//! Needs the peers `etcd`, `kube-apiserver`, `kubectl` on PATH; fails loudly when absent.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_e2e::free_port;
use coffer_e2e::kube::KubeApi;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use operator::crd::Tenant;

/// A running `operator run`, killed when dropped.
struct Operator {
    child: Child,
    metrics: String,
    _log_dir: tempfile::TempDir,
}

impl Operator {
    fn start(api: &KubeApi, identity: &str, namespace: &str) -> Operator {
        let port = free_port();
        let log_dir = tempfile::tempdir().unwrap();
        let log =
            std::fs::File::create(log_dir.path().join(format!("operator-{identity}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_operator"))
            .args([
                "run",
                "--identity",
                identity,
                "--namespace",
                namespace,
                "--lease-namespace",
                "default",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", &api.kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Operator {
            child,
            metrics: format!("127.0.0.1:{port}"),
            _log_dir: log_dir,
        }
    }

    /// Reconciles of the Tenant controller so far, from `/metrics` (0 before the first).
    fn tenant_reconciles(&self) -> u64 {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(&self.metrics) else {
            return 0;
        };
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .find(|l| l.starts_with("coffer_reconciles_total{controller=\"tenant\"}"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Peak resident memory (VmHWM) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl_apply(api: &KubeApi, yaml: &str) {
    let mut child = api
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn setup(api: &KubeApi, ns: &str) {
    let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds");
    api.run(&["apply", "-f", crds.to_str().unwrap()]);
    api.run(&[
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/tenants.coffer.dev",
        "crd/kms.coffer.dev",
    ]);
    api.run(&["create", "namespace", ns]);
    kubectl_apply(
        api,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {ns}}}\nstringData: {{roleId: r, secretId: s}}\n---\n\
             apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {ns}}}\n\
             spec:\n  vault:\n    endpoint: https://127.0.0.1:1\n    auth:\n      appRole: {{secretName: vault-approle}}\n"
        ),
    );
}

fn tenants_yaml(ns: &str, from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("---\napiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: t{i}, namespace: {ns}}}\nspec:\n  kms: {{name: vault}}\n"))
        .collect()
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn holder(rt: &tokio::runtime::Runtime, leases: &Api<Lease>) -> Option<String> {
    rt.block_on(leases.get_opt("coffer-operator"))
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

#[test]
fn two_operator_processes_only_the_leader_reconciles() {
    let api = KubeApi::start();
    let ns = "leader";
    setup(&api, ns);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(api.client());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);

    let mut a = Operator::start(&api, "a", ns);
    let first = wait("a Lease holder", Duration::from_secs(30), || {
        holder(&rt, &leases)
    });
    let mut b = Operator::start(&api, "b", ns);
    kubectl_apply(&api, &tenants_yaml(ns, 0, 1));
    wait("StatefulSet t0", Duration::from_secs(30), || {
        rt.block_on(stss.get_opt("t0")).ok().flatten()
    });
    std::thread::sleep(Duration::from_secs(2));
    let (leader, follower) = if first == "a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(
        leader.tenant_reconciles() > 0,
        "the Lease holder reconciles"
    );
    assert_eq!(
        follower.tenant_reconciles(),
        0,
        "the other process does not"
    );

    // The leader stops (SIGTERM: it releases the Lease); the follower takes over.
    leader.terminate();
    let next = wait("a new Lease holder", Duration::from_secs(30), || {
        holder(&rt, &leases).filter(|h| *h != first)
    });
    assert_ne!(next, first);
    kubectl_apply(&api, &tenants_yaml(ns, 1, 2));
    wait(
        "StatefulSet t1 from the new leader",
        Duration::from_secs(30),
        || rt.block_on(stss.get_opt("t1")).ok().flatten(),
    );
    assert!(follower.tenant_reconciles() > 0);
}

/// `cargo test -p operator --test operator_process -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run by hand"]
fn bench_one_and_fifty_tenants() {
    let api = KubeApi::start();
    let ns = "bench";
    setup(&api, ns);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(api.client());
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let op = Operator::start(&api, "bench", ns);
    let done = |n: usize| {
        let list = rt.block_on(tenants.list(&Default::default())).ok()?;
        let with_status = list
            .items
            .iter()
            .filter(|t| t.status.as_ref().is_some_and(|s| s.kes_identity.is_some()))
            .count();
        let sts = rt
            .block_on(stss.list(&Default::default()))
            .ok()?
            .items
            .len();
        (with_status >= n && sts >= n).then_some(())
    };
    wait("operator up", Duration::from_secs(30), || {
        (op.tenant_reconciles() == 0).then_some(())
    });
    for (from, to) in [(0, 1), (1, 51)] {
        let start = Instant::now();
        kubectl_apply(&api, &tenants_yaml(ns, from, to));
        wait("every Tenant reconciled", Duration::from_secs(120), || {
            done(to)
        });
        println!(
            "{} Tenant(s): every owned object and status in {:?}",
            to - from,
            start.elapsed()
        );
    }
    println!("operator peak RSS: {} KiB", op.peak_rss_kib());
}
