//! The `operator` binary's offline commands: `crds` and `render`.

use std::process::Command;

fn operator(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_operator"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn crds_prints_what_crds_dir_holds() {
    let (ok, out, err) = operator(&["crds"]);
    assert!(ok, "{err}");
    assert_eq!(out, operator::crd::crds_yaml());
    assert!(out.contains("name: tenants.coffer.dev") && out.contains("name: kms.coffer.dev"));
}

#[test]
fn render_prints_every_object_offline() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("tenant.yaml");
    let kms = dir.path().join("kms.yaml");
    std::fs::write(&tenant, "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {name: photos, namespace: shop}\nspec:\n  kms: {name: vault}\n").unwrap();
    std::fs::write(
        &kms,
        "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {name: vault, namespace: shop}\nspec:\n  vault:\n    endpoint: https://vault:8200\n    auth:\n      appRole: {secretName: vault-approle}\n",
    )
    .unwrap();
    let (ok, out, err) = operator(&[
        "render",
        "-f",
        tenant.to_str().unwrap(),
        "-f",
        kms.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    for want in [
        "kind: StatefulSet",
        "kind: ConfigMap",
        "name: photos-hl",
        "restartPolicy: Always",
        "/v1/key/generate/photos_*",
    ] {
        assert!(out.contains(want), "render output lacks {want:?}");
    }
    assert!(!out.contains("PRIVATE KEY"));
    let (ok, _, err) = operator(&["render", "-f", tenant.to_str().unwrap()]);
    assert!(!ok && err.contains("no KMS"), "{err}");
}
