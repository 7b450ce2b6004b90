//! The Ceph harness itself, and the facts about two `ceph-fuse` mounts of one CephFS that the
//! object-server's shared-volume mode relies on (or, for directory locks, must avoid).
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use coffer_e2e::ceph::{Ceph, CephOptions};

/// Whether an exclusive `flock` of `path` can be taken now (and releases it at once).
fn can_lock(path: &std::path::Path) -> bool {
    let f = File::open(path).expect("open");
    match f.try_lock() {
        Ok(()) => true,
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(std::fs::TryLockError::Error(e)) => panic!("flock {}: {e}", path.display()),
    }
}

#[test]
fn two_fuse_clients_share_files_locks_renames_and_links_but_not_directory_locks() {
    let ceph = Ceph::start(CephOptions::default());
    eprintln!(
        "ceph: mon, mgr, osd, mds and two ceph-fuse mounts up in {:.1} s",
        ceph.started_in().as_secs_f64()
    );
    let [a, b] = ceph.mounts() else {
        panic!("two mounts")
    };
    assert!(ceph.ceph(&["fs", "ls"]).contains("cephfs"));

    // A file written and renamed into place through one client is read whole through the other.
    fs::create_dir(a.join("d")).unwrap();
    for i in 0..20 {
        let body = format!("version {i}").repeat(1000);
        fs::write(a.join("d/tmp"), &body).unwrap();
        File::open(a.join("d/tmp")).unwrap().sync_all().unwrap();
        fs::rename(a.join("d/tmp"), a.join("d/obj")).unwrap();
        assert_eq!(fs::read_to_string(b.join("d/obj")).unwrap(), body);
        let (ma, mb) = (
            fs::metadata(a.join("d/obj")).unwrap(),
            fs::metadata(b.join("d/obj")).unwrap(),
        );
        assert_eq!(
            (ma.ino(), ma.len()),
            (mb.ino(), mb.len()),
            "both clients stat one file"
        );
    }
    // Hard links: the link count is seen by the other client at once.
    fs::hard_link(a.join("d/obj"), a.join("d/link")).unwrap();
    assert_eq!(fs::metadata(b.join("d/obj")).unwrap().nlink(), 2);
    fs::remove_file(b.join("d/link")).unwrap();
    assert_eq!(fs::metadata(a.join("d/obj")).unwrap().nlink(), 1);

    // An flock of a regular file excludes the other client, and is gone when its holder closes.
    let held = File::open(a.join("d/obj")).unwrap();
    held.lock().unwrap();
    assert!(
        !can_lock(&b.join("d/obj")),
        "a file lock holds across clients"
    );
    drop(held);
    let t0 = Instant::now();
    while !can_lock(&b.join("d/obj")) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the released lock stays held"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // An flock of a directory does not: FUSE keeps directory locks in each mount's kernel
    // inode, never asking ceph-fuse. The object-server therefore locks files only.
    let held = File::open(a.join("d")).unwrap();
    held.lock().unwrap();
    assert!(
        !can_lock(&a.join("d")),
        "the same mount sees its own directory lock"
    );
    assert!(
        can_lock(&b.join("d")),
        "a directory lock now holds across ceph-fuse clients: the object-server's note on \
         directory locks (storage/locks.rs) is out of date"
    );
    eprintln!(
        "ceph: peak RSS of all daemons {} MiB",
        ceph.peak_rss_bytes() >> 20
    );
}

/// Dropping the cluster unmounts and stops everything, and a run killed before it could do
/// that is cleaned by the next start.
#[test]
fn teardown_leaves_no_mount_and_no_daemon() {
    let ceph = Ceph::start(CephOptions {
        mounts: 1,
        ..CephOptions::default()
    });
    let conf = ceph.conf();
    let mnt = ceph.mounts()[0].clone();
    let dir = conf.parent().unwrap().to_path_buf();
    drop(ceph);
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&*mnt.to_string_lossy()), "{mounts}");
    assert!(!dir.exists(), "{} is left", dir.display());
}
