//! Tenant changes the StatefulSet cannot follow, against a real kube-apiserver + etcd: refused
//! by the CRD with what to do instead, volume expansion, and `Degraded` when an apply still fails.
//!
//! Needs the peers `etcd`, `kube-apiserver` and `kubectl` on PATH (`eval "$(e2e/peers/env)"`);
//! fails loudly when they are absent.

mod common;

use std::time::Duration;

use coffer_e2e::kube::KubeApi;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::{Patch, PatchParams};
use operator::crd::Tenant;

use common::fixtures::{
    Deployed, api_with_crds, approle_secret, event_reasons, kms_yaml, tenant_yaml,
};
use common::{eventually, start_operator, tenant_condition as condition};

/// Applies a Tenant `photos` edit as kubectl does; `Err` holds what kubectl printed.
fn apply_photos(api: &KubeApi, ns: &str, spec: &str) -> Result<(), String> {
    match api.try_apply(&tenant_yaml(ns, "photos", spec)) {
        (true, _) => Ok(()),
        (false, out) => Err(out),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_edits_that_cannot_be_applied_are_refused_with_what_to_do() {
    use operator::crd::tenant::{SHARED_CLAIM_MESSAGE, SIZE_MESSAGE, STORAGE_CLASS_MESSAGE};
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    apply_photos(&api, ns, "  storage: {size: 2Gi}\n").unwrap();
    let refused: &[(&str, &str)] = &[
        ("  storage: {size: 1Gi}\n", SIZE_MESSAGE),
        ("  storage: {size: 2000Mi}\n", SIZE_MESSAGE),
        (
            "  storage: {size: 2Gi, storageClassName: fast}\n",
            STORAGE_CLASS_MESSAGE,
        ),
        (
            "  storage: {size: 2Gi, sharedClaimName: rwx}\n",
            SHARED_CLAIM_MESSAGE,
        ),
    ];
    for (spec, message) in refused {
        let out = apply_photos(&api, ns, spec).expect_err(spec);
        assert!(out.contains(message), "{spec}: {out}");
        assert!(out.contains("Invalid value"), "{spec}: {out}");
    }
    // kube-rs gets the same 422 with the same text.
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let err = tenants
        .patch(
            "photos",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"storage": {"size": "1Gi"}}})),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains(SIZE_MESSAGE), "{}", s.message);
        }
        e => panic!("not an API refusal: {e:?}"),
    }
    // Growing is accepted (the operator expands the claims), and the same value stays valid.
    apply_photos(&api, ns, "  storage: {size: 3Gi}\n").unwrap();
    apply_photos(&api, ns, "  storage: {size: 3072Mi}\n").unwrap();
    // After an expansion the class refused, the size may go back down to the claims' size
    // (`status.claimSize`, which the operator writes), never below it.
    api.run(&[
        "-n",
        ns,
        "patch",
        "tenant/photos",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"claimSize":"2Gi"}}"#,
    ]);
    let out = apply_photos(&api, ns, "  storage: {size: 1Gi}\n").expect_err("below claimSize");
    assert!(out.contains(SIZE_MESSAGE), "{out}");
    apply_photos(&api, ns, "  storage: {size: 2Gi}\n").unwrap();

    // A Tenant made with a class and a shared claim keeps them, and cannot drop them.
    let (ok, out) = api.try_apply(&tenant_yaml(
        ns,
        "shared",
        "  replicas: 2\n  storage: {storageClassName: fast, sharedClaimName: rwx}\n",
    ));
    assert!(ok, "{out}");
    for (spec, message) in [
        (
            "  replicas: 2\n  storage: {storageClassName: fast, sharedClaimName: other}\n",
            SHARED_CLAIM_MESSAGE,
        ),
        (
            "  replicas: 1\n  storage: {storageClassName: fast}\n",
            SHARED_CLAIM_MESSAGE,
        ),
        (
            "  replicas: 2\n  storage: {sharedClaimName: rwx}\n",
            STORAGE_CLASS_MESSAGE,
        ),
    ] {
        let (ok, out) = api.try_apply(&tenant_yaml(ns, "shared", spec));
        assert!(!ok && out.contains(message), "{spec}: {out}");
    }
}

/// StorageClass `name`, expandable or not, and Tenant `disk` of 1Gi on it, deployed, with the
/// bound claim of its pod.
async fn tenant_on_class(name: &str, expandable: bool) -> (Deployed, &'static str) {
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let operator = start_operator(client.clone(), ns, "test");
    api.apply(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: {name}}}\n\
         provisioner: example.com/test\nallowVolumeExpansion: {expandable}\n"
    ));
    for yaml in [
        approle_secret(ns),
        kms_yaml(ns, "https://127.0.0.1:1"),
        tenant_yaml(
            ns,
            "disk",
            &format!("  storage: {{size: 1Gi, storageClassName: {name}}}\n"),
        ),
    ] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{out}");
    }
    let d = Deployed {
        api,
        client,
        _operator: operator,
    };
    let stss = d.api::<StatefulSet>(ns);
    eventually("StatefulSet disk", Duration::from_secs(30), || async {
        stss.get_opt("disk").await.ok().flatten()
    })
    .await;
    // What the StatefulSet controller and a provisioner would have made: a bound claim.
    d.api.apply(&format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data-disk-0, namespace: {ns}}}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: {name}\n  volumeName: pv-disk-0\n  resources: {{requests: {{storage: 1Gi}}}}\n"
    ));
    d.api::<PersistentVolumeClaim>(ns)
        .patch_status(
            "data-disk-0",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}})),
        )
        .await
        .unwrap();
    (d, ns)
}

fn claim_template_size(s: &StatefulSet) -> String {
    s.spec
        .as_ref()
        .unwrap()
        .volume_claim_templates
        .as_ref()
        .unwrap()[0]
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"]
        .0
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_size_expands_the_claims_and_recreates_the_statefulset() {
    let (d, ns) = tenant_on_class("expandable", true).await;
    let (stss, claims) = (d.api::<StatefulSet>(ns), d.api::<PersistentVolumeClaim>(ns));
    let uid = stss.get("disk").await.unwrap().metadata.uid;
    d.api::<Tenant>(ns)
        .patch(
            "disk",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"storage": {"size": "2Gi"}}})),
        )
        .await
        .unwrap();
    eventually(
        "the claim asks for 2Gi",
        Duration::from_secs(30),
        || async {
            let c = claims.get("data-disk-0").await.ok()?;
            let size = c.spec?.resources?.requests?.remove("storage")?.0;
            (size == "2Gi").then_some(())
        },
    )
    .await;
    // The StatefulSet is deleted with propagationPolicy Orphan: the API server marks it with the
    // `orphan` finalizer, which the garbage collector (kube-controller-manager, not running
    // here) removes once the pods are orphaned. Play its part.
    let doomed = eventually(
        "StatefulSet disk orphan-deleted",
        Duration::from_secs(30),
        || async {
            let s = stss.get_opt("disk").await.ok()??;
            s.metadata.deletion_timestamp.is_some().then_some(s)
        },
    )
    .await;
    assert_eq!(
        doomed.metadata.finalizers.as_deref(),
        Some(&["orphan".to_string()][..]),
        "the pods are orphaned, not deleted"
    );
    let t = d.api::<Tenant>(ns).get("disk").await.unwrap();
    assert_eq!(
        condition(&t, "Progressing").map(|c| c.1),
        Some("VolumesExpanding".into())
    );
    stss.patch(
        "disk",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let recreated = eventually(
        "StatefulSet disk recreated with 2Gi claims",
        Duration::from_secs(30),
        || async {
            let s = stss.get_opt("disk").await.ok()??;
            (s.metadata.uid != uid && s.metadata.deletion_timestamp.is_none()).then_some(s)
        },
    )
    .await;
    assert_eq!(claim_template_size(&recreated), "2Gi");
    let t = eventually("Degraded False", Duration::from_secs(30), || async {
        let t = d.api::<Tenant>(ns).get("disk").await.ok()?;
        condition(&t, "Degraded")
            .filter(|c| c.0 == "False")
            .map(|_| t)
    })
    .await;
    assert_eq!(condition(&t, "Progressing").unwrap().1, "RollingOut");
    let events = event_reasons(&d.api, ns);
    assert!(events.contains("VolumesExpanding"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_without_expansion_is_degraded_and_other_changes_still_apply() {
    let (d, ns) = tenant_on_class("fixed", false).await;
    let (stss, claims) = (d.api::<StatefulSet>(ns), d.api::<PersistentVolumeClaim>(ns));
    let uid = stss.get("disk").await.unwrap().metadata.uid;
    d.api::<Tenant>(ns)
        .patch(
            "disk",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"storage": {"size": "2Gi"}, "env": [{"name": "MARK", "value": "1"}]}}),
            ),
        )
        .await
        .unwrap();
    let degraded = eventually(
        "Degraded VolumeExpansionNotSupported",
        Duration::from_secs(30),
        || async {
            let t = d.api::<Tenant>(ns).get("disk").await.ok()?;
            condition(&t, "Degraded")
                .filter(|c| c.0 == "True" && c.1 == "VolumeExpansionNotSupported")
        },
    )
    .await;
    assert!(
        degraded.2.contains("data-disk-0") && degraded.2.contains("fixed"),
        "{degraded:?}"
    );
    // The other change rolled out; the StatefulSet and the claim kept their size.
    let sts = eventually("env applied", Duration::from_secs(30), || async {
        let s = stss.get("disk").await.ok()?;
        let pod = s.spec.as_ref()?.template.spec.as_ref()?;
        pod.containers[0]
            .env
            .as_ref()?
            .iter()
            .any(|e| e.name == "MARK")
            .then_some(s)
    })
    .await;
    assert_eq!(sts.metadata.uid, uid, "not recreated");
    assert_eq!(claim_template_size(&sts), "1Gi");
    let claim = claims.get("data-disk-0").await.unwrap();
    assert_eq!(
        claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0,
        "1Gi"
    );
    let warnings = d.api.run(&[
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
        warnings.contains("VolumeExpansionNotSupported"),
        "{warnings}"
    );
    // The way out: the size set back to the claims' size, which the status names.
    let tenant = d.api::<Tenant>(ns).get("disk").await.unwrap();
    let claim_size = tenant.status.and_then(|s| s.claim_size);
    assert_eq!(claim_size.as_deref(), Some("1Gi"));
    assert!(degraded.2.contains("back to 1Gi"), "{degraded:?}");
    d.api::<Tenant>(ns)
        .patch(
            "disk",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"storage": {"size": "1Gi"}}})),
        )
        .await
        .expect("the size set back to status.claimSize");
    eventually("Degraded cleared", Duration::from_secs(30), || async {
        let t = d.api::<Tenant>(ns).get("disk").await.ok()?;
        condition(&t, "Degraded").filter(|c| c.0 == "False")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_apply_is_degraded_with_a_warning_until_fixed() {
    // A StatefulSet `photos` that is not the operator's (another selector) is in the way: the
    // operator's apply would change its selector, which the API server refuses with a 422.
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    api.apply(&format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: photos, namespace: {ns}}}\n\
         spec:\n  selector: {{matchLabels: {{app: other}}}}\n  serviceName: other\n  template:\n    metadata: {{labels: {{app: other}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
    ));
    let _stop = start_operator(client.clone(), ns, "test");
    for yaml in [
        approle_secret(ns),
        kms_yaml(ns, "https://127.0.0.1:1"),
        tenant_yaml(ns, "photos", ""),
    ] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{out}");
    }
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let t = eventually("Degraded ApplyFailed", Duration::from_secs(30), || async {
        let t = tenants.get("photos").await.ok()?;
        condition(&t, "Degraded")
            .filter(|c| c.0 == "True" && c.1 == "ApplyFailed")
            .map(|_| t)
    })
    .await;
    let (_, _, message) = condition(&t, "Degraded").unwrap();
    assert!(
        message.starts_with(r#"the API server refused StatefulSet "photos": "#)
            && message.contains("spec.selector")
            && message.contains("field is immutable"),
        "{message}"
    );
    assert_eq!(
        condition(&t, "Ready").map(|c| (c.0, c.1)),
        Some(("False".into(), "ApplyFailed".into()))
    );
    assert!(!message.contains("s-456"), "no secret in the message");
    let warnings = api.run(&[
        "get",
        "events.v1.events.k8s.io",
        "-n",
        ns,
        "--field-selector",
        "type=Warning",
        "-o",
        "jsonpath={.items[*].note}",
    ]);
    // The event's note is the message, cut to the 1 KiB an event note may have.
    assert!(warnings.contains(&message[..200]), "{warnings}");

    // The StatefulSet out of the way, the Tenant deploys (the next try, or a change of it).
    api.run(&["delete", "statefulset", "photos", "-n", ns]);
    tenants
        .patch(
            "photos",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    eventually("Degraded False", Duration::from_secs(30), || async {
        let t = tenants.get("photos").await.ok()?;
        condition(&t, "Degraded").filter(|c| c.0 == "False")
    })
    .await;
}
