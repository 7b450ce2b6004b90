//! The scenario of `e2e/scenario/` (the one `e2e/kind/run.sh` runs in kind) on a real node
//! (`coffer_e2e::cluster`: kubelet, containerd, runc, kube-proxy, CoreDNS), exactly as a user
//! runs it: `helm install charts/coffer-operator`, `kubectl apply -k manifests/vault/` (its Job
//! inits and unseals Vault and writes the KMS's Secrets), the example KMS and Tenant; both Ready;
//! the AWS CLI and `mc` write and read through the Tenant's Service by its DNS name (SSE AES256
//! checked), and the Tenant's key is in Vault's kv. The images are built from the workspace's
//! binaries and the peers (`coffer_e2e::image`) and imported into containerd: no registry.
//!
//! Then, each with its assertion: the pod deleted comes back with its data; the KES sidecar
//! killed inside the pod (the pod is not ready until it is back); Vault stopped for 60 s (I/O
//! under the cached key goes on); a certificate rotation rolls the pod while a client keeps
//! reading (failed reads counted); `helm upgrade` to a new image tag rolls the Tenant and no
//! object is lost; the Tenant deleted (what it owns goes, its volume and its key in Vault stay).
//!
//! The clients run on the host: it reaches the bridge's pods and ClusterIPs directly, and gets
//! the cluster's DNS for `store.coffer-demo.svc`. A failure prints the pods, the events and the
//! containers' logs (the node does, when it is dropped while panicking).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use coffer_e2e::cluster::{Image, Node};
use coffer_e2e::image;
use coffer_e2e::process::run;
use coffer_e2e::scenario::{Client, Scenario, repo_root};
use coffer_e2e::stack::workspace_bin_dir;
use coffer_e2e::{peer_bin, wait_until};

const OPERATOR_NAMESPACE: &str = "coffer-system";
const RELEASE: &str = "coffer-operator";
const PAUSE_TAG: &str = "registry.k8s.io/pause:3.10";
/// The tag `helm upgrade` moves the operator to (the same binaries, a new name).
const UPGRADE_TAG: &str = "0.1.0-e2e-upgrade";
const POD_TIMEOUT: Duration = Duration::from_secs(300);

/// Prints the time of the step that just ended and starts the next.
fn step(name: &str, since: &mut Instant, total: Instant) {
    eprintln!(
        "[cluster] {name}: {:.1?} (total {:.1?})",
        since.elapsed(),
        total.elapsed()
    );
    *since = Instant::now();
}

/// The scenario on the node, and what the steps share.
struct Run {
    node: Node,
    scenario: Scenario,
    work: tempfile::TempDir,
}

impl Run {
    fn ns(&self) -> &str {
        self.scenario.get("NAMESPACE")
    }

    fn tenant(&self) -> &str {
        self.scenario.get("TENANT")
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.node.api.run(args)
    }

    /// `kubectl get … -o jsonpath=PATH` in `ns` ("" when absent).
    fn jsonpath(&self, ns: &str, what: &str, path: &str) -> String {
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

    fn secret(&self, ns: &str, name: &str, key: &str) -> String {
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

    fn helm(&self) -> Command {
        let mut helm = Command::new(peer_bin("helm"));
        helm.env("KUBECONFIG", &self.node.api.kubeconfig)
            .env("HELM_CACHE_HOME", self.work.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.work.path().join("helm/config"))
            .env("HELM_DATA_HOME", self.work.path().join("helm/data"))
            .current_dir(repo_root());
        helm
    }

    /// `kubectl wait --for=condition=COND WHAT` (as `run.sh` does).
    fn wait_condition(&self, ns: &str, what: &str, condition: &str, timeout: Duration) {
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

    /// The S3 client of the Tenant: its Service's name, root user and CA, from the cluster.
    fn client(&self, name: &str) -> Client {
        let tenant = self.tenant();
        let endpoint = self.jsonpath(self.ns(), &format!("tenant/{tenant}"), "{.status.endpoint}");
        assert!(
            endpoint.starts_with("https://"),
            "Tenant status.endpoint: {endpoint:?}"
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

    /// `client.sh STEP` on the host, with the cluster's DNS.
    fn client_step(&self, step: &str, client: &Client) -> String {
        self.scenario
            .client_through(step, client, |c| self.node.with_cluster_dns(&c))
    }

    fn try_client_step(&self, step: &str, client: &Client) -> (bool, String) {
        self.scenario
            .try_client_through(step, client, |c| self.node.with_cluster_dns(&c))
    }

    /// The keys Vault's kv holds for the scenario's namespace, read inside the Vault pod with
    /// the root token the setup Job kept (as `run.sh` does).
    fn vault_keys(&self) -> String {
        let token = self.secret("vault", "vault-init", "root-token");
        let path = format!("{}/{}", self.scenario.get("KV_ENGINE"), self.ns());
        self.kubectl(&[
            "-n",
            "vault",
            "exec",
            "vault-0",
            "--",
            "env",
            &format!("BAO_TOKEN={token}"),
            "BAO_ADDR=https://127.0.0.1:8200",
            "BAO_SKIP_VERIFY=true",
            "bao",
            "list",
            "-format=json",
            &path,
        ])
    }

    fn pod(&self) -> String {
        format!("{}-0", self.tenant())
    }

    fn pod_uid(&self) -> String {
        self.jsonpath(self.ns(), &format!("pod/{}", self.pod()), "{.metadata.uid}")
    }

    /// Waits until the Tenant's pod is a new one (not `old_uid`), Ready, and the Tenant Ready.
    fn wait_new_pod(&self, old_uid: &str) {
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
    fn pod_state(&self) -> (bool, bool) {
        let state = self.jsonpath(
            self.ns(),
            &format!("pod/{}", self.pod()),
            "{.status.conditions[?(@.type==\"Ready\")].status}|\
             {.status.initContainerStatuses[?(@.name==\"kes\")].state.running.startedAt}",
        );
        let (ready, kes) = state.split_once('|').unwrap_or_default();
        (ready == "True", !kes.is_empty())
    }

    fn helm_install(&self) {
        let out = self
            .helm()
            .args(["install", RELEASE, "charts/coffer-operator"])
            .args(["--namespace", OPERATOR_NAMESPACE, "--create-namespace"])
            .args([
                "--set",
                "image.pullPolicy=Never",
                "--wait",
                "--timeout",
                "5m",
            ])
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm install failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.node.api.wait_crds_established();
    }

    /// SIGKILL to a container's process through containerd: a crash inside the pod.
    fn ctr_kill(&self, container: &str) {
        run(
            "ctr tasks kill",
            self.node
                .ctr()
                .args(["tasks", "kill", "--signal", "SIGKILL", container]),
        );
    }

    fn kes_restarts(&self) -> u32 {
        self.jsonpath(
            self.ns(),
            &format!("pod/{}", self.pod()),
            "{.status.initContainerStatuses[?(@.name==\"kes\")].restartCount}",
        )
        .parse()
        .unwrap_or(0)
    }
}

/// Builds the images the scenario needs into `dir`.
fn build_images(dir: &Path) -> (Image, Vec<Image>) {
    let bins = workspace_bin_dir(&["operator", "kes", "object-server"]);
    let coffer_tag = image::coffer_tag().expect("the chart's appVersion");
    let upgrade_tag = format!("{}:{UPGRADE_TAG}", image::COFFER_REPOSITORY);
    let archive = |name: &str| dir.join(format!("{name}.tar"));
    let pause = Image {
        reference: PAUSE_TAG.into(),
        archive: image::pause_image(&peer_bin("pause"), PAUSE_TAG, &archive("pause"))
            .expect("pause image"),
    };
    let images = vec![
        Image {
            archive: image::coffer_image(&bins, &coffer_tag, &archive("coffer"))
                .expect("Coffer image"),
            reference: coffer_tag,
        },
        Image {
            archive: image::coffer_image(&bins, &upgrade_tag, &archive("coffer-upgrade"))
                .expect("Coffer image, upgrade tag"),
            reference: upgrade_tag,
        },
        Image {
            reference: image::OPENBAO_TAG.into(),
            archive: image::openbao_image(image::OPENBAO_TAG, &archive("openbao"))
                .expect("OpenBao image"),
        },
        Image {
            reference: image::KUBECTL_TAG.into(),
            archive: image::kubectl_image(image::KUBECTL_TAG, &archive("kubectl"))
                .expect("kubectl image"),
        },
    ];
    (pause, images)
}

/// Vault's TLS certificate as the guide makes it (self-signed, the Service's DNS name), with
/// `openssl` as `manifests/vault/kustomization.yaml` says.
fn vault_tls(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, cert) = (dir.join("vault-tls.key"), dir.join("vault-tls.crt"));
    run(
        "openssl ecparam",
        Command::new("openssl")
            .args([
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
            ])
            .arg(&key),
    );
    run(
        "openssl req",
        Command::new("openssl")
            .args(["req", "-new", "-x509", "-days", "365", "-key"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", "/C=US/ST=CA/L=SF/O=MinIO/CN=vault"])
            .args(["-addext", "subjectAltName = DNS:vault.vault.svc"]),
    );
    (key, cert)
}

#[test]
fn cluster_runs_the_scenario_as_a_user_would() {
    let total = Instant::now();
    let mut t = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("coffer-cluster-test-")
        .tempdir()
        .expect("temp dir");
    let (pause, images) = build_images(work.path());
    step("images built", &mut t, total);

    let node = Node::start(&pause);
    for image in &images {
        node.import(image);
    }
    step("node up, images imported", &mut t, total);
    let run = Run {
        node,
        scenario: Scenario::load(),
        work,
    };
    let ns = run.ns().to_string();
    let tenant = run.tenant().to_string();

    // --- helm install, as the README says (the image is there already: never pulled).
    run.helm_install();
    step("helm install coffer-operator", &mut t, total);

    // --- Vault from manifests/vault/: its Job inits, unseals, and writes the KMS's Secrets.
    let (key, cert) = vault_tls(run.work.path());
    run.kubectl(&["create", "namespace", "vault"]);
    run.kubectl(&[
        "-n",
        "vault",
        "create",
        "secret",
        "tls",
        "vault-tls",
        &format!("--cert={}", cert.display()),
        &format!("--key={}", key.display()),
    ]);
    let manifests = run.scenario.manifests();
    let namespace_manifest = manifests[0].to_str().expect("UTF-8 path").to_string();
    run.kubectl(&["apply", "-f", &namespace_manifest]);
    let vault_dir = repo_root().join("manifests/vault");
    run.kubectl(&["apply", "-k", vault_dir.to_str().expect("UTF-8 path")]);
    run.wait_condition(
        "vault",
        "job/vault-setup",
        "complete",
        Duration::from_secs(600),
    );
    step(
        "Vault deployed, initialised and unsealed by its Job",
        &mut t,
        total,
    );

    // --- The scenario's manifests; KMS and Tenant Ready.
    for manifest in &manifests[1..] {
        run.kubectl(&["apply", "-f", manifest.to_str().expect("UTF-8 path")]);
    }
    let kms = format!("kms/{}", run.scenario.get("KMS"));
    run.wait_condition(
        &ns,
        &kms,
        "Ready",
        run.scenario.seconds("KMS_READY_TIMEOUT"),
    );
    let tenant_ref = format!("tenant/{tenant}");
    run.wait_condition(
        &ns,
        &tenant_ref,
        "Ready",
        run.scenario.seconds("TENANT_READY_TIMEOUT"),
    );
    step("KMS and Tenant Ready", &mut t, total);

    // --- The client: AWS CLI put + get (SSE AES256 checked by client.sh), then mc.
    let client = run.client("client");
    run.client_step("put", &client);
    run.client_step("get", &client);
    run.client_step("mc", &client);
    let key_name = run.jsonpath(&ns, &tenant_ref, "{.spec.encryption.keyName}");
    let keys = run.vault_keys();
    assert!(
        keys.contains(&format!("\"{key_name}\"")),
        "key {key_name} is not in Vault's kv under {}/{ns}: {keys}",
        run.scenario.get("KV_ENGINE")
    );
    step(
        "AWS CLI and mc through the Service; key in Vault",
        &mut t,
        total,
    );

    // --- 1. The pod deleted comes back, on the same volume, with its data.
    let claim = format!("pvc/data-{}", run.pod());
    let volume = run.jsonpath(&ns, &claim, "{.spec.volumeName}");
    assert!(!volume.is_empty(), "{claim} is not bound");
    let uid = run.pod_uid();
    run.kubectl(&["-n", &ns, "delete", "pod", &run.pod(), "--wait=false"]);
    run.wait_new_pod(&uid);
    assert_eq!(run.jsonpath(&ns, &claim, "{.spec.volumeName}"), volume);
    run.client_step("get", &client);
    step("1. pod deleted: back with its data", &mut t, total);

    // --- 2. The kes sidecar killed inside the pod: not ready until it is back.
    let restarts = run.kes_restarts();
    let container = run.jsonpath(
        &ns,
        &format!("pod/{}", run.pod()),
        "{.status.initContainerStatuses[?(@.name==\"kes\")].containerID}",
    );
    let container = container
        .strip_prefix("containerd://")
        .unwrap_or_else(|| panic!("kes container id: {container:?}"))
        .to_string();
    run.ctr_kill(&container);
    let mut saw_unready = false;
    wait_until(
        "the pod to be Ready again with kes restarted",
        POD_TIMEOUT,
        || {
            let (ready, kes_runs) = run.pod_state();
            assert!(
                !ready || kes_runs,
                "the pod is Ready while its kes sidecar is not running"
            );
            saw_unready |= !ready;
            (saw_unready && ready && run.kes_restarts() > restarts).then_some(())
        },
        String::new,
    );
    run.client_step("get", &client);
    run.client_step("put", &client);
    step(
        "2. kes killed: pod not ready until it was back",
        &mut t,
        total,
    );

    // --- 3. Vault stopped for 60 s: I/O under the cached key goes on, the pod stays Ready.
    run.kubectl(&["-n", "vault", "scale", "statefulset/vault", "--replicas=0"]);
    run.kubectl(&[
        "-n",
        "vault",
        "wait",
        "--for=delete",
        "pod/vault-0",
        "--timeout=120s",
    ]);
    let outage = Instant::now();
    let mut rounds = 0;
    while outage.elapsed() < Duration::from_secs(60) {
        run.client_step("put", &client);
        run.client_step("get", &client);
        assert!(
            run.pod_state().0,
            "the Tenant's pod is not Ready with Vault only away"
        );
        rounds += 1;
    }
    eprintln!(
        "[cluster] Vault away {:.0?}: {rounds} put+get rounds, all served",
        outage.elapsed()
    );
    run.kubectl(&["-n", "vault", "scale", "statefulset/vault", "--replicas=1"]);
    // A restarted Vault is sealed: the setup Job unseals it (its script is safe to run again).
    run.kubectl(&["-n", "vault", "delete", "job/vault-setup"]);
    run.kubectl(&["apply", "-k", vault_dir.to_str().expect("UTF-8 path")]);
    run.wait_condition(
        "vault",
        "job/vault-setup",
        "complete",
        Duration::from_secs(600),
    );
    run.wait_condition(&ns, &kms, "Ready", Duration::from_secs(300));
    run.client_step("put", &client);
    step(
        "3. Vault stopped 60 s: I/O went on; unsealed again",
        &mut t,
        total,
    );

    // --- 4. A certificate rotation rolls the pod while a client keeps reading.
    let tls_version = run.jsonpath(
        &ns,
        &format!("secret/{tenant}-tls"),
        "{.metadata.resourceVersion}",
    );
    let uid = run.pod_uid();
    let reads = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let reader = run.client("reader");
            std::fs::create_dir_all(&reader.work).expect("reader dir");
            std::fs::copy(
                client.work.join("upload.bin"),
                reader.work.join("upload.bin"),
            )
            .expect("the uploaded bytes");
            while !done.load(Ordering::Relaxed) {
                let (ok, _) = run.try_client_step("get", &reader);
                reads.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        run.kubectl(&[
            "-n",
            &ns,
            "patch",
            &tenant_ref,
            "--type=merge",
            "-p",
            r#"{"spec":{"tls":{"certificateLifetime":"2000h"}}}"#,
        ]);
        run.wait_new_pod(&uid);
        done.store(true, Ordering::Relaxed);
    });
    assert_ne!(
        run.jsonpath(
            &ns,
            &format!("secret/{tenant}-tls"),
            "{.metadata.resourceVersion}"
        ),
        tls_version,
        "the Tenant's certificate was not re-issued"
    );
    let client = run.client("client");
    run.client_step("get", &client);
    eprintln!(
        "[cluster] rotation: {} reads during the roll, {} failed (one replica: the Service has no endpoint while it restarts)",
        reads.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    step("4. certificate rotation rolled the pod", &mut t, total);

    // --- 5. helm upgrade to a new image tag rolls the operator and every Tenant; no object lost.
    let uid = run.pod_uid();
    run.helm()
        .args([
            "upgrade",
            RELEASE,
            "charts/coffer-operator",
            "-n",
            OPERATOR_NAMESPACE,
        ])
        .args([
            "--reuse-values",
            "--set",
            &format!("image.tag={UPGRADE_TAG}"),
        ])
        .args(["--wait", "--timeout", "5m"])
        .status()
        .expect("helm upgrade")
        .success()
        .then_some(())
        .expect("helm upgrade failed");
    let want = format!("{}:{UPGRADE_TAG}", image::COFFER_REPOSITORY);
    let operator_image = run.jsonpath(
        OPERATOR_NAMESPACE,
        &format!("deployment/{RELEASE}"),
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(
        operator_image, want,
        "helm upgrade did not move the operator"
    );
    let sts = format!("statefulset/{tenant}");
    let image_of = || run.jsonpath(&ns, &sts, "{.spec.template.spec.containers[0].image}");
    // Whether the Tenant followed is asserted at the end, so that the steps after this one run
    // (and say what they find) either way.
    let tenant_rolled = wait_or_not(Duration::from_secs(120), || image_of() == want);
    if tenant_rolled {
        run.wait_new_pod(&uid);
    } else {
        eprintln!(
            "[cluster] the Tenant did NOT follow the operator: its StatefulSet still runs {}",
            image_of()
        );
    }
    run.client_step("get", &client);
    run.client_step("mc", &client);
    step(
        "5. helm upgrade: operator rolled, objects kept",
        &mut t,
        total,
    );

    // --- 6. The Tenant deleted: what it owns goes; its volume and its key in Vault stay.
    run.kubectl(&["-n", &ns, "delete", &tenant_ref, "--timeout=180s"]);
    wait_until(
        "the Tenant's StatefulSet, Services and Secrets to be garbage-collected",
        Duration::from_secs(180),
        || {
            let left = run.jsonpath(
                &ns,
                &format!("statefulset/{tenant},service/{tenant},secret/{tenant}-ca"),
                "{.items[*].metadata.name}",
            );
            left.is_empty().then_some(())
        },
        String::new,
    );
    assert_eq!(
        run.jsonpath(&ns, &claim, "{.spec.volumeName}"),
        volume,
        "the Tenant's volume claim must outlive it"
    );
    assert!(
        run.vault_keys().contains(&format!("\"{key_name}\"")),
        "deleting a Tenant must never delete its key in Vault"
    );
    step(
        "6. Tenant deleted: owned objects gone, PVC and Vault key kept",
        &mut t,
        total,
    );
    eprintln!("[cluster] peak memory so far: {}", run.node.peak_memory());
    assert!(
        tenant_rolled,
        "helm upgrade to {want} rolled the operator but not the Tenant: its StatefulSet still \
         runs {} (the operator's default Tenant image is fixed, not its own image)",
        image::coffer_tag().expect("tag")
    );
}

/// Polls `done` every second for up to `timeout`; whether it became true.
fn wait_or_not(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}
