//! The node's images (`coffer_e2e::image`) run in the peers' real containerd and runc: each is
//! imported with `ctr images import` and a command of it is run with `ctr run`, as the user the
//! image names. Needs root (runc), like the node itself.
//!
//! The containerd here is private to the test: its root, state, sockets and runc root are in a
//! temp dir, and its namespace is unique, so it never meets another test's node. Its teardown
//! (also on failure) stops containerd and its shims, unmounts what is left under the temp dir,
//! removes the namespace's cgroups and the /run/containerd directories the test created.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use coffer_e2e::image;
use coffer_e2e::process::Process;
use coffer_e2e::process::workspace_bin_dir;
use coffer_e2e::{peer_bin, wait_until};
use tempfile::TempDir;

/// What containerd, its shim (sockets in `s/`) and `ctr` (stdio FIFOs in `fifo/`) create under
/// /run whatever the config says; deepest first. Each is removed at the end if the test made it
/// and it is empty (another node on this machine may be using it).
const HOST_RUN_DIRS: [&str; 4] = [
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd/runc",
    "/run/containerd",
];

struct Containerd {
    dir: TempDir,
    namespace: String,
    socket: PathBuf,
    ctr: PathBuf,
    runc: PathBuf,
    created_run_dirs: Vec<&'static str>,
    process: Option<Process>,
}

impl Containerd {
    fn start() -> Containerd {
        let euid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
        assert_eq!(
            euid, 0,
            "containers need root (runc): run this test as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("coffer-images-")
            .tempdir_in("/tmp")
            .unwrap();
        let base = dir.path();
        let socket = base.join("containerd.sock");
        let config = base.join("containerd.toml");
        // The parts of the node's containerd config that `ctr run` uses; the CRI plugins (the
        // kubelet's side) and NRI are off so nothing is written under /run for them.
        std::fs::write(
            &config,
            format!(
                "version = 3\nroot = '{base}/root'\nstate = '{base}/state'\n\
                 disabled_plugins = ['io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.runtime', \
                 'io.containerd.cri.v1.images', 'io.containerd.nri.v1.nri']\n\
                 [grpc]\n  address = '{sock}'\n[ttrpc]\n  address = '{sock}.ttrpc'\n",
                base = base.display(),
                sock = socket.display()
            ),
        )
        .unwrap();
        let created_run_dirs = HOST_RUN_DIRS
            .into_iter()
            .filter(|dir| !Path::new(dir).exists())
            .collect();
        let containerd = peer_bin("containerd");
        let bin_dir = containerd.parent().unwrap().to_path_buf();
        let mut command = Command::new(&containerd);
        command.arg("--config").arg(&config);
        // The shim is found next to containerd, on PATH.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin_dir];
        paths.extend(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(paths).unwrap());
        let process = Process::spawn("containerd", command, &base.join("containerd.log"));
        let node = Containerd {
            namespace: format!("coffer-images-{}", std::process::id()),
            ctr: peer_bin("ctr"),
            runc: peer_bin("runc"),
            socket,
            created_run_dirs,
            process: Some(process),
            dir,
        };
        wait_until(
            "containerd to answer",
            Duration::from_secs(60),
            || {
                node.process.as_ref().unwrap().assert_running();
                node.ctr(&["version"]).status.success().then_some(())
            },
            || node.process.as_ref().unwrap().log_tail(),
        );
        node
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new(&self.ctr)
            .arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .output()
            .expect("run ctr")
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let output = self.ctr(args);
        assert!(
            output.status.success(),
            "ctr {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.process.as_ref().unwrap().log_tail()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn import(&self, archive: &Path) {
        self.ctr_ok(&["images", "import", archive.to_str().unwrap()]);
    }

    /// Runs `command` in a new container of `image` and returns its output.
    fn run(&self, image: &str, id: &str, command: &[&str]) -> String {
        self.run_with(&[], image, id, command)
    }

    /// [`Containerd::run`] with extra `ctr run` options (e.g. `--mount`).
    fn run_with(&self, options: &[&str], image: &str, id: &str, command: &[&str]) -> String {
        let runc_root = self.dir.path().join("runc");
        let mut args = vec![
            "run",
            "--rm",
            "--runc-binary",
            self.runc.to_str().unwrap(),
            "--runc-root",
            runc_root.to_str().unwrap(),
        ];
        args.extend_from_slice(options);
        args.extend_from_slice(&[image, id]);
        args.extend_from_slice(command);
        self.ctr_ok(&args)
    }

    /// Stops containerd and its shims, then removes what they left outside the temp dir.
    fn teardown(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(Duration::from_secs(10));
        }
        let socket = self.socket.to_string_lossy().into_owned();
        for pid in shims_of(&socket) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let base = self.dir.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| point.starts_with(&base))
            .collect();
        mounts.sort_unstable_by(|a, b| b.cmp(a));
        for point in mounts {
            let _ = Command::new("umount").arg("-l").arg(point).status();
        }
        // ctr puts each container's cgroup under /<namespace>/ in every v1 hierarchy.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for hierarchy in hierarchies.flatten() {
                let cgroup = hierarchy.path().join(&self.namespace);
                if cgroup.is_dir() {
                    remove_cgroup(&cgroup);
                }
            }
        }
        for dir in &self.created_run_dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Process ids of the runc shims serving the containerd at `socket`.
fn shims_of(socket: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        // The shim runs as `containerd-shim-runc-v2 -namespace … -id … -address <socket>`.
        if cmdline.contains("containerd-shim-runc-v2") && cmdline.contains(socket) {
            pids.push(pid);
        }
    }
    pids
}

/// Removes a cgroup directory tree (children first; a cgroup is removed with rmdir).
fn remove_cgroup(dir: &Path) {
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&child.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[test]
fn the_node_images_run_in_containerd() {
    let mut node = Containerd::start();
    let archives = node.dir.path().join("archives");

    // The Coffer image from the workspace's binaries, under the tag the chart's defaults pull.
    let bins = workspace_bin_dir(&["object-server", "kes", "operator"]);
    let tag = image::coffer_tag().unwrap();
    node.import(&image::coffer_image(&bins, &tag, &archives.join("coffer.tar")).unwrap());
    let listed = node.ctr_ok(&["images", "ls", "-q"]);
    assert!(
        listed.lines().any(|line| line == tag),
        "{tag} not in {listed}"
    );
    let version = node.run(&tag, "coffer-version", &["object-server", "--version"]);
    assert!(version.starts_with("object-server "), "{version}");
    let version = node.run(&tag, "kes-version", &["kes", "--version"]);
    assert!(version.starts_with("kes "), "{version}");
    let help = node.run(&tag, "operator-help", &["operator", "--help"]);
    assert!(help.contains("run"), "{help}");
    // The image has no shell: a static busybox mounted in shows who runs and where it may write.
    let busybox = format!(
        "type=bind,src={},dst=/busybox,options=rbind:ro",
        peer_bin("busybox").canonicalize().unwrap().display()
    );
    let probe = "/busybox id -u; /busybox id -g; /busybox touch /tmp/f && echo tmp-writable; \
                 /busybox touch /usr/local/bin/f 2>/dev/null || echo bin-read-only";
    let user = node.run_with(
        &["--mount", &busybox],
        &tag,
        "coffer-user",
        &["/busybox", "sh", "-c", probe],
    );
    assert_eq!(
        user.lines().collect::<Vec<_>>(),
        ["65532", "65532", "tmp-writable", "bin-read-only"],
        "{user}"
    );

    // OpenBao as vault.yaml runs it (`bao` on PATH, `cp` for the setup Job), as its user.
    node.import(&image::openbao_image(image::OPENBAO_TAG, &archives.join("openbao.tar")).unwrap());
    let version = node.run(image::OPENBAO_TAG, "bao-version", &["bao", "version"]);
    assert!(version.contains("OpenBao v2.7.2"), "{version}");
    let id = node.run(
        image::OPENBAO_TAG,
        "bao-id",
        &[
            "sh",
            "-c",
            "id -u; id -g; cp /bin/bao /tmp/bao && echo copied",
        ],
    );
    assert_eq!(
        id.lines().collect::<Vec<_>>(),
        ["100", "1000", "copied"],
        "{id}"
    );

    // The setup Job's image: a shell, busybox's tools and kubectl.
    node.import(&image::kubectl_image(image::KUBECTL_TAG, &archives.join("kubectl.tar")).unwrap());
    let kubectl = node.run(
        image::KUBECTL_TAG,
        "kubectl-version",
        &["sh", "-c", "kubectl version --client | sed -n 1p"],
    );
    assert!(kubectl.contains("v1.37.2"), "{kubectl}");

    // The sandbox image.
    let pause_tag = "registry.k8s.io/pause:coffer-test";
    node.import(
        &image::pause_image(&peer_bin("pause"), pause_tag, &archives.join("pause.tar")).unwrap(),
    );
    let pause = node.run(pause_tag, "pause-version", &["/pause", "-v"]);
    assert!(pause.starts_with("pause.c v1.37.2"), "{pause}");

    node.teardown();
    assert!(
        shims_of(&node.socket.to_string_lossy()).is_empty(),
        "a shim outlived containerd"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&*node.dir.path().to_string_lossy()),
        "a mount outlived the test"
    );
    for dir in &node.created_run_dirs {
        assert!(!Path::new(dir).exists(), "{dir} outlived the test");
    }
}
