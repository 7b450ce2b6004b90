//! The `operator` binary itself against a real kube-apiserver: `operator run` with leader
//! election (two processes, only the Lease holder reconciles; the other takes over when it
//! stops), and a benchmark (ignored by default) of 1 and 50 Tenants.
//!
//! Needs the peers `etcd`, `kube-apiserver`, `kubectl` on PATH; fails loudly when absent.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use coffer_e2e::kube::KubeApi;
use coffer_e2e::{Process, free_port, listens_on, wait_until};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use operator::crd::Tenant;

/// A running `operator run` (killed when dropped) and the address of its metrics.
struct Operator {
    process: Process,
    metrics: String,
    _log_dir: tempfile::TempDir,
}

impl Operator {
    /// Starts the operator and waits until it serves its metrics on a port picked free here.
    /// The operator only logs a metrics port it cannot bind, so a port another process took
    /// first (whose answers would be read as this operator's) is seen as "not listening on it"
    /// and the operator is started again on another one.
    fn start(api: &KubeApi, identity: &str, namespace: &str) -> Operator {
        for _attempt in 0..5 {
            let port = free_port();
            let metrics = format!("127.0.0.1:{port}");
            let log_dir = tempfile::tempdir().unwrap();
            let process =
                common::operator_process(api, identity, namespace, &metrics, log_dir.path());
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                process.assert_running();
                if process.pid().is_some_and(|pid| listens_on(pid, port)) {
                    return Operator {
                        process,
                        metrics,
                        _log_dir: log_dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!(
                "operator {identity} does not listen on {metrics}; trying another port\n{}",
                process.log_tail()
            );
        }
        panic!("operator {identity} never served its metrics");
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
        let pid = self.process.pid().expect("the operator runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }
}

fn setup(api: &KubeApi, ns: &str) {
    api.install_crds();
    api.run(&["create", "namespace", ns]);
    api.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {ns}}}\nstringData: {{roleId: r, secretId: s}}\n---\n\
         apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {ns}}}\n\
         spec:\n  vault:\n    endpoint: https://127.0.0.1:1\n    auth:\n      appRole: {{secretName: vault-approle}}\n"
    ));
}

fn tenants_yaml(ns: &str, from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("---\napiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: t{i}, namespace: {ns}}}\nspec:\n  kms: {{name: vault}}\n"))
        .collect()
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

    let a = Operator::start(&api, "a", ns);
    let first = wait_until(
        "a Lease holder",
        Duration::from_secs(90),
        || holder(&rt, &leases),
        || a.process.log_tail(),
    );
    let b = Operator::start(&api, "b", ns);
    let logs = || format!("{}\n{}", a.process.log_tail(), b.process.log_tail());
    api.apply(&tenants_yaml(ns, 0, 1));
    wait_until(
        "StatefulSet t0",
        Duration::from_secs(90),
        || rt.block_on(stss.get_opt("t0")).ok().flatten(),
        logs,
    );
    let (leader, follower) = if first == "a" { (&a, &b) } else { (&b, &a) };
    // The counter moves when the reconcile that made the StatefulSet ends: wait for it rather
    // than pause and hope.
    wait_until(
        "the Lease holder to count its reconcile",
        Duration::from_secs(60),
        || (leader.tenant_reconciles() > 0).then_some(()),
        logs,
    );
    assert_eq!(
        follower.tenant_reconciles(),
        0,
        "the other process does not"
    );

    // The leader stops (SIGTERM: it releases the Lease); the follower takes over.
    leader.process.terminate(Duration::from_secs(10));
    let next = wait_until(
        "a new Lease holder",
        Duration::from_secs(90),
        || holder(&rt, &leases).filter(|h| *h != first),
        logs,
    );
    assert_ne!(next, first);
    api.apply(&tenants_yaml(ns, 1, 2));
    wait_until(
        "StatefulSet t1 from the new leader",
        Duration::from_secs(90),
        || rt.block_on(stss.get_opt("t1")).ok().flatten(),
        logs,
    );
    wait_until(
        "the new leader to count its reconciles",
        Duration::from_secs(60),
        || (follower.tenant_reconciles() > 0).then_some(()),
        logs,
    );
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
    wait_until(
        "operator up",
        Duration::from_secs(30),
        || (op.tenant_reconciles() == 0).then_some(()),
        || op.process.log_tail(),
    );
    for (from, to) in [(0, 1), (1, 51)] {
        let start = Instant::now();
        api.apply(&tenants_yaml(ns, from, to));
        wait_until(
            "every Tenant reconciled",
            Duration::from_secs(120),
            || done(to),
            || op.process.log_tail(),
        );
        println!(
            "{} Tenant(s): every owned object and status in {:?}",
            to - from,
            start.elapsed()
        );
    }
    println!("operator peak RSS: {} KiB", op.peak_rss_kib());
}
