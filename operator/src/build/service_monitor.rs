//! The Prometheus Operator `ServiceMonitor` of a Tenant (`spec.monitoring.serviceMonitor`).
//!
//! It selects the Tenant's S3 Service (not the headless one, which has the same pods behind it
//! and would scrape every pod twice) and scrapes each pod over TLS, trusting the Tenant's own
//! CA, on MinIO's v2 paths: `cluster` (requests, capacity, KMS, process) and `bucket` (usage).
//! Each object-server is a one-node cluster of its own, so every pod is a target.
use serde_json::{Value, json};

use super::{Names, labels, meta, secrets};
use crate::crd::Tenant;

/// The API group, version and kind of a ServiceMonitor.
pub const GROUP: &str = "monitoring.coreos.com";
pub const VERSION: &str = "v1";
pub const KIND: &str = "ServiceMonitor";
/// The label that marks the headless Service, which the ServiceMonitor leaves out.
pub const HEADLESS_LABEL: &str = "coffer.dev/service";

/// The ServiceMonitor `<t>` as JSON (the type is not in k8s-openapi).
pub fn service_monitor(tenant: &Tenant) -> Value {
    let names = Names::of(tenant);
    let spec = &tenant.spec.monitoring;
    let mut metadata = meta(tenant, names.tenant.clone());
    let mut all_labels = metadata.labels.take().unwrap_or_default();
    all_labels.extend(spec.labels.clone());
    metadata.labels = Some(all_labels);
    let endpoint = |path: &str| {
        let mut e = json!({
            "port": "https",
            "scheme": "https",
            "path": path,
            "interval": spec.interval.clone().unwrap_or_else(|| "30s".into()),
            "tlsConfig": {
                "ca": {"secret": {"name": names.ca(), "key": secrets::CA_CERT}},
                "serverName": format!("{}.{}.svc", names.tenant, names.namespace),
            },
        });
        if let Some(token) = &spec.bearer_token_secret {
            e["bearerTokenSecret"] = json!({"name": token.name, "key": token.key});
        }
        e
    };
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "selector": {
                "matchLabels": labels(&names),
                "matchExpressions": [{"key": HEADLESS_LABEL, "operator": "DoesNotExist"}],
            },
            "namespaceSelector": {"matchNames": [names.namespace]},
            "endpoints": [endpoint("/minio/v2/metrics/cluster"), endpoint("/minio/v2/metrics/bucket")],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::tenant::SecretKeyRef;

    #[test]
    fn scrapes_both_paths_over_tls_with_the_tenants_ca_and_token() {
        let (mut t, _) = crate::build::tests::fixtures();
        t.spec.monitoring.service_monitor = true;
        t.spec.monitoring.interval = Some("15s".into());
        t.spec
            .monitoring
            .labels
            .insert("release".into(), "prom".into());
        t.spec.monitoring.bearer_token_secret = Some(SecretKeyRef {
            name: "scrape".into(),
            key: "token".into(),
        });
        let sm = service_monitor(&t);
        assert_eq!(sm["kind"], "ServiceMonitor");
        assert_eq!(sm["metadata"]["labels"]["release"], "prom");
        assert_eq!(sm["metadata"]["ownerReferences"][0]["kind"], "Tenant");
        let eps = sm["spec"]["endpoints"].as_array().unwrap();
        let paths: Vec<_> = eps.iter().map(|e| e["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            ["/minio/v2/metrics/cluster", "/minio/v2/metrics/bucket"]
        );
        for e in eps {
            assert_eq!(e["interval"], "15s");
            assert_eq!(e["scheme"], "https");
            assert_eq!(e["tlsConfig"]["ca"]["secret"]["key"], "ca.crt");
            assert_eq!(e["bearerTokenSecret"]["name"], "scrape");
        }
        assert_eq!(
            sm["spec"]["selector"]["matchExpressions"][0]["operator"],
            "DoesNotExist"
        );
    }
}
