//! The kind suite (`e2e/kind/`) cannot run here (no Docker engine). What can be checked is:
//! its scripts and the scenario's client parse (`bash -n`) and pass `shellcheck`; they read
//! `scenario.env` as the Rust harness does; and the client Job they apply is accepted by the API
//! server in the scenario's namespace without a Pod Security warning (the namespace enforces
//! `restricted`).

use std::path::PathBuf;
use std::process::Command;

use coffer_e2e::kube::KubeApi;
use coffer_e2e::peer_bin;
use coffer_e2e::scenario::{Scenario, repo_root};

fn scripts() -> Vec<PathBuf> {
    let root = repo_root();
    vec![
        root.join("e2e/kind/run.sh"),
        root.join("e2e/kind/scenario.sh"),
        root.join("e2e/scenario/client.sh"),
    ]
}

fn output(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("start command");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn kind_scripts_parse_and_pass_shellcheck() {
    let shellcheck = peer_bin("shellcheck");
    for script in scripts() {
        let (ok, text) = output(Command::new("bash").arg("-n").arg(&script));
        assert!(ok, "bash -n {}: {text}", script.display());
        // -x follows the `source` of scenario.sh; run from the root so its path resolves.
        let (ok, text) = output(
            Command::new(&shellcheck)
                .arg("-x")
                .arg(&script)
                .current_dir(repo_root()),
        );
        assert!(ok, "shellcheck {}:\n{text}", script.display());
    }
    // shellcheck must find problems where they are: a script with an unquoted expansion fails.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sh");
    std::fs::write(&bad, "#!/usr/bin/env bash\nrm -rf $1/x\n").unwrap();
    let (ok, text) = output(Command::new(&shellcheck).arg(&bad));
    assert!(!ok && text.contains("SC2086"), "{text}");
}

#[test]
fn kind_suite_reads_the_scenario_as_the_harness_does() {
    let scenario = Scenario::load();
    let script = ". e2e/kind/scenario.sh && load_scenario e2e/scenario/scenario.env && \
         printf '%s\\n' \"$SCENARIO_MANIFESTS\" \"$SCENARIO_NAMESPACE\" \"$SCENARIO_TENANT\" \"$SCENARIO_TENANT_READY_TIMEOUT\"";
    let (ok, text) = output(
        Command::new("bash")
            .args(["-c", script])
            .current_dir(repo_root()),
    );
    assert!(ok, "{text}");
    let want = [
        scenario.get("MANIFESTS"),
        scenario.get("NAMESPACE"),
        scenario.get("TENANT"),
        scenario.get("TENANT_READY_TIMEOUT"),
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
}

#[test]
fn kind_client_job_is_accepted_under_restricted_pod_security() {
    let scenario = Scenario::load();
    let api = KubeApi::start();
    let namespace_manifest = scenario.manifests()[0].clone();
    api.run(&["apply", "-f", namespace_manifest.to_str().unwrap()]);
    let ns = scenario.get("NAMESPACE");
    // `enforce` judges pods only; `warn` also judges the pod templates of Jobs.
    api.run(&[
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let tenant = scenario.get("TENANT");
    let (ok, job) = output(
        Command::new("bash")
            .args([
                "-c",
                ". e2e/kind/scenario.sh && client_job \"$1\" \"$2\" \"https://$2.$1.svc:9000\"",
                "client_job",
                ns,
                tenant,
            ])
            .current_dir(repo_root()),
    );
    assert!(ok, "{job}");
    let dry_run = |yaml: &str| {
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), yaml).unwrap();
        let (ok, text) = output(
            api.kubectl()
                .args(["apply", "--dry-run=server", "-f"])
                .arg(path.path()),
        );
        assert!(ok, "{text}\n{yaml}");
        text
    };
    let text = dry_run(&job);
    assert!(
        !text.contains("PodSecurity") && !text.contains("Warning"),
        "the client Job would violate the namespace's Pod Security level:\n{text}"
    );
    // The check sees violations: the same Job allowed to escalate privileges is warned about.
    let escalating = job.replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    assert_ne!(escalating, job);
    let text = dry_run(&escalating);
    assert!(text.contains("PodSecurity"), "{text}");
}
