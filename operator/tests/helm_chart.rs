//! The Helm chart and the plain install manifests, against real `helm` and a real API server:
//! lint, schema, install and uninstall, and RBAC that is enough
//! for `operator run` (with a token of the chart's ServiceAccount) and not more than it uses.

use coffer_e2e::kube::KubeApi;
use coffer_e2e::{Process, peer_bin, wait_until};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    root().join("charts/coffer-operator")
}

/// `helm ARGS…` with its caches in a scratch directory.
fn helm(scratch: &Path) -> Command {
    let mut command = Command::new(peer_bin("helm"));
    command
        .env("HELM_CACHE_HOME", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_DATA_HOME", scratch.join("data"));
    command
}

fn output(what: &str, command: &mut Command) -> (bool, String) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn chart_lints_clean_and_its_schema_refuses_bad_values() {
    let scratch = tempfile::tempdir().unwrap();
    let (ok, text) = output(
        "helm lint",
        helm(scratch.path()).args(["lint", "--strict"]).arg(chart()),
    );
    assert!(ok, "helm lint --strict: {text}");
    assert!(text.contains("0 chart(s) failed"), "{text}");

    for (set, message) in [
        ("replicaCount=0", "minimum"),
        ("replicaCount=two", "got string, want integer"),
        ("image.pullPolicy=Sometimes", "value must be one of"),
        ("watchNamespace=Not_A_Namespace", "does not match pattern"),
        ("metrics.port=80", "minimum"),
        ("typo=1", "additional properties 'typo' not allowed"),
    ] {
        let (ok, text) = output(
            "helm template",
            helm(scratch.path())
                .args(["template", "x"])
                .arg(chart())
                .args(["--set", set]),
        );
        assert!(!ok, "--set {set} must be refused");
        assert!(
            text.contains(message),
            "--set {set}: expected {message:?} in: {text}"
        );
    }
}

/// `(apiGroup, resource[/subresource], verb)` of every rule in the chart's (Cluster)Roles.
fn granted(rendered: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for doc in rendered.split("\n---\n") {
        if !(doc.contains("\nkind: ClusterRole\n") || doc.contains("\nkind: Role\n")) {
            continue;
        }
        let value: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
        for rule in value["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        out.insert((
                            group.as_str().unwrap().to_string(),
                            resource.as_str().unwrap().to_string(),
                            verb.as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn helm_install_runs_the_operator_with_exactly_the_rbac_it_needs() {
    let api = KubeApi::start();
    let scratch = tempfile::tempdir().unwrap();
    let ns = "coffer-system";
    let sa = format!("system:serviceaccount:{ns}:coffer-operator");

    let (ok, text) = output(
        "helm install",
        helm(scratch.path())
            .env("KUBECONFIG", &api.kubeconfig)
            .args(["install", "coffer-operator"])
            .arg(chart())
            .args(["--namespace", ns, "--create-namespace"]),
    );
    assert!(ok, "helm install: {text}");
    assert!(text.contains("STATUS: deployed"), "{text}");
    assert!(
        text.contains("kubectl apply"),
        "NOTES.txt tells what to apply next: {text}"
    );
    api.wait_crds_established();
    let deployment = api.run(&[
        "-n",
        ns,
        "get",
        "deployment",
        "coffer-operator",
        "-o",
        "json",
    ]);
    let deployment: serde_json::Value = serde_json::from_str(&deployment).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );

    // The operator, as the chart's ServiceAccount, reconciles a KMS and a Tenant.
    let token = api.run(&[
        "-n",
        ns,
        "create",
        "token",
        "coffer-operator",
        "--duration=1h",
    ]);
    let kubeconfig = api.kubeconfig_with_token("coffer-operator", token.trim());
    api.run(&["create", "namespace", "demo"]);
    // The Prometheus Operator's CRD (a stand-in with its names), so spec.monitoring's
    // ServiceMonitor is applied and later removed under the chart's RBAC.
    api.apply(SERVICE_MONITOR_CRD);
    api.apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: vault-approle, namespace: demo}\nstringData: {roleId: r, secretId: s}\n---\n\
         apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {name: vault, namespace: demo}\n\
         spec:\n  vault:\n    endpoint: https://127.0.0.1:1\n    auth:\n      appRole: {secretName: vault-approle}\n---\n\
         apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {name: store, namespace: demo}\nspec:\n  kms: {name: vault}\n  monitoring: {serviceMonitor: true}\n  networkPolicy: {enabled: true}\n  deletionPolicy: Delete\n",
    );
    let log = scratch.path().join("operator.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_operator"));
    command
        .args([
            "run",
            // Port 0: nothing here reads the metrics, and a port picked free could be taken
            // by another test before the operator binds it.
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", ns)
        .env("POD_NAME", "coffer-operator-test")
        .env("RUST_LOG", "info");
    let operator = Process::spawn("operator", command, &log);
    wait_until(
        "the operator to create the Tenant's StatefulSet and Services",
        Duration::from_secs(60),
        || {
            operator.assert_running();
            let sts = api
                .kubectl()
                .args(["-n", "demo", "get", "statefulset", "store"])
                .output()
                .ok()?;
            let svc = api
                .kubectl()
                .args(["-n", "demo", "get", "service", "store", "store-hl"])
                .output()
                .ok()?;
            (sts.status.success() && svc.status.success()).then_some(())
        },
        || operator.log_tail(),
    );
    wait_until(
        "the KMS and Tenant status to be written",
        Duration::from_secs(30),
        || {
            let out = api.run(&[
                "-n",
                "demo",
                "get",
                "kms/vault",
                "tenant/store",
                "-o",
                "json",
            ]);
            let list: serde_json::Value = serde_json::from_str(&out).ok()?;
            list["items"]
                .as_array()?
                .iter()
                .all(|i| i["status"]["observedGeneration"].is_number())
                .then_some(())
        },
        || operator.log_tail(),
    );
    // Let the Lease renew at least once (every 5 s): wait for its renewTime to move rather than
    // pause for a fixed time, which a loaded machine can outlast.
    let renewed = || {
        api.run(&[
            "-n",
            ns,
            "get",
            "lease",
            "coffer-operator",
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    let first = wait_until(
        "the operator to hold the Lease",
        Duration::from_secs(60),
        || Some(renewed()).filter(|t| !t.trim().is_empty()),
        || operator.log_tail(),
    );
    wait_until(
        "the Lease to be renewed",
        Duration::from_secs(90),
        || (renewed() != first).then_some(()),
        || operator.log_tail(),
    );
    let service_monitor = |present: bool| {
        let out = api
            .kubectl()
            .args(["-n", "demo", "get", "servicemonitor", "store"])
            .output()
            .ok()?;
        (out.status.success() == present).then_some(())
    };
    wait_until(
        "the Tenant's ServiceMonitor",
        Duration::from_secs(60),
        || service_monitor(true),
        || operator.log_tail(),
    );
    api.run(&[
        "-n",
        "demo",
        "patch",
        "tenant",
        "store",
        "--type=merge",
        "-p",
        r#"{"spec":{"monitoring":{"serviceMonitor":false},"networkPolicy":{"enabled":false}}}"#,
    ]);
    wait_until(
        "the ServiceMonitor removed once turned off",
        Duration::from_secs(60),
        || service_monitor(false),
        || operator.log_tail(),
    );
    let network_policy_gone = || {
        let out = api
            .kubectl()
            .args(["-n", "demo", "get", "networkpolicy", "store"])
            .output()
            .ok()?;
        (!out.status.success()).then_some(())
    };
    wait_until(
        "the NetworkPolicy removed once turned off",
        Duration::from_secs(60),
        network_policy_gone,
        || operator.log_tail(),
    );
    // Deleting the KMS first is held for the Tenant; deleting the Tenant lets both go (the
    // finalizers are removed under the chart's RBAC).
    api.run(&["-n", "demo", "delete", "kms", "vault", "--wait=false"]);
    api.run(&["-n", "demo", "delete", "tenant", "store", "--wait=false"]);
    wait_until(
        "the Tenant and the KMS deleted",
        Duration::from_secs(60),
        || {
            let out = api.run(&["-n", "demo", "get", "tenants,kms", "-o", "name"]);
            out.trim().is_empty().then_some(())
        },
        || operator.log_tail(),
    );
    operator.terminate(Duration::from_secs(10));
    let log_text = operator.log();
    assert!(
        !log_text.to_lowercase().contains("forbidden"),
        "the chart's RBAC is not enough:\n{log_text}"
    );

    // Not more than it needs: every verb the chart grants was used by the operator.
    let used: BTreeSet<(String, String, String)> = api
        .audit_events()
        .iter()
        .filter(|e| e["user"]["username"] == sa.as_str())
        .filter_map(|e| {
            let r = &e["objectRef"];
            let resource = match r["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", r["resource"].as_str()?),
                None => r["resource"].as_str()?.to_string(),
            };
            Some((
                r["apiGroup"].as_str().unwrap_or("").to_string(),
                resource,
                e["verb"].as_str()?.to_string(),
            ))
        })
        .collect();
    let denied: Vec<_> = api
        .audit_events()
        .into_iter()
        .filter(|e| e["user"]["username"] == sa.as_str() && e["responseStatus"]["code"] == 403)
        .collect();
    assert!(denied.is_empty(), "requests refused by RBAC: {denied:#?}");
    let (ok, rendered) = output(
        "helm template",
        helm(scratch.path())
            .args(["template", "coffer-operator"])
            .arg(chart())
            .args(["--namespace", ns]),
    );
    assert!(ok);
    let unused: Vec<_> = granted(&rendered)
        .difference(&used)
        .filter(|(group, resource, verb)| {
            // A server-side apply that creates an object is audited as `patch` but also needs
            // `create`; events are patched only when one repeats, a path granted on purpose.
            let applied = used.contains(&(group.clone(), resource.clone(), "patch".to_string()));
            let created_by_apply = verb == "create" && applied;
            let repeated_event = group == "events.k8s.io" && verb == "patch";
            // Used only when `storage.size` grows (storage_changes.rs proves that path): the claims
            // are read and patched, the StatefulSet orphan-deleted and recreated.
            let volume_expansion = matches!(
                (group.as_str(), resource.as_str(), verb.as_str()),
                ("", "persistentvolumeclaims", "get" | "patch")
                    | ("apps", "statefulsets", "delete")
            );
            // Used only when a deleted Tenant with `deletionPolicy: Delete` has claims (no
            // StatefulSet controller made any here; tests/deletion.rs proves that path).
            let claims_deleted = (group.as_str(), resource.as_str(), verb.as_str())
                == ("", "persistentvolumeclaims", "delete");
            // Used only when a Tenant with `deletionProtection: true` is deleted: its status is
            // read back to add `DeletionBlocked` (tests/deletion.rs proves that path).
            let deletion_held = (group.as_str(), resource.as_str(), verb.as_str())
                == ("coffer.dev", "tenants", "get");
            // Used only while a StatefulSet rolls from one revision to another (upgrades.rs
            // proves that path): the running image is read from the current revision.
            let rollout = (group.as_str(), resource.as_str(), verb.as_str())
                == ("apps", "controllerrevisions", "get");
            !created_by_apply
                && !repeated_event
                && !volume_expansion
                && !claims_deleted
                && !deletion_held
                && !rollout
        })
        .cloned()
        .collect();
    assert!(
        unused.is_empty(),
        "the chart grants verbs the operator never used: {unused:?}\nused: {used:#?}"
    );

    // Uninstall removes what it installed; the CRDs stay, as Helm does.
    let (ok, text) = output(
        "helm uninstall",
        helm(scratch.path())
            .env("KUBECONFIG", &api.kubeconfig)
            .args(["uninstall", "coffer-operator", "--namespace", ns]),
    );
    assert!(ok, "helm uninstall: {text}");
    let left = api.run(&[
        "-n",
        ns,
        "get",
        "deployment,serviceaccount,role,rolebinding,service",
        "-l",
        "app.kubernetes.io/instance=coffer-operator",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "left behind: {left}");
    let left = api.run(&[
        "get",
        "clusterrole,clusterrolebinding",
        "-l",
        "app.kubernetes.io/instance=coffer-operator",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "left behind: {left}");
    api.run(&["get", "crd", "tenants.coffer.dev", "kms.coffer.dev"]);
}

/// `helm template` of the chart with `--set` values.
fn template(scratch: &Path, sets: &[&str]) -> String {
    let mut command = helm(scratch);
    command
        .args(["template", "coffer-operator"])
        .arg(chart())
        .args(["--namespace", "coffer-system"]);
    for set in sets {
        command.args(["--set", set]);
    }
    let (ok, text) = output("helm template", &mut command);
    assert!(ok, "helm template {sets:?}: {text}");
    text
}

/// The rendered documents of `kind`, parsed.
fn documents(rendered: &str, kind: &str) -> Vec<serde_json::Value> {
    rendered
        .split("\n---\n")
        .filter(|doc| doc.contains(&format!("\nkind: {kind}\n")))
        .map(|doc| serde_saphyr::from_str(doc).unwrap())
        .collect()
}

#[test]
fn namespaced_mode_grants_roles_in_the_watched_namespaces_and_nothing_cluster_wide() {
    let scratch = tempfile::tempdir().unwrap();
    // The default stays cluster-wide: one ClusterRole, which reads Secrets.
    let cluster = template(scratch.path(), &[]);
    let roles = documents(&cluster, "ClusterRole");
    assert_eq!(roles.len(), 1, "{cluster}");
    assert!(
        roles[0]["rules"].to_string().contains("secrets"),
        "{cluster}"
    );

    let rendered = template(
        scratch.path(),
        &["watchNamespaces={shop,photos}", "watchNamespace=shop"],
    );
    for kind in ["ClusterRole", "ClusterRoleBinding"] {
        assert!(
            documents(&rendered, kind).is_empty(),
            "namespaced mode renders a {kind}:\n{rendered}"
        );
    }
    let secret_roles: Vec<String> = documents(&rendered, "Role")
        .iter()
        .filter(|r| r["rules"].to_string().contains("secrets"))
        .map(|r| r["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(secret_roles, ["shop", "photos"], "{rendered}");
    let bound: Vec<String> = documents(&rendered, "RoleBinding")
        .iter()
        .map(|b| b["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bound, ["shop", "photos", "coffer-system"], "{rendered}");
    let deployment = &documents(&rendered, "Deployment")[0];
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains(r#"{"name":"WATCH_NAMESPACES","value":"shop,photos"}"#),
        "{env}"
    );

    let (ok, text) = output(
        "helm template",
        helm(scratch.path())
            .args(["template", "x"])
            .arg(chart())
            .args(["--set", "watchNamespaces={Bad_NS}"]),
    );
    assert!(
        !ok && text.contains("does not match pattern"),
        "a bad namespace is refused: {text}"
    );
}

#[test]
fn namespaced_operator_reconciles_only_its_namespaces_with_only_their_roles() {
    let api = KubeApi::start();
    let scratch = tempfile::tempdir().unwrap();
    let ns = "coffer-system";
    let sa = format!("system:serviceaccount:{ns}:coffer-operator");
    api.run(&["create", "namespace", "watched"]);
    api.run(&["create", "namespace", "elsewhere"]);
    let (ok, text) = output(
        "helm install",
        helm(scratch.path())
            .env("KUBECONFIG", &api.kubeconfig)
            .args(["install", "coffer-operator"])
            .arg(chart())
            .args(["--namespace", ns, "--create-namespace"])
            .args(["--set", "watchNamespaces={watched}"]),
    );
    assert!(ok, "helm install: {text}");
    assert!(text.contains("watching watched"), "{text}");
    api.wait_crds_established();
    let left = api.run(&[
        "get",
        "clusterrole,clusterrolebinding",
        "-l",
        "app.kubernetes.io/instance=coffer-operator",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "cluster-wide RBAC: {left}");

    for n in ["watched", "elsewhere"] {
        api.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {n}}}\nstringData: {{roleId: r, secretId: s}}\n---\n\
             apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {n}}}\n\
             spec:\n  vault:\n    endpoint: https://127.0.0.1:1\n    auth:\n      appRole: {{secretName: vault-approle}}\n---\n\
             apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: store, namespace: {n}}}\nspec:\n  kms: {{name: vault}}\n"
        ));
    }
    let token = api.run(&[
        "-n",
        ns,
        "create",
        "token",
        "coffer-operator",
        "--duration=1h",
    ]);
    let kubeconfig = api.kubeconfig_with_token("coffer-operator", token.trim());
    let mut command = Command::new(env!("CARGO_BIN_EXE_operator"));
    command
        .args([
            "run",
            "--metrics-addr",
            &format!("127.0.0.1:{}", coffer_e2e::free_port()),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("WATCH_NAMESPACES", "watched")
        .env("POD_NAMESPACE", ns)
        .env("POD_NAME", "coffer-operator-test")
        .env("RUST_LOG", "info");
    let operator = Process::spawn("operator", command, &scratch.path().join("operator.log"));
    wait_until(
        "the Tenant in the watched namespace to get its StatefulSet and status",
        Duration::from_secs(60),
        || {
            operator.assert_running();
            let out = api.run(&[
                "-n",
                "watched",
                "get",
                "tenant/store",
                "-o",
                "jsonpath={.status.observedGeneration}",
            ]);
            let sts = api
                .kubectl()
                .args(["-n", "watched", "get", "statefulset", "store"])
                .output()
                .ok()?;
            (sts.status.success() && !out.trim().is_empty()).then_some(())
        },
        || operator.log_tail(),
    );
    // Long enough for a reconcile of the other namespace, had it been watched.
    std::thread::sleep(Duration::from_secs(5));
    operator.assert_running();
    let status = api.run(&[
        "-n",
        "elsewhere",
        "get",
        "tenant/store",
        "-o",
        "jsonpath={.status}",
    ]);
    assert!(
        status.trim().is_empty(),
        "a Tenant outside the watched namespaces was reconciled: {status}"
    );
    let owned = api.run(&[
        "-n",
        "elsewhere",
        "get",
        "statefulsets,services,configmaps,secrets",
        "-l",
        "app.kubernetes.io/managed-by=coffer-operator",
        "-o",
        "name",
    ]);
    assert!(owned.trim().is_empty(), "objects made elsewhere: {owned}");
    operator.terminate(Duration::from_secs(10));
    let denied: Vec<_> = api
        .audit_events()
        .into_iter()
        .filter(|e| e["user"]["username"] == sa.as_str() && e["responseStatus"]["code"] == 403)
        .collect();
    assert!(
        denied.is_empty(),
        "requests refused by the namespaced RBAC: {denied:#?}"
    );
    let log = operator.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the namespaced RBAC is not enough:\n{log}"
    );
}

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD: its group, version, kind and
/// plural, any spec.
const SERVICE_MONITOR_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
";
