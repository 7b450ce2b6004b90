//! The Tenant's opt-in NetworkPolicy, enforced on the node by kube-router's firewall: two pods
//! in the Tenant's namespace, one labelled as `s3From` admits it and one not, try the S3 port
//! (on the pod's IP and through the Service's ClusterIP) and the KES port with `nc`.

use std::time::Duration;

use coffer_e2e::image;
use coffer_e2e::wait_until;

use crate::run::{POD_TIMEOUT, Run};

/// The label `s3From` admits.
const CLIENT_LABEL: &str = "coffer.dev/e2e-s3-client";
/// How long kube-router may take to turn a policy into rules (it reacts to the watch).
const ENFORCED_WITHIN: Duration = Duration::from_secs(120);

/// A pod of the kubectl image (busybox's `nc`) that sleeps, labelled `CLIENT_LABEL=label`, as
/// the namespace's `restricted` Pod Security level requires.
fn client_pod(run: &Run, name: &str, label: &str) {
    run.node.api.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{CLIENT_LABEL}: {label}}}}}\n\
         spec:\n  terminationGracePeriodSeconds: 1\n  \
         securityContext: {{runAsNonRoot: true, runAsUser: 65534, seccompProfile: {{type: RuntimeDefault}}}}\n  \
         containers:\n  - name: nc\n    image: {image}\n    imagePullPolicy: Never\n    command: [sleep, '3600']\n    \
         securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n",
        ns = run.ns(),
        image = image::KUBECTL_TAG,
    ));
    run.wait_condition(run.ns(), &format!("pod/{name}"), "Ready", POD_TIMEOUT);
}

/// Whether pod `from` opens a TCP connection to `address` `port` within 3 s (busybox's `nc`
/// has no `-z`: with its input at end of file it closes right after connecting, status 0;
/// refused or timed out, status 1).
fn connects(run: &Run, from: &str, address: &str, port: u16) -> bool {
    run.node
        .api
        .kubectl()
        .args(["exec", "-n", run.ns(), from, "--", "sh", "-c"])
        .arg(format!("nc -w 3 {address} {port} </dev/null"))
        .output()
        .expect("run kubectl exec")
        .status
        .success()
}

/// Step 10: before the policy, every pod reaches S3 (the network works); with
/// `networkPolicy.s3From` naming one pod's label, that pod still reaches S3 on the pod and
/// through the Service, the other is refused on both, and KES's port answers neither.
pub fn enforced(run: &Run) {
    let ns = run.ns();
    let tenant = run.tenant();
    let (admitted, outsider) = ("s3-client", "outsider");
    client_pod(run, admitted, "admitted");
    client_pod(run, outsider, "other");
    let pod_ip = run
        .pod_ips(tenant)
        .into_iter()
        .next()
        .expect("the Tenant's pod IP");
    let service_ip = run.jsonpath(ns, &format!("service/{tenant}"), "{.spec.clusterIP}");
    let service_port: u16 = run
        .jsonpath(ns, &format!("service/{tenant}"), "{.spec.ports[0].port}")
        .parse()
        .expect("the Service's port");
    for pod in [admitted, outsider] {
        assert!(
            connects(run, pod, &pod_ip, 9000),
            "{pod} cannot reach S3 on {pod_ip}:9000 before any NetworkPolicy: the check proves nothing"
        );
    }

    run.kubectl(&[
        "-n",
        ns,
        "patch",
        &format!("tenant/{tenant}"),
        "--type=merge",
        "-p",
        &format!(
            r#"{{"spec":{{"networkPolicy":{{"enabled":true,"s3From":[{{"podSelector":{{"matchLabels":{{"{CLIENT_LABEL}":"admitted"}}}}}}]}}}}}}"#
        ),
    ]);
    wait_until(
        "the outsider pod to be refused by the Tenant's NetworkPolicy",
        ENFORCED_WITHIN,
        || (!connects(run, outsider, &pod_ip, 9000)).then_some(()),
        || {
            format!(
                "{}\n{}",
                run.kubectl(&["-n", ns, "get", "networkpolicy", "-o", "yaml"]),
                run.kubectl(&["-n", ns, "get", "tenant", tenant, "-o", "yaml"])
            )
        },
    );
    assert!(
        !connects(run, outsider, &service_ip, service_port),
        "the outsider reaches S3 through the Service {service_ip}:{service_port}"
    );
    assert!(
        connects(run, admitted, &pod_ip, 9000),
        "the pod s3From admits cannot reach S3 on {pod_ip}:9000"
    );
    assert!(
        connects(run, admitted, &service_ip, service_port),
        "the pod s3From admits cannot reach S3 through the Service {service_ip}:{service_port}"
    );
    for pod in [admitted, outsider] {
        assert!(
            !connects(run, pod, &pod_ip, 7373),
            "{pod} reaches KES on {pod_ip}:7373"
        );
    }
    run.kubectl(&[
        "-n",
        ns,
        "delete",
        "pod",
        admitted,
        outsider,
        "--wait=false",
    ]);
}
