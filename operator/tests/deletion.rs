//! What deleting a Tenant or a KMS does, against a real kube-apiserver + etcd and the real
//! garbage collector (kube-controller-manager's `garbagecollector` and `pvc-protection`
//! controllers): the owned objects go, the CA and root credentials Secrets and the claims stay
//! (a Tenant recreated under the same name serves the same CA); `deletionProtection` holds a
//! Tenant until it is turned off; `deletionPolicy: Delete` deletes the claims; a KMS that
//! Tenants use is held and says which. Also the pod settings of the same spec block, as the
//! API server validates and stores them.
//!
//! Needs the peers `etcd`, `kube-apiserver`, `kube-controller-manager` and `kubectl` on PATH
//! (`eval "$(e2e/peers/env)"`); fails loudly when they are absent.

mod common;

use std::process::Command;
use std::time::Duration;

use coffer_e2e::kube::KubeApi;
use coffer_e2e::{Process, peer_bin};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use operator::crd::{KMS, Tenant};
use operator::reconcile::kms::in_use;
use operator::reconcile::tenant::{DELETION_BLOCKED, FINALIZER, reason};

use common::fixtures::{api_with_crds, approle_secret, event_reasons, kms_yaml, tenant_yaml};
use common::{eventually, kms_condition, start_operator, tenant_condition};

const T: Duration = Duration::from_secs(60);

/// The garbage collector and the claim protection of kube-controller-manager, on `api`.
fn garbage_collector(api: &KubeApi, dir: &std::path::Path) -> Process {
    let mut command = Command::new(peer_bin("kube-controller-manager"));
    command
        .arg(format!("--kubeconfig={}", api.kubeconfig.display()))
        .args([
            "--controllers=garbagecollector,pvc-protection",
            "--leader-elect=false",
            "--secure-port=0",
        ]);
    Process::spawn(
        "kube-controller-manager",
        command,
        &dir.join("kube-controller-manager.log"),
    )
}

/// An API server with the CRDs, the garbage collector, the operator on `ns`, and KMS `vault`.
struct Cluster {
    api: KubeApi,
    client: Client,
    _gc: Process,
    _operator: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(ns: &str) -> Self {
        let (api, client) = api_with_crds(ns).await;
        let dir = tempfile::tempdir().unwrap();
        let gc = garbage_collector(&api, dir.path());
        let operator = start_operator(client.clone(), ns, "test");
        for yaml in [approle_secret(ns), kms_yaml(ns, "https://127.0.0.1:1")] {
            let (ok, out) = api.try_apply(&yaml);
            assert!(ok, "{out}");
        }
        Self {
            api,
            client,
            _gc: gc,
            _operator: operator,
            _dir: dir,
        }
    }

    fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Applies Tenant `name` and waits for its StatefulSet and finalizer.
    async fn tenant(&self, ns: &str, name: &str, spec: &str) -> Tenant {
        let (ok, out) = self.api.try_apply(&tenant_yaml(ns, name, spec));
        assert!(ok, "{out}");
        let stss = self.api::<StatefulSet>(ns);
        eventually(&format!("StatefulSet {name}"), T, || async {
            stss.get_opt(name).await.ok().flatten()
        })
        .await;
        let tenants = self.api::<Tenant>(ns);
        eventually(&format!("Tenant {name}'s finalizer"), T, || async {
            let t = tenants.get(name).await.ok()?;
            t.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FINALIZER)
                .then_some(t)
        })
        .await
    }

    /// A claim as the StatefulSet controller makes it for pod `<tenant>-<n>` (with the claim
    /// template's labels), or any claim with those labels.
    fn claim(&self, ns: &str, name: &str, tenant: &str) {
        self.api.apply(&format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app.kubernetes.io/name: coffer, app.kubernetes.io/instance: {tenant}, app.kubernetes.io/managed-by: coffer-operator}}\n\
             spec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
        ));
    }

    async fn gone<K>(&self, ns: &str, name: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let api = self.api::<K>(ns);
        eventually(
            &format!("{} {name} deleted", std::any::type_name::<K>()),
            T,
            || async { matches!(api.get_opt(name).await, Ok(None)).then_some(()) },
        )
        .await;
    }
}

fn data(s: &Secret, key: &str) -> ByteString {
    s.data.as_ref().unwrap()[key].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_removes_what_it_generated_and_a_recreated_one_keeps_its_ca_and_credentials()
 {
    let ns = "shop";
    let c = Cluster::start(ns).await;
    let first = c.tenant(ns, "photos", "").await;
    let secrets = c.api::<Secret>(ns);
    let ca = secrets.get("photos-ca").await.unwrap();
    let root = secrets.get("photos-root").await.unwrap();
    assert_eq!(
        ca.metadata.owner_references, None,
        "the CA Secret is not owned"
    );
    assert_eq!(
        root.metadata.owner_references, None,
        "nor the root credentials"
    );
    let served_ca = data(&secrets.get("photos-tls").await.unwrap(), "ca.crt");
    c.claim(ns, "data-photos-0", "photos");

    c.api::<Tenant>(ns)
        .delete("photos", &DeleteParams::default())
        .await
        .unwrap();
    c.gone::<Tenant>(ns, "photos").await;
    // The garbage collector follows the owner references.
    c.gone::<StatefulSet>(ns, "photos").await;
    c.gone::<Service>(ns, "photos").await;
    c.gone::<Service>(ns, "photos-hl").await;
    c.gone::<PodDisruptionBudget>(ns, "photos").await;
    c.gone::<ConfigMap>(ns, "photos-kes-config").await;
    for generated in ["photos-tls", "photos-kes-tls", "photos-users"] {
        c.gone::<Secret>(ns, generated).await;
    }
    // What cannot be made again stays: the CA, the root credentials, the claim (Retain).
    assert_eq!(secrets.get("photos-ca").await.unwrap().data, ca.data);
    assert_eq!(secrets.get("photos-root").await.unwrap().data, root.data);
    let claim = c
        .api::<PersistentVolumeClaim>(ns)
        .get("data-photos-0")
        .await
        .unwrap();
    assert!(claim.metadata.deletion_timestamp.is_none());

    // The same name again: a new Tenant (new uid) with the same CA and root credentials.
    let second = c.tenant(ns, "photos", "").await;
    assert_ne!(first.metadata.uid, second.metadata.uid);
    let tls = eventually("Secret photos-tls again", T, || async {
        secrets.get_opt("photos-tls").await.ok().flatten()
    })
    .await;
    assert_eq!(
        data(&tls, "ca.crt"),
        served_ca,
        "S3 clients that trusted the old Tenant's CA trust the new one"
    );
    let ca_again = secrets.get("photos-ca").await.unwrap();
    assert_eq!(data(&ca_again, "ca.crt"), data(&ca, "ca.crt"));
    assert_eq!(data(&ca_again, "ca.key"), data(&ca, "ca.key"));
    assert_eq!(secrets.get("photos-root").await.unwrap().data, root.data);
    let events = event_reasons(&c.api, ns);
    assert_eq!(
        events.matches(reason::CA_ISSUED).count(),
        1,
        "one CA issued, for the first Tenant only: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_protection_holds_the_tenant_until_it_is_turned_off() {
    let ns = "shop";
    let c = Cluster::start(ns).await;
    c.tenant(ns, "vault-backed", "  deletionProtection: true\n")
        .await;
    let tenants = c.api::<Tenant>(ns);
    tenants
        .delete("vault-backed", &DeleteParams::default())
        .await
        .unwrap();
    let held = eventually("DeletionBlocked on the Tenant", T, || async {
        let t = tenants.get("vault-backed").await.ok()?;
        let (status, why, message) = tenant_condition(&t, DELETION_BLOCKED)?;
        (status == "True").then_some((t, why, message))
    })
    .await;
    let (t, why, message) = held;
    assert!(t.metadata.deletion_timestamp.is_some());
    assert_eq!(why, reason::DELETION_PROTECTED);
    assert!(
        message.contains("spec.deletionProtection is true") && message.contains("kubectl"),
        "{message}"
    );
    eventually("the Warning event", T, || async {
        event_reasons(&c.api, ns)
            .contains(reason::DELETION_PROTECTED)
            .then_some(())
    })
    .await;
    // Still whole, and still reconciled: a spec change reaches the StatefulSet.
    for secret in [
        "vault-backed-tls",
        "vault-backed-kes-tls",
        "vault-backed-ca",
    ] {
        c.api::<Secret>(ns).get(secret).await.unwrap();
    }
    tenants
        .patch(
            "vault-backed",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"terminationGracePeriodSeconds": 77}})),
        )
        .await
        .unwrap();
    let stss = c.api::<StatefulSet>(ns);
    eventually("the change applied while held", T, || async {
        let s = stss.get("vault-backed").await.ok()?;
        (s.spec?.template.spec?.termination_grace_period_seconds == Some(77)).then_some(())
    })
    .await;

    tenants
        .patch(
            "vault-backed",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"deletionProtection": false}})),
        )
        .await
        .unwrap();
    c.gone::<Tenant>(ns, "vault-backed").await;
    c.gone::<StatefulSet>(ns, "vault-backed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_delete_deletes_the_claims_and_retain_keeps_them() {
    let ns = "shop";
    let c = Cluster::start(ns).await;
    c.tenant(ns, "scratch", "  deletionPolicy: Delete\n").await;
    c.tenant(ns, "keep", "").await;
    c.claim(ns, "data-scratch-0", "scratch");
    c.claim(ns, "data-scratch-1", "scratch");
    // Not made by the StatefulSet for scratch's pods: never deleted.
    c.claim(ns, "scratch-notes", "scratch");
    c.claim(ns, "data-keep-0", "keep");
    let tenants = c.api::<Tenant>(ns);
    for name in ["scratch", "keep"] {
        tenants
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    c.gone::<Tenant>(ns, "scratch").await;
    c.gone::<Tenant>(ns, "keep").await;
    c.gone::<PersistentVolumeClaim>(ns, "data-scratch-0").await;
    c.gone::<PersistentVolumeClaim>(ns, "data-scratch-1").await;
    let claims = c.api::<PersistentVolumeClaim>(ns);
    for kept in ["scratch-notes", "data-keep-0"] {
        let claim = claims.get(kept).await.unwrap();
        assert!(claim.metadata.deletion_timestamp.is_none(), "{kept}");
    }
    assert!(event_reasons(&c.api, ns).contains(reason::CLAIMS_DELETED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_kms_that_tenants_use_is_held_and_names_them() {
    let ns = "shop";
    let c = Cluster::start(ns).await;
    c.tenant(ns, "photos", "").await;
    c.tenant(ns, "videos", "").await;
    let kmses = c.api::<KMS>(ns);
    eventually("the KMS's finalizer", T, || async {
        let k = kmses.get("vault").await.ok()?;
        k.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == in_use::FINALIZER)
            .then_some(())
    })
    .await;
    kmses
        .delete("vault", &DeleteParams::default())
        .await
        .unwrap();
    let held = |names: &'static str| {
        let kmses = kmses.clone();
        async move {
            eventually(&format!("the KMS held for {names}"), T, || async {
                let k = kmses.get("vault").await.ok()?;
                let (status, why, message) = kms_condition(&k, DELETION_BLOCKED)?;
                (status == "True"
                    && why == in_use::IN_USE_BY_TENANTS
                    && message
                        == in_use::Deletion::message(
                            "vault",
                            &names.split(',').map(String::from).collect::<Vec<_>>(),
                        ))
                .then_some(())
            })
            .await
        }
    };
    held("photos,videos").await;
    assert!(event_reasons(&c.api, ns).contains(in_use::IN_USE_BY_TENANTS));
    // The Tenants keep working meanwhile.
    c.api::<StatefulSet>(ns).get("photos").await.unwrap();
    c.api::<Tenant>(ns)
        .delete("photos", &DeleteParams::default())
        .await
        .unwrap();
    held("videos").await;
    c.api::<Tenant>(ns)
        .delete("videos", &DeleteParams::default())
        .await
        .unwrap();
    c.gone::<KMS>(ns, "vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_settings_are_validated_and_reach_the_statefulset_and_network_policy() {
    use operator::crd::tenant::lifecycle::{POD_ANNOTATIONS_MESSAGE, POD_LABELS_MESSAGE};
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let _operator = start_operator(client.clone(), ns, "test");
    for yaml in [approle_secret(ns), kms_yaml(ns, "https://127.0.0.1:1")] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{out}");
    }
    for (spec, says) in [
        (
            "  deletionPolicy: Destroy\n",
            "Unsupported value: \"Destroy\"",
        ),
        (
            "  podLabels: {app.kubernetes.io/instance: x}\n",
            POD_LABELS_MESSAGE,
        ),
        (
            "  podAnnotations: {coffer.dev/certs-hash: x}\n",
            POD_ANNOTATIONS_MESSAGE,
        ),
        (
            "  probes: {liveness: {periodSeconds: 0}}\n",
            "should be greater than or equal to 1",
        ),
        (
            "  terminationGracePeriodSeconds: -1\n",
            "should be greater than or equal to 0",
        ),
    ] {
        let (ok, out) = api.try_apply(&tenant_yaml(ns, "bad", spec));
        assert!(!ok && out.contains(says), "{spec}: {out}");
    }
    let (ok, out) = api.try_apply(&tenant_yaml(
        ns,
        "photos",
        "  serviceAccountName: vault-auth\n  imagePullSecrets: [{name: registry}]\n\
         \x20 podLabels: {team: storage}\n  podAnnotations: {example.com/owner: storage}\n\
         \x20 terminationGracePeriodSeconds: 90\n\
         \x20 probes: {readiness: {periodSeconds: 5, failureThreshold: 6}}\n\
         \x20 scheduling: {topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway}]}\n\
         \x20 networkPolicy: {enabled: true, metricsFrom: [{namespaceSelector: {matchLabels: {team: monitoring}}}], s3From: [{podSelector: {matchLabels: {role: app}}}]}\n",
    ));
    assert!(ok, "{out}");
    // The API server stored (so validated) what the builders rendered.
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let sts = eventually("StatefulSet photos", T, || async {
        stss.get_opt("photos").await.ok().flatten()
    })
    .await;
    let template = sts.spec.unwrap().template;
    let pod = template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("vault-auth"));
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "registry");
    assert_eq!(pod.termination_grace_period_seconds, Some(90));
    let spread = &pod.topology_spread_constraints.unwrap()[0];
    assert_eq!(
        spread
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["app.kubernetes.io/instance"],
        "photos"
    );
    let meta = template.metadata.unwrap();
    assert_eq!(meta.labels.unwrap()["team"], "storage");
    assert_eq!(meta.annotations.unwrap()["example.com/owner"], "storage");
    let ready = pod.containers[0].readiness_probe.clone().unwrap();
    assert_eq!(
        (ready.period_seconds, ready.failure_threshold),
        (Some(5), Some(6))
    );
    let kes = &pod.init_containers.unwrap()[0];
    assert!(kes.liveness_probe.as_ref().unwrap().exec.is_some());
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let policy = eventually("NetworkPolicy photos", T, || async {
        policies.get_opt("photos").await.ok().flatten()
    })
    .await;
    let rules = policy.spec.unwrap().ingress.unwrap();
    assert_eq!(
        rules.len(),
        2,
        "S3 from the apps, the same port from monitoring"
    );
    // A NetworkPolicy deleted by hand comes back (the operator watches what it owns).
    policies
        .delete("photos", &DeleteParams::default())
        .await
        .unwrap();
    eventually("NetworkPolicy photos made again", T, || async {
        policies
            .get_opt("photos")
            .await
            .ok()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
    })
    .await;
    Api::<Tenant>::namespaced(client.clone(), ns)
        .patch(
            "photos",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"networkPolicy": {"enabled": false}}})),
        )
        .await
        .unwrap();
    eventually(
        "NetworkPolicy photos removed once turned off",
        T,
        || async { matches!(policies.get_opt("photos").await, Ok(None)).then_some(()) },
    )
    .await;
}
