//! Smoke test of `helm`: a trivial chart renders, and templates see a Kubernetes 1.37 cluster.

use coffer_e2e::peer_bin;
use std::process::Command;

#[test]
fn helm_templates_a_trivial_chart() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("smoke");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: smoke\nversion: 0.1.0\nkubeVersion: \">=1.33.0-0\"\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n",
    )
    .unwrap();
    let out = Command::new(peer_bin("helm"))
        .args(["template", "demo"])
        .arg(&chart)
        .args(["--set", "greeting=coffer"])
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("name: demo"), "{text}");
    assert!(text.contains("greeting: \"coffer\""), "{text}");
    assert!(
        text.contains("kube: \"v1.37"),
        "helm must report the pinned Kubernetes version: {text}"
    );
}
