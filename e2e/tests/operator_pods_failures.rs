//! Failures in the setup of `operator_pods.rs` (the shared scenario, the operator's pod template
//! run as processes), each followed by its recovery:
//!
//! 1. Vault stopped for 60 s: reads and writes under the cached key go on (KES's offline cache,
//!    which the KES config the operator wrote enables from the KMS's `cache.offline`), and the
//!    object-server stays ready.
//! 2. Vault sealed: the object-server's readiness turns false (and the KMS and Tenant conditions
//!    say Vault is sealed); after the unseal it is ready again and requests succeed.
//! 3. The `kes` sidecar killed: the object-server is not ready; when kes is back, it is again.
//! 4. A wrong AppRole secret ID in the KMS's Secret: the Tenant's condition says Vault refused the
//!    login with that Secret, and no condition, event or log line contains the secret; with the
//!    right one back, the pod rolls (the Secret's version is on the pod template) and serves.

use std::time::{Duration, Instant};

use coffer_e2e::pod::ProbeKind;
use coffer_e2e::stack::{POD_READY_TIMEOUT, Stack};
use coffer_e2e::wait_until;

const OBJECT_SERVER: &str = "object-server";
/// How long the operator may take to notice a change of the KMS's Secret: it is not watched,
/// the KMS is probed every 60 s while healthy.
const KMS_NOTICE: Duration = Duration::from_secs(240);

#[test]
fn operator_pods_ride_out_vault_and_kes_failures() {
    let started = Instant::now();
    let mut stack = Stack::start();
    let ns = stack.namespace().to_string();
    let tenant = stack.scenario.get("TENANT").to_string();
    let kms = stack.scenario.get("KMS").to_string();

    let config = stack.jsonpath(
        "configmap",
        &format!("{tenant}-kes-config"),
        "{.data.config\\.yaml}",
    );
    assert!(
        config.contains("offline:"),
        "the KES config the operator wrote has no offline cache:\n{config}"
    );

    let mut pod = stack.tenant_pod();
    stack.bring_up(&mut pod);
    let client = stack.client(&pod, "client");
    stack.scenario.client("put", &client);
    eprintln!("[e2e] up after {:?}", started.elapsed());

    // --- 1. Vault stopped for 60 s: requests under the cached key continue.
    let phase = Instant::now();
    stack.vault.stop();
    let mut rounds = 0;
    while phase.elapsed() < Duration::from_secs(60) {
        stack.scenario.client("put", &client);
        stack.scenario.client("get", &client);
        assert!(
            pod.probe(OBJECT_SERVER, ProbeKind::Readiness),
            "object-server not ready while Vault is only unreachable\n{}",
            pod.logs()
        );
        rounds += 1;
    }
    eprintln!(
        "[e2e] Vault stopped for {:?}: {rounds} put+get rounds succeeded",
        phase.elapsed()
    );
    stack.vault.restart();
    stack.vault.unseal();
    stack.scenario.client("put", &client);
    stack.wait_condition("kms", &kms, "Ready", "True", KMS_NOTICE);

    // --- 2. Vault sealed: not ready, then ready again after the unseal.
    let phase = Instant::now();
    stack.vault.seal();
    wait_until(
        "object-server readiness to fail with Vault sealed",
        POD_READY_TIMEOUT,
        || (!pod.probe(OBJECT_SERVER, ProbeKind::Readiness)).then_some(()),
        || pod.logs(),
    );
    let sealed = stack.wait_condition("tenant", &tenant, "KMSReady", "False", KMS_NOTICE);
    assert!(sealed.contains("sealed"), "{sealed}");
    stack.vault.unseal();
    pod.wait_ready(POD_READY_TIMEOUT);
    stack.scenario.client("get", &client);
    stack.scenario.client("put", &client);
    stack.wait_condition("tenant", &tenant, "KMSReady", "True", KMS_NOTICE);
    eprintln!("[e2e] seal/unseal recovered in {:?}", phase.elapsed());

    // --- 3. kes killed: the object-server is not ready until kes is back.
    let phase = Instant::now();
    pod.kill_container("kes");
    wait_until(
        "object-server readiness to fail without kes",
        POD_READY_TIMEOUT,
        || (!pod.probe(OBJECT_SERVER, ProbeKind::Readiness)).then_some(()),
        || pod.logs(),
    );
    pod.restart_container("kes");
    pod.wait_ready(POD_READY_TIMEOUT);
    stack.scenario.client("get", &client);
    stack.scenario.client("put", &client);
    eprintln!("[e2e] kes restart recovered in {:?}", phase.elapsed());

    // --- 4. A wrong AppRole secret ID: the Tenant's condition says so, without the secret.
    let phase = Instant::now();
    let wrong = "00000000-wrong-secret-id-0000";
    let secret = stack.scenario.get("APPROLE_SECRET").to_string();
    let write_secret = |secret_id: &str| {
        stack.api.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: {ns}}}\n\
             stringData: {{roleId: {}, secretId: {secret_id}}}\n",
            stack.approle.role_id
        ));
    };
    write_secret(wrong);
    let message = stack.wait_condition("tenant", &tenant, "KMSReady", "False", KMS_NOTICE);
    assert!(
        message.contains("refused the AppRole login") && message.contains(&secret),
        "the Tenant's KMSReady condition does not say the login was refused: {message}"
    );
    let (_, reason, kms_message) = stack.condition("kms", &kms, "Ready");
    assert_eq!(reason, "VaultLoginFailed", "{kms_message}");
    let everything = format!(
        "{}\n{}\n{}",
        stack
            .api
            .run(&["get", "tenant,kms", "-n", &ns, "-o", "yaml"]),
        stack.api.run(&["get", "events", "-n", &ns, "-o", "yaml"]),
        stack.operator_full_log()
    );
    for credential in [wrong, stack.approle.secret_id.as_str()] {
        assert!(
            !everything.contains(credential),
            "a secret ID appears in a status, an event or the operator's log"
        );
    }
    write_secret(&stack.approle.secret_id.clone());
    stack.wait_condition("tenant", &tenant, "KMSReady", "True", KMS_NOTICE);
    // A changed KMS Secret changes the pod template (so that pods pick up new credentials): the
    // pod rolls, with the right secret ID, and serves the old objects.
    stack.roll(&mut pod);
    stack.scenario.client("get", &client);
    eprintln!(
        "[e2e] wrong AppRole secret reported and cleared in {:?}; total {:?}",
        phase.elapsed(),
        started.elapsed()
    );
}
