//! A single-node Ceph cluster on loopback (Debian's Ceph packages, see `e2e/peers/install`): one
//! monitor, one manager, one OSD, one MDS serving a CephFS, and that CephFS mounted N times with
//! `ceph-fuse` (each mount is its own Ceph client, as two Kubernetes nodes mounting one volume
//! are); the RADOS Gateway (S3) on request.
//!
//! Everything lives in one directory `$TMPDIR/coffer-ceph-*`: configuration, keyring, daemon
//! data, logs and the mount points. Every daemon runs in the foreground as a child of the test
//! (no systemd, no pid files to trust), reads that directory's `ceph.conf`, and binds loopback
//! ports picked free here (the monitor's) or by Ceph from its range (the others').
//!
//! **Teardown.** Dropping [`Ceph`] — also while a test panics — unmounts every mount (lazily if
//! a process still uses it), stops the daemons and removes the directory. A test process that
//! was killed cannot do that: every start first cleans the directories of earlier runs whose
//! owner is gone (unmounts what is mounted under them, kills the processes started with their
//! `ceph.conf`, removes them), so a crashed run leaves nothing behind for long.
//!
//! **Why memstore.** The OSD keeps its objects in memory: a cold start is seconds faster than
//! bluestore on a sparse file, and nothing the tests check depends on the object store — the
//! locks, renames, links and attribute coherence between clients are the MDS's. Bluestore is an
//! option ([`ObjectStore::Bluestore`]) for a benchmark that wants real disk writes.
//!
//! Needs root (ceph-fuse opens `/dev/fuse` and mounts).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{Process, http_ok, peer_bin, run, start_on_free_ports, wait_until};

/// Where the OSD keeps its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectStore {
    /// In the OSD's memory (up to 2 GiB): the fastest start.
    Memstore,
    /// On a 10 GiB sparse file in the cluster directory, as a real OSD writes.
    Bluestore,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct CephOptions {
    /// How many `ceph-fuse` mounts of the CephFS (0: none, and no MDS).
    pub mounts: usize,
    /// Whether to start the RADOS Gateway (S3) with one user.
    pub rgw: bool,
    /// The OSD's object store.
    pub store: ObjectStore,
}

impl Default for CephOptions {
    fn default() -> Self {
        CephOptions {
            mounts: 2,
            rgw: false,
            store: ObjectStore::Memstore,
        }
    }
}

/// The RADOS Gateway of a running cluster, and the credentials of its one user.
#[derive(Debug, Clone)]
pub struct Rgw {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

/// A running cluster; dropping it stops everything and removes its directory.
pub struct Ceph {
    dir: PathBuf,
    mounts: Vec<PathBuf>,
    /// One `ceph-fuse` per mount, in the order of `mounts`.
    fuse: Vec<Process>,
    /// In start order (monitor first); stopped in reverse.
    daemons: Vec<Process>,
    rgw: Option<Rgw>,
    started_in: Duration,
}

/// Names of the cluster directories, under the system's temp directory.
const DIR_PREFIX: &str = "coffer-ceph-";
/// How long a daemon may take to come up on two busy cores.
const UP_TIMEOUT: Duration = Duration::from_secs(180);

impl Ceph {
    /// Starts a cluster as `options` say and waits until every mount answers.
    pub fn start(options: CephOptions) -> Ceph {
        let t0 = Instant::now();
        clean_leftovers();
        assert!(
            Path::new("/dev/fuse").exists() || options.mounts == 0,
            "/dev/fuse is missing: ceph-fuse cannot mount CephFS here"
        );
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("temp dir")
            .keep();
        let mut ceph = Ceph {
            dir,
            mounts: Vec::new(),
            fuse: Vec::new(),
            daemons: Vec::new(),
            rgw: None,
            started_in: Duration::ZERO,
        };
        // From here on, a panic drops `ceph`, which stops whatever was started.
        fs::write(ceph.dir.join("owner"), owner_stamp(std::process::id())).expect("write owner");
        for sub in ["run", "log", "mon.a", "mgr.x", "mds.a", "osd.0"] {
            fs::create_dir_all(ceph.dir.join(sub)).expect("create cluster directory");
        }
        ceph.start_monitor(options.store);
        ceph.daemons
            .push(ceph.daemon("ceph-mgr", "mgr.x", &["-i", "x"]));
        ceph.start_osd();
        if options.mounts > 0 {
            ceph.start_filesystem();
            for i in 0..options.mounts {
                ceph.mount(i);
            }
        }
        if options.rgw {
            ceph.start_rgw();
        }
        ceph.started_in = t0.elapsed();
        ceph
    }

    /// The mount points of the CephFS, one per `ceph-fuse` client.
    pub fn mounts(&self) -> &[PathBuf] {
        &self.mounts
    }

    /// The gateway, when it was asked for.
    pub fn rgw(&self) -> Option<&Rgw> {
        self.rgw.as_ref()
    }

    /// The cluster's `ceph.conf` (for the `ceph` CLI: `ceph -c <conf> -s`).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    /// From the call to [`Ceph::start`] until everything answered.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The sum of the peak resident sizes (`VmHWM`) of every daemon and `ceph-fuse`, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        self.daemons
            .iter()
            .chain(&self.fuse)
            .filter_map(|p| p.pid())
            .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kib| kib * 1024)
            .sum()
    }

    /// The tail of every daemon's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out: Vec<String> = self
            .daemons
            .iter()
            .chain(&self.fuse)
            .map(Process::log_tail)
            .collect();
        for name in ["mon.a", "mds.a", "osd.0"] {
            if let Ok(text) = fs::read_to_string(self.dir.join("log").join(format!("{name}.log"))) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                out.push(format!("--- {name}.log ---\n{tail}"));
            }
        }
        out.join("\n")
    }

    /// Runs the `ceph` CLI against this cluster and returns its output.
    pub fn ceph(&self, args: &[&str]) -> String {
        let mut command = Command::new(peer_bin("ceph"));
        command
            .arg("-c")
            .arg(self.conf())
            .args(["--connect-timeout", "20"])
            .args(args);
        run(&format!("ceph {}", args.join(" ")), &mut command)
    }

    fn ceph_ok(&self, args: &[&str]) -> Option<String> {
        let output = Command::new(peer_bin("ceph"))
            .arg("-c")
            .arg(self.conf())
            .args(["--connect-timeout", "5"])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A daemon in the foreground (`-f`) reading this cluster's configuration.
    fn daemon(&self, bin: &str, name: &str, args: &[&str]) -> Process {
        let mut command = Command::new(peer_bin(bin));
        command.arg("-f").arg("-c").arg(self.conf()).args(args);
        Process::spawn(
            name,
            command,
            &self.dir.join("log").join(format!("{name}.out")),
        )
    }

    fn start_monitor(&mut self, store: ObjectStore) {
        self.make_keyring();
        let dir = self.dir.clone();
        let (mon, _, ()) = start_on_free_ports(
            "ceph-mon",
            1,
            UP_TIMEOUT,
            |ports| {
                fs::write(dir.join("ceph.conf"), config(&dir, ports[0], store))
                    .expect("write ceph.conf");
                // A retry on another port starts from an empty monitor store.
                let _ = fs::remove_dir_all(dir.join("mon.a"));
                let monmap = dir.join("monmap");
                run(
                    "monmaptool --create",
                    Command::new(peer_bin("monmaptool"))
                        .args([
                            "--create",
                            "--clobber",
                            "--fsid",
                            &fs::read_to_string(dir.join("fsid")).expect("fsid"),
                        ])
                        .args(["--addv", "a", &format!("[v2:127.0.0.1:{}]", ports[0])])
                        .arg(&monmap),
                );
                run(
                    "ceph-mon --mkfs",
                    Command::new(peer_bin("ceph-mon"))
                        .arg("-c")
                        .arg(dir.join("ceph.conf"))
                        .args(["--mkfs", "-i", "a", "--monmap"])
                        .arg(&monmap)
                        .arg("--keyring")
                        .arg(dir.join("keyring")),
                );
                self.daemon("ceph-mon", "mon.a", &["-i", "a"])
            },
            |_, _| Some(()),
        );
        self.daemons.push(mon);
        wait_until(
            "the monitor's quorum",
            UP_TIMEOUT,
            || self.ceph_ok(&["quorum_status"]),
            || self.logs(),
        );
        // Every key in the keyring (manager, OSD, MDS, gateway) with the capabilities it carries.
        self.ceph(&[
            "auth",
            "import",
            "-i",
            &self.dir.join("keyring").to_string_lossy(),
        ]);
    }

    /// The keyring of every entity, with its capabilities, and the cluster's fsid.
    fn make_keyring(&self) {
        let keyring = self.dir.join("keyring");
        let entities: [(&str, &[&str]); 6] = [
            ("mon.", &["mon", "allow *"]),
            (
                "client.admin",
                &[
                    "mon", "allow *", "osd", "allow *", "mds", "allow *", "mgr", "allow *",
                ],
            ),
            (
                "mgr.x",
                &[
                    "mon",
                    "allow profile mgr",
                    "osd",
                    "allow *",
                    "mds",
                    "allow *",
                ],
            ),
            (
                "mds.a",
                &[
                    "mon",
                    "allow profile mds",
                    "osd",
                    "allow *",
                    "mds",
                    "allow",
                    "mgr",
                    "allow profile mds",
                ],
            ),
            (
                "osd.0",
                &[
                    "mon",
                    "allow profile osd",
                    "mgr",
                    "allow profile osd",
                    "osd",
                    "allow *",
                ],
            ),
            (
                "client.rgw.a",
                &["mon", "allow rw", "osd", "allow rwx", "mgr", "allow rw"],
            ),
        ];
        for (i, (name, caps)) in entities.iter().enumerate() {
            let mut command = Command::new(peer_bin("ceph-authtool"));
            if i == 0 {
                command.arg("--create-keyring");
            }
            command.arg(&keyring).args(["--gen-key", "-n", name]);
            for cap in caps.chunks(2) {
                command.args(["--cap", cap[0], cap[1]]);
            }
            run(&format!("ceph-authtool {name}"), &mut command);
        }
        fs::write(self.dir.join("fsid"), new_uuid()).expect("write fsid");
    }

    fn start_osd(&mut self) {
        let uuid = new_uuid();
        self.ceph(&["osd", "new", &uuid, "0"]);
        run(
            "ceph-osd --mkfs",
            Command::new(peer_bin("ceph-osd"))
                .arg("-c")
                .arg(self.conf())
                .args(["-i", "0", "--mkfs", "--osd-uuid", &uuid]),
        );
        self.daemons
            .push(self.daemon("ceph-osd", "osd.0", &["-i", "0"]));
        wait_until(
            "the OSD to be up",
            UP_TIMEOUT,
            || {
                self.ceph_ok(&["osd", "stat", "-f", "json"])
                    .filter(|s| s.contains("\"num_up_osds\":1,"))
            },
            || self.logs(),
        );
    }

    fn start_filesystem(&mut self) {
        self.ceph(&["osd", "pool", "create", "cephfs_metadata", "8"]);
        self.ceph(&["osd", "pool", "create", "cephfs_data", "8"]);
        self.ceph(&["fs", "new", "cephfs", "cephfs_metadata", "cephfs_data"]);
        self.daemons
            .push(self.daemon("ceph-mds", "mds.a", &["-i", "a"]));
        wait_until(
            "the MDS to be active",
            UP_TIMEOUT,
            || {
                self.ceph_ok(&["mds", "stat"])
                    .filter(|s| s.contains("up:active"))
            },
            || self.logs(),
        );
    }

    /// Mounts the CephFS at `mnt-<i>` with a `ceph-fuse` of its own (another client).
    fn mount(&mut self, i: usize) {
        let mnt = self.dir.join(format!("mnt-{i}"));
        fs::create_dir_all(&mnt).expect("create mount point");
        let mnt_arg = mnt.to_string_lossy().into_owned();
        let fuse = self.daemon(
            "ceph-fuse",
            &format!("ceph-fuse-{i}"),
            &["-n", "client.admin", &mnt_arg],
        );
        self.fuse.push(fuse);
        self.mounts.push(mnt.clone());
        wait_until(
            "the ceph-fuse mount",
            UP_TIMEOUT,
            || {
                self.fuse[i].assert_running();
                (mounted_under(&mnt).contains(&mnt) && fs::read_dir(&mnt).is_ok()).then_some(())
            },
            || self.logs(),
        );
    }

    fn start_rgw(&mut self) {
        let dir = self.dir.clone();
        let conf = self.conf();
        let (rgw, ports, ()) = start_on_free_ports(
            "radosgw",
            1,
            UP_TIMEOUT,
            |ports| {
                let mut command = Command::new(peer_bin("radosgw"));
                command
                    .arg("-f")
                    .arg("-c")
                    .arg(&conf)
                    .args(["-n", "client.rgw.a"])
                    .arg(format!("--rgw-data={}", dir.join("rgw.a").display()))
                    .arg(format!(
                        "--rgw-frontends=beast endpoint=127.0.0.1:{}",
                        ports[0]
                    ));
                Process::spawn("radosgw", command, &dir.join("log").join("rgw.a.out"))
            },
            |_, ports| http_ok(&format!("http://127.0.0.1:{}/", ports[0])).then_some(()),
        );
        self.daemons.push(rgw);
        let (access_key, secret_key) = (
            "coffer-rgw-access".to_string(),
            "coffer-rgw-secret-key".to_string(),
        );
        run(
            "radosgw-admin user create",
            Command::new(peer_bin("radosgw-admin"))
                .arg("-c")
                .arg(&conf)
                .args(["user", "create", "--uid=coffer", "--display-name=coffer"])
                .arg(format!("--access-key={access_key}"))
                .arg(format!("--secret-key={secret_key}")),
        );
        self.rgw = Some(Rgw {
            endpoint: format!("http://127.0.0.1:{}", ports[0]),
            access_key,
            secret_key,
        });
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        for mnt in &self.mounts {
            unmount(mnt);
        }
        // ceph-fuse exits once its mount is gone; what lingers is killed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.fuse.iter().any(Process::is_running) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.fuse.clear();
        // The data is thrown away: no daemon needs a clean shutdown.
        while let Some(daemon) = self.daemons.pop() {
            daemon.kill();
        }
        remove_cluster_dir(&self.dir);
    }
}

/// The configuration of a cluster in `dir` whose monitor listens on `mon_port` (messenger v2
/// only: every client here speaks it).
fn config(dir: &Path, mon_port: u16, store: ObjectStore) -> String {
    let d = dir.display();
    let fsid = fs::read_to_string(dir.join("fsid")).expect("fsid");
    let store = match store {
        ObjectStore::Memstore => "memstore",
        ObjectStore::Bluestore => "bluestore",
    };
    format!(
        "[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
keyring = {d}/keyring
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
crash dir = {d}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mds cache memory limit = 268435456
[mon]
mon data = {d}/mon.$id
mon cluster log file = {d}/log/cluster.log
[mgr]
mgr data = {d}/mgr.$id
[osd]
osd data = {d}/osd.$id
osd objectstore = {store}
osd memory target = 1073741824
bluestore block create = true
bluestore block size = 10737418240
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
memstore device bytes = 2147483648
[mds]
mds data = {d}/mds.$id
# A key written through one mount and then overwritten through another waits in the MDS for
# its next tick (a rename's lookup of the target fails to rdlock until then): up to 5 s with
# the default 5 s tick, up to 1 s with this (measured here, object-server/README.md).
mds tick interval = 1
[client]
# One admin socket per process: the ceph CLI and every ceph-fuse are all client.admin.
admin socket = {d}/run/$name.$pid.asok
"
    )
}

fn new_uuid() -> String {
    fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("read a random uuid")
        .trim()
        .to_string()
}

/// A process's id and start time (in clock ticks since boot): the pair names it even after
/// its pid is reused.
fn owner_stamp(pid: u32) -> String {
    let start = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Field 22, counted after the command name (which may hold spaces) in parentheses.
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().nth(19).map(str::to_string)
        })
        .unwrap_or_default();
    format!("{pid} {start}")
}

/// Every `ceph-fuse` mount point under `dir` (or at it), from `/proc/mounts`: a dead
/// ceph-fuse leaves its mount behind ("Transport endpoint is not connected"), so listing
/// the kernel's table finds it where a `stat` would fail.
fn mounted_under(dir: &Path) -> Vec<PathBuf> {
    let table = fs::read_to_string("/proc/mounts").unwrap_or_default();
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            let point = PathBuf::from(point.replace("\\040", " "));
            (kind == "fuse.ceph-fuse" && point.starts_with(dir)).then_some(point)
        })
        .collect()
}

/// Unmounts `mnt`, lazily when something still uses it (a killed test's open files).
fn unmount(mnt: &Path) {
    let plain = Command::new("umount").arg(mnt).output();
    if !plain.is_ok_and(|o| o.status.success()) {
        let _ = Command::new("umount").arg("-l").arg(mnt).output();
    }
}

/// Removes a cluster directory once nothing is mounted under it.
fn remove_cluster_dir(dir: &Path) {
    for mnt in mounted_under(dir) {
        unmount(&mnt);
    }
    if mounted_under(dir).is_empty() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Cleans what earlier runs left: every `coffer-ceph-*` directory whose owner process is gone
/// loses its mounts and its daemons (the processes whose command line names its `ceph.conf`),
/// then the directory itself. Directories of runs still going are left alone.
pub fn clean_leftovers() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !is_ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let owner = fs::read_to_string(dir.join("owner")).unwrap_or_default();
        let owner_alive = owner
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| owner_stamp(pid) == owner);
        // A directory without an owner file yet may be a start in progress: give it a minute.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(60));
        if owner_alive || (owner.is_empty() && young) {
            continue;
        }
        for mnt in mounted_under(&dir) {
            unmount(&mnt);
        }
        kill_processes_of(&dir.join("ceph.conf"));
        remove_cluster_dir(&dir);
    }
}

/// Kills (by pid) every process whose command line holds `conf`: the daemons and ceph-fuse
/// clients this harness started with that configuration file.
fn kill_processes_of(conf: &Path) {
    let needle = conf.to_string_lossy().into_owned();
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes())
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_stamp_names_a_live_process_only() {
        let me = owner_stamp(std::process::id());
        assert!(me.split_whitespace().count() == 2, "{me}");
        assert_eq!(owner_stamp(std::process::id()), me);
        // pid_max is at most 2^22: this pid never exists.
        assert_ne!(owner_stamp(u32::MAX), me);
    }

    #[test]
    fn the_config_names_every_path_inside_the_cluster_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("fsid"), "f").unwrap();
        let conf = config(dir.path(), 4242, ObjectStore::Memstore);
        assert!(conf.contains("mon host = v2:127.0.0.1:4242"));
        assert!(conf.contains("osd objectstore = memstore"));
        for line in conf.lines().filter(|l| l.contains(" = /")) {
            let path = line.split(" = ").nth(1).unwrap();
            assert!(path.starts_with(&*dir.path().to_string_lossy()), "{line}");
        }
    }
}
