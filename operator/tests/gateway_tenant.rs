//! Tenants on `storage.s3` (stateless gateways) against a real kube-apiserver + etcd: the CEL
//! rules refuse mixing them with volumes and say what to do; the operator renders pods without
//! claims whose backend keys come only by `secretKeyRef`; a missing backend Secret is
//! `Degraded` with a Warning event until it appears, never wedged; `replicas` changes freely.
//!
//! Needs the peers `etcd`, `kube-apiserver` and `kubectl` on PATH (`eval "$(e2e/peers/env)"`);
//! fails loudly when they are absent.

mod common;

use std::time::Duration;

use coffer_e2e::kube::KubeApi;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use operator::build::CERTS_HASH_ANNOTATION;
use operator::crd::Tenant;
use operator::reconcile::tenant::reason;

use common::fixtures::{api_with_crds, approle_secret, event_reasons, kms_yaml, tenant_yaml};
use common::{eventually, start_operator, tenant_condition as condition};

const S3: &str = "    s3:\n      endpoint: http://rgw.rook-ceph.svc\n      bucket: coffer-photos\n      credentialsSecret: {name: rgw-user}\n";
/// Values of the backend Secret: they must appear nowhere the operator writes.
const ACCESS: &str = "AKIDGATEWAYTEST0001";
const SECRET: &str = "gateway-secret-value-never-shown";

fn gateway(ns: &str, name: &str, replicas: u32, storage_extra: &str) -> String {
    tenant_yaml(
        ns,
        name,
        &format!("  replicas: {replicas}\n  storage:\n{S3}{storage_extra}"),
    )
}

fn backend_secret(ns: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: rgw-user, namespace: {ns}}}\nstringData: {{{data}}}\n"
    )
}

fn refused(api: &KubeApi, yaml: &str, message: &str) {
    let (ok, out) = api.try_apply(yaml);
    assert!(!ok, "accepted but should be refused ({message}):\n{yaml}");
    assert!(out.contains(message), "refused without {message:?}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_and_s3_exclude_each_other_and_the_bucket_is_fixed() {
    let ns = "shop";
    let (api, _client) = api_with_crds(ns).await;
    let no_volume = "storage.s3 keeps the objects in the backend bucket and the pods have no volume: remove storage.size, storage.storageClassName and storage.sharedClaimName";
    for extra in [
        "    sharedClaimName: rwx\n",
        "    size: 20Gi\n",
        "    storageClassName: rook-cephfs\n",
    ] {
        refused(&api, &gateway(ns, "mixed", 1, extra), no_volume);
    }
    for (endpoint, what) in [
        ("http://rgw.svc/coffer", "a path"),
        ("https://user:pw@rgw.svc", "credentials"),
        ("ftp://rgw.svc", "another scheme"),
    ] {
        let yaml = gateway(ns, "ep", 1, "").replace("http://rgw.rook-ceph.svc", endpoint);
        eprintln!("endpoint with {what}");
        refused(
            &api,
            &yaml,
            "storage.s3.endpoint must be http(s)://HOST[:PORT]",
        );
    }
    refused(
        &api,
        &gateway(ns, "bkt", 1, "").replace("coffer-photos", "Coffer_Photos"),
        "storage.s3.bucket must be an S3 bucket name",
    );
    let (ok, out) = api.try_apply(
        &gateway(ns, "nokeys", 1, "").replace("credentialsSecret: {name: rgw-user}\n", ""),
    );
    assert!(!ok && out.contains("credentialsSecret"), "{out}");

    // Three replicas on s3 are fine (no shared claim needed); the bucket is fixed, the endpoint
    // and the replicas are not.
    let (ok, out) = api.try_apply(&gateway(ns, "photos", 3, ""));
    assert!(ok, "{out}");
    refused(
        &api,
        &gateway(ns, "photos", 3, "").replace("coffer-photos", "coffer-other"),
        "storage.s3.bucket cannot change",
    );
    let (ok, out) = api.try_apply(
        &gateway(ns, "photos", 7, "").replace("rgw.rook-ceph.svc", "rgw2.rook-ceph.svc:8080"),
    );
    assert!(ok, "endpoint and replicas may change: {out}");
    refused(
        &api,
        &tenant_yaml(ns, "photos", "  replicas: 1\n"),
        "storage.s3 cannot be added or removed",
    );
    // A volume Tenant cannot move onto s3 either.
    let (ok, out) = api.try_apply(&tenant_yaml(ns, "vol", ""));
    assert!(ok, "{out}");
    // The scale subresource (kubectl scale, an HPA) goes through the same rules.
    let scale = |name: &str, n: u32| {
        api.kubectl()
            .args([
                "-n",
                ns,
                "scale",
                "tenant",
                name,
                &format!("--replicas={n}"),
            ])
            .output()
            .unwrap()
    };
    let out = scale("vol", 3);
    assert!(!out.status.success(), "{}", common::printed(&out));
    assert!(
        common::printed(&out).contains("replicas > 1 needs storage.sharedClaimName"),
        "{}",
        common::printed(&out)
    );
    let out = scale("photos", 12);
    assert!(out.status.success(), "{}", common::printed(&out));
    let replicas = api.run(&[
        "-n",
        ns,
        "get",
        "tenant",
        "photos",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "12");
    refused(
        &api,
        &tenant_yaml(ns, "vol", &format!("  storage:\n{S3}")),
        "storage.s3 cannot be added or removed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_tenant_waits_for_its_backend_secret_then_runs_stateless_pods() {
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let _stop = start_operator(client.clone(), ns, "test");
    for yaml in [
        approle_secret(ns),
        kms_yaml(ns, "https://127.0.0.1:1"),
        gateway(ns, "photos", 3, ""),
    ] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{out}");
    }
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let degraded = |needle: &'static str| {
        let tenants = tenants.clone();
        async move {
            eventually(needle, Duration::from_secs(30), || async {
                let t = tenants.get("photos").await.ok()?;
                condition(&t, "Degraded").filter(|(s, r, m)| {
                    s == "True" && r == reason::BACKEND_SECRET_MISSING && m.contains(needle)
                })
            })
            .await
        }
    };
    degraded("\"rgw-user\" (storage.s3 credentials) does not exist").await;
    let t = tenants.get("photos").await.unwrap();
    assert_eq!(condition(&t, "Ready").unwrap().0, "False");
    assert!(stss.get_opt("photos").await.unwrap().is_none());
    let events = event_reasons(&api, ns);
    assert!(events.contains(reason::BACKEND_SECRET_MISSING), "{events}");
    let warnings = api.run(&[
        "get",
        "events.v1.events.k8s.io",
        "-n",
        ns,
        "--field-selector",
        "type=Warning",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        warnings.contains(reason::BACKEND_SECRET_MISSING),
        "{warnings}"
    );

    // Half a Secret: the missing key is named.
    let (ok, out) = api.try_apply(&backend_secret(ns, &format!("AccessKey: {ACCESS}")));
    assert!(ok, "{out}");
    degraded("has no key \"SecretKey\"").await;

    // The whole Secret: deployed at once (the Secret watch), pods without claims.
    let (ok, out) = api.try_apply(&backend_secret(
        ns,
        &format!("AccessKey: {ACCESS}, SecretKey: {SECRET}, Endpoint: http://rgw.rook-ceph.svc"),
    ));
    assert!(ok, "{out}");
    let sts = eventually("StatefulSet photos", Duration::from_secs(30), || async {
        stss.get_opt("photos").await.ok().flatten()
    })
    .await;
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert!(spec.volume_claim_templates.is_none(), "no PVC");
    let pod = spec.template.spec.as_ref().unwrap();
    assert!(
        pod.volumes
            .iter()
            .flatten()
            .all(|v| v.persistent_volume_claim.is_none() && v.name != "data")
    );
    let server = pod
        .containers
        .iter()
        .find(|c| c.name == "object-server")
        .unwrap();
    let env = |name: &str| {
        server
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    assert_eq!(
        env("COFFER_BACKEND").value.as_deref(),
        Some("http://rgw.rook-ceph.svc/coffer-photos")
    );
    for (name, key) in [
        ("COFFER_BACKEND_ACCESS_KEY", "AccessKey"),
        ("COFFER_BACKEND_SECRET_KEY", "SecretKey"),
    ] {
        let e = env(name);
        let r = e.value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (e.value, r.name.as_str(), r.key.as_str()),
            (None, "rgw-user", key)
        );
    }
    eventually("Degraded False", Duration::from_secs(30), || async {
        let t = tenants.get("photos").await.ok()?;
        condition(&t, "Degraded").filter(|(s, _, _)| s == "False")
    })
    .await;

    // Nothing the operator wrote holds a value of the backend Secret.
    let everything = api.run(&[
        "get",
        "-n",
        ns,
        "statefulsets,services,configmaps,tenants,events,poddisruptionbudgets",
        "-o",
        "yaml",
    ]);
    for v in [ACCESS, SECRET] {
        assert!(!everything.contains(v), "{v} leaked into an object");
    }
    let hash = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[CERTS_HASH_ANNOTATION]
            .clone()
    };
    let before = hash(&sts);

    // New keys roll the pods (the object-server reads them at start); replicas change freely.
    let (ok, out) = api.try_apply(&backend_secret(
        ns,
        &format!("AccessKey: {ACCESS}, SecretKey: rotated-{SECRET}"),
    ));
    assert!(ok, "{out}");
    eventually(
        "the pods roll on new keys",
        Duration::from_secs(30),
        || async {
            let s = stss.get("photos").await.ok()?;
            (hash(&s) != before).then_some(())
        },
    )
    .await;
    let (ok, out) = api.try_apply(&gateway(ns, "photos", 5, ""));
    assert!(ok, "{out}");
    eventually("5 replicas", Duration::from_secs(30), || async {
        let s = stss.get("photos").await.ok()?;
        (s.spec?.replicas == Some(5)).then_some(())
    })
    .await;
    // `kubectl scale tenant` (what an HPA aimed at the Tenant does) reaches the StatefulSet,
    // and the status names the pods' selector for the autoscaler.
    let out = api
        .kubectl()
        .args(["-n", ns, "scale", "tenant", "photos", "--replicas=2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::printed(&out));
    eventually("2 replicas", Duration::from_secs(30), || async {
        let s = stss.get("photos").await.ok()?;
        (s.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    let selector = tenants
        .get("photos")
        .await
        .unwrap()
        .status
        .unwrap()
        .selector
        .unwrap();
    let labels = stss
        .get("photos")
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .match_labels
        .unwrap();
    assert_eq!(
        selector,
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    );
}
