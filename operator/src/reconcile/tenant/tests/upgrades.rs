//! The rollout of a new default image across Tenants ([`crate::reconcile::tenant::upgrade`]),
//! one reconcile at a time: the slot rule, pause, not Ready, and what the status says.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

use super::*;
use crate::build::workload::object_server_image;
use crate::crd::tenant::{DEFAULT_IMAGE as OLD, UPGRADE_PAUSED_ANNOTATION};
use crate::reconcile::status::UP_TO_DATE;
use crate::reconcile::tenant::upgrade::{SLOT_RETRY, UPGRADED_FROM_ANNOTATION};

const NEW: &str = "ghcr.io/coffer-dev/coffer:0.2.0";

/// One reconcile of Tenant `name` (as stored) by an operator whose default image is `default`
/// and that moves `max` Tenants at a time.
async fn reconcile_with(api: &FakeApi, name: &str, default: &str, max: usize) -> Action {
    let ctx = Context::with_default_image(
        api.client(),
        Reporter {
            controller: "coffer-operator".into(),
            instance: Some("unit".into()),
        },
        default.into(),
    );
    ctx.set_max_concurrent_upgrades(max);
    reconcile(Arc::new(tenant(api, name)), ctx).await.unwrap()
}

fn tenant(api: &FakeApi, name: &str) -> Tenant {
    api.get::<Tenant>(NS, name).unwrap()
}

fn sts(api: &FakeApi, name: &str) -> StatefulSet {
    api.get::<StatefulSet>(NS, name).unwrap()
}

fn image_of(api: &FakeApi, name: &str) -> String {
    object_server_image(&sts(api, name)).unwrap()
}

fn upgraded_from(api: &FakeApi, name: &str) -> Option<String> {
    sts(api, name)
        .metadata
        .annotations
        .unwrap_or_default()
        .get(UPGRADED_FROM_ANNOTATION)
        .cloned()
}

/// What the StatefulSet controller reports once every replica runs the template and is ready.
fn settle(api: &FakeApi, name: &str) {
    let mut s = sts(api, name);
    let revision = format!("{name}-{}", s.metadata.generation.unwrap());
    s.status = Some(StatefulSetStatus {
        observed_generation: s.metadata.generation,
        replicas: 1,
        ready_replicas: Some(1),
        updated_replicas: Some(1),
        current_revision: Some(revision.clone()),
        update_revision: Some(revision),
        ..Default::default()
    });
    api.put(&s);
}

/// What it reports while it replaces the pods of revision `from` (generation 1, whose
/// `ControllerRevision` is stored when `with_revision`) by the template's.
fn rolling(api: &FakeApi, name: &str, from_image: &str, with_revision: bool) {
    let mut s = sts(api, name);
    let current = format!("{name}-1");
    s.status = Some(StatefulSetStatus {
        observed_generation: s.metadata.generation,
        replicas: 1,
        ready_replicas: Some(0),
        updated_replicas: Some(0),
        current_revision: Some(current.clone()),
        update_revision: Some(format!("{name}-{}", s.metadata.generation.unwrap())),
        ..Default::default()
    });
    api.put(&s);
    if with_revision {
        api.put(&ControllerRevision {
            metadata: kube::api::ObjectMeta {
                name: Some(current),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            data: Some(RawExtension(serde_json::json!({"spec": {"template": {
                "$patch": "replace",
                "spec": {"containers": [{"name": "object-server", "image": from_image}]}
            }}}))),
            revision: 1,
        });
    }
}

/// A cluster with Tenants `names` (and `photos`) deployed on the old default and Ready on it.
async fn ready_on_old(names: &[&str], paused: &[&str]) -> FakeApi {
    let (api, template) = cluster();
    for name in names {
        let mut t = template.clone();
        t.metadata.name = Some(name.to_string());
        if paused.contains(name) {
            t.metadata.annotations =
                Some([(UPGRADE_PAUSED_ANNOTATION.to_string(), "true".to_string())].into());
        }
        api.put(&t);
        reconcile_with(&api, name, OLD, 1).await;
        settle(&api, name);
        reconcile_with(&api, name, OLD, 1).await;
        let c = condition(&tenant(&api, name), UP_TO_DATE);
        assert_eq!((c.0, c.1.as_str()), (true, reason::IMAGE_CURRENT), "{name}");
    }
    api.clear_log();
    api
}

fn up_to_date(api: &FakeApi, name: &str) -> (bool, String, String) {
    condition(&tenant(api, name), UP_TO_DATE)
}

fn events_of(api: &FakeApi, reason: &str) -> Vec<String> {
    api.events()
        .into_iter()
        .filter(|(_, r, _)| r == reason)
        .map(|(_, _, note)| note)
        .collect()
}

#[tokio::test]
async fn one_slot_moves_one_tenant_and_the_next_once_it_is_ready() {
    let api = ready_on_old(&["a", "b"], &[]).await;

    reconcile_with(&api, "a", NEW, 1).await;
    assert_eq!(image_of(&api, "a"), NEW);
    assert_eq!(upgraded_from(&api, "a").as_deref(), Some(OLD));
    let (ok, why, message) = up_to_date(&api, "a");
    assert!(!ok);
    assert_eq!(why, reason::UPGRADING);
    assert_eq!(
        message,
        format!("rolling from {OLD} to {NEW}, the operator's default image")
    );
    assert_eq!(events_of(&api, reason::UPGRADING), [message]);

    // The only slot is taken: b stays, says by whom, and looks again soon.
    let action = reconcile_with(&api, "b", NEW, 1).await;
    assert_eq!(image_of(&api, "b"), OLD);
    assert_eq!(upgraded_from(&api, "b"), None);
    let (ok, why, message) = up_to_date(&api, "b");
    assert!(!ok);
    assert_eq!(why, reason::WAITING_FOR_UPGRADE_SLOT);
    assert!(message.contains("(1 of 1 taken by shop/a)"), "{message}");
    assert_eq!(action, Action::requeue(SLOT_RETRY));
    assert_eq!(events_of(&api, reason::WAITING_FOR_UPGRADE_SLOT).len(), 1);
    // Asked again, nothing changes and nothing is repeated.
    reconcile_with(&api, "b", NEW, 1).await;
    assert_eq!(image_of(&api, "b"), OLD);
    assert_eq!(events_of(&api, reason::WAITING_FOR_UPGRADE_SLOT).len(), 1);

    // a's pods roll but are not ready yet: the slot stays taken.
    rolling(&api, "a", OLD, false);
    reconcile_with(&api, "a", NEW, 1).await;
    reconcile_with(&api, "b", NEW, 1).await;
    assert_eq!(image_of(&api, "b"), OLD);

    // a is ready on the new image: its mark goes, it says so, and b moves.
    settle(&api, "a");
    reconcile_with(&api, "a", NEW, 1).await;
    assert_eq!(upgraded_from(&api, "a"), None);
    let (ok, why, message) = up_to_date(&api, "a");
    assert!(ok);
    assert_eq!(why, reason::UPGRADED);
    assert_eq!(
        message,
        format!("upgraded from {OLD}: every replica is ready on {NEW}")
    );
    assert_eq!(events_of(&api, reason::UPGRADED), [message]);
    let st = tenant(&api, "a").status.unwrap();
    assert_eq!(
        (
            st.current_image.as_deref(),
            st.current_version.as_deref(),
            st.target_image.as_deref()
        ),
        (Some(NEW), Some("0.2.0"), None)
    );
    reconcile_with(&api, "b", NEW, 1).await;
    assert_eq!(image_of(&api, "b"), NEW);
    assert_eq!(up_to_date(&api, "b").1, reason::UPGRADING);
    // And a, reconciled again, keeps its state.
    reconcile_with(&api, "a", NEW, 1).await;
    assert_eq!(up_to_date(&api, "a").1, reason::UPGRADED);
    assert_eq!(image_of(&api, "a"), NEW);
}

#[tokio::test]
async fn two_slots_move_two_tenants_and_zero_moves_none() {
    let api = ready_on_old(&["a", "b", "c"], &[]).await;
    for name in ["a", "b", "c"] {
        reconcile_with(&api, name, NEW, 2).await;
    }
    let images: Vec<_> = ["a", "b", "c"].map(|n| image_of(&api, n)).into();
    assert_eq!(images, [NEW, NEW, OLD]);
    assert!(
        up_to_date(&api, "c")
            .2
            .contains("(2 of 2 taken by shop/a, shop/b)")
    );

    let api = ready_on_old(&["a"], &[]).await;
    reconcile_with(&api, "a", NEW, 0).await;
    assert_eq!(image_of(&api, "a"), OLD);
    let (_, why, message) = up_to_date(&api, "a");
    assert_eq!(why, reason::WAITING_FOR_UPGRADE_SLOT);
    assert!(message.contains("--max-concurrent-upgrades=0"), "{message}");
}

#[tokio::test]
async fn a_paused_tenant_stays_and_takes_no_slot() {
    let api = ready_on_old(&["a", "b"], &["a"]).await;
    reconcile_with(&api, "a", NEW, 1).await;
    assert_eq!(image_of(&api, "a"), OLD);
    let (ok, why, message) = up_to_date(&api, "a");
    assert!(!ok);
    assert_eq!(why, reason::UPGRADE_PAUSED);
    assert!(message.contains(UPGRADE_PAUSED_ANNOTATION), "{message}");
    assert_eq!(events_of(&api, reason::UPGRADE_PAUSED), [message]);
    // The slot is still free for b.
    reconcile_with(&api, "b", NEW, 1).await;
    assert_eq!(image_of(&api, "b"), NEW);
    settle(&api, "b");
    reconcile_with(&api, "b", NEW, 1).await;
    // Unpaused, a moves.
    let mut a = tenant(&api, "a");
    a.metadata.annotations = None;
    api.put(&a);
    reconcile_with(&api, "a", NEW, 1).await;
    assert_eq!(image_of(&api, "a"), NEW);
}

#[tokio::test]
async fn a_tenant_not_ready_is_never_moved_but_its_own_spec_image_applies() {
    let api = ready_on_old(&["a"], &[]).await;
    // A rollout of its own (say, a changed KES config) under way: not Ready.
    rolling(&api, "a", OLD, false);
    reconcile_with(&api, "a", NEW, 1).await;
    assert_eq!(image_of(&api, "a"), OLD);
    let (ok, why, _) = up_to_date(&api, "a");
    assert!(!ok);
    assert_eq!(why, reason::NOT_READY_FOR_UPGRADE);
    assert_eq!(events_of(&api, reason::NOT_READY_FOR_UPGRADE).len(), 1);
    // The user's choice of image applies at once, Ready or not, slot or not.
    let mut a = tenant(&api, "a");
    a.spec.image = Some("registry.example/coffer:7".into());
    api.put(&a);
    reconcile_with(&api, "a", NEW, 0).await;
    assert_eq!(image_of(&api, "a"), "registry.example/coffer:7");
    assert_eq!(upgraded_from(&api, "a"), None);
    assert_eq!(up_to_date(&api, "a").1, reason::UPGRADING);
}

#[tokio::test]
async fn the_status_names_the_running_image_from_the_current_revision() {
    let api = ready_on_old(&["a"], &[]).await;
    let st = tenant(&api, "a").status.unwrap();
    assert_eq!(st.current_image.as_deref(), Some(OLD));
    assert_eq!(st.current_version.as_deref(), Some("0.1.0"));
    assert_eq!(st.target_image, None);

    reconcile_with(&api, "a", NEW, 1).await;
    // The ControllerRevision of the current revision says which image the old pods run (here
    // another one than the status recorded, to tell the two sources apart).
    rolling(&api, "a", "ghcr.io/coffer-dev/coffer:0.1.1", true);
    reconcile_with(&api, "a", NEW, 1).await;
    let st = tenant(&api, "a").status.unwrap();
    assert_eq!(
        st.current_image.as_deref(),
        Some("ghcr.io/coffer-dev/coffer:0.1.1")
    );
    assert_eq!(st.current_version.as_deref(), Some("0.1.1"));
    assert_eq!(st.target_image.as_deref(), Some(NEW));
    assert_eq!(
        st.image.as_deref(),
        Some(OLD),
        "the older field keeps the last rolled-out image"
    );
}
