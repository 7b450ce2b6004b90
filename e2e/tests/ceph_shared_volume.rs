//! The object-server's multi-process, crash and consistency suites over a shared CephFS volume:
//! a real single-node Ceph (`coffer_e2e::ceph`), its CephFS mounted twice with `ceph-fuse`
//! (two clients, as two Kubernetes nodes mounting one ReadWriteMany volume), and every test of
//! the object-server's Python suite that runs several processes on one data directory (those
//! that ask for the `data_dirs` fixture, marked `shared_volume`) run with their processes
//! spread over the two mounts (`COFFER_SHARED_MOUNTS`).
//!
//! The same tests run over a local directory in `cargo test -p object-server`; this run prints
//! their time over Ceph, Ceph's cold start and its daemons' peak memory.
//!
//! **In parallel.** Over CephFS every commit waits on the MDS and the OSD (a create, a rename,
//! an fsync, a lock are round trips), so the suite spends its time waiting, not computing: one
//! test at a time it took 25 minutes of a 50-minute CI run. Its tests run [`WORKERS`] at a time
//! (pytest-xdist); each has its own directory on the volume and its own ports, so they do not
//! meet, and several clients at once is what a shared volume is for.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use coffer_e2e::ceph::{Ceph, CephOptions};
use coffer_e2e::process::workspace_bin_dir;

/// The suites with tests that share a data directory between processes or restarts: commits,
/// crashes and consistency; users seen at once by every process; one lifecycle scanner at a time.
const SUITES: [&str; 6] = [
    "test_commit_safety.py",
    "test_durability.py",
    "test_multipart.py",
    "test_versioning.py",
    "test_iam.py",
    "test_lifecycle.py",
];

/// How many tests run at once (`COFFER_CEPH_TEST_WORKERS` overrides).
const WORKERS: usize = 4;

fn workers() -> String {
    std::env::var("COFFER_CEPH_TEST_WORKERS").unwrap_or_else(|_| WORKERS.to_string())
}

fn peers_dir() -> PathBuf {
    match std::env::var_os("COFFER_PEERS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/coffer/peers"),
    }
}

/// Runs the `shared_volume` tests of `SUITES` with `mounts` (none: a local directory) and
/// returns whether they passed.
fn run_suites(object_server: &Path, mounts: &[PathBuf]) -> bool {
    let peers = peers_dir();
    let python = peers.join("venv/bin/python");
    assert!(
        python.exists(),
        "the peers' Python ({}) is missing: run e2e/peers/install",
        python.display()
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../object-server/tests/python");
    let path = format!(
        "{}:{}:{}",
        peers.join("bin").display(),
        peers.join("venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let joined = std::env::join_paths(mounts).expect("mount paths without ':'");
    let status = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
        ])
        .args(["--tb=short", "-m", "shared_volume", "-n", &workers()])
        .args(SUITES)
        .current_dir(&dir)
        .env("OBJECT_SERVER_BIN", object_server)
        .env("COFFER_SHARED_MOUNTS", joined)
        .env("PATH", path)
        .env("VIRTUAL_ENV", peers.join("venv"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .expect("run pytest");
    status.success()
}

#[test]
fn multi_process_crash_and_consistency_suites_on_two_cephfs_mounts() {
    let object_server = workspace_bin_dir(&["object-server"]).join("object-server");
    let ceph = Ceph::start(CephOptions::default());
    eprintln!(
        "ceph: cold start to two ceph-fuse mounts in {:.1} s",
        ceph.started_in().as_secs_f64()
    );
    let t0 = Instant::now();
    let passed = run_suites(&object_server, ceph.mounts());
    let on_ceph = t0.elapsed();
    eprintln!(
        "shared_volume tests over CephFS (two mounts): {:.1} s; Ceph's daemons peaked at {} MiB RSS",
        on_ceph.as_secs_f64(),
        ceph.peak_rss_bytes() >> 20
    );
    if !passed {
        panic!(
            "the shared-volume suites failed over CephFS (output above)\n{}",
            ceph.logs()
        );
    }
}
