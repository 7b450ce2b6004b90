//! Runs the Python suite in `tests/python/` (boto3, the AWS CLI, mc, warp against the real
//! binary) with the peers from `~/.cache/coffer/peers` (or `$COFFER_PEERS_DIR`). A missing peer
//! is a failure, never a skip.
use std::path::PathBuf;
use std::process::Command;

fn peers_dir() -> PathBuf {
    match std::env::var_os("COFFER_PEERS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/coffer/peers"),
    }
}

fn pytest(file: &str) {
    let peers = peers_dir();
    let python = peers.join("venv/bin/python");
    assert!(
        python.exists(),
        "the peers' Python ({}) is missing: run e2e/peers/install (it installs boto3, pytest and the AWS CLI)",
        python.display()
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let path = format!(
        "{}:{}:{}",
        peers.join("bin").display(),
        peers.join("venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "--tb=short",
            file,
        ])
        .current_dir(&dir)
        .env("OBJECT_SERVER_BIN", env!("CARGO_BIN_EXE_object-server"))
        .env("PATH", path)
        .env("VIRTUAL_ENV", peers.join("venv"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .expect("run pytest");
    assert!(status.success(), "pytest {file} failed");
}

#[test]
fn api_with_boto3() {
    pytest("test_api.py");
}

#[test]
fn tls_and_sse_c() {
    pytest("test_tls.py");
}

#[test]
fn durability_restart_kill9_tamper_two_processes() {
    pytest("test_durability.py");
}

#[test]
fn real_clients_aws_cli_mc_warp() {
    pytest("test_clients.py");
}

#[test]
fn startup_modes_health_metrics() {
    pytest("test_config.py");
}
