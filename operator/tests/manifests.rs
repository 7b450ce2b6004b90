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

/// The documents of `manifests/examples/rook/<file>`, parsed.
fn rook_example(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root().join("manifests/examples/rook").join(file)).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<serde_json::Value>(doc).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The Rook examples: their Coffer and Kubernetes objects are accepted by a real API server
/// with this build's CRDs (Rook's own kinds are not installed there, so they are checked
/// against what Rook makes of them: the Secret's name and keys, the pool's name), and each
/// Tenant names what the Rook objects next to it make.
#[test]
fn rook_examples_are_accepted_and_name_what_rook_makes() {
    let api = KubeApi::start();
    let dir = |p: &str| root().join(p).display().to_string();
    apply(&api, &["-f", &dir("crds")]);
    api.wait_crds_established();
    apply(&api, &["-f", &dir("manifests/examples/namespace.yaml")]);
    for file in ["cephfs-tenant.yaml", "rgw-tenant.yaml"] {
        let docs = rook_example(file);
        for doc in &docs {
            if doc["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("ceph.rook.io/")
            {
                continue;
            }
            let (ok, out) = api.try_apply(&serde_json::to_string(doc).unwrap());
            assert!(ok, "{file}: {} refused: {out}", doc["kind"]);
        }
    }

    // CephFS: the Tenant mounts the RWX claim of the class on the CephFilesystem's data pool.
    let docs = rook_example("cephfs-tenant.yaml");
    let (fs, class, claim) = (
        of_kind(&docs, "CephFilesystem"),
        of_kind(&docs, "StorageClass"),
        of_kind(&docs, "PersistentVolumeClaim"),
    );
    let tenant: operator::crd::Tenant =
        serde_json::from_value(of_kind(&docs, "Tenant").clone()).unwrap();
    assert_eq!(
        tenant.spec.storage.shared_claim_name.as_deref(),
        claim["metadata"]["name"].as_str()
    );
    assert!(tenant.spec.replicas > 1);
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteMany");
    assert_eq!(claim["spec"]["storageClassName"], class["metadata"]["name"]);
    assert_eq!(class["parameters"]["fsName"], fs["metadata"]["name"]);
    assert_eq!(
        class["parameters"]["pool"].as_str().unwrap(),
        format!(
            "{}-{}",
            fs["metadata"]["name"].as_str().unwrap(),
            fs["spec"]["dataPools"][0]["name"].as_str().unwrap()
        ),
        "Rook names a data pool <filesystem>-<pool>"
    );

    // RGW: the Tenant names the Secret Rook makes for the user, with Rook's key names, and the
    // store lets the user live in the Tenant's namespace.
    let docs = rook_example("rgw-tenant.yaml");
    let (store, user) = (
        of_kind(&docs, "CephObjectStore"),
        of_kind(&docs, "CephObjectStoreUser"),
    );
    let tenant: operator::crd::Tenant =
        serde_json::from_value(of_kind(&docs, "Tenant").clone()).unwrap();
    let s3 = tenant.spec.storage.s3.as_ref().expect("storage.s3");
    let ns = tenant.metadata.namespace.as_deref().unwrap();
    assert_eq!(user["metadata"]["namespace"], ns);
    assert_eq!(user["spec"]["store"], store["metadata"]["name"]);
    assert_eq!(
        user["spec"]["clusterNamespace"],
        store["metadata"]["namespace"]
    );
    assert!(
        store["spec"]["allowUsersInNamespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == ns)
    );
    assert_eq!(
        s3.credentials_secret.name,
        format!(
            "rook-ceph-object-user-{}-{}",
            store["metadata"]["name"].as_str().unwrap(),
            user["metadata"]["name"].as_str().unwrap()
        )
    );
    assert_eq!(
        (
            s3.credentials_secret.access_key_key.as_str(),
            s3.credentials_secret.secret_key_key.as_str()
        ),
        ("AccessKey", "SecretKey")
    );
    assert_eq!(
        s3.endpoint,
        format!(
            "http://rook-ceph-rgw-{}.{}.svc",
            store["metadata"]["name"].as_str().unwrap(),
            store["metadata"]["namespace"].as_str().unwrap()
        ),
        "Rook's RGW Service, on the gateway port {}",
        store["spec"]["gateway"]["port"]
    );
    assert!(tenant.spec.replicas > 1);
    // As stored by the API server, with the defaults applied.
    let stored = api.run(&[
        "-n",
        ns,
        "get",
        "tenant",
        "rgw-store",
        "-o",
        "jsonpath={.spec.storage}",
    ]);
    assert!(
        stored.contains("\"accessKeyKey\":\"AccessKey\""),
        "{stored}"
    );
}
