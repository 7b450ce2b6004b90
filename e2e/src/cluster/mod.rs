//! A real single-node Kubernetes cluster for tests: etcd and kube-apiserver ([`KubeApi`], the
//! same control plane as the envtest-style tests, opened to pods), kube-controller-manager,
//! kube-scheduler, containerd 2 with runc, the kubelet, kube-proxy, kube-router's network policy
//! firewall and CoreDNS, all started from the pinned peers in a temporary directory.
//!
//! - Network: a bridge the node creates on a private /24 ([`config::NETWORK`]) is the pods'
//!   network (the CNI bridge plugin, host-local addresses); Services live in the next /24,
//!   served by kube-proxy's iptables rules. Nothing is masqueraded out and no route leaves the
//!   bridge: no traffic leaves the machine. The host reaches pod IPs and ClusterIPs directly,
//!   so test clients run on the host; [`Node::with_cluster_dns`] gives them the cluster's DNS.
//!   NetworkPolicies are enforced (kube-router's firewall); traffic from the node itself to a
//!   pod is always admitted, as kube-router does for the kubelet's probes.
//! - Storage: a default StorageClass `local` and static local PersistentVolumes, one directory
//!   each in the node's directory ([`config::storage`]); for a test that needs expandable
//!   volumes, [`volumes::LoopVolumes`] (XFS images on loop devices and their external
//!   resizer).
//! - Images: no registry is reached. The sandbox (pause) image and every image a test needs are
//!   imported from docker archives ([`Node::import`]); pods use them as they are tagged.
//! - Teardown ([`Drop`]): the pods are deleted through the kubelet first (CNI frees their
//!   addresses and interfaces), then [`host::cleanup`] undoes everything on the host. It also
//!   runs before a node starts, for a run that crashed. A panicking test prints the pods'
//!   states, the events and the containers' logs first.
//!
//! Needs root, cgroups, and the peers of `e2e/peers/install`; it says what is missing otherwise,
//! and never skips.

pub mod config;
pub mod host;
pub mod memory;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kube::{ApiOptions, KubeApi};
use crate::process::{Process, free_port, run, wait_until};
use config::{NETWORK, NODE_NAME};

/// How long a node waits for another test's node to stop before failing.
const LOCK_TIMEOUT: Duration = Duration::from_secs(1800);
/// How many static local volumes the node offers.
const VOLUMES: usize = 8;

/// Where the peers are installed (`e2e/peers/env` exports it).
pub fn peers_dir() -> PathBuf {
    std::env::var_os("COFFER_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/coffer/peers")
        })
}

/// The peer binaries the node runs.
struct Peers {
    bin: PathBuf,
    cni: PathBuf,
}

impl Peers {
    fn find() -> Peers {
        let dir = peers_dir();
        Peers {
            bin: dir.join("bin"),
            cni: dir.join("cni/bin"),
        }
    }
    fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
    fn all(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = [
            "etcd",
            "kube-apiserver",
            "kubectl",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
            "kube-proxy",
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
            "runc",
            "coredns",
            "kube-router",
            "ipset",
        ]
        .iter()
        .map(|b| self.bin(b))
        .collect();
        all.extend(
            ["bridge", "host-local", "loopback"]
                .iter()
                .map(|p| self.cni.join(p)),
        );
        all
    }
}

/// A docker-archive image to import into the node's containerd, and the reference it is tagged
/// with inside.
#[derive(Clone, Debug)]
pub struct Image {
    pub reference: String,
    pub archive: PathBuf,
}

/// A running node. Dropping it tears everything down.
pub struct Node {
    /// The control plane; its admin kubeconfig is `api.kubeconfig`.
    pub api: KubeApi,
    base: PathBuf,
    peers: Peers,
    /// The daemons in the order they started, by name.
    daemons: Vec<(&'static str, Process)>,
    memory: memory::Sampler,
    started: Instant,
    _lock: host::HostLock,
}

/// Prints how long a phase took, and returns the time for the next one.
fn phase(name: &str, since: Instant) -> Instant {
    eprintln!("[node] {name}: {:.1?}", since.elapsed());
    Instant::now()
}

impl Node {
    /// Starts the node with `sandbox` as its pause image; returns once the node is Ready, CoreDNS
    /// answers and the default namespace can run pods.
    pub fn start(sandbox: &Image) -> Node {
        let started = Instant::now();
        let peers = Peers::find();
        host::preflight(&peers.all());
        let lock = host::lock(LOCK_TIMEOUT);
        let shim = peers.bin("containerd-shim-runc-v2");
        let left = host::cleanup(&NETWORK, &shim, &peers.bin("runc"));
        assert!(
            left.is_empty(),
            "an earlier node left what cannot be removed: {left:?}"
        );
        host::check_ranges_free(&NETWORK);
        let t = phase("preflight and leftovers of earlier runs", started);

        let base = tempfile::Builder::new()
            .prefix("coffer-node-")
            .tempdir()
            .expect("node dir")
            .keep();
        host::record_start(&base);
        for dir in [
            "logs",
            "cni/net.d",
            "cni/ipam",
            "volumes",
            "pod-logs",
            "kubelet",
        ] {
            std::fs::create_dir_all(base.join(dir)).expect("node dir");
        }
        host::create_bridge(&NETWORK);
        host::refuse_unserved_services(&NETWORK);
        let memory = memory::Sampler::start(shim);
        let mut node = Node {
            api: KubeApi::start_with(&ApiOptions::for_node(
                &NETWORK.gateway(),
                &NETWORK.service_cidr(),
            )),
            base,
            peers,
            daemons: Vec::new(),
            memory,
            started,
            _lock: lock,
        };
        for pid in node.api.pids() {
            host::record_pid(pid);
            node.memory.add(pid);
        }
        let t = phase("bridge, etcd and kube-apiserver", t);

        node.start_containerd(&sandbox.reference);
        node.import(sandbox);
        let t = phase("containerd, pause image", t);

        node.start_kubelet();
        node.start_controllers();
        node.wait_node_ready();
        let t = phase("kubelet registered and Ready, controllers", t);

        node.start_kube_proxy();
        node.start_network_policies();
        node.start_coredns();
        node.add_storage();
        node.wait_pods_admitted();
        phase("kube-proxy, CoreDNS, storage", t);
        eprintln!("[node] up in {:.1?}", node.started.elapsed());
        node
    }

    /// The node's directory.
    pub fn dir(&self) -> &Path {
        &self.base
    }

    /// `ctr` against the node's containerd, in the Kubernetes namespace.
    pub fn ctr(&self) -> Command {
        let mut ctr = Command::new(self.peers.bin("ctr"));
        ctr.arg("-a")
            .arg(self.base.join("containerd.sock"))
            .args(["-n", "k8s.io"]);
        ctr
    }

    /// Imports `image` into the node's containerd (where the kubelet finds it).
    pub fn import(&self, image: &Image) {
        run(
            &format!("ctr images import {}", image.archive.display()),
            self.ctr()
                .args(["images", "import", "--no-unpack"])
                .arg(&image.archive),
        );
        let listed = run("ctr images ls", self.ctr().args(["images", "ls", "-q"]));
        assert!(
            listed.lines().any(|l| l == image.reference),
            "{} does not hold {}: containerd has {listed}",
            image.archive.display(),
            image.reference
        );
    }

    /// Runs `command` on the host's network with the cluster's DNS (CoreDNS on the gateway, the
    /// Service search path) in place of the host's, in a mount namespace of its own: a client
    /// on the host reaches `svc.ns.svc` names as a pod does.
    pub fn with_cluster_dns(&self, command: &Command) -> Command {
        let resolv = self.base.join("cluster-resolv.conf");
        if !resolv.exists() {
            std::fs::write(
                &resolv,
                format!(
                    "nameserver {}\nsearch svc.{d} {d}\noptions ndots:5\n",
                    NETWORK.gateway(),
                    d = config::CLUSTER_DOMAIN
                ),
            )
            .expect("write resolv.conf");
        }
        let mut wrapped = Command::new("unshare");
        wrapped
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"")
            .arg(&resolv)
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    }

    /// The highest memory the node's processes used together so far.
    pub fn peak_memory(&self) -> memory::Peak {
        self.memory.peak()
    }

    /// The pods' states, the events and every container's last log lines, and the tails of the
    /// node's daemons' logs: what a failure message needs.
    pub fn diagnostics(&self) -> String {
        let kubectl = |args: &[&str]| {
            let out = self.api.kubectl().args(args).output();
            match out {
                Ok(o) => format!(
                    "$ kubectl {}\n{}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => format!("kubectl {}: {e}\n", args.join(" ")),
            }
        };
        let mut out = kubectl(&["get", "nodes,pods,pvc,pv", "-A", "-o", "wide"]);
        out += &kubectl(&["get", "events", "-A", "--sort-by=.lastTimestamp"]);
        let pods = kubectl(&[
            "get",
            "pods",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        ]);
        for pod in pods.lines().skip(1).filter(|l| l.contains('/')) {
            let (ns, name) = pod.split_once('/').expect("ns/name");
            out += &kubectl(&["describe", "pod", "-n", ns, name]);
            for previous in ["--previous=false", "--previous=true"] {
                out += &kubectl(&[
                    "logs",
                    "-n",
                    ns,
                    name,
                    "--all-containers",
                    "--prefix",
                    "--tail=60",
                    previous,
                ]);
            }
        }
        for (_, daemon) in &self.daemons {
            out += &daemon.log_tail();
            out.push('\n');
        }
        out
    }

    fn spawn(&mut self, name: &'static str, command: Command) -> &Process {
        let process = Process::spawn(name, command, &self.base.join(format!("logs/{name}.log")));
        let pid = process.pid().expect("just started");
        host::record_pid(pid);
        self.memory.add(pid);
        self.daemons.push((name, process));
        &self.daemons.last().expect("just pushed").1
    }

    /// The daemon started as `name`.
    fn daemon(&self, name: &str) -> Option<&Process> {
        self.daemons
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p)
    }

    /// The last lines of daemon `name`'s log.
    fn log_tail(&self, name: &str) -> String {
        self.daemon(name).map(Process::log_tail).unwrap_or_default()
    }

    /// Panics with its log when a daemon of the node has exited.
    pub fn assert_running(&self) {
        for (_, daemon) in &self.daemons {
            daemon.assert_running();
        }
    }

    fn start_containerd(&mut self, sandbox_image: &str) {
        let config = self.base.join("containerd.toml");
        std::fs::write(
            &config,
            config::containerd(
                &self.base,
                &self.peers.bin("runc"),
                &self.peers.cni,
                sandbox_image,
            ),
        )
        .expect("write containerd config");
        let mut containerd = Command::new(self.peers.bin("containerd"));
        containerd.arg("--config").arg(&config);
        // containerd finds its shim on PATH.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.peers.bin.clone()];
        dirs.extend(std::env::split_paths(&path));
        containerd.env("PATH", std::env::join_paths(dirs).expect("PATH"));
        self.spawn("containerd", containerd);
        wait_until(
            "containerd to answer",
            Duration::from_secs(60),
            || {
                self.assert_running();
                self.ctr()
                    .arg("version")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|_| ())
            },
            || self.log_tail("containerd"),
        );
    }

    fn start_kubelet(&mut self) {
        std::fs::write(
            self.base.join("cni/net.d/10-coffer.conflist"),
            config::cni(&self.base, &NETWORK),
        )
        .expect("write CNI config");
        // Pods resolve through the cluster's DNS only: no upstream of the host's.
        std::fs::write(self.base.join("resolv.conf"), "").expect("write resolv.conf");
        let config = self.base.join("kubelet.yaml");
        std::fs::write(
            &config,
            config::kubelet(
                &self.base,
                &NETWORK,
                &self.api.ca_cert,
                free_port(),
                free_port(),
            ),
        )
        .expect("write kubelet config");
        let kubeconfig = self
            .api
            .kubeconfig_for(&format!("system:node:{NODE_NAME}"), &["system:nodes"]);
        let mut kubelet = Command::new(self.peers.bin("kubelet"));
        kubelet
            .arg(format!("--config={}", config.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--root-dir={}",
                self.base.join("kubelet").display()
            ))
            .arg(format!(
                "--cert-dir={}",
                self.base.join("kubelet/pki").display()
            ))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--node-ip={}", NETWORK.gateway()));
        self.spawn("kubelet", kubelet);
    }

    fn start_controllers(&mut self) {
        let admin = self.api.kubeconfig.clone();
        let mut cm = Command::new(self.peers.bin("kube-controller-manager"));
        cm.arg(format!("--kubeconfig={}", admin.display()))
            .arg(format!("--root-ca-file={}", self.api.ca_cert.display()))
            .args(["--leader-elect=false", "--secure-port=0"])
            .arg(format!(
                "--service-cluster-ip-range={}",
                NETWORK.service_cidr()
            ));
        self.spawn("kube-controller-manager", cm);
        let scheduler_config = self.api.kubeconfig_for("system:kube-scheduler", &[]);
        let mut scheduler = Command::new(self.peers.bin("kube-scheduler"));
        scheduler
            .arg(format!("--kubeconfig={}", scheduler_config.display()))
            .args(["--leader-elect=false", "--secure-port=0"]);
        self.spawn("kube-scheduler", scheduler);
    }

    fn start_kube_proxy(&mut self) {
        let kubeconfig = self.api.kubeconfig_for("system:kube-proxy", &[]);
        let config = self.base.join("kube-proxy.yaml");
        std::fs::write(
            &config,
            config::kube_proxy(&kubeconfig, &NETWORK, free_port(), free_port()),
        )
        .expect("write kube-proxy config");
        let mut proxy = Command::new(self.peers.bin("kube-proxy"));
        proxy.arg(format!("--config={}", config.display()));
        self.spawn("kube-proxy", proxy);
    }

    /// kube-router's network policy firewall: NetworkPolicies are enforced on the bridge (its
    /// router and service proxy stay off: the bridge and kube-proxy do that). Its iptables
    /// chains and ipsets are `KUBE-` ones, removed by [`host::cleanup`]; it binds no port.
    /// Returns once its chains are in place, so that a policy applied next is enforced.
    fn start_network_policies(&mut self) {
        let mut router = Command::new(self.peers.bin("kube-router"));
        router
            .arg(format!("--kubeconfig={}", self.api.kubeconfig.display()))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!(
                "--service-cluster-ip-range={}",
                NETWORK.service_cidr()
            ))
            .args([
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--health-port=0",
                "--metrics-port=0",
            ]);
        // It runs `iptables`, `iptables-save`, `iptables-restore` and `ipset` from PATH.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.peers.bin.clone()];
        dirs.extend(std::env::split_paths(&path));
        router.env("PATH", std::env::join_paths(dirs).expect("PATH"));
        self.spawn("kube-router", router);
        wait_until(
            "kube-router's firewall chains",
            Duration::from_secs(120),
            || {
                self.assert_running();
                let rules = Command::new("iptables")
                    .args(["-w", "-t", "filter", "-S", "FORWARD"])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&rules.stdout)
                    .contains("-j KUBE-ROUTER-FORWARD")
                    .then_some(())
            },
            || self.log_tail("kube-router"),
        );
    }

    fn start_coredns(&mut self) {
        let corefile = self.base.join("Corefile");
        std::fs::write(&corefile, config::corefile(&self.api.kubeconfig, &NETWORK))
            .expect("write Corefile");
        let mut coredns = Command::new(self.peers.bin("coredns"));
        coredns.arg("-conf").arg(&corefile);
        let pid = self.spawn("coredns", coredns).pid().expect("running");
        wait_until(
            "CoreDNS to listen on the gateway",
            Duration::from_secs(60),
            || {
                self.assert_running();
                crate::process::listens_on(pid, 53).then_some(())
            },
            || self.log_tail("coredns"),
        );
    }

    fn add_storage(&self) {
        let volumes = self.base.join("volumes");
        for i in 0..VOLUMES {
            std::fs::create_dir_all(volumes.join(format!("local-{i}"))).expect("volume dir");
        }
        self.api.apply(&config::storage(&volumes, VOLUMES));
    }

    fn wait_node_ready(&self) {
        wait_until(
            "the node to register and be Ready",
            Duration::from_secs(180),
            || {
                self.assert_running();
                let out = self
                    .api
                    .kubectl()
                    .args(["get", "node", NODE_NAME])
                    .arg("-o=jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
                    .output()
                    .ok()?;
                (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
            },
            || self.diagnostics(),
        );
    }

    /// Waits until a pod in the default namespace can be admitted: its ServiceAccount and the
    /// cluster's CA ConfigMap exist (the controller-manager writes both).
    fn wait_pods_admitted(&self) {
        wait_until(
            "the default ServiceAccount and kube-root-ca.crt",
            Duration::from_secs(120),
            || {
                self.assert_running();
                let ok = self
                    .api
                    .kubectl()
                    .args([
                        "get",
                        "serviceaccount/default",
                        "configmap/kube-root-ca.crt",
                    ])
                    .output()
                    .ok()?
                    .status
                    .success();
                ok.then_some(())
            },
            || self.diagnostics(),
        );
    }

    /// Deletes every pod through the kubelet (so that CNI releases their addresses and
    /// interfaces) with the controllers stopped (so that none comes back); returns when the
    /// pod network holds no address, or after a minute.
    fn delete_pods(&self) {
        if let Some(cm) = self.daemon("kube-controller-manager") {
            cm.terminate(Duration::from_secs(5));
        }
        let kubelet_runs = self.daemon("kubelet").is_some_and(Process::is_running);
        if !kubelet_runs {
            return;
        }
        let _ = self
            .api
            .kubectl()
            .args([
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=1",
                "--wait=false",
            ])
            .output();
        let ipam = self.base.join("cni/ipam");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let addresses = std::fs::read_dir(&ipam)
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
                .filter(|f| {
                    f.file_name()
                        .to_string_lossy()
                        .parse::<std::net::IpAddr>()
                        .is_ok()
                })
                .count();
            if addresses == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("[node] pods still hold addresses after a minute: forcing them down");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[node] the test failed; the node's state:\n{}",
                self.diagnostics()
            );
        }
        let t = Instant::now();
        self.delete_pods();
        let t = phase("teardown: pods deleted through the kubelet", t);
        // Newest first: CoreDNS and kube-proxy, the scheduler, the kubelet, containerd last.
        for (_, daemon) in self.daemons.iter().rev() {
            daemon.terminate(Duration::from_secs(15));
        }
        let left = host::cleanup(
            &NETWORK,
            &self.peers.bin("containerd-shim-runc-v2"),
            &self.peers.bin("runc"),
        );
        phase(
            "teardown: processes, mounts, network, cgroups, iptables, sysctls",
            t,
        );
        eprintln!(
            "[node] peak memory of the node's processes: {}; up {:.1?}",
            self.memory.peak(),
            self.started.elapsed()
        );
        if !left.is_empty() {
            eprintln!("[node] could not undo on the host: {left:?}");
        }
    }
}
