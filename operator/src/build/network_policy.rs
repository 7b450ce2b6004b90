//! NetworkPolicy `<t>` (`spec.networkPolicy.enabled`): ingress to the Tenant's pods only on the
//! S3 port (from `s3From`, every source when empty; and from `metricsFrom`) and on the console
//! port (from `consoleFrom` only). Every other connection to the pods is refused where the
//! network plugin enforces NetworkPolicies. The KES sidecar needs no rule: it listens on
//! loopback. Egress is left open: the sidecar reaches Vault by a DNS name, which a
//! NetworkPolicy cannot name, and the kubelet's probes are not subject to it.
//!
//! When `s3From` restricts S3, the operator's own namespace is admitted to the S3 port too
//! ([`admit_operator`]): the key rotation's re-wrap is an admin call the operator makes to the
//! Tenant's Service, and a policy that refused it would leave every rotation's old key versions
//! in use. The whole namespace, since the operator's pod labels depend on how it was installed
//! (the chart's `nameOverride`); S3 still asks every caller for its credentials.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CONSOLE_PORT, Names, S3_PORT, labels, meta};
use crate::crd::Tenant;

fn rule(port: i32, from: &[NetworkPolicyPeer]) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some("TCP".into()),
            end_port: None,
        }]),
        // An absent `from` admits every source; an empty list would admit none.
        from: (!from.is_empty()).then(|| from.to_vec()),
    }
}

/// Adds a rule admitting every pod of `operator_namespace` to the S3 port, unless S3 is
/// already open to every source.
pub fn admit_operator(policy: &mut NetworkPolicy, operator_namespace: &str) {
    let Some(ingress) = policy.spec.as_mut().and_then(|s| s.ingress.as_mut()) else {
        return;
    };
    let s3_open = ingress.iter().any(|r| {
        r.from.is_none()
            && r.ports
                .iter()
                .flatten()
                .any(|p| p.port == Some(IntOrString::Int(S3_PORT)))
    });
    if s3_open {
        return;
    }
    let operator = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(
                [(
                    "kubernetes.io/metadata.name".to_string(),
                    operator_namespace.to_string(),
                )]
                .into(),
            ),
            match_expressions: None,
        }),
        pod_selector: None,
        ip_block: None,
    };
    ingress.push(rule(S3_PORT, &[operator]));
}

/// NetworkPolicy `<t>`, or `None` when `spec.networkPolicy.enabled` is false.
pub fn network_policy(tenant: &Tenant) -> Option<NetworkPolicy> {
    let np = &tenant.spec.network_policy;
    if !np.enabled {
        return None;
    }
    let names = Names::of(tenant);
    let mut ingress = vec![rule(S3_PORT, &np.s3_from)];
    if !np.s3_from.is_empty() && !np.metrics_from.is_empty() {
        ingress.push(rule(S3_PORT, &np.metrics_from));
    }
    if !np.console_from.is_empty() {
        ingress.push(rule(CONSOLE_PORT, &np.console_from));
    }
    Some(NetworkPolicy {
        metadata: meta(tenant, names.tenant.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(&names)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            egress: None,
        }),
    })
}
