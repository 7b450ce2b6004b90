//! A pod template run as local processes, without a kubelet: what the kubelet would do with the
//! pod of a StatefulSet, done on this machine so that tests exercise exactly what an operator wrote.
//!
//! - Images: an image names a directory of binaries ([`Images`]); a container's `command[0]` is
//!   looked up in it (Coffer's image holds `object-server`, `kes` and `operator`).
//! - Volumes: Secrets and ConfigMaps are read from the API server and written as files under a
//!   temp dir (with `items`, `defaultMode`); `emptyDir` is a fresh directory; a claim (a
//!   `volumeClaimTemplates` entry or `persistentVolumeClaim`) is a directory that survives restarts.
//! - Every mount path and every container port goes through a [`PathMap`]: the files of ConfigMap
//!   volumes, the environment and the arguments are rewritten so the processes find their files
//!   under the temp dir and listen on free loopback ports. Secret files are written byte for byte.
//! - Environment: `value` (with `$(VAR)` expansion), `secretKeyRef`, `configMapKeyRef`, `fieldRef`
//!   and `envFrom`, resolved from the API server when the container starts, as the kubelet does.
//! - Start order: init containers in order; a native sidecar (an init container with
//!   `restartPolicy: Always`) is started and the next one waits for its startup probe; a plain
//!   init container must exit 0. Then the containers.
//! - Probes (`httpGet` — TLS unverified, as the kubelet does —, `tcpSocket`, `exec`) are polled on
//!   request: [`Pod::probe`], [`Pod::wait_ready`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodTemplateSpec, Probe, Volume};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::pathmap::PathMap;
use crate::process::{Process, free_port, peer_bin, wait_until};

/// Image names (without tag or digest) → the directory holding that image's binaries.
#[derive(Clone, Debug, Default)]
pub struct Images {
    dirs: BTreeMap<String, PathBuf>,
}

impl Images {
    /// No image known yet.
    pub fn new() -> Images {
        Images::default()
    }

    /// Maps `image` (e.g. `ghcr.io/coffer-dev/coffer`, any tag) to the binaries in `dir`.
    pub fn with(mut self, image: &str, dir: &Path) -> Images {
        self.dirs
            .insert(repository(image).to_string(), dir.to_path_buf());
        self
    }

    /// The host binary for `command` in `image`; panics naming the image when it is not mapped.
    fn binary(&self, image: &str, command: &str) -> PathBuf {
        let dir = self.dirs.get(repository(image)).unwrap_or_else(|| {
            panic!(
                "image {image:?} is not mapped to local binaries (mapped: {:?})",
                self.dirs.keys()
            )
        });
        let name = command.rsplit('/').next().unwrap_or(command);
        let bin = dir.join(name);
        assert!(
            bin.is_file(),
            "image {image:?}: no binary {name:?} in {}",
            dir.display()
        );
        bin
    }
}

/// `ghcr.io/x/y:tag` → `ghcr.io/x/y` (a registry port such as `host:5000/x` is kept).
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

/// Which probe of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

struct Running {
    spec: Container,
    process: Process,
}

/// One pod of a template, running as local processes.
pub struct Pod {
    kubeconfig: PathBuf,
    namespace: String,
    name: String,
    images: Images,
    root: PathBuf,
    template: PodTemplateSpec,
    claims: Vec<String>,
    map: PathMap,
    starts: u32,
    running: Vec<Running>,
}

/// How long a start-up (the sidecar's startup probe, an init container) may take on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

impl Pod {
    /// Prepares pod `name` of `template` in `namespace` of the API server that `kubeconfig`
    /// reaches, with its files under `root` (which should outlive the pod). `claims` are the names of the StatefulSet's
    /// `volumeClaimTemplates`: volumes of that name are persistent directories. Nothing runs yet.
    pub fn new(
        kubeconfig: &Path,
        namespace: &str,
        name: &str,
        template: PodTemplateSpec,
        claims: &[String],
        images: Images,
        root: &Path,
    ) -> Pod {
        let mut map = PathMap::new();
        let spec = template.spec.as_ref().expect("pod template has a spec");
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            for p in c.ports.iter().flatten() {
                map.port(p.container_port as u16, free_port());
            }
        }
        Pod {
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.into(),
            name: name.into(),
            images,
            root: root.to_path_buf(),
            template,
            claims: claims.to_vec(),
            map,
            starts: 0,
            running: Vec::new(),
        }
    }

    /// The loopback port the container port `port` is served on.
    pub fn host_port(&self, port: u16) -> u16 {
        self.map.host_port(port)
    }

    /// The host path of a container path (under a mount), if mounted.
    pub fn host_path(&self, container_path: &str) -> Option<PathBuf> {
        self.map.host_path(container_path)
    }

    /// The pod template the processes run.
    pub fn template(&self) -> &PodTemplateSpec {
        &self.template
    }

    fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        self.template
            .spec
            .as_ref()
            .expect("pod template has a spec")
    }

    /// Writes the volumes and starts every container in the kubelet's order.
    pub fn start(&mut self) {
        assert!(self.running.is_empty(), "pod {} already runs", self.name);
        self.starts += 1;
        self.materialize_volumes();
        let spec = self.spec().clone();
        for init in spec.init_containers.iter().flatten() {
            if init.restart_policy.as_deref() == Some("Always") {
                self.start_container(init);
                if init.startup_probe.is_some() {
                    self.wait_probe(&init.name, ProbeKind::Startup, START_TIMEOUT);
                }
            } else {
                self.run_to_completion(init);
            }
        }
        for c in &spec.containers {
            self.start_container(c);
        }
    }

    /// Stops every container (SIGTERM, then SIGKILL after the grace period): the containers
    /// first, then the sidecars in reverse order, as the kubelet does.
    pub fn stop(&mut self) {
        let grace = Duration::from_secs(
            self.spec()
                .termination_grace_period_seconds
                .unwrap_or(30)
                .clamp(1, 15) as u64,
        );
        while let Some(r) = self.running.pop() {
            r.process.terminate(grace);
        }
    }

    /// Stops the pod and starts it again from `template` with freshly written files (what a
    /// rolling update of the StatefulSet does to this pod). Claims keep their contents.
    pub fn restart_with(&mut self, template: PodTemplateSpec) {
        self.stop();
        self.template = template;
        self.start();
    }

    /// Kills container `name` (SIGKILL), as a crash would.
    pub fn kill_container(&mut self, name: &str) {
        let r = self.running_mut(name);
        r.process.kill();
    }

    /// Starts container `name` again after it stopped (the kubelet's `restartPolicy: Always`),
    /// with the files written at the pod's start and its environment resolved anew.
    pub fn restart_container(&mut self, name: &str) {
        let i = self
            .running
            .iter()
            .position(|r| r.spec.name == name)
            .unwrap_or_else(|| panic!("no container {name:?} in pod {}", self.name));
        let spec = self.running[i].spec.clone();
        self.running[i].process.kill();
        self.running[i].process = self.spawn(&spec);
    }

    /// Whether container `name`'s process is alive.
    pub fn is_running(&self, name: &str) -> bool {
        self.running
            .iter()
            .any(|r| r.spec.name == name && r.process.is_running())
    }

    /// Everything container `name` has logged (this start).
    pub fn log(&self, name: &str) -> String {
        self.running
            .iter()
            .find(|r| r.spec.name == name)
            .map(|r| r.process.log())
            .unwrap_or_default()
    }

    /// The last log lines of every container, for failure messages.
    pub fn logs(&self) -> String {
        self.running
            .iter()
            .map(|r| r.process.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn running_mut(&mut self, name: &str) -> &mut Running {
        let pod = self.name.clone();
        self.running
            .iter_mut()
            .find(|r| r.spec.name == name)
            .unwrap_or_else(|| panic!("no container {name:?} in pod {pod}"))
    }

    /// Runs the `kind` probe of container `name` once. A container without that probe passes
    /// (as in Kubernetes); a container whose process is gone fails.
    pub fn probe(&self, name: &str, kind: ProbeKind) -> bool {
        let Some(r) = self.running.iter().find(|r| r.spec.name == name) else {
            return false;
        };
        if !r.process.is_running() {
            return false;
        }
        let probe = match kind {
            ProbeKind::Startup => &r.spec.startup_probe,
            ProbeKind::Readiness => &r.spec.readiness_probe,
            ProbeKind::Liveness => &r.spec.liveness_probe,
        };
        match probe {
            None => true,
            Some(p) => self.run_probe(&r.spec, p),
        }
    }

    /// Whether every container (sidecars included) passes its readiness probe now.
    pub fn is_ready(&self) -> bool {
        !self.running.is_empty()
            && self
                .running
                .iter()
                .all(|r| self.probe(&r.spec.name, ProbeKind::Readiness))
    }

    /// Polls until the `kind` probe of container `name` passes; panics with the logs after `timeout`.
    pub fn wait_probe(&self, name: &str, kind: ProbeKind, timeout: Duration) {
        wait_until(
            &format!("{kind:?} probe of container {name} in pod {}", self.name),
            timeout,
            || {
                if let Some(r) = self.running.iter().find(|r| r.spec.name == name) {
                    r.process.assert_running();
                }
                self.probe(name, kind).then_some(())
            },
            || self.logs(),
        );
    }

    /// Polls until every container is ready; panics with the logs after `timeout`.
    pub fn wait_ready(&self, timeout: Duration) {
        wait_until(
            &format!("pod {} ready", self.name),
            timeout,
            || self.is_ready().then_some(()),
            || self.logs(),
        );
    }

    fn run_probe(&self, container: &Container, probe: &Probe) -> bool {
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        if let Some(tcp) = &probe.tcp_socket {
            let port = self.probe_port(container, &tcp.port);
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            return std::net::TcpStream::connect_timeout(&addr, timeout).is_ok();
        }
        if let Some(http) = &probe.http_get {
            let port = self.probe_port(container, &http.port);
            let scheme = http
                .scheme
                .as_deref()
                .unwrap_or("HTTP")
                .to_ascii_lowercase();
            let path = http.path.as_deref().unwrap_or("/");
            let mut curl = Command::new("curl");
            curl.args(["-k", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg("--max-time")
                .arg(timeout.as_secs().to_string());
            for h in http.http_headers.iter().flatten() {
                curl.arg("-H").arg(format!("{}: {}", h.name, h.value));
            }
            curl.arg(format!("{scheme}://127.0.0.1:{port}{path}"));
            return curl.output().is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u16>()
                    .is_ok_and(|code| (200..400).contains(&code))
            });
        }
        if let Some(exec) = &probe.exec {
            let argv: Vec<String> = exec
                .command
                .iter()
                .flatten()
                .map(|a| self.map.rewrite(a))
                .collect();
            let Some((program, args)) = argv.split_first() else {
                return false;
            };
            let image = container.image.as_deref().unwrap_or_default();
            let mut command = Command::new(self.images.binary(image, program));
            command
                .args(args)
                .env_clear()
                .envs(self.environment(container));
            return run_with_timeout(command, timeout);
        }
        panic!(
            "container {}: probe kind not supported by the pod runner: {probe:?}",
            container.name
        );
    }

    fn probe_port(&self, container: &Container, port: &IntOrString) -> u16 {
        let number = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => {
                container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .unwrap_or_else(|| {
                        panic!("container {}: no port named {name:?}", container.name)
                    })
                    .container_port
            }
        };
        self.map.host_port(number as u16)
    }

    fn materialize_volumes(&mut self) {
        let start_dir = self.root.join(format!("start-{}", self.starts));
        let spec = self.spec().clone();
        let mut volume_dirs = BTreeMap::new();
        for volume in spec.volumes.iter().flatten() {
            let dir = self.write_volume(volume, &start_dir);
            volume_dirs.insert(volume.name.clone(), dir);
        }
        for claim in &self.claims {
            let dir = self.root.join("claims").join(claim);
            std::fs::create_dir_all(&dir).expect("claim dir");
            volume_dirs.entry(claim.clone()).or_insert(dir);
        }
        // Mounts are per container in Kubernetes; Coffer's containers never mount two volumes
        // at one path, so one map serves the whole pod.
        let mut map = PathMap::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            for p in c.ports.iter().flatten() {
                let port = p.container_port as u16;
                map.port(port, self.map.host_port(port));
            }
            for m in c.volume_mounts.iter().flatten() {
                let dir = volume_dirs.get(&m.name).unwrap_or_else(|| {
                    panic!("container {}: volume {:?} is not defined", c.name, m.name)
                });
                let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    Some(sub) => dir.join(sub),
                    None => dir.clone(),
                };
                map.mount(&m.mount_path, &host);
            }
        }
        // ConfigMap files name container paths and ports: rewrite them now that the map is whole.
        for volume in spec.volumes.iter().flatten() {
            if volume.config_map.is_some() {
                rewrite_files(&volume_dirs[&volume.name], &map);
            }
        }
        self.map = map;
    }

    fn write_volume(&self, volume: &Volume, start_dir: &Path) -> PathBuf {
        let dir = start_dir.join("volumes").join(&volume.name);
        if let Some(claim) = &volume.persistent_volume_claim {
            let dir = self.root.join("claims").join(&claim.claim_name);
            std::fs::create_dir_all(&dir).expect("claim dir");
            return dir;
        }
        std::fs::create_dir_all(&dir).expect("volume dir");
        if volume.empty_dir.is_some() {
            return dir;
        }
        let (data, items, mode, optional) = if let Some(s) = &volume.secret {
            let name = s
                .secret_name
                .as_deref()
                .expect("secret volume names a Secret");
            (
                self.object_data("secret", name),
                s.items.clone(),
                s.default_mode,
                s.optional,
            )
        } else if let Some(c) = &volume.config_map {
            (
                self.object_data("configmap", &c.name),
                c.items.clone(),
                c.default_mode,
                c.optional,
            )
        } else {
            panic!(
                "volume {:?}: kind not supported by the pod runner",
                volume.name
            );
        };
        let data = match data {
            Some(d) => d,
            None if optional == Some(true) => return dir,
            None => panic!(
                "volume {:?}: its object does not exist in namespace {}",
                volume.name, self.namespace
            ),
        };
        let files: Vec<(String, String, Option<i32>)> = match items {
            Some(items) => items.into_iter().map(|i| (i.key, i.path, i.mode)).collect(),
            None => data.keys().map(|k| (k.clone(), k.clone(), None)).collect(),
        };
        for (key, path, item_mode) in files {
            let bytes = data.get(&key).unwrap_or_else(|| {
                panic!("volume {:?}: its object has no key {key:?}", volume.name)
            });
            let file = dir.join(&path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).expect("volume subdir");
            }
            std::fs::write(&file, bytes).expect("write volume file");
            let mode = item_mode.or(mode).unwrap_or(0o644) as u32;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                .expect("chmod volume file");
        }
        dir
    }

    /// The data of Secret or ConfigMap `name` (decoded), or `None` when it does not exist.
    fn object_data(&self, kind: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let out = Command::new(peer_bin("kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["get", kind, name, "-n", &self.namespace, "-o", "json"])
            .output()
            .expect("run kubectl");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("NotFound"), "kubectl get {kind} {name}: {err}");
            return None;
        }
        let object: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let mut data = BTreeMap::new();
        let b64 = base64::engine::general_purpose::STANDARD;
        let encoded = if kind == "secret" {
            "data"
        } else {
            "binaryData"
        };
        for (k, v) in object[encoded].as_object().into_iter().flatten() {
            let value = b64
                .decode(v.as_str().unwrap_or_default())
                .expect("base64 value");
            data.insert(k.clone(), value);
        }
        if kind == "configmap" {
            for (k, v) in object["data"].as_object().into_iter().flatten() {
                data.insert(
                    k.clone(),
                    v.as_str().unwrap_or_default().as_bytes().to_vec(),
                );
            }
        }
        Some(data)
    }

    fn lookup(&self, kind: &str, name: &str, key: &str, optional: Option<bool>) -> Option<String> {
        let value = self
            .object_data(kind, name)
            .and_then(|d| d.get(key).cloned())
            .map(|v| String::from_utf8(v).expect("env value is UTF-8"));
        if value.is_none() && optional != Some(true) {
            panic!(
                "{kind} {name:?} (namespace {}) has no key {key:?}",
                self.namespace
            );
        }
        value
    }

    fn field(&self, path: &str) -> String {
        match path {
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.namespace.clone(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
            "spec.nodeName" => "localhost".into(),
            "spec.serviceAccountName" => self
                .spec()
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".into()),
            other => panic!("fieldRef {other:?} not supported by the pod runner"),
        }
    }

    /// The container's environment as the kubelet builds it, with paths and ports mapped.
    fn environment(&self, container: &Container) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOSTNAME".into(), self.name.clone()),
            ("HOME".into(), self.root.display().to_string()),
        ];
        let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
            env.retain(|(n, _)| *n != k);
            env.push((k, v));
        };
        for from in container.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            let (kind, name, optional) = match (&from.secret_ref, &from.config_map_ref) {
                (Some(s), _) => ("secret", s.name.clone(), s.optional),
                (_, Some(c)) => ("configmap", c.name.clone(), c.optional),
                _ => continue,
            };
            match self.object_data(kind, &name) {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into(),
                        );
                    }
                }
                None if optional == Some(true) => {}
                None => panic!("envFrom {kind} {name:?} does not exist"),
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(value) = self.env_value(var, &env) {
                set(&mut env, var.name.clone(), self.map.rewrite(&value));
            }
        }
        env
    }

    fn env_value(&self, var: &EnvVar, env: &[(String, String)]) -> Option<String> {
        let Some(from) = &var.value_from else {
            return Some(expand(var.value.as_deref().unwrap_or_default(), env));
        };
        if let Some(s) = &from.secret_key_ref {
            return self.lookup("secret", &s.name, &s.key, s.optional);
        }
        if let Some(c) = &from.config_map_key_ref {
            return self.lookup("configmap", &c.name, &c.key, c.optional);
        }
        if let Some(f) = &from.field_ref {
            return Some(self.field(&f.field_path));
        }
        panic!("env {:?}: source not supported by the pod runner", var.name);
    }

    fn spawn(&self, container: &Container) -> Process {
        let env = self.environment(container);
        let expanded = |items: &Option<Vec<String>>| -> Vec<String> {
            items
                .iter()
                .flatten()
                .map(|a| self.map.rewrite(&expand(a, &env)))
                .collect()
        };
        let command = expanded(&container.command);
        let args = expanded(&container.args);
        let program = command.first().unwrap_or_else(|| {
            panic!(
                "container {}: no command (image entrypoints are not known)",
                container.name
            )
        });
        let image = container.image.as_deref().unwrap_or_default();
        let mut cmd = Command::new(self.images.binary(image, program));
        cmd.args(&command[1..]).args(&args).env_clear().envs(env);
        let cwd = container
            .working_dir
            .as_deref()
            .and_then(|w| self.map.host_path(w))
            .unwrap_or_else(|| self.root.clone());
        cmd.current_dir(cwd);
        let logs = self.root.join("logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let log = logs.join(format!(
            "{}-{}-{}.log",
            container.name,
            self.starts,
            free_port()
        ));
        Process::spawn(&format!("{}/{}", self.name, container.name), cmd, &log)
    }

    fn start_container(&mut self, container: &Container) {
        let process = self.spawn(container);
        self.running.push(Running {
            spec: container.clone(),
            process,
        });
    }

    fn run_to_completion(&self, container: &Container) {
        let process = self.spawn(container);
        wait_until(
            &format!("init container {} to finish", container.name),
            START_TIMEOUT,
            || (!process.is_running()).then_some(()),
            || process.log_tail(),
        );
        // `Process` does not keep the exit status; a failed init container shows in its log and
        // in the next container failing to start.
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        while let Some(r) = self.running.pop() {
            r.process.kill();
        }
    }
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`, and
/// anything else is left as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().rev().find(|(k, _)| k == &inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn rewrite_files(dir: &Path, map: &PathMap) {
    for entry in std::fs::read_dir(dir).expect("read volume dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rewrite_files(&path, map);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            std::fs::write(&path, map.rewrite(&text)).expect("rewrite volume file");
        }
    }
}

fn run_with_timeout(mut command: Command, timeout: Duration) -> bool {
    let Ok(mut child) = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repository_drops_tag_and_digest_only() {
        assert_eq!(
            repository("ghcr.io/coffer-dev/coffer:0.1.0"),
            "ghcr.io/coffer-dev/coffer"
        );
        assert_eq!(
            repository("ghcr.io/coffer-dev/coffer"),
            "ghcr.io/coffer-dev/coffer"
        );
        assert_eq!(repository("host:5000/coffer"), "host:5000/coffer");
        assert_eq!(
            repository("host:5000/coffer:1@sha256:ab"),
            "host:5000/coffer"
        );
    }

    #[test]
    fn dollar_paren_expansion_follows_kubernetes() {
        let env = vec![
            ("A".to_string(), "1".to_string()),
            ("B".into(), "x/$(A)".into()),
        ];
        assert_eq!(expand("$(A)-$(B)", &env), "1-x/$(A)");
        assert_eq!(expand("$$(A) $(C) $( $", &env), "$(A) $(C) $( $");
        assert_eq!(expand("plain", &env), "plain");
    }
}
