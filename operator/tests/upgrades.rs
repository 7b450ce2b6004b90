//! The rollout of a new default image across Tenants, against a real kube-apiserver + etcd:
//! three Tenants on the old default, the operator restarted with a new one and at most one
//! upgrade at a time, one Tenant paused. There is no StatefulSet controller here: the test
//! reports the rollouts the way it would, by writing the StatefulSets' status.
//!
//! Needs the peers `etcd`, `kube-apiserver` and `kubectl` on PATH (`eval "$(e2e/peers/env)"`);
//! fails loudly when they are absent.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use operator::build::workload::object_server_image;
use operator::crd::Tenant;
use operator::crd::tenant::{DEFAULT_IMAGE as OLD, UPGRADE_PAUSED_ANNOTATION};
use operator::reconcile::status::UP_TO_DATE;
use operator::reconcile::tenant::reason;
use operator::reconcile::tenant::upgrade::UPGRADED_FROM_ANNOTATION;

use common::fixtures::{api_with_crds, approle_secret, event_reasons, kms_yaml, tenant_yaml};
use common::{eventually, start_operator_with, tenant_condition};

const NEW: &str = "ghcr.io/coffer-dev/coffer:0.2.0";
const NS: &str = "shop";

struct Cluster {
    stss: Api<StatefulSet>,
    tenants: Api<Tenant>,
}

impl Cluster {
    fn new(client: &Client) -> Self {
        Self {
            stss: Api::namespaced(client.clone(), NS),
            tenants: Api::namespaced(client.clone(), NS),
        }
    }

    async fn image(&self, name: &str) -> String {
        object_server_image(&self.stss.get(name).await.unwrap()).unwrap()
    }

    async fn images(&self) -> [String; 3] {
        [
            self.image("a").await,
            self.image("b").await,
            self.image("c").await,
        ]
    }

    /// What the StatefulSet controller writes once every replica of `name` runs its template
    /// and is ready.
    async fn settle(&self, name: &str) {
        let sts = self.stss.get(name).await.unwrap();
        let generation = sts.metadata.generation.unwrap();
        let revision = format!("{name}-{generation}");
        self.stss
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {
                    "observedGeneration": generation, "replicas": 1, "readyReplicas": 1,
                    "updatedReplicas": 1, "currentReplicas": 1, "availableReplicas": 1,
                    "currentRevision": revision, "updateRevision": revision,
                }})),
            )
            .await
            .unwrap();
    }

    /// What it writes while it replaces the pods of revision `<name>-1` with the template's.
    async fn rolling(&self, name: &str) {
        let sts = self.stss.get(name).await.unwrap();
        let generation = sts.metadata.generation.unwrap();
        self.stss
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {
                    "observedGeneration": generation, "replicas": 1, "readyReplicas": 0,
                    "updatedReplicas": 0, "currentReplicas": 1, "availableReplicas": 0,
                    "currentRevision": format!("{name}-1"),
                    "updateRevision": format!("{name}-{generation}"),
                }})),
            )
            .await
            .unwrap();
    }

    /// `(UpToDate reason, message, currentImage, targetImage)` of Tenant `name`.
    async fn standing(&self, name: &str) -> (String, String, Option<String>, Option<String>) {
        let t = self.tenants.get(name).await.unwrap();
        let (_, why, message) = tenant_condition(&t, UP_TO_DATE).unwrap_or_default();
        let st = t.status.unwrap_or_default();
        (why, message, st.current_image, st.target_image)
    }

    /// Waits until Tenant `name`'s `UpToDate` reason is `why`.
    async fn wait_for(&self, name: &str, why: &str) {
        eventually(
            &format!("Tenant {name} UpToDate {why}"),
            Duration::from_secs(30),
            || async { (self.standing(name).await.0 == why).then_some(()) },
        )
        .await;
    }

    async fn upgraded_from(&self, name: &str) -> Option<String> {
        self.stss
            .get(name)
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
            .get(UPGRADED_FROM_ANNOTATION)
            .cloned()
    }

    /// For `period`: never more than one of a and b on the new image, c never.
    async fn holds_one_at_a_time(&self, period: Duration) -> [String; 3] {
        let deadline = tokio::time::Instant::now() + period;
        loop {
            let images = self.images().await;
            let moved = images[..2].iter().filter(|i| *i == NEW).count();
            assert!(moved <= 1, "two Tenants moved at once: {images:?}");
            assert_eq!(images[2], OLD, "the paused Tenant moved");
            if tokio::time::Instant::now() >= deadline {
                return images;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_default_image_moves_one_tenant_at_a_time_and_never_the_paused_one() {
    let (api, client) = api_with_crds(NS).await;
    let cluster = Cluster::new(&client);
    let v1 = start_operator_with(client.clone(), NS, "v1", OLD, 1);
    let paused = format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\n\
         metadata: {{name: c, namespace: {NS}, annotations: {{{UPGRADE_PAUSED_ANNOTATION}: \"true\"}}}}\n\
         spec:\n  kms: {{name: vault}}\n"
    );
    for yaml in [
        approle_secret(NS),
        kms_yaml(NS, "https://127.0.0.1:1"),
        tenant_yaml(NS, "a", ""),
        tenant_yaml(NS, "b", ""),
        paused,
    ] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{yaml}\n{out}");
    }
    let c = cluster.tenants.get("c").await.unwrap();
    assert!(c.upgrade_paused(), "{:?}", c.metadata.annotations);
    for name in ["a", "b", "c"] {
        eventually(
            &format!("StatefulSet {name}"),
            Duration::from_secs(30),
            || async { cluster.stss.get_opt(name).await.ok().flatten() },
        )
        .await;
        cluster.settle(name).await;
    }
    for name in ["a", "b", "c"] {
        cluster.wait_for(name, reason::IMAGE_CURRENT).await;
        let (_, _, current, target) = cluster.standing(name).await;
        assert_eq!((current.as_deref(), target), (Some(OLD), None), "{name}");
        let t = cluster.tenants.get(name).await.unwrap();
        assert_eq!(t.status.unwrap().current_version.as_deref(), Some("0.1.0"));
    }

    // The operator is upgraded: a new process (nothing in memory) whose default is NEW.
    drop(v1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v2 = start_operator_with(client.clone(), NS, "v2", NEW, 1);
    let first = eventually("a Tenant moved", Duration::from_secs(30), || async {
        let images = cluster.images().await;
        ["a", "b"]
            .into_iter()
            .zip(&images)
            .find(|(_, i)| *i == NEW)
            .map(|(n, _)| n)
    })
    .await;
    let second = if first == "a" { "b" } else { "a" };
    assert_eq!(
        cluster.upgraded_from(first).await.as_deref(),
        Some(OLD),
        "the moved StatefulSet holds the slot"
    );
    cluster.wait_for(first, reason::UPGRADING).await;
    cluster
        .wait_for(second, reason::WAITING_FOR_UPGRADE_SLOT)
        .await;
    cluster.wait_for("c", reason::UPGRADE_PAUSED).await;
    let (_, message, current, target) = cluster.standing(second).await;
    assert!(
        message.contains(&format!("(1 of 1 taken by {NS}/{first})")),
        "{message}"
    );
    assert_eq!((current.as_deref(), target), (Some(OLD), None));
    // first's pods roll: the status says from what to what (what the old pods run is read
    // from the ControllerRevision of the current revision).
    api.apply(&format!(
        "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata: {{name: {first}-1, namespace: {NS}}}\n\
         revision: 1\ndata: {{spec: {{template: {{$patch: replace, spec: {{containers: [{{name: object-server, image: \"{OLD}\"}}]}}}}}}}}\n"
    ));
    cluster.rolling(first).await;
    eventually("first's target image", Duration::from_secs(30), || async {
        let (_, _, current, target) = cluster.standing(first).await;
        (current.as_deref() == Some(OLD) && target.as_deref() == Some(NEW)).then_some(())
    })
    .await;
    cluster.holds_one_at_a_time(Duration::from_secs(3)).await;

    // Restarted mid-rollout, the operator counts the same slot as taken.
    drop(v2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _v3 = start_operator_with(client.clone(), NS, "v3", NEW, 1);
    cluster.holds_one_at_a_time(Duration::from_secs(5)).await;
    assert_eq!(
        cluster.standing(second).await.0,
        reason::WAITING_FOR_UPGRADE_SLOT
    );

    // first is Ready on NEW: it says so, and second moves (woken at once, not by a resync).
    cluster.settle(first).await;
    let started = tokio::time::Instant::now();
    eventually(
        "the second Tenant moved",
        Duration::from_secs(20),
        || async { (cluster.image(second).await == NEW).then_some(()) },
    )
    .await;
    let woken_after = started.elapsed();
    cluster.wait_for(first, reason::UPGRADED).await;
    let (_, message, current, target) = cluster.standing(first).await;
    assert_eq!(
        message,
        format!("upgraded from {OLD}: every replica is ready on {NEW}")
    );
    assert_eq!((current.as_deref(), target), (Some(NEW), None));
    assert_eq!(cluster.upgraded_from(first).await, None);
    assert_eq!(cluster.image("c").await, OLD);

    cluster.settle(second).await;
    cluster.wait_for(second, reason::UPGRADED).await;
    assert_eq!(cluster.images().await, [NEW, NEW, OLD].map(String::from));
    let (why, _, current, _) = cluster.standing("c").await;
    assert_eq!(
        (why.as_str(), current.as_deref()),
        (reason::UPGRADE_PAUSED, Some(OLD))
    );
    let t = cluster.tenants.get(first).await.unwrap();
    assert_eq!(t.status.unwrap().current_version.as_deref(), Some("0.2.0"));

    let events = event_reasons(&api, NS);
    for r in [
        reason::UPGRADING,
        reason::WAITING_FOR_UPGRADE_SLOT,
        reason::UPGRADE_PAUSED,
        reason::UPGRADED,
    ] {
        assert!(events.split(' ').any(|e| e == r), "no {r} event: {events}");
    }
    eprintln!("the second Tenant moved {woken_after:?} after the first was Ready");
}
