//! The operator against a real kube-apiserver + etcd (no kubelet: pods are stored, never run),
//! one behaviour per test, each with its own API server.
//!
//! Needs the peers `etcd`, `kube-apiserver` and `kubectl` on PATH (`eval "$(e2e/peers/env)"`);
//! fails loudly when they are absent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use coffer_e2e::kube::KubeApi;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use operator::build::CERTS_HASH_ANNOTATION;
use operator::crd::{KMS, Tenant};
use operator::reconcile::leader::Elector;

use common::fixtures::{
    Deployed, api_with_crds, approle_secret, event_reasons, kms_yaml, namespace, real_kms,
    tenant_yaml,
};
use common::{eventually, kms_condition, printed, start_operator, tenant_condition as condition};

/// `kubectl explain WHAT`, retried while the API server publishes the new schema.
fn kubectl_explain(api: &KubeApi, what: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = api.kubectl().args(["explain", what]).output().unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl explain {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pod_hash(sts: &StatefulSet) -> String {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CERTS_HASH_ANNOTATION]
        .clone()
}

fn config_hash(s: &StatefulSet) -> String {
    s.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[operator::build::CONFIG_HASH_ANNOTATION]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_explain_their_fields() {
    let api = KubeApi::start();
    api.install_crds();
    let explain = kubectl_explain(&api, "tenant.spec");
    assert!(
        explain.contains("The KMS (same namespace) whose Vault keeps this Tenant's master keys"),
        "{explain}"
    );
    let explain = kubectl_explain(&api, "kms.spec.vault.auth");
    assert!(
        explain.contains("exactly one of `appRole` or `kubernetes`"),
        "{explain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_refused_with_the_cel_messages() {
    let ns = "shop";
    let (api, _client) = api_with_crds(ns).await;
    let rejected: &[(String, &str)] = &[
        (
            kms_yaml(ns, "http://vault:8200"),
            "vault.endpoint must be an https:// URL",
        ),
        (
            format!(
                "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: both, namespace: {ns}}}\nspec:\n  vault:\n    endpoint: https://v:8200\n    auth:\n      appRole: {{secretName: s}}\n      kubernetes: {{role: r}}\n"
            ),
            "vault.auth needs exactly one of appRole or kubernetes",
        ),
        (
            format!(
                "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: none, namespace: {ns}}}\nspec:\n  vault:\n    endpoint: https://v:8200\n    auth: {{}}\n"
            ),
            "vault.auth needs exactly one of appRole or kubernetes",
        ),
        (
            tenant_yaml(ns, "badkey", "  encryption: {keyName: 'bad/key'}\n"),
            "encryption.keyName must be a valid KES key name",
        ),
        (
            tenant_yaml(ns, "many", "  replicas: 3\n"),
            "replicas > 1 needs storage.sharedClaimName",
        ),
        (
            tenant_yaml(
                ns,
                "prefix",
                "  encryption: {keyPrefix: 'a-', keyName: 'b-key'}\n",
            ),
            "encryption.keyName must start with encryption.keyPrefix",
        ),
        (
            tenant_yaml(ns, "store", "  encryption: {keyName: minio-key-1}\n"),
            "encryption.keyName must start with the Tenant's key prefix",
        ),
        (
            tenant_yaml(ns, "life", "  tls: {certificateLifetime: 3days}\n"),
            "must be a duration such as 30s, 5m or 1h30m",
        ),
        (
            tenant_yaml(ns, &"n".repeat(48), ""),
            "metadata.name must be at most 47 characters",
        ),
        (
            tenant_yaml(ns, "a.b", ""),
            "metadata.name must not contain '.'",
        ),
        (
            tenant_yaml(ns, "dash", "  encryption: {keyName: 'key-'}\n"),
            "encryption.keyName must be a valid KES key name",
        ),
    ];
    for (yaml, message) in rejected {
        let (ok, out) = api.try_apply(yaml);
        assert!(!ok, "accepted but should be rejected ({message}):\n{yaml}");
        assert!(
            out.contains(message),
            "rejected without the message {message:?}: {out}"
        );
    }
    let (ok, out) = api.try_apply(&tenant_yaml(
        ns,
        "shared",
        "  replicas: 3\n  storage: {sharedClaimName: rwx}\n",
    ));
    assert!(ok, "replicas > 1 with a shared claim is accepted: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_kms_secret_is_degraded_until_it_appears() {
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let _stop = start_operator(client.clone(), ns, "test");
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    for yaml in [
        kms_yaml(ns, "https://127.0.0.1:1"),
        tenant_yaml(ns, "photos", ""),
    ] {
        let (ok, out) = api.try_apply(&yaml);
        assert!(ok, "{out}");
    }
    let degraded = eventually(
        "Degraded KMSSecretMissing",
        Duration::from_secs(30),
        || async {
            let t = tenants.get("photos").await.ok()?;
            condition(&t, "Degraded").filter(|(s, r, _)| s == "True" && r == "KMSSecretMissing")
        },
    )
    .await;
    assert!(degraded.2.contains("vault-approle"), "{degraded:?}");
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    assert!(stss.get_opt("photos").await.unwrap().is_none());

    let (ok, out) = api.try_apply(&approle_secret(ns));
    assert!(ok, "{out}");
    eventually("StatefulSet photos", Duration::from_secs(30), || async {
        stss.get_opt("photos").await.ok().flatten()
    })
    .await;
    eventually("Degraded False", Duration::from_secs(30), || async {
        let t = tenants.get("photos").await.ok()?;
        condition(&t, "Degraded").filter(|(s, _, _)| s == "False")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_gets_every_owned_object() {
    let ns = "shop";
    let d = Deployed::start(ns).await;
    let sts = d.api::<StatefulSet>(ns).get("photos").await.unwrap();
    let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let kes = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        (kes.name.as_str(), kes.restart_policy.as_deref()),
        ("kes", Some("Always")),
        "KES is a native sidecar"
    );
    assert_eq!(pod.containers[0].name, "object-server");
    let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Tenant", "photos")
    );
    let managers: Vec<_> = sts
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["coffer-operator"], "one field manager");

    let secrets = d.api::<Secret>(ns);
    for name in ["photos-ca", "photos-tls", "photos-kes-tls", "photos-root"] {
        assert!(
            secrets.get_opt(name).await.unwrap().is_some(),
            "Secret {name}"
        );
    }
    let services = d.api::<Service>(ns);
    for name in ["photos", "photos-hl"] {
        assert!(
            services.get_opt(name).await.unwrap().is_some(),
            "Service {name}"
        );
    }
    let cm = d
        .api::<ConfigMap>(ns)
        .get("photos-kes-config")
        .await
        .unwrap();
    assert!(cm.data.as_ref().unwrap()["config.yaml"].contains("/v1/key/generate/photos_*"));
    assert!(
        d.api::<PodDisruptionBudget>(ns)
            .get_opt("photos")
            .await
            .unwrap()
            .is_some()
    );
    let events = event_reasons(&d.api, ns);
    assert!(
        events.contains("RootCredentialsGenerated") && events.contains("CAIssued"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_says_progressing_without_secrets() {
    let ns = "shop";
    let d = Deployed::start(ns).await;
    let tenants = d.api::<Tenant>(ns);
    // No kubelet runs, so the replicas never get ready: Progressing, not Degraded.
    let t = eventually("status with identity", Duration::from_secs(30), || async {
        let t = tenants.get("photos").await.ok()?;
        t.status.as_ref()?.kes_identity.as_ref()?;
        condition(&t, "Degraded")
            .filter(|(s, _, _)| s == "False")
            .map(|_| t)
    })
    .await;
    let st = t.status.as_ref().unwrap();
    assert_eq!(st.observed_generation, t.metadata.generation);
    assert_eq!(st.endpoint.as_deref(), Some("https://photos.shop.svc:9000"));
    assert_eq!(st.kes_identity.as_ref().unwrap().len(), 64);
    assert_eq!(condition(&t, "CertificatesReady").unwrap().0, "True");
    assert_eq!(condition(&t, "Ready").unwrap().0, "False");
    assert_eq!(condition(&t, "Progressing").unwrap().0, "True");
    let kms_ready = condition(&t, "KMSReady").unwrap();
    assert_eq!(
        kms_ready.0, "False",
        "Vault at 127.0.0.1:1 does not answer: {kms_ready:?}"
    );
    let status_json = serde_json::to_string(&t.status).unwrap();
    assert!(
        !status_json.contains("s-456") && !status_json.contains("PRIVATE"),
        "no secret in status"
    );
    let kms = eventually("KMS probed", Duration::from_secs(30), || async {
        let k = d.api::<KMS>(ns).get("vault").await.ok()?;
        kms_condition(&k, "Ready")
    })
    .await;
    assert_eq!(
        (kms.0.as_str(), kms.1.as_str()),
        ("False", "VaultUnreachable")
    );
    let table = d.api.run(&["get", "tenant", "-n", ns]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "READY", "REPLICAS", "ENDPOINT", "USERS", "VERSION", "AGE"
        ],
        "{table}"
    );
    assert!(table.contains("https://photos.shop.svc:9000"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_owned_objects_come_back() {
    let ns = "shop";
    let d = Deployed::start(ns).await;
    let (services, secrets, stss) = (
        d.api::<Service>(ns),
        d.api::<Secret>(ns),
        d.api::<StatefulSet>(ns),
    );
    services
        .delete("photos", &DeleteParams::default())
        .await
        .unwrap();
    let before = pod_hash(&stss.get("photos").await.unwrap());
    secrets
        .delete("photos-kes-tls", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Service photos back", Duration::from_secs(30), || async {
        services.get_opt("photos").await.ok().flatten()
    })
    .await;
    eventually(
        "Secret photos-kes-tls back",
        Duration::from_secs(30),
        || async { secrets.get_opt("photos-kes-tls").await.ok().flatten() },
    )
    .await;
    // Whether the operator wrote the old certificates back (a reconcile already running when
    // the Secret went away) or issued new ones, the pods do not roll: they read renewed
    // certificates from their volumes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pod_hash(&stss.get("photos").await.unwrap()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_kms_edits_reach_the_kes_config() {
    let ns = "shop";
    let d = Deployed::start(ns).await;
    let (cms, stss) = (d.api::<ConfigMap>(ns), d.api::<StatefulSet>(ns));
    let config_before = config_hash(&stss.get("photos").await.unwrap());
    d.api::<Tenant>(ns)
        .patch(
            "photos",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"kes": {"logLevel": "debug"}}})),
        )
        .await
        .unwrap();
    eventually(
        "KES config follows the Tenant",
        Duration::from_secs(30),
        || async {
            let cm = cms.get("photos-kes-config").await.ok()?;
            cm.data.as_ref()?["config.yaml"]
                .contains("error: debug")
                .then_some(())
        },
    )
    .await;
    eventually(
        "a new KES config rolls the pods",
        Duration::from_secs(30),
        || async {
            let s = stss.get("photos").await.ok()?;
            (config_hash(&s) != config_before).then_some(())
        },
    )
    .await;

    // A KMS change requeues the Tenants that use it.
    d.api::<KMS>(ns)
        .patch(
            "vault",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"vault": {"endpoint": "https://127.0.0.1:2"}}}),
            ),
        )
        .await
        .unwrap();
    eventually(
        "KES config follows the KMS",
        Duration::from_secs(30),
        || async {
            let cm = cms.get("photos-kes-config").await.ok()?;
            cm.data.as_ref()?["config.yaml"]
                .contains("https://127.0.0.1:2")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_certificates_are_renewed_in_place_and_keep_the_kes_identity() {
    let ns = "shop";
    let d = Deployed::start(ns).await;
    let (stss, secrets, cms) = (
        d.api::<StatefulSet>(ns),
        d.api::<Secret>(ns),
        d.api::<ConfigMap>(ns),
    );
    let (ok, out) = d.api.try_apply(&tenant_yaml(
        ns,
        "short",
        "  tls: {certificateLifetime: 30s}\n",
    ));
    assert!(ok, "{out}");
    let first = eventually("StatefulSet short", Duration::from_secs(30), || async {
        stss.get_opt("short")
            .await
            .ok()
            .flatten()
            .map(|s| pod_hash(&s))
    })
    .await;
    let client_first = eventually("Secret short-kes-tls", Duration::from_secs(30), || async {
        Some(secrets.get("short-kes-tls").await.ok()?.data?["client.crt"].clone())
    })
    .await;
    let config_first = eventually("short's KES config", Duration::from_secs(30), || async {
        Some(cms.get("short-kes-config").await.ok()?.data?["config.yaml"].clone())
    })
    .await;
    // Renewed at 2/3 of 30 s; the pods do not roll (the binaries reload certificates), and the
    // KES client identity, in the KES config, is kept.
    eventually("certificate renewal", Duration::from_secs(45), || async {
        let data = secrets.get("short-kes-tls").await.ok()?.data?;
        (data["client.crt"] != client_first).then_some(())
    })
    .await;
    assert_eq!(pod_hash(&stss.get("short").await.unwrap()), first);
    let identities = |config: &str| {
        config
            .split_once("identities:")
            .map(|(_, rest)| rest.lines().take(2).collect::<String>())
            .unwrap_or_default()
    };
    let config = cms.get("short-kes-config").await.unwrap().data.unwrap()["config.yaml"].clone();
    assert!(!identities(&config_first).is_empty(), "{config_first}");
    assert_eq!(
        identities(&config),
        identities(&config_first),
        "a renewal keeps the KES client's key, so its identity in the KES config"
    );
    let events = event_reasons(&d.api, ns);
    assert!(events.contains("CertificateRenewed"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_kms_secret_rolls_the_pods_without_copying_it() {
    // The Secret watch: the KMS's status does not change, and the resync is 5 minutes away.
    let ns = "shop";
    let d = Deployed::start(ns).await;
    let stss = d.api::<StatefulSet>(ns);
    let before = pod_hash(&stss.get("photos").await.unwrap());
    let (ok, out) = d.api.try_apply(
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {ns}}}\nstringData: {{roleId: r-123, secretId: s-789}}\n"
        ),
    );
    assert!(ok, "{out}");
    eventually(
        "a rotated KMS Secret rolls the pods",
        Duration::from_secs(30),
        || async {
            let h = pod_hash(&stss.get("photos").await.ok()?);
            (h != before).then_some(())
        },
    )
    .await;
    let sts_json = serde_json::to_string(&stss.get("photos").await.unwrap()).unwrap();
    assert!(
        !sts_json.contains("s-789") && !sts_json.contains("r-123"),
        "credentials are referenced, never copied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_younger_tenant_with_an_overlapping_key_prefix_is_not_deployed() {
    let ns = "shop";
    let d = Deployed::start(ns).await;
    // Creation times have a resolution of one second, and ties go to the name ("clash" <
    // "photos"): make clash the younger for certain.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, out) = d.api.try_apply(&tenant_yaml(
        ns,
        "clash",
        "  encryption: {keyPrefix: photos_}\n",
    ));
    assert!(ok, "{out}");
    let tenants = d.api::<Tenant>(ns);
    let clash = eventually(
        "Degraded KeyPrefixConflict",
        Duration::from_secs(30),
        || async {
            let t = tenants.get("clash").await.ok()?;
            condition(&t, "Degraded").filter(|(s, r, _)| s == "True" && r == "KeyPrefixConflict")
        },
    )
    .await;
    assert!(clash.2.contains("\"photos\""), "{clash:?}");
    assert!(
        d.api::<StatefulSet>(ns)
            .get_opt("clash")
            .await
            .unwrap()
            .is_none(),
        "nothing deployed for it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_credentials_are_generated_once() {
    let ns = "shop";
    let d = Deployed::start(ns).await;
    let secrets = d.api::<Secret>(ns);
    let root = secrets.get("photos-root").await.unwrap();
    let data = root.data.as_ref().unwrap();
    assert!(data.contains_key("rootUser") && data["rootPassword"].0.len() >= 32);
    // Touching the Tenant reconciles it again: the Secret stays as it is.
    d.api::<Tenant>(ns)
        .patch(
            "photos",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(secrets.get("photos-root").await.unwrap().data, root.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_reports_a_real_vault_healthy_then_sealed() {
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let _stop = start_operator(client.clone(), ns, "test");
    let vault = coffer_e2e::vault::Vault::production();
    real_kms(&api, &Api::namespaced(client.clone(), ns), ns, &vault).await;
    let kmss: Api<KMS> = Api::namespaced(client.clone(), ns);
    eventually("KMS real Ready", Duration::from_secs(30), || async {
        let k = kmss.get("real").await.ok()?;
        kms_condition(&k, "Ready").filter(|(s, _, _)| s == "True")
    })
    .await;
    let table = api.run(&["get", "kms", "-n", ns]);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["NAME", "READY", "ENDPOINT", "AGE"]),
        "{table}"
    );

    // Sealed, Vault answers 503: the KMS says so (a touch of the KMS triggers a probe now).
    vault.seal();
    kmss.patch(
        "real",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"touch": "1"}}})),
    )
    .await
    .unwrap();
    let sealed = eventually(
        "KMS real reports sealed",
        Duration::from_secs(30),
        || async {
            let k = kmss.get("real").await.ok()?;
            kms_condition(&k, "Ready").filter(|(s, _, _)| s == "False")
        },
    )
    .await;
    assert_eq!(
        (sealed.1.as_str(), sealed.2.as_str()),
        ("VaultUnhealthy", "Vault is sealed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kes_runs_from_what_the_operator_wrote_and_keys_outlive_the_tenant() {
    // Our kes, started from exactly what the operator wrote for a Tenant (ConfigMap, TLS
    // Secret, Vault credentials resolved from the KMS's Secret as the kubelet would), serves
    // the object-server's identity and stores the key in Vault.
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let _stop = start_operator(client.clone(), ns, "test");
    let vault = coffer_e2e::vault::Vault::production();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    real_kms(&api, &secrets, ns, &vault).await;
    let (ok, out) = api.try_apply(
        &format!(
            "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: docs, namespace: {ns}}}\nspec:\n  kms: {{name: real}}\n"
        ),
    );
    assert!(ok, "{out}");
    let kes_tls = eventually("Secret docs-kes-tls", Duration::from_secs(30), || async {
        secrets.get_opt("docs-kes-tls").await.ok().flatten()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let config = eventually(
        "ConfigMap docs-kes-config",
        Duration::from_secs(30),
        || async {
            cms.get_opt("docs-kes-config")
                .await
                .ok()
                .flatten()?
                .data?
                .remove("config.yaml")
        },
    )
    .await;
    run_kes_from_cluster_objects(&secrets, &kes_tls, &config, &vault).await;

    // Deleting the Tenant never deletes its keys in Vault.
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), ns);
    tenants
        .delete("docs", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Tenant docs gone", Duration::from_secs(30), || async {
        tenants.get_opt("docs").await.ok()?.is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = vault.run(&["kv", "list", "kv/shop"]);
    assert!(
        stored.contains("docs_default"),
        "the key outlives its Tenant: {stored}"
    );
}

/// Lays out the pod's files from the Tenant's objects in a temporary directory, starts our kes
/// (sidecar-kes, in-process) from the generated config, and creates the default key as the
/// object-server would, with the client certificate from the same Secret.
async fn run_kes_from_cluster_objects(
    secrets: &Api<Secret>,
    kes_tls: &Secret,
    config: &str,
    vault: &coffer_e2e::vault::Vault,
) {
    use operator::build::kes_config::{
        ENV_APPROLE_ID, ENV_APPROLE_SECRET, KES_ADDRESS, TLS_DIR, VAULT_CA_DIR,
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = |name: &str, data: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    };
    let data = kes_tls.data.as_ref().unwrap();
    for k in ["server.crt", "server.key", "ca.crt"] {
        file(k, &data[k].0);
    }
    let (client_cert, client_key) = (
        file("client.crt", &data["client.crt"].0),
        file("client.key", &data["client.key"].0),
    );
    std::fs::create_dir(d.join("vault-ca")).unwrap();
    std::fs::copy(vault.ca_cert.as_ref().unwrap(), d.join("vault-ca/ca.crt")).unwrap();
    // Port 0: the in-process kes picks a free one (a port picked free here could be taken by
    // another test before it binds it).
    let text = config
        .replace(KES_ADDRESS, "127.0.0.1:0")
        .replace(TLS_DIR, &d.display().to_string())
        .replace(VAULT_CA_DIR, &d.join("vault-ca").display().to_string());
    // The kubelet resolves the sidecar's secretKeyRef env from the KMS's Secret.
    let creds = secrets.get("real-approle").await.unwrap().data.unwrap();
    let env = |k: &str| {
        let key = match k {
            ENV_APPROLE_ID => "roleId",
            ENV_APPROLE_SECRET => "secretId",
            _ => return None,
        };
        Some(String::from_utf8(creds[key].0.clone()).unwrap())
    };
    let parsed = sidecar_kes::config::parse(&text, &env).expect("our kes reads the ConfigMap");
    let running = common::start_our_kes(&parsed).await;
    let endpoint = format!("https://127.0.0.1:{}", running.addr.port());
    let ca_file = d.join("ca.crt");
    let out = tokio::task::spawn_blocking(move || {
        // Verify the sidecar as the object-server does: against the Tenant CA, name 127.0.0.1
        // (Go reads extra roots from SSL_CERT_FILE), and present the client certificate.
        std::process::Command::new(coffer_e2e::peer_bin("minio-kes"))
            .args(["key", "create", "docs_default"])
            .env("KES_SERVER", endpoint)
            .env("KES_CLIENT_CERT", client_cert)
            .env("KES_CLIENT_KEY", client_key)
            .env("SSL_CERT_FILE", ca_file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the object-server's identity creates its default key through our kes: {}",
        printed(&out)
    );
    let stored = vault.run(&["kv", "list", "kv/shop"]);
    assert!(
        stored.contains("docs_default"),
        "the key is in Vault under <namespace>/: {stored}"
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_leads() {
    let api = KubeApi::start();
    let client = api.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let a = Arc::new(Elector::new(
        leases.clone(),
        "coffer-operator",
        "a",
        Duration::from_secs(3),
    ));
    let b = Elector::new(
        leases.clone(),
        "coffer-operator",
        "b",
        Duration::from_secs(3),
    );
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a takes the free lease"
    );
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "b may not take a held lease"
    );
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    // a stops renewing: after the lease duration b takes over, and a no longer holds it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "b takes an expired lease"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap(), "a lost it");
    let lease = leases.get("coffer-operator").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    b.release().await;
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a takes a released lease at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_names_that_take_another_tenants_objects_are_refused() {
    // Tenant `x-kes` would apply its S3 certificate as Secret `x-kes-tls`, Tenant `x`'s KES
    // certificate, and Tenant `x-hl` its Service as `x`'s headless Service: the API server
    // refuses both names, with the reason, whichever Tenant comes first.
    let api = KubeApi::start();
    let client = api.client().await;
    // The CRDs this very build prints (not a checkout's crds/, which another build may name).
    api.apply(&operator::crd::crds_yaml());
    api.wait_crds_established();
    let ns = "names";
    namespace(&client, ns).await;
    for name in ["x-kes", "x-hl", "x"] {
        let (ok, out) = api.try_apply(&tenant_yaml(ns, name, ""));
        if name == "x" {
            assert!(ok, "{out}");
            continue;
        }
        assert!(!ok, "Tenant {name:?} was accepted: {out}");
        assert!(
            out.contains("metadata.name must not end in -kes or -hl"),
            "refused without the reason: {out}"
        );
    }
    for name in ["x-kes", "x-hl"] {
        let (ok, out) = api.try_apply(&tenant_yaml(ns, name, ""));
        assert!(!ok, "Tenant {name:?} was accepted beside Tenant x: {out}");
    }
    // Names that merely contain the suffixes stay valid.
    for name in ["kes", "x-kesx", "hl-x", "x-kes-y"] {
        let (ok, out) = api.try_apply(&tenant_yaml(ns, name, ""));
        assert!(ok, "Tenant {name:?}: {out}");
    }
}
