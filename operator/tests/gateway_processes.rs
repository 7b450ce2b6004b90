//! The acceptance of `storage.s3` on the process runner: a Tenant with `storage.s3` and 3
//! replicas over a real MinIO becomes Ready and serves through its Service, with an object
//! written through one replica and read through the others.
//!
//! There is no kubelet here (kube-apiserver + etcd, the operator in-process), so the test is
//! the kubelet: [`PodRunner`] runs each replica of the StatefulSet the operator made as
//! processes, from the pod template alone — every volume laid out from its Secret, ConfigMap
//! or emptyDir, every `secretKeyRef` resolved from the Secret it names, the mount paths mapped
//! to those directories — with our kes (in-process, from the generated ConfigMap) in front of
//! a real OpenBao, and writes the StatefulSet's status as its controller would once the
//! replicas answer `/minio/health/ready`. "The Service" is the Tenant's Service name from its
//! status, resolved to the replicas the Service's selector picks, verified against the
//! Tenant's CA as a client in the cluster does.
//!
//! Needs the peers `etcd`, `kube-apiserver`, `kubectl`, `bao`/`vault` and `minio`, `mc` on PATH
//! (`eval "$(e2e/peers/env)"`), and the `object-server` binary built next to this test
//! (`cargo build -p object-server --bins`); fails loudly when one is absent.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use coffer_e2e::minio::Minio;
use coffer_e2e::{Process, start_on_free_ports};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Secret, Service, Volume};
use kube::Api;
use kube::api::{Patch, PatchParams};
use operator::build::kes_config::KES_ADDRESS;
use operator::crd::Tenant;

use common::fixtures::{api_with_crds, real_kms, tenant_yaml};
use common::{eventually, start_our_kes, tenant_condition as condition};

const REPLICAS: usize = 3;

/// One replica run as processes: its volumes, its kes, its object-server.
struct RunningPod {
    _kes: sidecar_kes::server::Running,
    server: Process,
    s3: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Runs the pods of a StatefulSet as processes, as the kubelet would run them.
struct PodRunner {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
}

impl PodRunner {
    /// The Secret `name`'s data.
    async fn secret(&self, name: &str) -> BTreeMap<String, Vec<u8>> {
        let s = self.secrets.get(name).await.unwrap();
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }

    /// Lays `volume` out under `dir` as the kubelet would (Secret items, ConfigMap keys,
    /// an empty directory).
    async fn lay_out(&self, volume: &Volume, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let files: BTreeMap<String, Vec<u8>> = if let Some(s) = &volume.secret {
            let data = self.secret(s.secret_name.as_deref().unwrap()).await;
            match &s.items {
                Some(items) => items
                    .iter()
                    .map(|i| (i.path.clone(), data[&i.key].clone()))
                    .collect(),
                None => data,
            }
        } else if let Some(c) = &volume.config_map {
            let cm = self.config_maps.get(&c.name).await.unwrap();
            cm.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect()
        } else {
            assert!(
                volume.empty_dir.is_some(),
                "a gateway pod has only Secret, ConfigMap and emptyDir volumes: {volume:?}"
            );
            BTreeMap::new()
        };
        for (name, data) in files {
            std::fs::write(dir.join(name), data).unwrap();
        }
    }

    /// `container`'s environment, `secretKeyRef`s resolved.
    async fn env(&self, container: &Container) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for EnvVar {
            name,
            value,
            value_from,
        } in container.env.iter().flatten()
        {
            let v = match (value, value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    let r = from.secret_key_ref.as_ref().expect("only secretKeyRef");
                    let data = self.secret(&r.name).await;
                    String::from_utf8(data[&r.key].clone()).unwrap()
                }
                (None, None) => String::new(),
            };
            out.insert(name.clone(), v);
        }
        out
    }

    /// Starts replica `ordinal` of `sts` under `dir`.
    async fn run(&self, sts: &StatefulSet, ordinal: usize) -> RunningPod {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let mut volume_dirs = BTreeMap::new();
        for v in pod.volumes.iter().flatten() {
            let vd = d.join("volumes").join(&v.name);
            self.lay_out(v, &vd).await;
            volume_dirs.insert(v.name.clone(), vd);
        }
        // The pod's paths, longest first, so that a mount inside another maps to its own dir.
        let paths_of = |c: &Container| {
            let mut m: Vec<(String, PathBuf)> = c
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| (m.mount_path.clone(), volume_dirs[&m.name].clone()))
                .collect();
            m.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
            m
        };
        // In two passes, so that a local directory (under the host's /tmp) is never mapped
        // again by the pod's own `/tmp` mount.
        let local = |paths: &[(String, PathBuf)], text: &str| {
            let marked = paths
                .iter()
                .enumerate()
                .fold(text.to_string(), |t, (n, (from, _))| {
                    t.replace(from.as_str(), &format!("\u{0}{n}\u{0}"))
                });
            paths.iter().enumerate().fold(marked, |t, (n, (_, to))| {
                t.replace(&format!("\u{0}{n}\u{0}"), &to.display().to_string())
            })
        };

        // The KES sidecar: our kes in-process from the generated ConfigMap, its Vault
        // credentials from the KMS's Secret by the sidecar's own secretKeyRefs.
        let kes = pod.init_containers.as_ref().unwrap()[0].clone();
        let kes_env = self.env(&kes).await;
        let kes_paths = paths_of(&kes);
        let config_dir = &kes_paths
            .iter()
            .find(|(p, _)| p.ends_with("config"))
            .expect("the KES config mount")
            .1;
        let config = std::fs::read_to_string(config_dir.join("config.yaml")).unwrap();
        // Port 0: the in-process kes picks a free one.
        let config = local(&kes_paths, &config).replace(KES_ADDRESS, "127.0.0.1:0");
        let parsed = sidecar_kes::config::parse(&config, &|k: &str| kes_env.get(k).cloned())
            .expect("our kes reads the ConfigMap");
        let kes_running = start_our_kes(&parsed).await;

        // The object-server, as the container says, on loopback ports.
        let server = pod
            .containers
            .iter()
            .find(|c| c.name == "object-server")
            .unwrap()
            .clone();
        let paths = paths_of(&server);
        let mut env = self.env(&server).await;
        for v in env.values_mut().filter(|v| v.starts_with('/')) {
            *v = local(&paths, v);
        }
        env.insert(
            "MINIO_KMS_KES_ENDPOINT".into(),
            format!("https://{}", kes_running.addr),
        );
        env.insert("TMPDIR".into(), local(&paths, "/tmp"));
        let args: Vec<String> = server.args.clone().unwrap();
        let bin = coffer_e2e::process::workspace_bin_dir(&["object-server"]).join("object-server");
        let log = d.join("object-server.log");
        let (process, ports, ()) = start_on_free_ports(
            &format!("replica {ordinal}"),
            2,
            Duration::from_secs(90),
            |ports| {
                let mut c = Command::new(&bin);
                let mut args = args.iter();
                while let Some(a) = args.next() {
                    match a.as_str() {
                        "--address" => {
                            args.next();
                            c.args(["--address", &format!("127.0.0.1:{}", ports[0])]);
                        }
                        other => {
                            c.arg(local(&paths, other));
                        }
                    }
                }
                c.args(["--console-address", &format!("127.0.0.1:{}", ports[1])]);
                c.env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .envs(&env);
                Process::spawn("object-server", c, &log)
            },
            |_, ports| {
                std::net::TcpStream::connect(("127.0.0.1", ports[0]))
                    .ok()
                    .map(|_| ())
            },
        );
        RunningPod {
            _kes: kes_running,
            server: process,
            s3: SocketAddr::from(([127, 0, 0, 1], ports[0])),
            _dir: dir,
        }
    }
}

/// A client of the Tenant's Service name that reaches the replica at `addr` (as the Service
/// would route one connection), verifying the S3 certificate against the Tenant's CA.
fn client_via(host: &str, addr: SocketAddr, ca_pem: &[u8]) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve(host, addr)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_replica_s3_tenant_becomes_ready_and_serves_through_its_service() {
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let _stop = common::start_operator(client.clone(), ns, "test");
    let vault = coffer_e2e::vault::Vault::production();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    real_kms(&api, &secrets, ns, &vault).await;

    // The backend: a real MinIO with the Tenant's bucket; its keys in a Secret shaped as the
    // one Rook makes for a CephObjectStoreUser.
    let minio = Minio::start(&[]);
    let out = minio
        .mc()
        .args(["mb", "local/coffer-photos"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::printed(&out));
    let (ok, out) = api.try_apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: rook-ceph-object-user-store-photos, namespace: {ns}}}\n\
         stringData: {{AccessKey: {}, SecretKey: {}, Endpoint: {}}}\n",
        minio.access_key, minio.secret_key, minio.endpoint
    ));
    assert!(ok, "{out}");
    let (ok, out) = api.try_apply(&tenant_yaml(
        ns,
        "photos",
        &format!(
            "  replicas: {REPLICAS}\n  storage:\n    s3:\n      endpoint: {}\n      bucket: coffer-photos\n      credentialsSecret: {{name: rook-ceph-object-user-store-photos}}\n",
            minio.endpoint
        ),
    )
    .replace("name: vault}", "name: real}"));
    assert!(ok, "{out}");

    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let sts = eventually("StatefulSet photos", Duration::from_secs(60), || async {
        stss.get_opt("photos").await.ok().flatten()
    })
    .await;
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(REPLICAS as i32));
    assert!(sts.spec.as_ref().unwrap().volume_claim_templates.is_none());

    // The kubelet's part: every replica from the pod template.
    let runner = PodRunner {
        secrets: secrets.clone(),
        config_maps: Api::namespaced(client.clone(), ns),
    };
    let mut pods = Vec::new();
    for ordinal in 0..REPLICAS {
        pods.push(runner.run(&sts, ordinal).await);
    }
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let endpoint = eventually("status.endpoint", Duration::from_secs(30), || async {
        tenants.get("photos").await.ok()?.status?.endpoint
    })
    .await;
    let host = reqwest::Url::parse(&endpoint)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    let ca = runner.secret("photos-ca").await;
    let ca_pem = ca
        .get("ca.crt")
        .or_else(|| ca.get("tls.crt"))
        .unwrap()
        .clone();
    // The Service's name, routed to one replica each (its port in the URL: reqwest's resolve
    // overrides the address only).
    let replicas: Vec<(reqwest::Client, String)> = pods
        .iter()
        .map(|p| {
            (
                client_via(&host, p.s3, &ca_pem),
                format!("https://{host}:{}", p.s3.port()),
            )
        })
        .collect();
    for (n, (c, via)) in replicas.iter().enumerate() {
        let url = format!("{via}/minio/health/ready");
        eventually(
            &format!("replica {n} ready"),
            Duration::from_secs(90),
            || async {
                pods[n].server.assert_running();
                let r = c.get(&url).send().await.ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
    }
    // The Service picks exactly the pods of the template.
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get("photos")
        .await
        .unwrap();
    let selector = service.spec.unwrap().selector.unwrap();
    let labels = sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));

    // The StatefulSet controller's part: every replica ready on the current revision.
    let generation = sts.metadata.generation.unwrap();
    let revision = format!("photos-{generation}");
    stss.patch_status(
        "photos",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {
            "observedGeneration": generation, "replicas": REPLICAS, "readyReplicas": REPLICAS,
            "updatedReplicas": REPLICAS, "currentReplicas": REPLICAS, "availableReplicas": REPLICAS,
            "currentRevision": revision, "updateRevision": revision,
        }})),
    )
    .await
    .unwrap();
    eventually("Tenant Ready", Duration::from_secs(60), || async {
        let t = tenants.get("photos").await.ok()?;
        condition(&t, "Ready").filter(|(s, _, _)| s == "True")
    })
    .await;

    // Written through one replica, read through the others.
    let root_secret = runner.secret("photos-root").await;
    let root = (
        String::from_utf8(root_secret["rootUser"].clone()).unwrap(),
        String::from_utf8(root_secret["rootPassword"].clone()).unwrap(),
    );
    let root = (root.0.as_str(), root.1.as_str());
    let (code, out) = common::s3(
        &replicas[0].0,
        &replicas[0].1,
        rusty_s3::Method::Put,
        "/pics",
        "",
        root,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let body = "a cat, stored on the backend as ciphertext only";
    let (code, out) = common::s3(
        &replicas[0].0,
        &replicas[0].1,
        rusty_s3::Method::Put,
        "/pics/cat",
        body,
        root,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    for (c, via) in &replicas[1..] {
        let (code, got) = common::s3(c, via, rusty_s3::Method::Get, "/pics/cat", "", root).await;
        assert_eq!((code, got.as_str()), (200, body));
    }
    let (code, listing) = common::s3(
        &replicas[2].0,
        &replicas[2].1,
        rusty_s3::Method::Get,
        "/pics",
        "",
        root,
    )
    .await;
    assert_eq!(code, 200, "{listing}");
    assert!(listing.contains("<Key>cat</Key>"), "{listing}");

    // The backend holds the object, never its plaintext; the pods hold nothing.
    let scratch = tempfile::tempdir().unwrap();
    let out = minio
        .mc()
        .args(["ls", "--recursive", "local/coffer-photos"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let stored = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .find(|k| k.starts_with("pics/") && k.contains("cat"))
        .unwrap_or_else(|| panic!("the object is in the backend bucket: {listing}"))
        .to_string();
    let copy = scratch.path().join("stored");
    let out = minio
        .mc()
        .args(["cp", &format!("local/coffer-photos/{stored}")])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::printed(&out));
    let raw = std::fs::read(&copy).unwrap();
    assert!(
        !raw.windows(body.len()).any(|w| w == body.as_bytes()),
        "plaintext in the backend"
    );
}
