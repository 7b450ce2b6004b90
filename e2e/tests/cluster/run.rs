//! What the steps of the cluster test share: the node, the scenario, a scratch directory, and
//! the `kubectl`, `helm`, client and Vault calls a user would make.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use coffer_e2e::cluster::Node;
use coffer_e2e::process::run;
use coffer_e2e::scenario::{Client, Scenario, repo_root};
use coffer_e2e::{peer_bin, wait_until};

pub const OPERATOR_NAMESPACE: &str = "coffer-system";
pub const RELEASE: &str = "coffer-operator";
/// How long a pod may take to come (back) on a loaded 2-core machine: a wait, never an
/// assertion on speed.
pub const POD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the operator may take to notice a change of Vault or of the KMS's Secret: the KMS
/// is probed every 60 s while healthy.
pub const KMS_NOTICE: Duration = Duration::from_secs(300);

/// The scenario on the node, and what the steps share.
pub struct Run {
    pub node: Node,
    pub scenario: Scenario,
    pub work: tempfile::TempDir,
}

impl Run {
    /// The scenario's namespace.
    pub fn ns(&self) -> &str {
        self.scenario.get("NAMESPACE")
    }

    /// The scenario's Tenant.
    pub fn tenant(&self) -> &str {
        self.scenario.get("TENANT")
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.node.api.run(args)
    }

    /// `kubectl get … -o jsonpath=PATH` in `ns` ("" when absent).
    pub fn jsonpath(&self, ns: &str, what: &str, path: &str) -> String {
        let out = self
            .node
            .api
            .kubectl()
            .args(["get", "-n", ns, what])
            .arg(format!("-o=jsonpath={path}"))
            .output()
            .expect("run kubectl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A value of a Secret, decoded.
    pub fn secret(&self, ns: &str, name: &str, key: &str) -> String {
        let value = self.jsonpath(
            ns,
            &format!("secret/{name}"),
            &format!("{{.data.{}}}", key.replace('.', "\\.")),
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .unwrap_or_else(|e| panic!("Secret {ns}/{name} key {key}: {e}"));
        String::from_utf8(bytes).expect("UTF-8 Secret value")
    }

    pub fn helm(&self) -> Command {
        let mut helm = Command::new(peer_bin("helm"));
        helm.env("KUBECONFIG", &self.node.api.kubeconfig)
            .env("HELM_CACHE_HOME", self.work.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.work.path().join("helm/config"))
            .env("HELM_DATA_HOME", self.work.path().join("helm/data"))
            .current_dir(repo_root());
        helm
    }

    /// `helm ARGS`, panicking with its output when it fails.
    pub fn helm_run(&self, args: &[&str]) {
        let out = self.helm().args(args).output().expect("run helm");
        assert!(
            out.status.success(),
            "helm {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kubectl wait --for=condition=COND WHAT` (as `run.sh` does).
    pub fn wait_condition(&self, ns: &str, what: &str, condition: &str, timeout: Duration) {
        run(
            &format!("kubectl wait {what} for {condition}"),
            self.node
                .api
                .kubectl()
                .args(["wait", "-n", ns, what])
                .arg(format!("--for=condition={condition}"))
                .arg(format!("--timeout={}s", timeout.as_secs())),
        );
    }

    /// The `(status, reason, message)` of condition `type_` of `what` in the scenario's namespace.
    pub fn condition(&self, what: &str, type_: &str) -> (String, String, String) {
        let get = |field: &str| {
            self.jsonpath(
                self.ns(),
                what,
                &format!("{{.status.conditions[?(@.type==\"{type_}\")].{field}}}"),
            )
        };
        (get("status"), get("reason"), get("message"))
    }

    /// Waits until condition `type_` of `what` has `status`; returns its message.
    pub fn wait_status(&self, what: &str, type_: &str, status: &str, timeout: Duration) -> String {
        wait_until(
            &format!("{what} condition {type_}={status}"),
            timeout,
            || {
                let (s, _, m) = self.condition(what, type_);
                (s == status).then_some(m)
            },
            || self.kubectl(&["get", "-n", self.ns(), what, "-o", "yaml"]),
        )
    }

    /// An S3 client of Tenant `tenant`: its Service's name, root user and CA, from the cluster.
    pub fn client_of(&self, tenant: &str, name: &str) -> Client {
        let endpoint = self.jsonpath(self.ns(), &format!("tenant/{tenant}"), "{.status.endpoint}");
        assert!(
            endpoint.starts_with("https://"),
            "Tenant {tenant} status.endpoint: {endpoint:?}"
        );
        let ca_file = self.work.path().join(format!("{tenant}-ca.crt"));
        std::fs::write(
            &ca_file,
            self.secret(self.ns(), &format!("{tenant}-ca"), "ca.crt"),
        )
        .expect("write the Tenant's CA");
        Client {
            endpoint,
            access_key: self.secret(self.ns(), &format!("{tenant}-root"), "rootUser"),
            secret_key: self.secret(self.ns(), &format!("{tenant}-root"), "rootPassword"),
            ca_file,
            work: self.work.path().join(name),
        }
    }

    /// A client of the scenario's Tenant.
    pub fn client(&self, name: &str) -> Client {
        self.client_of(self.tenant(), name)
    }

    /// `client.sh STEP` on the host, with the cluster's DNS.
    pub fn client_step(&self, step: &str, client: &Client) -> String {
        self.scenario
            .client_through(step, client, |c| self.node.with_cluster_dns(&c))
    }

    pub fn try_client_step(&self, step: &str, client: &Client) -> (bool, String) {
        self.scenario
            .try_client_through(step, client, |c| self.node.with_cluster_dns(&c))
    }

    /// `bao ARGS` inside the Vault pod, with the root token the setup Job kept (as `run.sh`
    /// does).
    pub fn bao(&self, args: &[&str]) -> String {
        let token = self.secret("vault", "vault-init", "root-token");
        let token = format!("BAO_TOKEN={token}");
        let mut command = vec![
            "-n",
            "vault",
            "exec",
            "vault-0",
            "--",
            "env",
            &token,
            "BAO_ADDR=https://127.0.0.1:8200",
            "BAO_SKIP_VERIFY=true",
            "bao",
        ];
        command.extend_from_slice(args);
        self.kubectl(&command)
    }

    /// The keys Vault's kv holds for the scenario's namespace.
    pub fn vault_keys(&self) -> String {
        let path = format!("{}/{}", self.scenario.get("KV_ENGINE"), self.ns());
        self.bao(&["list", "-format=json", &path])
    }

    /// Unseals Vault with 3 of the 5 key shares the setup Job kept.
    pub fn unseal_vault(&self) {
        for i in 1..=3 {
            let share = self.secret("vault", "vault-init", &format!("unseal-key-{i}"));
            self.bao(&["operator", "unseal", &share]);
        }
    }

    /// Runs the setup Job of `manifests/vault/` again (it unseals a restarted Vault; every other
    /// step is skipped when done) and waits for it.
    pub fn rerun_vault_setup(&self) {
        self.kubectl(&["-n", "vault", "delete", "job/vault-setup"]);
        let vault_dir = repo_root().join("manifests/vault");
        self.kubectl(&["apply", "-k", vault_dir.to_str().expect("UTF-8 path")]);
        self.wait_condition(
            "vault",
            "job/vault-setup",
            "complete",
            Duration::from_secs(600),
        );
    }

    /// The first pod of the scenario's Tenant.
    pub fn pod(&self) -> String {
        format!("{}-0", self.tenant())
    }

    pub fn pod_uid(&self) -> String {
        self.jsonpath(self.ns(), &format!("pod/{}", self.pod()), "{.metadata.uid}")
    }

    /// Waits until the Tenant's pod is a new one (not `old_uid`), Ready, and the Tenant Ready.
    pub fn wait_new_pod(&self, old_uid: &str) {
        wait_until(
            "the Tenant's pod to be replaced",
            POD_TIMEOUT,
            || {
                let uid = self.pod_uid();
                (!uid.is_empty() && uid != old_uid).then_some(())
            },
            String::new,
        );
        let pod = format!("pod/{}", self.pod());
        self.wait_condition(self.ns(), &pod, "Ready", POD_TIMEOUT);
        let tenant = format!("tenant/{}", self.tenant());
        self.wait_condition(self.ns(), &tenant, "Ready", POD_TIMEOUT);
    }

    /// Whether the Tenant's pod is Ready, and whether its `kes` sidecar runs (one read).
    pub fn pod_state(&self) -> (bool, bool) {
        let state = self.jsonpath(
            self.ns(),
            &format!("pod/{}", self.pod()),
            "{.status.conditions[?(@.type==\"Ready\")].status}|\
             {.status.initContainerStatuses[?(@.name==\"kes\")].state.running.startedAt}",
        );
        let (ready, kes) = state.split_once('|').unwrap_or_default();
        (ready == "True", !kes.is_empty())
    }

    /// SIGKILL to a container's process through containerd: a crash inside the pod.
    pub fn ctr_kill(&self, container: &str) {
        run(
            "ctr tasks kill",
            self.node
                .ctr()
                .args(["tasks", "kill", "--signal", "SIGKILL", container]),
        );
    }

    pub fn kes_restarts(&self) -> u32 {
        self.jsonpath(
            self.ns(),
            &format!("pod/{}", self.pod()),
            "{.status.initContainerStatuses[?(@.name==\"kes\")].restartCount}",
        )
        .parse()
        .unwrap_or(0)
    }

    /// Tenant `tenant`'s pods as `name uid kes-restarts object-server-restarts`, a line each:
    /// equal before and after a step exactly when no pod was replaced or restarted a container.
    pub fn pods_state(&self, tenant: &str) -> String {
        self.kubectl(&[
            "-n",
            self.ns(),
            "get",
            "pods",
            "-l",
            &format!("app.kubernetes.io/instance={tenant}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} \
             {.status.initContainerStatuses[*].restartCount} \
             {.status.containerStatuses[*].restartCount}{\"\\n\"}{end}",
        ])
    }

    /// The IPs of Tenant `tenant`'s pods (the host reaches them on the bridge).
    pub fn pod_ips(&self, tenant: &str) -> Vec<String> {
        self.kubectl(&[
            "-n",
            self.ns(),
            "get",
            "pods",
            "-l",
            &format!("app.kubernetes.io/instance={tenant}"),
            "-o",
            "jsonpath={range .items[*]}{.status.podIP}{\"\\n\"}{end}",
        ])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
    }

    /// The names of Tenant `tenant`'s pods.
    pub fn pod_names(&self, tenant: &str) -> Vec<String> {
        self.kubectl(&[
            "-n",
            self.ns(),
            "get",
            "pods",
            "-l",
            &format!("app.kubernetes.io/instance={tenant}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        ])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
    }

    /// Calls `f` with a local `host:port` that `kubectl port-forward` carries to `port` on the
    /// loopback of pod `pod`, as a user reaches a port the pod does not expose. A failure says
    /// what `kubectl port-forward` said.
    pub fn through_port_forward<T>(
        &self,
        pod: &str,
        port: u16,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        use std::io::BufRead;
        let errors = self
            .work
            .path()
            .join(format!("port-forward-{pod}-{port}.err"));
        let mut child = self
            .node
            .api
            .kubectl()
            .args(["-n", self.ns(), "port-forward", &format!("pod/{pod}")])
            .arg(format!(":{port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&errors).expect("kubectl's error file"))
            .spawn()
            .map_err(|e| format!("kubectl port-forward: {e}"))?;
        // "Forwarding from 127.0.0.1:PORT -> 7373". Its stdout stays open until it is killed:
        // kubectl writes "Handling connection for PORT" there for each connection, and a closed
        // pipe kills it with SIGPIPE just as the connection comes (the client sees it reset).
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line).map_err(|e| e.to_string());
        let local = line
            .split_whitespace()
            .nth(2)
            .filter(|a| a.starts_with("127.0.0.1:"))
            .map(str::to_string);
        let out = match (read, local) {
            (Ok(_), Some(local)) => f(&local),
            _ => Err(format!(
                "kubectl port-forward to {pod}:{port} said {line:?}"
            )),
        };
        let _ = child.kill();
        let _ = child.wait();
        drop(stdout);
        let said = std::fs::read_to_string(&errors).unwrap_or_default();
        let _ = std::fs::remove_file(&errors);
        out.map_err(|e| {
            format!(
                "{e} (kubectl port-forward to {pod}:{port}: {})",
                said.trim()
            )
        })
    }

    /// Waits until StatefulSet `tenant` has rolled out its current template to every replica,
    /// and the Tenant is Ready.
    pub fn wait_rolled_out(&self, tenant: &str) {
        run(
            &format!("kubectl rollout status statefulset/{tenant}"),
            self.node.api.kubectl().args([
                "rollout",
                "status",
                "-n",
                self.ns(),
                &format!("statefulset/{tenant}"),
                &format!("--timeout={}s", POD_TIMEOUT.as_secs()),
            ]),
        );
        self.wait_condition(self.ns(), &format!("tenant/{tenant}"), "Ready", POD_TIMEOUT);
    }

    /// Every line the operator's pods logged (both replicas: either may have been the leader).
    pub fn operator_logs(&self) -> String {
        self.kubectl(&[
            "-n",
            OPERATOR_NAMESPACE,
            "logs",
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "--tail=-1",
            "--prefix",
        ])
    }
}
