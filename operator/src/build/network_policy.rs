//! NetworkPolicy `<t>` (`spec.networkPolicy.enabled`): ingress to the Tenant's pods only on the
//! S3 port (from `s3From`, every source when empty; and from `metricsFrom`) and on the console
//! port (from `consoleFrom` only). Every other connection to the pods is refused where the
//! network plugin enforces NetworkPolicies. The KES sidecar needs no rule: it listens on
//! loopback. Egress is left open: the sidecar reaches Vault by a DNS name, which a
//! NetworkPolicy cannot name, and the kubelet's probes are not subject to it.

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
