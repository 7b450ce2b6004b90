//! The whole stack of the scenario on this machine: a production-like Vault set up with the
//! guide's kv + AppRole steps, kube-apiserver with the CRDs, the scenario's manifests, the
//! `operator` binary reconciling them, and the Tenant's pods run as processes ([`crate::pod`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use tempfile::TempDir;

use crate::kube::KubeApi;
use crate::pod::{Images, Pod};
use crate::process::{Process, wait_until};
use crate::scenario::{Client, Scenario};
use crate::statefulset;
use crate::vault::{AppRole, Vault};

/// How long a pod may take to get ready on a loaded 2-core machine (a wait, never an assertion
/// on speed).
pub const POD_READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The image the operator puts in its pod templates by default.
pub const COFFER_IMAGE: &str = "ghcr.io/coffer-dev/coffer";

/// `<target>/<profile>/`, where cargo puts the workspace's binaries; a test runs from
/// `<target>/<profile>/deps/<name>-<hash>`. Panics naming the missing binaries.
pub fn workspace_bin_dir(needed: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps/")
        .to_path_buf();
    for name in needed {
        assert!(
            dir.join(name).is_file(),
            "`{name}` is not in {}: build it first with `cargo build --workspace --bins` \
             (or run `cargo test --workspace`, which builds every binary)",
            dir.display()
        );
    }
    dir
}

/// Vault, the API server, the operator and the scenario's objects.
pub struct Stack {
    pub scenario: Scenario,
    pub vault: Vault,
    pub approle: AppRole,
    pub api: KubeApi,
    pub bins: PathBuf,
    operator: Process,
    dir: TempDir,
}

impl Stack {
    /// Starts everything and applies the scenario's manifests (the KMS pointed at this Vault),
    /// then waits until the KMS reports Vault healthy.
    pub fn start() -> Stack {
        let bins = workspace_bin_dir(&["operator", "kes", "object-server"]);
        let scenario = Scenario::load();
        let dir = tempfile::Builder::new()
            .prefix("coffer-stack-")
            .tempdir()
            .expect("temp dir");
        let vault = Vault::production();
        let approle =
            vault.kv_with_approle(scenario.get("KV_ENGINE"), 1, scenario.get("APPROLE_ROLE"));
        let api = KubeApi::start();

        api.install_crds();
        let manifests = scenario.manifests();
        let (first, rest) = manifests.split_first().expect("scenario has manifests");
        // The namespace first; then what the Vault setup writes in kind (its Secrets); then the rest.
        api.apply(&std::fs::read_to_string(first).expect("read manifest"));
        let ns = scenario.get("NAMESPACE");
        let ca_pem = std::fs::read(vault.ca_cert.as_ref().expect("production Vault has a CA"))
            .expect("read Vault CA");
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        api.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {}, namespace: {ns}}}\n\
             data: {{roleId: {}, secretId: {}}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: {}, namespace: {ns}}}\ndata: {{ca.crt: {}}}\n",
            scenario.get("APPROLE_SECRET"),
            b64(approle.role_id.as_bytes()),
            b64(approle.secret_id.as_bytes()),
            scenario.get("VAULT_CA_SECRET"),
            b64(&ca_pem),
        ));
        for manifest in rest {
            let text = std::fs::read_to_string(manifest).expect("read manifest");
            api.apply(&point_at_vault(&text, &vault.addr));
        }

        let mut command = Command::new(bins.join("operator"));
        command
            .args(["run", "--identity", "e2e", "--namespace", ns])
            .args(["--lease-namespace", ns])
            // Port 0: nothing reads the operator's metrics here, and a port picked free could be
            // taken by another test before the operator binds it.
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", &api.kubeconfig)
            .env("RUST_LOG", "info");
        let operator = Process::spawn("operator", command, &dir.path().join("operator.log"));
        let stack = Stack {
            scenario,
            vault,
            approle,
            api,
            bins,
            operator,
            dir,
        };
        stack.wait_condition(
            "kms",
            stack.scenario.get("KMS"),
            "Ready",
            "True",
            stack.scenario.seconds("KMS_READY_TIMEOUT"),
        );
        stack
    }

    /// The scenario's namespace.
    pub fn namespace(&self) -> &str {
        self.scenario.get("NAMESPACE")
    }

    /// A scratch directory that lives as long as the stack.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The operator's error lines and last lines, for failure messages.
    pub fn operator_log(&self) -> String {
        self.operator.log_tail()
    }

    /// Everything the operator has logged so far.
    pub fn operator_full_log(&self) -> String {
        self.operator.log()
    }

    /// `kubectl get KIND NAME -o jsonpath=…` in the scenario's namespace ("" when absent).
    pub fn jsonpath(&self, kind: &str, name: &str, path: &str) -> String {
        let out = self
            .api
            .kubectl()
            .args(["get", kind, name, "-n", self.namespace()])
            .arg(format!("-o=jsonpath={path}"))
            .output()
            .expect("run kubectl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `(status, reason, message)` of condition `type_` of `kind/name`.
    pub fn condition(&self, kind: &str, name: &str, type_: &str) -> (String, String, String) {
        let get = |field: &str| {
            self.jsonpath(
                kind,
                name,
                &format!("{{.status.conditions[?(@.type==\"{type_}\")].{field}}}"),
            )
        };
        (get("status"), get("reason"), get("message"))
    }

    /// Waits until condition `type_` of `kind/name` has `status`; returns its message.
    pub fn wait_condition(
        &self,
        kind: &str,
        name: &str,
        type_: &str,
        status: &str,
        timeout: Duration,
    ) -> String {
        wait_until(
            &format!("{kind}/{name} condition {type_}={status}"),
            timeout,
            || {
                self.operator.assert_running();
                let (s, _, m) = self.condition(kind, name, type_);
                (s == status).then_some(m)
            },
            || {
                format!(
                    "{}\n{}",
                    self.api
                        .run(&["get", kind, name, "-n", self.namespace(), "-o", "yaml"]),
                    self.operator.log_tail()
                )
            },
        )
    }

    /// Waits for the Tenant's StatefulSet and returns its first pod, not started yet.
    pub fn tenant_pod(&self) -> Pod {
        let sts = statefulset::wait_for(
            &self.api,
            self.namespace(),
            self.scenario.get("TENANT"),
            Duration::from_secs(120),
        );
        let name = statefulset::pod_names(&sts)
            .into_iter()
            .next()
            .expect("at least one replica");
        let root = self.dir.path().join(&name);
        std::fs::create_dir_all(&root).expect("pod dir");
        Pod::new(
            &self.api.kubeconfig,
            self.namespace(),
            &name,
            statefulset::template(&sts),
            &statefulset::claim_names(&sts),
            Images::new().with(COFFER_IMAGE, &self.bins),
            &root,
        )
    }

    /// Starts `pod`, waits until it is ready, reports that as the StatefulSet controller would
    /// (the StatefulSet as it is now), and waits for the Tenant to be Ready.
    pub fn bring_up(&self, pod: &mut Pod) {
        pod.start();
        self.settle(pod);
    }

    /// Waits until the running `pod` is ready, reports it, and waits for the Tenant to be Ready.
    pub fn settle(&self, pod: &Pod) {
        pod.wait_ready(POD_READY_TIMEOUT);
        let tenant = self.scenario.get("TENANT");
        let sts = statefulset::get(&self.api, self.namespace(), tenant).expect("StatefulSet");
        statefulset::report_ready(&self.api, &sts, 1);
        self.wait_condition(
            "tenant",
            tenant,
            "Ready",
            "True",
            self.scenario.seconds("TENANT_READY_TIMEOUT"),
        );
    }

    /// Follows a rolling update as the StatefulSet controller would: when the operator's pod
    /// template differs from the one `pod` runs, `pod` restarts from it; then it settles.
    pub fn roll(&self, pod: &mut Pod) {
        let tenant = self.scenario.get("TENANT");
        let sts = statefulset::get(&self.api, self.namespace(), tenant).expect("StatefulSet");
        if statefulset::template_hash(&sts) != statefulset::hash_of(pod.template()) {
            pod.restart_with(statefulset::template(&sts));
        }
        self.settle(pod);
    }

    /// An S3 client of the Tenant served by `pod`: its root credentials and CA from the API server.
    pub fn client(&self, pod: &Pod, work: &str) -> Client {
        let tenant = self.scenario.get("TENANT");
        let secret = |name: &str, key: &str| {
            let v = self.jsonpath(
                "secret",
                name,
                &format!("{{.data.{}}}", key.replace('.', "\\.")),
            );
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .unwrap_or_else(|e| panic!("Secret {name} key {key}: {e}"));
            String::from_utf8(bytes).expect("UTF-8 Secret value")
        };
        let ca_file = self.dir.path().join(format!("{tenant}-ca.crt"));
        std::fs::write(&ca_file, secret(&format!("{tenant}-ca"), "ca.crt")).expect("write CA");
        let port = pod.host_port(9000);
        Client {
            endpoint: format!("https://127.0.0.1:{port}"),
            access_key: secret(&format!("{tenant}-root"), "rootUser"),
            secret_key: secret(&format!("{tenant}-root"), "rootPassword"),
            ca_file,
            work: self.dir.path().join(work),
        }
    }
}

/// The KMS manifest with its `endpoint:` pointed at `addr` (every other line as written).
pub fn point_at_vault(manifest: &str, addr: &str) -> String {
    manifest
        .lines()
        .map(|line| match line.split_once("endpoint:") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}endpoint: {addr}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_endpoint_line_changes() {
        let m = "spec:\n  vault:\n    endpoint: https://vault.vault.svc:8200\n    engine: kv # endpoint: no\n";
        assert_eq!(
            super::point_at_vault(m, "https://127.0.0.1:1"),
            "spec:\n  vault:\n    endpoint: https://127.0.0.1:1\n    engine: kv # endpoint: no"
        );
    }
}
