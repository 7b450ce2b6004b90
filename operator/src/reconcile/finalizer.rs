//! One finalizer of the operator on an object: added while the object lives, removed when its
//! deletion may go on. Both writes are merge patches carrying the `resourceVersion` they were
//! computed from, so a concurrent change of the finalizers (another controller's) makes the
//! patch fail with 409 and the reconcile retries, instead of dropping the other's finalizer.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Whether `obj` carries finalizer `name`.
pub fn has<K: Resource>(obj: &K, name: &str) -> bool {
    obj.meta().finalizers.iter().flatten().any(|f| f == name)
}

async fn set<K>(api: &Api<K>, obj: &K, finalizers: Vec<String>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let meta = obj.meta();
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": meta.resource_version,
    }});
    api.patch(
        meta.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Adds finalizer `name` to `obj` unless it is there.
pub async fn add<K>(api: &Api<K>, obj: &K, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if has(obj, name) {
        return Ok(());
    }
    let mut all: Vec<String> = obj.meta().finalizers.clone().unwrap_or_default();
    all.push(name.into());
    set(api, obj, all).await
}

/// Removes finalizer `name` from `obj` (the others stay): a deleted object then goes once no
/// other finalizer holds it.
pub async fn remove<K>(api: &Api<K>, obj: &K, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if !has(obj, name) {
        return Ok(());
    }
    let rest = obj
        .meta()
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != name)
        .cloned()
        .collect();
    match set(api, obj, rest).await {
        // Already gone: nothing held it but us, and someone else let it go.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    }
}
