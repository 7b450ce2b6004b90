//! The operator's pods, for real, without a kubelet: the scenario of `e2e/scenario/` (the same one
//! the kind suite runs) against a production-like Vault and kube-apiserver, with the `operator`
//! binary reconciling the example KMS and Tenant, and the pod template of the StatefulSet it
//! wrote run as local processes (`coffer_e2e::pod`): our `kes` as the native sidecar, our
//! `object-server`, their files and environment exactly as the operator wrote them.
//!
//! Then the AWS CLI and `mc` write and read through it with auto-encryption; the object's key is
//! the Tenant's key in Vault. When the operator re-issues the certificates (the Tenant's
//! certificate lifetime changed, then a short lifetime running out), the pod template changes and
//! the processes restart with the new files; requests succeed again, old objects included.

use std::time::{Duration, Instant};

use coffer_e2e::stack::Stack;
use coffer_e2e::statefulset;
use coffer_e2e::wait_until;

/// Waits until the operator writes a pod template other than `current`; returns the StatefulSet.
fn next_template(
    stack: &Stack,
    current: u64,
    timeout: Duration,
) -> k8s_openapi::api::apps::v1::StatefulSet {
    wait_until(
        "the operator to change the pod template",
        timeout,
        || {
            statefulset::get(&stack.api, stack.namespace(), stack.scenario.get("TENANT"))
                .filter(|s| statefulset::template_hash(s) != current)
        },
        || stack.operator_log(),
    )
}

/// Files under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn operator_pods_serve_encrypted_objects_and_survive_certificate_rotation() {
    let started = Instant::now();
    let stack = Stack::start();
    let tenant = stack.scenario.get("TENANT").to_string();
    let mut pod = stack.tenant_pod();
    stack.bring_up(&mut pod);
    eprintln!(
        "[e2e] stack up and Tenant Ready after {:?}",
        started.elapsed()
    );

    // --- The client steps of the scenario: AWS CLI put + get, then mc.
    let client = stack.client(&pod, "client");
    stack.scenario.client("put", &client);
    stack.scenario.client("get", &client);
    stack.scenario.client("mc", &client);

    // --- The object's key is the Tenant's key, and that key lives in Vault's kv.
    let key = stack.jsonpath("tenant", &tenant, "{.spec.encryption.keyName}");
    assert!(!key.is_empty(), "the scenario's Tenant names its key");
    let vault_path = format!("{}/{}", stack.scenario.get("KV_ENGINE"), stack.namespace());
    let listed = stack.vault.run(&["list", "-format=json", &vault_path]);
    assert!(
        listed.contains(&format!("\"{key}\"")),
        "key {key} not in Vault under {vault_path}: {listed}"
    );
    let data = pod
        .host_path("/data")
        .expect("the object-server mounts /data");
    let bucket = data.join(stack.scenario.get("BUCKET"));
    let stored = files(&bucket);
    assert!(!stored.is_empty(), "no object under {}", bucket.display());
    let marker = format!("\"kms_key\":\"{key}\"");
    for file in &stored {
        let bytes = std::fs::read(file).expect("read stored object");
        assert!(
            bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} does not name KMS key {key} in its metadata",
            file.display()
        );
    }
    // And the plaintext is not on disk.
    let upload = std::fs::read(client.work.join("upload.bin")).expect("the uploaded bytes");
    let probe = &upload[4096..4096 + 32];
    for file in &stored {
        let bytes = std::fs::read(file).expect("read stored object");
        assert!(
            !bytes.windows(probe.len()).any(|w| w == probe),
            "plaintext found in {}",
            file.display()
        );
    }
    eprintln!(
        "[e2e] put/get/mc and Vault checks done after {:?}",
        started.elapsed()
    );

    // --- Rotation 1: a new certificate lifetime re-issues every leaf now.
    let sts = statefulset::get(&stack.api, stack.namespace(), &tenant).expect("StatefulSet");
    let first = statefulset::template_hash(&sts);
    stack.api.run(&[
        "patch",
        "tenant",
        &tenant,
        "-n",
        stack.namespace(),
        "--type=merge",
        "-p",
        r#"{"spec":{"tls":{"certificateLifetime":"90s"}}}"#,
    ]);
    let sts = next_template(&stack, first, Duration::from_secs(120));
    let second = statefulset::template_hash(&sts);
    pod.restart_with(statefulset::template(&sts));
    stack.settle(&pod);
    let client = stack.client(&pod, "client");
    stack.scenario.client("get", &client);
    stack.scenario.client("put", &client);
    eprintln!(
        "[e2e] rotation 1 (lifetime changed) done after {:?}",
        started.elapsed()
    );

    // --- Rotation 2: the 90 s certificates are renewed at 2/3 of their lifetime, by time alone.
    let sts = next_template(&stack, second, Duration::from_secs(150));
    pod.restart_with(statefulset::template(&sts));
    stack.settle(&pod);
    let client = stack.client(&pod, "client");
    stack.scenario.client("get", &client);
    stack.scenario.client("mc", &client);
    let events = stack.api.run(&[
        "get",
        "events.v1.events.k8s.io",
        "-n",
        stack.namespace(),
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("CertificateRenewed"), "{events}");
    eprintln!(
        "[e2e] rotation 2 (renewal due) done after {:?}",
        started.elapsed()
    );
}
