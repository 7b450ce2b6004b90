//! Smoke test of etcd + kube-apiserver: a CRD and an object of it, through kube-rs; RBAC is on.

use coffer_e2e::kube::KubeApi;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A throwaway resource for the smoke test.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "smoke.coffer.dev",
    version = "v1",
    kind = "Widget",
    namespaced
)]
struct WidgetSpec {
    size: u32,
}

#[tokio::test(flavor = "multi_thread")]
async fn crd_and_object_round_trip_with_kube_rs() {
    let api = KubeApi::start();
    let client = api.client().await;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .expect("create CRD");

    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let mut stored = None;
    // A deadline, not a count of tries: on a loaded machine the API may take far longer than
    // 100 tries of 100 ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        // The CRD's API becomes available a moment after the CRD is created.
        match widgets
            .create(
                &PostParams::default(),
                &Widget::new("w1", WidgetSpec { size: 3 }),
            )
            .await
        {
            Ok(w) => {
                stored = Some(w);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let stored = stored.unwrap_or_else(|| panic!("widget never created\n{}", api.log()));
    assert!(stored.metadata.uid.is_some());
    let read = widgets.get("w1").await.expect("get widget");
    assert_eq!(read.spec.size, 3);

    // The API server enforces the schema the CRD carries.
    let bad = api
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn();
    let mut bad = bad.expect("kubectl");
    use std::io::Write;
    bad.stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: smoke.coffer.dev/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: many}\n")
        .unwrap();
    assert!(
        !bad.wait().unwrap().success(),
        "a string where the schema says integer must be refused"
    );

    // RBAC is on: a user without bindings is refused.
    let nobody = api.kubeconfig_for("nobody", &[]);
    let out = api
        .kubectl()
        .env("KUBECONFIG", &nobody)
        .args(["get", "widgets"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
