//! `spec.monitoring.serviceMonitor` against a real kube-apiserver: without the Prometheus
//! Operator's CRD the Tenant gets an event and no error; with it, the ServiceMonitor is applied,
//! owned by the Tenant, and removed when turned off. Also the operator's `/metrics` scrape.
//!
//! Needs the peers `etcd`, `kube-apiserver` and `kubectl` on PATH (`eval "$(e2e/peers/env)"`).

mod common;

use std::time::Duration;

use coffer_e2e::kube::KubeApi;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use operator::crd::Tenant;
use operator::reconcile::Context;
use operator::reconcile::monitoring::{self, Outcome};

use common::eventually;

/// A minimal stand-in for the Prometheus Operator's CRD: the same group, version, kind and
/// plural, any spec.
const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

async fn namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_monitor_follows_the_crd_and_the_spec() {
    let api = KubeApi::start();
    let client = api.client().await;
    api.apply(&operator::crd::crds_yaml());
    api.wait_crds_established();
    let ns = "mon";
    namespace(&client, ns).await;
    api.apply(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: t, namespace: {ns}}}\n\
         spec:\n  kms: {{name: vault}}\n  monitoring:\n    serviceMonitor: true\n    interval: 15s\n    \
         labels: {{release: prom}}\n    bearerTokenSecret: {{name: scrape, key: token}}\n"
    ));
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    let mut tenant = tenants.get("t").await.unwrap();
    let ctx = Context::new(
        client.clone(),
        Reporter {
            controller: "coffer-operator".into(),
            instance: Some("test".into()),
        },
    );

    // No CRD: no error, an event that says why.
    assert_eq!(
        monitoring::reconcile(&tenant, &ctx).await.unwrap(),
        Outcome::Unavailable
    );
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let note = eventually(
        "the ServiceMonitorUnavailable event",
        Duration::from_secs(30),
        || async {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("ServiceMonitorUnavailable"))
                .and_then(|e| e.note)
        },
    )
    .await;
    assert!(note.contains("monitoring.coreos.com/v1"), "{note}");

    // With the CRD: applied, owned by the Tenant.
    api.apply(SERVICE_MONITOR_CRD);
    let resource = ApiResource {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "ServiceMonitor".into(),
        plural: "servicemonitors".into(),
    };
    let monitors: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    eventually(
        "the ServiceMonitor applied",
        Duration::from_secs(60),
        || async {
            (monitoring::reconcile(&tenant, &ctx).await.ok() == Some(Outcome::Applied))
                .then_some(())
        },
    )
    .await;
    let sm = monitors.get("t").await.unwrap();
    let owner = &sm.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Tenant", "t"));
    assert_eq!(sm.metadata.labels.as_ref().unwrap()["release"], "prom");
    let endpoints = sm.data["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    assert_eq!(endpoints[0]["path"], "/minio/v2/metrics/cluster");
    assert_eq!(endpoints[0]["interval"], "15s");
    assert_eq!(endpoints[0]["tlsConfig"]["ca"]["secret"]["name"], "t-ca");
    assert_eq!(endpoints[1]["bearerTokenSecret"]["key"], "token");

    // Turned off: removed; and again: nothing to do.
    tenant.spec.monitoring.service_monitor = false;
    assert_eq!(
        monitoring::reconcile(&tenant, &ctx).await.unwrap(),
        Outcome::Removed
    );
    assert!(monitors.get_opt("t").await.unwrap().is_none());
    assert_eq!(
        monitoring::reconcile(&tenant, &ctx).await.unwrap(),
        Outcome::Off
    );
    // A ServiceMonitor of that name that the Tenant does not own is left alone.
    api.apply(&format!(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {{name: t, namespace: {ns}}}\nspec: {{}}\n"
    ));
    assert_eq!(
        monitoring::reconcile(&tenant, &ctx).await.unwrap(),
        Outcome::Off
    );
    assert!(monitors.get_opt("t").await.unwrap().is_some());
}
