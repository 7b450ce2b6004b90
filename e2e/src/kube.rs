//! etcd + kube-apiserver started the way controller-runtime's envtest does it: its own CA,
//! service-account keys, RBAC authorization and an admin kubeconfig (a `system:masters` client
//! certificate). No kubelet runs, so pods are stored but never started — unless
//! [`crate::cluster`] starts one with [`ApiOptions::for_node`].

use crate::pki::{CertFiles, TestCa};
use crate::process::{Process, peer_bin, run, start_on_free_ports, wait_until};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// How the API server is reached and what it admits. The default is envtest's: loopback only,
/// no Service endpoint published, no ServiceAccount admission (no pod ever runs).
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// The address it listens on and publishes as the `kubernetes` Service's endpoint.
    pub address: String,
    /// The Service IP range; its first address is the `kubernetes` Service's ClusterIP.
    pub service_cidr: String,
    /// Whether pods run: the ServiceAccount admission (tokens mounted into pods), the Node
    /// authorizer for kubelets, the `kubernetes` Service's endpoint published.
    pub pods_run: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            address: "127.0.0.1".into(),
            service_cidr: "10.0.0.0/24".into(),
            pods_run: false,
        }
    }
}

impl ApiOptions {
    /// An API server for a node whose pods reach it at `address` (an address of the host that
    /// the pod network routes to), with Services in `service_cidr` (`a.b.c.0/24`).
    pub fn for_node(address: &str, service_cidr: &str) -> ApiOptions {
        ApiOptions {
            address: address.into(),
            service_cidr: service_cidr.into(),
            pods_run: true,
        }
    }

    /// The `kubernetes` Service's ClusterIP: the first address of the range.
    fn service_ip(&self) -> String {
        let net = self
            .service_cidr
            .split('/')
            .next()
            .expect("a CIDR has an address");
        let (prefix, _) = net.rsplit_once('.').expect("an IPv4 CIDR");
        format!("{prefix}.1")
    }
}

/// A running control plane: etcd and kube-apiserver.
pub struct KubeApi {
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// An admin kubeconfig (cluster-admin through `system:masters`).
    pub kubeconfig: PathBuf,
    /// The CA of the server certificate and of client certificates.
    pub ca_cert: PathBuf,
    ca: TestCa,
    apiserver: Process,
    _etcd: Process,
    dir: TempDir,
}

impl KubeApi {
    /// Starts etcd and kube-apiserver (envtest's way: [`ApiOptions::default`]) and waits until
    /// `/readyz` answers.
    pub fn start() -> KubeApi {
        KubeApi::start_with(&ApiOptions::default())
    }

    /// Starts etcd and kube-apiserver as `options` say and waits until `/readyz` answers.
    pub fn start_with(options: &ApiOptions) -> KubeApi {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        let (etcd, etcd_ports, ()) = start_on_free_ports(
            "etcd",
            2,
            Duration::from_secs(60),
            |ports| {
                let (etcd_port, peer_port) = (ports[0], ports[1]);
                // A fresh data directory for each try: nothing of an attempt that failed stays.
                let _ = std::fs::remove_dir_all(path.join("etcd"));
                let mut etcd = Command::new(peer_bin("etcd"));
                etcd.args([
                    "--name=default",
                    &format!("--data-dir={}", path.join("etcd").display()),
                    &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                    &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                    &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                    &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                    &format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ]);
                Process::spawn("etcd", etcd, &path.join("etcd.log"))
            },
            |_, _| Some(()),
        );
        let etcd_port = etcd_ports[0];

        let ca = TestCa::new(&path.join("pki"), "kube-test-ca");
        let service_ip = options.service_ip();
        let serving = ca.server(
            "apiserver",
            &[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                &service_ip,
                &options.address,
            ],
        );
        let admin = ca.client("admin", "admin", &["system:masters"]);
        let (sa_key, sa_pub) = (path.join("pki/sa.key"), path.join("pki/sa.pub"));
        let sa = rcgen::KeyPair::generate().expect("SA key");
        std::fs::write(&sa_key, sa.serialize_pem()).expect("write SA key");
        std::fs::write(&sa_pub, sa.public_key_pem()).expect("write SA public key");

        // The kubelets' API (logs, exec) takes client certificates of this CA and asks the API
        // server whether their subject may: this one may do anything.
        let kubelet_client = options.pods_run.then(|| {
            ca.client(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                &["system:masters"],
            )
        });

        // Every request is audited (metadata only) so tests can see exactly what a client did.
        let audit_policy = path.join("audit-policy.yaml");
        std::fs::write(&audit_policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n")
            .expect("write audit policy");

        let (apiserver, api_ports, ()) = start_on_free_ports(
            "kube-apiserver",
            1,
            Duration::from_secs(120),
            |ports| {
                let mut apiserver = Command::new(peer_bin("kube-apiserver"));
                apiserver.args([
                    &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                    &format!("--cert-dir={}", path.join("pki").display()),
                    &format!("--secure-port={}", ports[0]),
                    &format!("--bind-address={}", options.address),
                    &format!("--advertise-address={}", options.address),
                    &format!("--service-cluster-ip-range={}", options.service_cidr),
                    "--allow-privileged=true",
                ]);
                if let Some(kubelet_client) = &kubelet_client {
                    apiserver.args([
                        &format!(
                            "--kubelet-client-certificate={}",
                            kubelet_client.cert.display()
                        ),
                        &format!("--kubelet-client-key={}", kubelet_client.key.display()),
                        "--authorization-mode=Node,RBAC",
                        "--enable-admission-plugins=NodeRestriction",
                        // The node's name is not in any DNS: logs and exec go to its InternalIP.
                        "--kubelet-preferred-address-types=InternalIP",
                    ]);
                } else {
                    apiserver.args([
                        // Loopback cannot be published as the kubernetes Service endpoint; envtest turns it off too.
                        "--endpoint-reconciler-type=none",
                        "--authorization-mode=RBAC",
                        "--disable-admission-plugins=ServiceAccount",
                    ]);
                }
                apiserver.args([
                    &format!("--client-ca-file={}", ca.cert.display()),
                    &format!("--tls-cert-file={}", serving.cert.display()),
                    &format!("--tls-private-key-file={}", serving.key.display()),
                    &format!("--service-account-key-file={}", sa_pub.display()),
                    &format!("--service-account-signing-key-file={}", sa_key.display()),
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    "--enable-priority-and-fairness=false",
                    &format!("--audit-policy-file={}", audit_policy.display()),
                    &format!("--audit-log-path={}", path.join("audit.log").display()),
                    "--audit-log-format=json",
                ]);
                Process::spawn(
                    "kube-apiserver",
                    apiserver,
                    &path.join("kube-apiserver.log"),
                )
            },
            |_, _| Some(()),
        );
        let api_port = api_ports[0];

        let server = format!("https://{}:{api_port}", options.address);
        let kubeconfig = path.join("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &server,
            &ca.cert_pem,
            "admin",
            Credentials::Certificate(&admin),
        );

        let api = KubeApi {
            server,
            kubeconfig,
            ca_cert: ca.cert.clone(),
            ca,
            apiserver,
            _etcd: etcd,
            dir,
        };
        wait_until(
            "kube-apiserver /readyz",
            Duration::from_secs(90),
            || {
                api.apiserver.assert_running();
                api.kubectl()
                    .args(["get", "--raw=/readyz"])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|_| ())
            },
            || api.apiserver.log_tail(),
        );
        api
    }

    /// A `kubectl` command using the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(peer_bin("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// Runs `kubectl ARGS…` and returns its stdout; panics with the output on failure.
    pub fn run(&self, args: &[&str]) -> String {
        run(
            &format!("kubectl {}", args.join(" ")),
            self.kubectl().args(args),
        )
    }

    /// `kubectl apply -f -` of `yaml` as the admin; panics with kubectl's error on failure.
    pub fn apply(&self, yaml: &str) -> String {
        let (ok, out) = self.try_apply(yaml);
        assert!(ok, "kubectl apply failed: {out}\n{yaml}");
        out
    }

    /// `kubectl apply -f -` of `yaml` as the admin: whether kubectl succeeded, and what it printed
    /// (stdout, then stderr), for tests that expect the API server to refuse.
    pub fn try_apply(&self, yaml: &str) -> (bool, String) {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write yaml");
        let out = child.wait_with_output().expect("kubectl apply");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Applies the repository's CRDs (`crds/`) and waits until they are established.
    pub fn install_crds(&self) {
        let crds = crate::scenario::repo_root().join("crds");
        self.run(&["apply", "-f", crds.to_str().expect("UTF-8 path")]);
        self.wait_crds_established();
    }

    /// Waits until the Tenant and KMS CRDs are established, however they were applied (kubectl,
    /// helm). `kubectl wait` fails outright on a CRD whose status is not written yet: it is retried.
    pub fn wait_crds_established(&self) {
        // What the last `kubectl wait` said, for the failure message.
        let last = std::cell::RefCell::new(String::new());
        wait_until(
            "the CRDs established",
            Duration::from_secs(120),
            || {
                let out = self
                    .kubectl()
                    .args(["wait", "--for=condition=established", "--timeout=30s"])
                    .args(["crd/tenants.coffer.dev", "crd/kms.coffer.dev"])
                    .output()
                    .ok()?;
                *last.borrow_mut() = String::from_utf8_lossy(&out.stderr).into_owned();
                out.status.success().then_some(())
            },
            || format!("kubectl wait kept failing: {}", last.borrow()),
        );
    }

    /// A kube-rs client with admin rights.
    pub async fn client(&self) -> kube::Client {
        // kube's TLS stack and ours link both rustls providers; pick ours once per process.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kubeconfig to client config");
        kube::Client::try_from(config).expect("kube client")
    }

    /// Writes a kubeconfig for a user authenticated by a client certificate with common name `user`
    /// and organizations `groups`: an identity whose rights come from RBAC alone.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> PathBuf {
        let cert = self.ca.client(&format!("user-{user}"), user, groups);
        let path = self.dir.path().join(format!("kubeconfig-{user}"));
        write_kubeconfig(
            &path,
            &self.server,
            &self.ca.cert_pem,
            user,
            Credentials::Certificate(&cert),
        );
        path
    }

    /// The audit events so far (one JSON object per request, metadata level).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Writes a kubeconfig that authenticates with a bearer `token` (e.g. from `kubectl create token`).
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("kubeconfig-{name}"));
        write_kubeconfig(
            &path,
            &self.server,
            &self.ca.cert_pem,
            name,
            Credentials::Token(token),
        );
        path
    }

    /// The process ids of etcd and kube-apiserver, while they run.
    pub fn pids(&self) -> Vec<u32> {
        [self.apiserver.pid(), self._etcd.pid()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The API server's log so far.
    pub fn log(&self) -> String {
        self.apiserver.log()
    }
}

/// How a kubeconfig's user authenticates.
enum Credentials<'a> {
    Certificate(&'a CertFiles),
    Token(&'a str),
}

fn write_kubeconfig(path: &Path, server: &str, ca_pem: &str, user: &str, credentials: Credentials) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth = match credentials {
        Credentials::Certificate(cert) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&cert.cert_pem),
            b64(&cert.key_pem)
        ),
        Credentials::Token(token) => format!("    token: {token}\n"),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {user}\n  user:\n{auth}\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\n    namespace: default\ncurrent-context: test\n",
        ca = b64(ca_pem),
    );
    std::fs::write(path, text).expect("write kubeconfig");
}
