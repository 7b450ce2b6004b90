//! The StatefulSet side of running an operator's pods without a kube-controller-manager or
//! kubelet: read the StatefulSet, tell when its pod template changed, and write the status the
//! StatefulSet controller would write once the local pods are ready.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::kube::KubeApi;
use crate::process::wait_until;

/// StatefulSet `name` in `namespace`, or `None` while it does not exist.
pub fn get(api: &KubeApi, namespace: &str, name: &str) -> Option<StatefulSet> {
    let out = api
        .kubectl()
        .args(["get", "statefulset", name, "-n", namespace, "-o", "json"])
        .output()
        .expect("run kubectl");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("StatefulSet JSON"))
}

/// Waits until StatefulSet `name` exists.
pub fn wait_for(api: &KubeApi, namespace: &str, name: &str, timeout: Duration) -> StatefulSet {
    wait_until(
        &format!("StatefulSet {namespace}/{name}"),
        timeout,
        || get(api, namespace, name),
        || api.run(&["get", "all,events", "-n", namespace]),
    )
}

/// The pod template (a StatefulSet always has one).
pub fn template(sts: &StatefulSet) -> PodTemplateSpec {
    sts.spec
        .as_ref()
        .expect("StatefulSet has a spec")
        .template
        .clone()
}

/// The names of the claim templates (their volumes are persistent per pod).
pub fn claim_names(sts: &StatefulSet) -> Vec<String> {
    sts.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

/// A hash of the pod template: it changes exactly when a rolling update would replace the pods
/// (the controller's `controller-revision-hash` plays this part in a cluster).
pub fn template_hash(sts: &StatefulSet) -> u64 {
    hash_of(&template(sts))
}

/// The hash [`template_hash`] gives a StatefulSet with this pod template.
pub fn hash_of(template: &PodTemplateSpec) -> u64 {
    let json = serde_json::to_string(template).expect("template serializes");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    h.finish()
}

/// The pod names of a StatefulSet (`<name>-0` … `<name>-(replicas-1)`).
pub fn pod_names(sts: &StatefulSet) -> Vec<String> {
    let name = sts.metadata.name.as_deref().unwrap_or_default();
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    (0..replicas).map(|i| format!("{name}-{i}")).collect()
}

/// Writes the status the StatefulSet controller writes when `ready` of its pods, all on the
/// current template, are ready.
pub fn report_ready(api: &KubeApi, sts: &StatefulSet, ready: i32) {
    let namespace = sts.metadata.namespace.as_deref().unwrap_or("default");
    let name = sts
        .metadata
        .name
        .as_deref()
        .expect("StatefulSet has a name");
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let revision = format!("{name}-{:x}", template_hash(sts));
    let status = serde_json::json!({
        "status": {
            "observedGeneration": sts.metadata.generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": revision,
            "updateRevision": revision,
        }
    });
    api.run(&[
        "patch",
        "statefulset",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}
