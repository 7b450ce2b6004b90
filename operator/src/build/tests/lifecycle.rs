//! The deletion semantics and the pod settings of `crd::tenant::lifecycle`, as the builders
//! render them.

use super::*;
use k8s_openapi::api::core::v1::Probe;

fn tenant_with(spec_yaml: &str) -> Tenant {
    serde_saphyr::from_str(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: photos, namespace: shop, uid: 1234-5678}}\nspec:\n  kms: {{name: vault}}\n{spec_yaml}"
    ))
    .unwrap()
}

fn built(t: &Tenant) -> Owned {
    let (_, k) = fixtures();
    owned(t, &k, &certs(t), DEFAULT_IMAGE).unwrap()
}

#[test]
fn ca_and_root_credentials_outlive_the_tenant_and_the_rest_goes_with_it() {
    let t = tenant_with("");
    let ca = Ca::generate("test", OffsetDateTime::now_utc(), CA_LIFETIME).unwrap();
    for kept in [secrets::ca(&t, &ca), secrets::root_credentials(&t)] {
        assert_eq!(
            kept.metadata.owner_references, None,
            "{:?}",
            kept.metadata.name
        );
        // Still labelled: `kubectl get secret -l app.kubernetes.io/instance=photos` finds them.
        assert_eq!(
            kept.metadata.labels.as_ref().unwrap()["app.kubernetes.io/instance"],
            "photos"
        );
    }
    let o = built(&tenant_with("  networkPolicy: {enabled: true}\n"));
    let mut metas = vec![
        &o.stateful_set.metadata,
        &o.config_map.metadata,
        &o.pdb.metadata,
        &o.network_policy.as_ref().unwrap().metadata,
    ];
    metas.extend(o.services.iter().map(|s| &s.metadata));
    metas.extend(o.secrets.iter().map(|s| &s.metadata));
    for m in metas {
        let refs = m.owner_references.as_ref().unwrap();
        assert_eq!(
            (refs[0].uid.as_str(), refs[0].controller),
            ("1234-5678", Some(true)),
            "{:?}",
            m.name
        );
    }
}

#[test]
fn deletion_fields_default_to_unprotected_and_retain() {
    let t = tenant_with("");
    assert!(!t.spec.deletion_protection);
    assert_eq!(
        t.spec.deletion_policy,
        crate::crd::tenant::DeletionPolicy::Retain
    );
    let t = tenant_with("  deletionProtection: true\n  deletionPolicy: Delete\n");
    assert!(t.spec.deletion_protection);
    assert_eq!(
        t.spec.deletion_policy,
        crate::crd::tenant::DeletionPolicy::Delete
    );
    // Defaults are not written back (server-side apply of a spec stays small).
    let json = serde_json::to_value(&tenant_with("").spec).unwrap();
    for absent in [
        "deletionProtection",
        "deletionPolicy",
        "probes",
        "networkPolicy",
        "podLabels",
    ] {
        assert!(json.get(absent).is_none(), "{absent}: {json}");
    }
}

#[test]
fn pod_knobs_reach_the_pod_template() {
    let t = tenant_with(
        "  serviceAccountName: vault-auth\n\
         \x20 imagePullSecrets: [{name: registry}]\n\
         \x20 podLabels: {team: storage}\n\
         \x20 podAnnotations: {backup.velero.io/backup-volumes: data}\n\
         \x20 terminationGracePeriodSeconds: 120\n\
         \x20 scheduling:\n\
         \x20   topologySpreadConstraints:\n\
         \x20   - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule}\n\
         \x20   - {maxSkew: 2, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {team: storage}}}\n",
    );
    let o = built(&t);
    let template = &o.stateful_set.spec.as_ref().unwrap().template;
    let meta = template.metadata.as_ref().unwrap();
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["team"], "storage");
    assert_eq!(
        labels["app.kubernetes.io/instance"], "photos",
        "the selector's labels stay"
    );
    let annotations = meta.annotations.as_ref().unwrap();
    assert_eq!(annotations["backup.velero.io/backup-volumes"], "data");
    assert!(
        annotations.contains_key(CERTS_HASH_ANNOTATION)
            && annotations.contains_key(CONFIG_HASH_ANNOTATION)
    );
    let p = pod(&o);
    assert_eq!(p.service_account_name.as_deref(), Some("vault-auth"));
    assert_eq!(p.image_pull_secrets.as_ref().unwrap()[0].name, "registry");
    assert_eq!(p.termination_grace_period_seconds, Some(120));
    let spread = p.topology_spread_constraints.as_ref().unwrap();
    assert_eq!(spread.len(), 2);
    assert_eq!(
        spread[0].label_selector.as_ref().unwrap().match_labels,
        Some(crate::build::labels(&Names::of(&t))),
        "a constraint without a selector spreads the Tenant's pods"
    );
    assert_eq!(
        spread[1]
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["team"],
        "storage",
        "a constraint's own selector is kept"
    );
    // Nothing set: nothing rendered (Kubernetes' defaults apply).
    let plain = built(&tenant_with(""));
    let p = pod(&plain);
    assert_eq!(
        (
            p.service_account_name.as_ref(),
            p.image_pull_secrets.as_ref(),
            p.termination_grace_period_seconds,
            p.topology_spread_constraints.as_ref()
        ),
        (None, None, None, None)
    );
}

#[test]
fn the_operators_labels_and_annotations_win_over_the_users() {
    // Refused by the CRD; a Tenant stored before the rule still cannot move the selector.
    let t = tenant_with(
        "  podLabels: {app.kubernetes.io/instance: other}\n  podAnnotations: {coffer.dev/certs-hash: x}\n",
    );
    let o = built(&t);
    let meta = o
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .clone()
        .unwrap();
    assert_eq!(meta.labels.unwrap()["app.kubernetes.io/instance"], "photos");
    assert_ne!(meta.annotations.unwrap()[CERTS_HASH_ANNOTATION], "x");
}

fn timing(p: &Probe) -> (Option<i32>, Option<i32>, Option<i32>, Option<i32>) {
    (
        p.initial_delay_seconds,
        p.period_seconds,
        p.timeout_seconds,
        p.failure_threshold,
    )
}

#[test]
fn probe_overrides_replace_only_what_they_set() {
    let t = tenant_with(
        "  probes:\n    liveness: {periodSeconds: 60, failureThreshold: 5}\n    readiness: {timeoutSeconds: 9}\n    startup: {initialDelaySeconds: 4, failureThreshold: 600}\n",
    );
    let o = built(&t);
    let s = &pod(&o).containers[0];
    assert_eq!(
        timing(s.liveness_probe.as_ref().unwrap()),
        (None, Some(60), Some(3), Some(5))
    );
    assert_eq!(
        timing(s.readiness_probe.as_ref().unwrap()),
        (None, Some(10), Some(9), Some(3))
    );
    assert_eq!(
        timing(s.startup_probe.as_ref().unwrap()),
        (Some(4), Some(2), Some(3), Some(600))
    );
    // What they probe does not change.
    let live = s
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/minio/health/live"));
    let plain = built(&tenant_with(""));
    let s = &pod(&plain).containers[0];
    assert_eq!(
        timing(s.liveness_probe.as_ref().unwrap()),
        (None, Some(20), Some(3), Some(3))
    );
}

#[test]
fn kes_listens_on_loopback_and_is_probed_from_inside_its_container() {
    let (t, k) = fixtures();
    let identity = crate::pki::identity_of_pem(&certs(&t).kes_client.cert).unwrap();
    let cfg = kes_config::build(&t, &k, &identity);
    assert_eq!(cfg.address, "127.0.0.1:7373");
    let o = built(&t);
    let p = pod(&o);
    let kes = &p.init_containers.as_ref().unwrap()[0];
    assert_eq!(kes.ports, None, "nothing outside the pod reaches it");
    for probe in [
        &kes.startup_probe,
        &kes.readiness_probe,
        &kes.liveness_probe,
    ] {
        let probe = probe.as_ref().unwrap();
        assert!(probe.tcp_socket.is_none() && probe.http_get.is_none());
        let command = probe.exec.as_ref().unwrap().command.as_ref().unwrap();
        assert_eq!(
            command,
            &[
                "kes",
                "status",
                "--server",
                "https://127.0.0.1:7373",
                "--cert-file",
                "/etc/coffer/kes-client/client.crt",
                "--key-file",
                "/etc/coffer/kes-client/client.key",
                "--ca",
                "/etc/coffer/kes-client/ca.crt",
            ]
        );
    }
    // The probe's client certificate is mounted in the sidecar (the same Secret volume).
    let mounts = kes.volume_mounts.as_ref().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "kes-client" && m.mount_path == "/etc/coffer/kes-client")
    );
    // The object-server reaches it over loopback, as before.
    assert_eq!(
        env_of(&p.containers[0], "MINIO_KMS_KES_ENDPOINT")
            .value
            .as_deref(),
        Some("https://127.0.0.1:7373")
    );
}

fn ingress(
    o: &Owned,
) -> Vec<(
    i32,
    Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>>,
)> {
    let spec = o.network_policy.as_ref().unwrap().spec.as_ref().unwrap();
    assert_eq!(spec.policy_types.as_ref().unwrap(), &["Ingress"]);
    assert_eq!(
        spec.pod_selector.as_ref().unwrap().match_labels,
        Some(crate::build::labels(&Names {
            tenant: "photos".into(),
            namespace: "shop".into()
        }))
    );
    spec.ingress
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| {
            let ports = r.ports.as_ref().unwrap();
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
            let port = match ports[0].port.as_ref().unwrap() {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p,
                other => panic!("{other:?}"),
            };
            (port, r.from.clone())
        })
        .collect()
}

#[test]
fn network_policy_is_opt_in_and_admits_s3_only() {
    assert!(built(&tenant_with("")).network_policy.is_none());
    assert!(
        built(&tenant_with(
            "  networkPolicy: {enabled: false, s3From: [{podSelector: {}}]}\n"
        ))
        .network_policy
        .is_none()
    );
    // Enabled alone: S3 from anywhere (`from` absent, not empty), nothing else.
    let open = built(&tenant_with("  networkPolicy: {enabled: true}\n"));
    assert_eq!(ingress(&open), vec![(9000, None)]);
    // Restricted: S3 from the apps namespace, metrics from monitoring, the console from admins.
    let o = built(&tenant_with(
        "  networkPolicy:\n    enabled: true\n\
         \x20   s3From: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: apps}}}]\n\
         \x20   metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}, podSelector: {matchLabels: {app: prometheus}}}]\n\
         \x20   consoleFrom: [{ipBlock: {cidr: 10.1.0.0/16}}]\n",
    ));
    let rules = ingress(&o);
    assert_eq!(
        rules.iter().map(|r| r.0).collect::<Vec<_>>(),
        [9000, 9000, 9001]
    );
    let ns_of = |peers: &Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>>| {
        peers.as_ref().unwrap()[0]
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .map(|l| l["kubernetes.io/metadata.name"].clone())
    };
    assert_eq!(ns_of(&rules[0].1).as_deref(), Some("apps"));
    assert_eq!(ns_of(&rules[1].1).as_deref(), Some("monitoring"));
    assert_eq!(
        rules[2].1.as_ref().unwrap()[0]
            .ip_block
            .as_ref()
            .unwrap()
            .cidr,
        "10.1.0.0/16"
    );
    // No rule names the KES port: it is not reachable from outside the pod at all.
    assert!(rules.iter().all(|r| r.0 != 7373));

    // The operator's namespace is admitted to S3 (its re-wrap call) where S3 is restricted...
    let mut restricted = o.network_policy.clone().unwrap();
    crate::build::network_policy::admit_operator(&mut restricted, "coffer-system");
    let with_operator = restricted.spec.as_ref().unwrap().ingress.clone().unwrap();
    assert_eq!(with_operator.len(), 4);
    let last = &with_operator[3];
    assert_eq!(
        last.ports.as_ref().unwrap()[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9000))
    );
    assert_eq!(ns_of(&last.from).as_deref(), Some("coffer-system"));
    assert!(last.from.as_ref().unwrap()[0].pod_selector.is_none());
    // ...and nothing is added where S3 is open to every source.
    let mut open_policy = open.network_policy.clone().unwrap();
    crate::build::network_policy::admit_operator(&mut open_policy, "coffer-system");
    assert_eq!(open_policy, open.network_policy.unwrap());
}
