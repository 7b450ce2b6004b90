//! The MinIO KMS guide, automated: runs `e2e/walkthrough/guide.sh` (every step of the guide, in
//! its order, against a real Vault) with our `kes` and `object-server` first on `PATH`.
//!
//! The binaries are the ones cargo built next to this test (`cargo test --workspace` builds them);
//! the test never runs cargo itself. The peers (`vault`, `mc`) come from the `PATH` the test
//! command sets up (`eval "$(e2e/peers/env)"`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use coffer_e2e::peer_bin;

/// The whole guide takes well under a minute here; this only stops a hung run.
const TIMEOUT: Duration = Duration::from_secs(600);

/// `<target>/debug/`, where cargo puts the workspace's binaries: this test runs from
/// `<target>/debug/deps/walkthrough-<hash>`.
fn our_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps/")
        .to_path_buf();
    for name in ["kes", "object-server"] {
        assert!(
            dir.join(name).is_file(),
            "`{name}` is not in {}: build it first with \
             `cargo build -p sidecar-kes -p object-server --bins` (or run `cargo test --workspace`, \
             which builds every binary)",
            dir.display()
        );
    }
    dir
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("walkthrough/guide.sh")
}

/// Sends SIGTERM (so the script's trap stops what it started), then SIGKILL if it lingers.
fn terminate(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the guide script with `envs` set; panics with its whole output unless it succeeds.
fn run_guide(name: &str, envs: &[(&str, &str)]) {
    let bins = our_bin_dir();
    for peer in ["vault", "mc", "openssl"] {
        peer_bin(peer);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(bins.clone()).chain(std::env::split_paths(&path)))
            .expect("join PATH");

    let dir = tempfile::Builder::new()
        .prefix(&format!("coffer-{name}-"))
        .tempdir()
        .expect("temp dir");
    let work = dir.path().join("work");
    let log_path = dir.path().join("guide.log");
    let log = File::create(&log_path).expect("create log");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(script())
        .arg(&work)
        .env("PATH", &path)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("clone log")))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", script().display()));
    let status: Option<ExitStatus> = loop {
        match child.try_wait().expect("wait for the guide script") {
            Some(status) => break Some(status),
            None if started.elapsed() > TIMEOUT => {
                terminate(&mut child);
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => {
            eprintln!(
                "{name}: the guide passed in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        other => {
            let kept = dir.keep();
            let why = match other {
                Some(status) => format!("exited with {status}"),
                None => format!("did not finish within {TIMEOUT:?}"),
            };
            panic!(
                "the MinIO KMS guide ({name}) {why}; work dir kept at {}\n\
                 ---- output of {} ----\n{output}",
                kept.display(),
                script().display()
            );
        }
    }
}

/// The guide as written, with our `kes` and `object-server`: its own openssl certificates
/// (self-signed, `CA:TRUE`), its old KES config and flags, its environment.
#[test]
fn guide_with_coffer_binaries() {
    run_guide("guide", &[]);
}

/// The guide with MinIO's KES v0.24.0 in place of ours (same Vault, policy and identity, in its
/// current config format and CLI) and our `object-server`.
#[test]
fn guide_with_minio_kes() {
    peer_bin("minio-kes");
    run_guide("guide-minio-kes", &[("KES_BIN", "minio-kes")]);
}

/// The guide with `minio` in place of our `object-server`, and our `kes`.
#[test]
fn guide_with_minio_server() {
    peer_bin("minio");
    run_guide("guide-minio", &[("OBJECT_SERVER_BIN", "minio")]);
}
