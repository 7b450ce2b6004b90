//! Step 8, `spec.storage.size` raised on the real node.
//!
//! - A Tenant on [`LOOP_CLASS`] (`allowVolumeExpansion`, the node's loop-device volumes and
//!   their external resizer, `coffer_e2e::cluster::volumes`), objects written, its size raised
//!   from [`SMALL`] to [`LARGE`]: the operator patches the claim and recreates its StatefulSet
//!   with the larger claim template, kube-controller-manager leaves the claim to the external
//!   resizer, which grows the device, and the kubelet grows the mounted file system online.
//!   The file system the object-server serves from is larger (MinIO's
//!   `minio_cluster_capacity_raw_total_bytes`, read as a dashboard does), with no pod replaced
//!   or restarted, the object still reads, and the claim's and the Tenant's events say what
//!   happened. A smaller size is refused by the CRD with its message.
//! - The scenario's Tenant, on the `local` class (no `allowVolumeExpansion`), asked for more:
//!   `Degraded` with `VolumeExpansionNotSupported` and a Warning event, the claim and the
//!   StatefulSet's claim template unchanged, the Tenant still Ready. It stays so through step
//!   9, whose roll proves its StatefulSet is still applied (nothing wedged); then the size set
//!   back to `status.claimSize` is accepted by the CRD (below it is not) and clears `Degraded`.

use std::time::Duration;

use coffer_e2e::cluster::volumes::{LOOP_CLASS, LoopVolumes};
use coffer_e2e::scenario::Client;
use coffer_e2e::wait_until;

use crate::run::{POD_TIMEOUT, Run};

/// The Tenant whose volume grows.
const GROW: &str = "grow";
const SMALL: &str = "1Gi";
const LARGE: &str = "2Gi";
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// The scenario Tenant's size, and the one it is asked to grow to.
const LOCAL_SIZE: &str = "10Gi";
const LOCAL_LARGER: &str = "20Gi";

/// The size of the file system Tenant `client`'s object-server stores on, as its
/// `/minio/v2/metrics/cluster` says (the Tenant allows public scrapes).
fn served_capacity(run: &Run, client: &Client) -> f64 {
    let mut curl = std::process::Command::new("curl");
    curl.args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(&client.ca_file)
        .arg(format!("{}/minio/v2/metrics/cluster", client.endpoint));
    let out = run.node.with_cluster_dns(&curl).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scraping {}: {}",
        client.endpoint,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| l.starts_with("minio_cluster_capacity_raw_total_bytes"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no minio_cluster_capacity_raw_total_bytes in:\n{text}"))
}

/// `reason` of every event about `name` in the scenario's namespace, one a line.
fn event_reasons(run: &Run, name: &str) -> Vec<String> {
    run.jsonpath(
        run.ns(),
        "events.v1.events.k8s.io",
        "{range .items[*]}{.regarding.name}/{.reason}{\"\\n\"}{end}",
    )
    .lines()
    .filter_map(|l| l.strip_prefix(&format!("{name}/")).map(str::to_string))
    .collect()
}

/// The storage the StatefulSet of `tenant` asks each claim for.
fn template_size(run: &Run, tenant: &str) -> String {
    run.jsonpath(
        run.ns(),
        &format!("statefulset/{tenant}"),
        "{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}",
    )
}

fn patch_size(run: &Run, tenant: &str, size: &str) -> (bool, String) {
    let out = run
        .node
        .api
        .kubectl()
        .args(["-n", run.ns(), "patch", &format!("tenant/{tenant}")])
        .args(["--type=merge", "-p"])
        .arg(format!(r#"{{"spec":{{"storage":{{"size":"{size}"}}}}}}"#))
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The expandable Tenant grown in place (the module doc's first part).
pub fn grows_in_place(run: &Run, volumes: &LoopVolumes) {
    let ns = run.ns();
    let claim = format!("data-{GROW}-0");
    let pv = volumes.add_for_claim(ns, &claim, SMALL);
    run.node.api.apply(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {GROW}, namespace: {ns}}}\n\
         spec:\n  kms: {{name: {kms}}}\n  replicas: 1\n  encryption: {{autoEncryption: true}}\n  \
         storage: {{size: {SMALL}, storageClassName: {LOOP_CLASS}}}\n  \
         env: [{{name: MINIO_PROMETHEUS_AUTH_TYPE, value: public}}]\n",
        kms = run.scenario.get("KMS"),
    ));
    let tenant_ref = format!("tenant/{GROW}");
    run.wait_status(
        &tenant_ref,
        "Ready",
        "True",
        run.scenario.seconds("TENANT_READY_TIMEOUT"),
    );
    assert_eq!(
        run.jsonpath(ns, &format!("pvc/{claim}"), "{.spec.volumeName}"),
        pv,
        "the claim is not bound to its loop volume"
    );
    let client = run.client_of(GROW, &format!("{GROW}-client"));
    run.client_step("put", &client);
    let before = served_capacity(run, &client);
    assert!(
        before > 0.9 * GIB && before <= GIB,
        "a {SMALL} volume serves {before} bytes"
    );
    let pods = run.pods_state(GROW);

    let (ok, out) = patch_size(run, GROW, LARGE);
    assert!(ok, "raising storage.size: {out}");
    let pvc_yaml = || {
        format!(
            "{}\n{}",
            run.kubectl(&["-n", ns, "get", &format!("pvc/{claim}"), "-o", "yaml"]),
            run.kubectl(&[
                "-n",
                ns,
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={claim}")
            ])
        )
    };
    wait_until(
        &format!("claim {claim}'s capacity to be {LARGE}"),
        POD_TIMEOUT,
        || {
            (run.jsonpath(ns, &format!("pvc/{claim}"), "{.status.capacity.storage}") == LARGE)
                .then_some(())
        },
        pvc_yaml,
    );
    assert_eq!(
        volumes.image_bytes(&pv),
        2 * (1 << 30),
        "the loop volume's image did not grow"
    );
    let after = wait_until(
        "the object-server to serve from the grown file system",
        POD_TIMEOUT,
        || Some(served_capacity(run, &client)).filter(|c| *c > 1.9 * GIB),
        || format!("it serves {} bytes", served_capacity(run, &client)),
    );
    wait_until(
        &format!("StatefulSet {GROW} to be recreated with {LARGE} claims"),
        POD_TIMEOUT,
        || (template_size(run, GROW) == LARGE).then_some(()),
        || format!("its claim template asks for {:?}", template_size(run, GROW)),
    );
    run.wait_status(&tenant_ref, "Progressing", "False", POD_TIMEOUT);
    run.wait_status(&tenant_ref, "Ready", "True", POD_TIMEOUT);
    let (degraded, reason, message) = run.condition(&tenant_ref, "Degraded");
    assert_eq!(
        degraded, "False",
        "Degraded after the expansion: {reason} {message}"
    );
    assert_eq!(
        run.pods_state(GROW),
        pods,
        "the expansion replaced or restarted a pod"
    );
    let tenant_events = event_reasons(run, GROW);
    assert!(
        tenant_events.iter().any(|r| r == "VolumesExpanding"),
        "no VolumesExpanding event for Tenant {GROW}: {tenant_events:?}"
    );
    let claim_events = event_reasons(run, &claim);
    for expected in ["ExternalExpanding", "FileSystemResizeSuccessful"] {
        assert!(
            claim_events.iter().any(|r| r == expected),
            "no {expected} event for claim {claim}: {claim_events:?}"
        );
    }
    run.client_step("get", &client);
    eprintln!(
        "[cluster] {GROW}: {SMALL} -> {LARGE}, served capacity {before} -> {after} bytes, same pod"
    );

    let (ok, out) = patch_size(run, GROW, SMALL);
    assert!(!ok, "shrinking storage.size was accepted: {out}");
    assert!(
        out.contains("storage.size cannot shrink"),
        "the refusal does not say why: {out}"
    );
    assert_eq!(run.jsonpath(ns, &tenant_ref, "{.spec.storage.size}"), LARGE);

    run.kubectl(&["-n", ns, "delete", &tenant_ref, "--timeout=180s"]);
}

/// The scenario's Tenant, on a class without `allowVolumeExpansion`, asked for more (the module
/// doc's second part).
pub fn refused_by_the_class(run: &Run) {
    let ns = run.ns();
    let tenant = run.tenant();
    let tenant_ref = format!("tenant/{tenant}");
    let claim = format!("pvc/data-{}", run.pod());
    let pods = run.pods_state(tenant);
    let (ok, out) = patch_size(run, tenant, LOCAL_LARGER);
    assert!(ok, "raising storage.size: {out}");
    let message = run.wait_status(&tenant_ref, "Degraded", "True", Duration::from_secs(120));
    let (_, reason, _) = run.condition(&tenant_ref, "Degraded");
    assert_eq!(reason, "VolumeExpansionNotSupported", "{message}");
    assert!(
        message.contains(&format!("data-{}", run.pod())) && message.contains("local"),
        "Degraded does not name the claim and its class: {message}"
    );
    let events = event_reasons(run, tenant);
    assert!(
        events.iter().any(|r| r == "VolumeExpansionNotSupported"),
        "no VolumeExpansionNotSupported event: {events:?}"
    );
    assert_eq!(
        run.jsonpath(ns, &claim, "{.spec.resources.requests.storage}"),
        LOCAL_SIZE,
        "the claim changed"
    );
    assert_eq!(template_size(run, tenant), LOCAL_SIZE);
    let (ready, _, _) = run.condition(&tenant_ref, "Ready");
    assert_eq!(
        ready, "True",
        "a size the class cannot give took the Tenant down"
    );
    assert_eq!(
        run.pods_state(tenant),
        pods,
        "the refused expansion touched the pod"
    );
}

/// After step 9: the scenario's Tenant's size set back to the claims' size (`status.claimSize`)
/// is accepted and clears `Degraded`; below it, the CRD refuses.
pub fn set_back(run: &Run) {
    let tenant = run.tenant();
    let tenant_ref = format!("tenant/{tenant}");
    assert_eq!(
        run.jsonpath(run.ns(), &tenant_ref, "{.status.claimSize}"),
        LOCAL_SIZE
    );
    let (ok, out) = patch_size(run, tenant, "5Gi");
    assert!(
        !ok && out.contains("storage.size cannot shrink"),
        "a size below the claims' was not refused: {out}"
    );
    let (ok, out) = patch_size(run, tenant, LOCAL_SIZE);
    assert!(ok, "setting the size back to status.claimSize: {out}");
    run.wait_status(&tenant_ref, "Degraded", "False", Duration::from_secs(120));
    run.wait_status(&tenant_ref, "Ready", "True", POD_TIMEOUT);
}
