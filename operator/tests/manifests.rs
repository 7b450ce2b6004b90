//! The plain manifests and the GitOps kustomizations: generated files in sync with their sources,
//! accepted by a real API server, and idempotent (a second apply changes nothing).

use coffer_e2e::kube::KubeApi;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, base, out);
        } else {
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

#[test]
fn generated_manifests_are_in_sync_with_chart_crds_and_examples() {
    coffer_e2e::peer_bin("helm"); // fails with how to install it, rather than "command not found"
    let scratch = tempfile::tempdir().unwrap();
    for dir in ["crds", "charts", "manifests"] {
        copy_tree(&root().join(dir), &scratch.path().join(dir));
    }
    let out = Command::new("bash")
        .arg(scratch.path().join("manifests/generate"))
        .env("HELM_CACHE_HOME", scratch.path().join(".helm"))
        .env("HELM_CONFIG_HOME", scratch.path().join(".helm"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "manifests/generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = Vec::new();
    for dir in ["charts", "manifests"] {
        files_under(&scratch.path().join(dir), scratch.path(), &mut files);
    }
    files.retain(|f| !f.starts_with(".helm"));
    for file in files {
        let fresh = std::fs::read(scratch.path().join(&file)).unwrap();
        let committed = std::fs::read(root().join(&file)).unwrap_or_default();
        assert!(
            fresh == committed,
            "{} is stale: run manifests/generate and commit",
            file.display()
        );
    }
}

fn apply(api: &KubeApi, args: &[&str]) -> String {
    api.run(&[&["apply"], args].concat())
}

#[test]
fn plain_install_and_gitops_overlay_agree_and_reapply_changes_nothing() {
    let api = KubeApi::start();
    let dir = |p: &str| root().join(p).display().to_string();

    // The plain way, in the README's order.
    apply(&api, &["-f", &dir("crds")]);
    api.wait_crds_established();
    apply(&api, &["-f", &dir("manifests/install/namespace.yaml")]);
    apply(&api, &["-f", &dir("manifests/install")]);
    apply(&api, &["-f", &dir("manifests/examples/namespace.yaml")]);
    apply(&api, &["-f", &dir("manifests/examples")]);

    // The GitOps way over it: the very same objects, so nothing is even reconfigured.
    let out = apply(&api, &["-k", &dir("manifests/kustomize/overlays/example")]);
    let changed: Vec<&str> = out.lines().filter(|l| !l.ends_with(" unchanged")).collect();
    assert!(
        changed.is_empty(),
        "kubectl apply -k over the plain install changed: {changed:?}\n{out}"
    );

    // A second apply of the overlay changes no object at all.
    let versions = || {
        api.run(&["get", "-A", "namespaces,secrets,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings,services,deployments,kms,tenants,crds", "-o", "jsonpath={range .items[*]}{.metadata.uid}={.metadata.resourceVersion}{'\\n'}{end}"])
    };
    let before = versions();
    let out = apply(&api, &["-k", &dir("manifests/kustomize/overlays/example")]);
    assert!(
        out.lines().all(|l| l.ends_with(" unchanged")),
        "second apply -k: {out}"
    );
    assert_eq!(before, versions(), "a second apply -k modified objects");

    // GitOps tools apply server-side: the first such apply takes the fields over from the
    // client-side manager, a second one changes nothing.
    let overlay = dir("manifests/kustomize/overlays/example");
    apply(&api, &["--server-side", "-k", &overlay]);
    let before = versions();
    apply(&api, &["--server-side", "-k", &overlay]);
    assert_eq!(
        before,
        versions(),
        "a second apply --server-side -k modified objects"
    );
    let tenant = api.run(&[
        "-n",
        "coffer-demo",
        "get",
        "tenant",
        "store",
        "-o",
        "jsonpath={.spec.kms.name}",
    ]);
    assert_eq!(tenant, "vault");
}

#[test]
fn example_tenant_renders_into_a_statefulset_with_the_kes_sidecar() {
    let out = Command::new(env!("CARGO_BIN_EXE_operator"))
        .arg("render")
        .arg("-f")
        .arg(root().join("manifests/examples/tenant.yaml"))
        .arg("--kms")
        .arg(root().join("manifests/examples/kms.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "operator render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("kind: StatefulSet"), "{text}");
    assert!(
        text.contains("restartPolicy: Always"),
        "the KES sidecar is a native sidecar: {text}"
    );
    assert!(
        !text.contains("REPLACE-WITH"),
        "the credentials are referenced, never copied: {text}"
    );
}
