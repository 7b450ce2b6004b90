//! `Tenant.spec.encryption.rotation` against a real kube-apiserver and OpenBao (Transit): the
//! CRD refuses nonsense periods; the operator rotates the Tenant's keys (only its prefix's) once
//! per period, by Vault's own record of each version's creation, also across an operator
//! restart; status and events report it; a re-wrap that cannot reach the object-server is
//! reported (the object-server's side is the unit tests' and the node's).
//! `KMS.spec.vault.transit`: the KMS probe checks that the configured mount is usable.
//!
//! Needs the peers `etcd`, `kube-apiserver`, `kubectl` and `vault` on PATH
//! (`eval "$(e2e/peers/env)"`); fails loudly when they are absent.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use operator::crd::{KMS, Tenant};

use common::fixtures::{api_with_crds, event_reasons, tenant_yaml};
use common::{eventually, kms_condition};

/// Creation times (Unix seconds) of every version of Transit key `name`, oldest first.
fn version_times(vault: &coffer_e2e::vault::Vault, name: &str) -> Vec<i64> {
    let out = vault.run(&["read", "-format=json", &format!("transit/keys/{name}")]);
    let key: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys = key["data"]["keys"].as_object().unwrap();
    let mut v: Vec<(u32, i64)> = keys
        .iter()
        .map(|(n, t)| (n.parse().unwrap(), t.as_i64().unwrap()))
        .collect();
    v.sort();
    v.into_iter().map(|(_, t)| t).collect()
}

fn start(
    client: &kube::Client,
    ns: &str,
    period: Duration,
    s3: &str,
) -> tokio::sync::oneshot::Sender<()> {
    let ctx = operator::reconcile::Context::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "coffer-operator".into(),
            instance: Some("test".into()),
        },
    );
    ctx.set_kms_probe_interval(Duration::from_secs(1));
    ctx.set_rotation_period(period);
    ctx.set_s3_endpoint(s3.into(), None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(operator::reconcile::run_controllers(
        ctx,
        Some(ns.into()),
        async move {
            let _ = stopped.await;
        },
    ));
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_keys_rotate_once_per_period_and_the_status_says_so() {
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;

    // Nonsense periods are refused by the API server with the rule's message.
    for bad in ["0s", "30m", "59m59s", "1d", "5", "-1h"] {
        let (ok, out) = api.try_apply(&tenant_yaml(
            ns,
            "bad",
            &format!("  encryption: {{rotation: \"{bad}\"}}\n"),
        ));
        assert!(
            !ok && out.contains("encryption.rotation must be a duration of at least 1h"),
            "{bad}: {out}"
        );
    }

    let vault = coffer_e2e::vault::Vault::production();
    let approle = vault.transit_with_approle("transit", "coffer");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let ca_pem = std::fs::read_to_string(vault.ca_cert.as_ref().unwrap()).unwrap();
    let ca_secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("vault-ca".into()),
            ..Default::default()
        },
        string_data: Some([("ca.crt".to_string(), ca_pem)].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &ca_secret)
        .await
        .unwrap();
    for yaml in [
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {ns}}}\n\
             stringData: {{roleId: {}, secretId: {}}}\n",
            approle.role_id, approle.secret_id
        ),
        format!(
            "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {ns}}}\n\
             spec:\n  vault:\n    endpoint: {}\n    transit: {{}}\n    auth:\n      appRole: {{secretName: vault-approle}}\n    tls: {{caSecretName: vault-ca}}\n",
            vault.addr
        ),
        // The same Vault, a mount the AppRole's policy does not cover.
        format!(
            "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: elsewhere, namespace: {ns}}}\n\
             spec:\n  vault:\n    endpoint: {}\n    transit: {{engine: other}}\n    auth:\n      appRole: {{secretName: vault-approle}}\n    tls: {{caSecretName: vault-ca}}\n",
            vault.addr
        ),
    ] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{out}");
    }
    // A Transit KMS may not set the K/V prefix.
    let (ok, out) = api.try_apply(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: mixed, namespace: {ns}}}\n\
         spec:\n  vault:\n    endpoint: {}\n    prefix: coffer\n    transit: {{}}\n    auth:\n      appRole: {{secretName: vault-approle}}\n",
        vault.addr
    ));
    assert!(!ok && out.contains("vault.prefix is a K/V path"), "{out}");

    // The Tenant's key (as its kes would have made it) and another Tenant's.
    for key in ["photos_default", "photos_archive", "videos_default"] {
        vault.run(&["write", "-f", &format!("transit/keys/{key}")]);
    }
    // Nothing answers here: the re-wrap cannot start.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let s3 = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let period = Duration::from_secs(3);
    let stop = start(&client, ns, period, &s3);

    let kmss: Api<KMS> = Api::namespaced(client.clone(), ns);
    eventually("KMS vault Ready", Duration::from_secs(30), || async {
        let k = kmss.get("vault").await.ok()?;
        kms_condition(&k, "Ready").filter(|(s, _, _)| s == "True")
    })
    .await;
    let (status, reason, message) = eventually(
        "KMS elsewhere not Ready",
        Duration::from_secs(30),
        || async {
            let k = kmss.get("elsewhere").await.ok()?;
            kms_condition(&k, "Ready").filter(|(s, _, _)| s == "False")
        },
    )
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "VaultEngineUnusable"),
        "{message}"
    );
    assert!(message.contains("\"other\""), "{message}");

    let (ok, out) = api.try_apply(&tenant_yaml(
        ns,
        "photos",
        "  encryption: {rotation: 2160h}\n",
    ));
    assert!(ok, "{out}");
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let rotated = || async {
        let t = tenants.get("photos").await.ok()?;
        let r = t.status?.rotation?;
        (r.keys.len() == 2 && r.keys.iter().all(|k| k.version >= 2)).then_some(r)
    };
    let r = eventually("both keys rotated", Duration::from_secs(60), rotated).await;
    assert!(r.last_rotation.is_some(), "{r:?}");
    let names: Vec<_> = r.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["photos_archive", "photos_default"], "{r:?}");
    assert!(
        r.message.as_deref().unwrap_or_default().contains("re-wrap"),
        "the unreachable object-server is reported: {r:?}"
    );

    // Let it run a few periods, restart the operator (no memory), and a few more.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stop = start(&client, ns, period, &s3);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let _ = stop.send(());
    for key in ["photos_default", "photos_archive"] {
        let times = version_times(&vault, key);
        assert!(times.len() >= 4, "{key} rotated every period: {times:?}");
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= period.as_secs() as i64,
                "{key}: never twice in one period, restart included: {times:?}"
            );
        }
    }
    assert_eq!(
        version_times(&vault, "videos_default").len(),
        1,
        "another Tenant's key is untouched"
    );
    let reasons = event_reasons(&api, ns);
    assert!(reasons.contains("KeyRotated"), "{reasons}");
    let t = tenants.get("photos").await.unwrap();
    let r = t.status.unwrap().rotation.unwrap();
    let newest = version_times(&vault, "photos_default").len() as u32;
    let reported = r.keys.iter().find(|k| k.name == "photos_default").unwrap();
    assert!(
        reported.version + 1 >= newest && reported.version <= newest,
        "status follows Vault: {reported:?}, Vault has {newest}"
    );
}

/// The whole path but the pods: the operator rotates the Tenant's Transit key and starts the
/// object-server's re-wrap through its admin API (SigV4 as the root user of the Tenant's root
/// Secret), follows it to the end and reports it; the object written before reads back.
/// The object-server runs as a process with our kes in front of the same OpenBao, from the
/// KES config the operator generates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotations_rewrap_runs_in_the_object_server_and_is_reported() {
    use operator::build::kes_config;
    use std::process::Command;

    let ns = "media";
    let (api, client) = api_with_crds(ns).await;
    let vault = coffer_e2e::vault::Vault::production();
    let approle = vault.transit_with_approle("transit", "coffer");
    let ca_pem = std::fs::read_to_string(vault.ca_cert.as_ref().unwrap()).unwrap();
    let password: String = (0..32)
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect();
    let root = ("photos-admin", password.as_str());
    for yaml in [
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {ns}}}\n\
             stringData: {{roleId: {}, secretId: {}}}\n",
            approle.role_id, approle.secret_id
        ),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-ca, namespace: {ns}}}\n\
             stringData:\n  ca.crt: {}\n",
            serde_json::to_string(&ca_pem).unwrap()
        ),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: photos-root, namespace: {ns}}}\n\
             stringData: {{rootUser: {}, rootPassword: {}}}\n",
            root.0, root.1
        ),
        format!(
            "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {ns}}}\n\
             spec:\n  vault:\n    endpoint: {}\n    transit: {{}}\n    auth:\n      appRole: {{secretName: vault-approle}}\n    tls: {{caSecretName: vault-ca}}\n",
            vault.addr
        ),
    ] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{out}");
    }
    let tenant_text = tenant_yaml(ns, "photos", "  encryption: {rotation: 2160h}\n");
    let tenant: Tenant = serde_saphyr::from_str(&tenant_text).unwrap();
    let kms: KMS = serde_saphyr::from_str(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {ns}}}\n\
         spec:\n  vault:\n    endpoint: {}\n    transit: {{}}\n    auth:\n      appRole: {{secretName: vault-approle}}\n    tls: {{caSecretName: vault-ca}}\n",
        vault.addr
    ))
    .unwrap();

    // Our kes from the generated config, and an object-server using it.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &str| common::write_file(d, name, text);
    let common::KesSetup {
        mut cfg,
        client: client_cert,
        ..
    } = common::kes_setup(&tenant, &kms, vault.ca_cert.as_ref().unwrap(), d);
    cfg.address = "127.0.0.1:0".into();
    let env = |k: &str| match k {
        "VAULT_APPROLE_ID" => Some(approle.role_id.clone()),
        "VAULT_APPROLE_SECRET" => Some(approle.secret_id.clone()),
        _ => None,
    };
    let parsed = sidecar_kes::config::parse(&kes_config::to_yaml(&cfg), &env).unwrap();
    let kes = common::start_our_kes(&parsed).await;
    let (cc, ck) = (
        write("client.crt", &client_cert.cert),
        write("client.key", &client_cert.key),
    );
    let bin = coffer_e2e::process::workspace_bin_dir(&["object-server"]).join("object-server");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (_server, ports, ()) = coffer_e2e::start_on_free_ports(
        "object-server",
        1,
        Duration::from_secs(60),
        |ports| {
            let mut c = Command::new(&bin);
            c.args(["server", "--address", &format!("127.0.0.1:{}", ports[0])])
                .arg(&data)
                .env("MINIO_ROOT_USER", root.0)
                .env("MINIO_ROOT_PASSWORD", root.1)
                .env("MINIO_BROWSER", "off")
                .env(
                    "MINIO_KMS_KES_ENDPOINT",
                    format!("https://127.0.0.1:{}", kes.addr.port()),
                )
                .env("MINIO_KMS_KES_CAPATH", d.join("ca.crt"))
                .env("MINIO_KMS_KES_CERT_FILE", &cc)
                .env("MINIO_KMS_KES_KEY_FILE", &ck)
                .env("MINIO_KMS_KES_KEY_NAME", "photos_default")
                .env("MINIO_KMS_AUTO_ENCRYPTION", "on")
                .env("COFFER_REWRAP_RATE", "0");
            coffer_e2e::Process::spawn("object-server", c, &d.join("server.log"))
        },
        |_, ports| {
            std::net::TcpStream::connect(("127.0.0.1", ports[0]))
                .ok()
                .map(|_| ())
        },
    );
    let endpoint = format!("http://127.0.0.1:{}", ports[0]);
    let (code, out) = common::s3(
        &reqwest::Client::new(),
        &endpoint,
        rusty_s3::Method::Put,
        "/pics",
        "",
        root,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let (code, out) = common::s3(
        &reqwest::Client::new(),
        &endpoint,
        rusty_s3::Method::Put,
        "/pics/cat",
        "meow",
        root,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(version_times(&vault, "photos_default").len(), 1);

    // The operator: the key is due after 5 s.
    let stop = start(&client, ns, Duration::from_secs(5), &endpoint);
    let (ok, out) = api.try_apply(&tenant_text);
    assert!(ok, "{out}");
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let r = eventually("the re-wrap done", Duration::from_secs(90), || async {
        let r = tenants.get("photos").await.ok()?.status?.rotation?;
        r.rewrap
            .clone()
            .filter(|j| j.state == "done")
            .map(|j| (r, j))
    })
    .await;
    let _ = stop.send(());
    let (st, job) = r;
    assert!(job.rewrapped >= 1 && job.failed == 0, "{st:?}");
    assert!(
        st.keys
            .iter()
            .any(|k| k.name == "photos_default" && k.version >= 2),
        "{st:?}"
    );
    let reasons = event_reasons(&api, ns);
    for reason in ["KeyRotated", "RewrapStarted", "RewrapDone"] {
        assert!(reasons.contains(reason), "{reason}: {reasons}");
    }
    let (code, body) = common::s3(
        &reqwest::Client::new(),
        &endpoint,
        rusty_s3::Method::Get,
        "/pics/cat",
        "",
        root,
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "meow"));
    drop(kes);
}
