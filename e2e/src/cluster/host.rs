//! What the node needs from the host and changes on it, and how all of it is undone.
//!
//! containerd, the kubelet and the CNI plugins use fixed host paths whatever their configuration
//! says (`/run/containerd`, `/run/netns/cni-*`, `/var/lib/cni`, `/var/lib/kubelet`,
//! `/var/log/containers`), create cgroups at the root of every v1 hierarchy (`kubepods`) and
//! iptables chains and ipsets (`KUBE-*`), and rewrite machine-wide sysctls (`kernel.panic`,
//! `vm.overcommit_memory`, `net.ipv4.ip_forward`, …). So one node runs on a machine at a time
//! (a lock under [`STATE_DIR`]), and what a node did is written down there before it does it:
//! the original sysctl values (once: a crashed run's originals are kept), the node's directory
//! and the ids of the processes it started. [`cleanup`] undoes everything, in the order that
//! was proven to leave nothing behind (`/work/shared/peers/kubelet/cleanup.sh`); it runs when a
//! node stops, panicking test or not, and when the next node starts after a crash.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::config::Network;

/// Where the host-wide lock and the record of a running node live (tmpfs: gone at reboot, as are
/// the sysctl values and mounts it records).
pub const STATE_DIR: &str = "/run/coffer-e2e-node";

/// The sysctls the kubelet, kube-proxy and the CNI bridge plugin may change.
const SYSCTLS: &[&str] = &[
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
];

/// Host paths containerd, the kubelet and CNI create regardless of their configuration
/// (`/run/containerd` is shared with any other containerd: [`remove_run_containerd`]).
const FIXED_PATHS: &[&str] = &[
    "/run/nri",
    "/var/lib/cni",
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
];

fn state(file: &str) -> PathBuf {
    Path::new(STATE_DIR).join(file)
}

/// Fails with every reason the node cannot start on this machine: not root, no cgroup v1
/// hierarchy, a tool or a peer binary missing.
pub fn preflight(binaries: &[PathBuf]) {
    let mut missing = Vec::new();
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        });
    if uid.as_deref() != Some("0") {
        missing.push(
            "root: the kubelet, containerd and runc need it (run the test as root)".to_string(),
        );
    }
    if !Path::new("/sys/fs/cgroup/memory").is_dir()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
    {
        missing.push("a cgroup filesystem under /sys/fs/cgroup".to_string());
    }
    for bin in binaries {
        if !bin.is_file() {
            missing.push(format!("{} (run e2e/peers/install)", bin.display()));
        }
    }
    for tool in [
        "ip",
        "iptables",
        "iptables-save",
        "iptables-restore",
        "umount",
    ] {
        if which(tool).is_none() {
            missing.push(format!(
                "`{tool}` on PATH (run e2e/peers/install, then eval \"$(e2e/peers/env)\")"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "the test node cannot start; missing:\n  - {}",
        missing.join("\n  - ")
    );
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Fails when an interface or route other than the node's bridge already uses one of the
/// node's ranges: the pod network must be a /24 nothing else on the machine uses.
pub fn check_ranges_free(net: &Network) {
    let out = output(Command::new("ip").args(["-o", "-4", "route", "show", "table", "all"]));
    for line in out.lines() {
        let used = line.contains(&format!("{}.", net.pod_prefix))
            || line.contains(&format!("{}.", net.service_prefix));
        assert!(
            !used || line.contains(&format!("dev {} ", net.bridge)),
            "the node's address ranges ({} and {}) are already in use on this machine: {line}",
            net.pod_cidr(),
            net.service_cidr()
        );
    }
}

/// The host-wide lock: one node per machine. Held until dropped.
pub struct HostLock {
    _file: File,
}

/// Takes the lock, waiting up to `timeout` for another test's node to stop.
pub fn lock(timeout: Duration) -> HostLock {
    std::fs::create_dir_all(STATE_DIR).expect("create the node's state dir");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state("lock"))
        .expect("open the node lock");
    let deadline = Instant::now() + timeout;
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return HostLock { _file: file },
            Err(std::fs::TryLockError::WouldBlock) => {
                if !said {
                    eprintln!("[node] another test node runs on this machine: waiting for it");
                    said = true;
                }
                assert!(
                    Instant::now() < deadline,
                    "another test node held {} for {timeout:?}",
                    state("lock").display()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(std::fs::TryLockError::Error(e)) => panic!("lock the node: {e}"),
        }
    }
}

/// Writes down the sysctls' values unless a crashed run's originals are already there, and
/// the node's directory.
pub fn record_start(base: &Path) {
    if !state("sysctl").exists() {
        let mut saved = String::new();
        for name in SYSCTLS {
            if let Ok(value) = std::fs::read_to_string(sysctl_path(name)) {
                saved.push_str(&format!("{name} {}\n", value.trim()));
            }
        }
        std::fs::write(state("sysctl"), saved).expect("record the sysctls");
    }
    std::fs::write(state("base"), base.as_os_str().as_encoded_bytes())
        .expect("record the node dir");
}

/// Writes down a process the node started, so that a later run can stop it after a crash.
pub fn record_pid(pid: u32) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(state("pids"))
        .expect("open the pid record");
    writeln!(file, "{pid} {}", exe.display()).expect("record a pid");
}

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

/// Creates the bridge with the gateway address, up.
pub fn create_bridge(net: &Network) {
    let dev = net.bridge;
    run(Command::new("ip").args(["link", "add", dev, "type", "bridge"]));
    run(Command::new("ip").args(["addr", "add", &format!("{}/24", net.gateway()), "dev", dev]));
    run(Command::new("ip").args(["link", "set", dev, "up"]));
}

/// The policy routing rule that refuses, at once, a pod's connection to a ClusterIP that was
/// not translated to an endpoint. kube-proxy REJECTs those in the filter table, but
/// kube-router's firewall jumps first and ACCEPTs pod traffic its policies allow: the packet
/// would then leave by the host's default route and the connection hang until its timeout
/// (seen: Vault scaled to 0, KES blocked on connects, the Tenant's probes timed out).
/// Translated connections carry a pod's address by the time they are routed: untouched.
fn unserved_services_rule(net: &Network) -> Vec<String> {
    vec![
        "iif".into(),
        net.bridge.into(),
        "to".into(),
        net.service_cidr(),
        "unreachable".into(),
    ]
}

/// Adds [`unserved_services_rule`].
pub fn refuse_unserved_services(net: &Network) {
    let rule = unserved_services_rule(net);
    run(Command::new("ip").args(["rule", "add"]).args(&rule));
}

/// Undoes everything a node (running or crashed) did to the host, as far as it can, and says
/// what it could not undo. `shim` is the containerd shim binary, `runc` the runtime.
pub fn cleanup(net: &Network, shim: &Path, runc: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let base = std::fs::read(state("base"))
        .ok()
        .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()));

    // 1. The processes the node started (when their executable is still the one recorded: a
    //    pid reused by another program is left alone).
    let pids = std::fs::read_to_string(state("pids")).unwrap_or_default();
    let recorded: Vec<u32> = pids
        .lines()
        .filter_map(|l| {
            let (pid, exe) = l.split_once(' ')?;
            let pid = pid.parse().ok()?;
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|now| now.as_os_str() == exe)
                .then_some(pid)
        })
        .collect();
    stop_all(&recorded);

    // 2. Containers still alive (killed through runc by container id), then the shims that
    //    served this node's containerd.
    let runc_root = "/run/containerd/runc/k8s.io";
    if Path::new(runc_root).is_dir() {
        let ids = output(Command::new(runc).args(["--root", runc_root, "list", "-q"]));
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = Command::new(runc)
                .args(["--root", runc_root, "kill", id, "KILL"])
                .status();
            std::thread::sleep(Duration::from_millis(200));
            let _ = Command::new(runc)
                .args(["--root", runc_root, "delete", "-f", id])
                .status();
        }
    }
    let shims: Vec<u32> = processes()
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == shim))
        .filter(|pid| match &base {
            Some(base) => std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*base.to_string_lossy())),
            None => true,
        })
        .collect();
    stop_all(&shims);

    // 3. Mounts under the node's directory and the fixed paths, innermost first; CNI's network
    //    namespaces; the bridge (the pods' veths went with their namespaces).
    let mut prefixes: Vec<String> = vec![
        "/run/containerd".into(),
        "/run/netns/cni-".into(),
        "/var/lib/kubelet".into(),
    ];
    if let Some(base) = &base {
        prefixes.push(base.display().to_string());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| prefixes.iter().any(|p| m.starts_with(p.as_str())))
        .collect();
    mounts.sort_unstable_by(|a, b| b.cmp(a));
    mounts.dedup();
    for m in mounts {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
    // The loop devices of `volumes::LoopVolumes` (backed by image files in the node's
    // directory): one still mounted is freed when its last (lazy) unmount completes.
    if let Some(base) = &base {
        let devices = output(Command::new("losetup").args([
            "--list",
            "--noheadings",
            "--output",
            "NAME,BACK-FILE",
        ]));
        for line in devices.lines() {
            if let Some((device, file)) = line.trim().split_once(' ')
                && Path::new(file.trim()).starts_with(base)
            {
                let _ = Command::new("losetup").args(["--detach", device]).status();
            }
        }
    }
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("cni-") {
            let _ = Command::new("ip").args(["netns", "delete", &name]).status();
        }
    }
    let rule = unserved_services_rule(net);
    while Command::new("ip")
        .args(["rule", "del"])
        .args(&rule)
        .output()
        .is_ok_and(|o| o.status.success())
    {}
    if Path::new("/sys/class/net").join(net.bridge).exists() {
        let _ = Command::new("ip")
            .args(["link", "delete", net.bridge])
            .status();
    }

    // 4. The kubelet's cgroups at the root of every hierarchy.
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let kubepods = entry.path().join("kubepods");
        if kubepods.is_dir() {
            remove_cgroup(&kubepods);
            if kubepods.exists() {
                left.push(format!("cgroup {}", kubepods.display()));
            }
        }
    }

    // 5. iptables chains of the kubelet and kube-proxy: the jumps into them, then the chains.
    for ipt in ["iptables", "ip6tables"] {
        if which(ipt).is_none() {
            continue;
        }
        for table in ["filter", "nat", "mangle"] {
            let rules = output(Command::new(ipt).args(["-w", "-t", table, "-S"]));
            for rule in rules.lines() {
                let words = rule_words(rule);
                let jumps_to_kube = words
                    .windows(2)
                    .any(|w| w[0] == "-j" && w[1].starts_with("KUBE-"));
                if words.first().is_some_and(|w| w == "-A")
                    && jumps_to_kube
                    && !words[1].starts_with("KUBE-")
                {
                    let mut delete = Command::new(ipt);
                    delete.args(["-w", "-t", table, "-D"]).args(&words[1..]);
                    let _ = delete.output();
                }
            }
            let chains: Vec<String> = rules
                .lines()
                .filter_map(|l| l.strip_prefix("-N "))
                .filter(|c| c.starts_with("KUBE-"))
                .map(str::to_string)
                .collect();
            for op in ["-F", "-X"] {
                for chain in &chains {
                    let _ = Command::new(ipt)
                        .args(["-w", "-t", table, op, chain])
                        .output();
                }
            }
            let after = output(Command::new(ipt).args(["-w", "-t", table, "-S"]));
            if after.contains("KUBE-") {
                left.push(format!("{ipt} -t {table}: KUBE- rules remain"));
            }
        }
    }

    // 5b. kube-router's ipsets (the rules that used them went with the chains above).
    if let Some(ipset) = which("ipset") {
        let sets = output(Command::new(&ipset).args(["list", "-n"]));
        for set in sets.lines().filter(|s| is_kube_router_set(s)) {
            let _ = Command::new(&ipset).args(["destroy", set]).output();
        }
        let after = output(Command::new(&ipset).args(["list", "-n"]));
        if after.lines().any(is_kube_router_set) {
            left.push("ipset: kube-router's sets remain".into());
        }
    }

    // 6. The sysctls as they were before the first node.
    if let Ok(saved) = std::fs::read_to_string(state("sysctl")) {
        let mut restored = true;
        for line in saved.lines() {
            if let Some((name, value)) = line.split_once(' ')
                && std::fs::write(sysctl_path(name), value).is_err()
            {
                let now = std::fs::read_to_string(sysctl_path(name)).unwrap_or_default();
                if now.trim() != value {
                    left.push(format!("sysctl {name} is {} (was {value})", now.trim()));
                    restored = false;
                }
            }
        }
        if restored {
            let _ = std::fs::remove_file(state("sysctl"));
        }
    }

    // 7. The fixed host paths, and the node's directory.
    remove_run_containerd();
    for path in FIXED_PATHS {
        let _ = std::fs::remove_dir_all(path);
    }
    let _ = std::fs::remove_dir("/run/netns");
    if let Some(base) = &base {
        let _ = std::fs::remove_dir_all(base);
    }
    let _ = std::fs::remove_file(state("pids"));
    let _ = std::fs::remove_file(state("base"));
    if Path::new("/sys/class/net").join(net.bridge).exists() {
        left.push(format!("bridge {}", net.bridge));
    }
    if output(Command::new("ip").args(["rule", "show"])).contains(&format!("iif {}", net.bridge)) {
        left.push(format!("ip rule for {}", net.bridge));
    }
    left
}

/// Whether an ipset is one kube-router's firewall creates: `KUBE-SRC-…`/`KUBE-DST-…` for
/// policies, `inet6:` ones for IPv6, `TMP-…` while it swaps a set.
fn is_kube_router_set(name: &str) -> bool {
    let name = name.strip_prefix("inet6:").unwrap_or(name);
    name.starts_with("KUBE-") || name.starts_with("TMP-")
}

/// The words of a rule as `iptables -S` prints it: double-quoted words (comments) are one word,
/// `\"` inside them a quote.
fn rule_words(rule: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    word.get_or_insert_with(String::new).push(next);
                }
            }
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// What the node's containerd and its shims left in `/run/containerd`, leaving another
/// containerd's (a test of the images runs one) alone: the runc state of the `k8s.io`
/// namespace, shim sockets nobody listens on, then the directories if they are empty.
fn remove_run_containerd() {
    let _ = std::fs::remove_dir_all("/run/containerd/runc/k8s.io");
    let listening = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for entry in std::fs::read_dir("/run/containerd/s")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if !listening.contains(&*path.to_string_lossy()) {
            let _ = std::fs::remove_file(&path);
        }
    }
    for dir in [
        "/run/containerd/s",
        "/run/containerd/fifo",
        "/run/containerd/runc",
        "/run/containerd",
    ] {
        let _ = std::fs::remove_dir(dir);
    }
}

/// SIGTERM to every pid, up to 5 s for them to go (kube-apiserver can linger in its graceful
/// shutdown: nothing here needs it), then SIGKILL.
fn stop_all(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(200));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Whether `pid` runs (a zombie has finished: only its parent's wait is missing).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn processes() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Removes a cgroup directory and its children, innermost first (a cgroup's files go with it).
fn remove_cgroup(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output(command: &mut Command) -> String {
    command
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::rule_words;

    #[test]
    fn a_quoted_comment_is_one_word() {
        assert_eq!(
            rule_words(
                r#"-A INPUT -m comment --comment "kubernetes \"x\" ports" -j KUBE-NODEPORTS"#
            ),
            [
                "-A",
                "INPUT",
                "-m",
                "comment",
                "--comment",
                "kubernetes \"x\" ports",
                "-j",
                "KUBE-NODEPORTS"
            ]
        );
    }
}
