//! Expandable volumes for the node: StorageClass [`LOOP_CLASS`] (`allowVolumeExpansion: true`),
//! each volume an XFS image file on a loop device, and the external resizer that grows them.
//!
//! No CSI driver can be installed here, so the storage side is built from what Kubernetes
//! itself does with a `local` PersistentVolume whose path is a block device:
//! - the kubelet's `local` volume plugin mounts the device at its global mount path (under the
//!   node's directory) with `local.fsType`, and bind-mounts it into the pod;
//! - kube-controller-manager's expand controller finds no in-tree expandable plugin for a
//!   `local` PV (the plugin is only node-expandable), emits `ExternalExpanding` ("waiting for
//!   an external controller to expand this PVC") on the claim and does nothing else;
//! - [`LoopVolumes`]' resizer is that external controller, following the protocol of
//!   kubernetes-csi's external-resizer with `RecoverVolumeExpansionFailure` (GA): when a
//!   bound claim of the class asks for more than its status says, it records
//!   `allocatedResources` with `ControllerResizeInProgress` and a `Resizing` condition, grows
//!   the image (`truncate`) and the loop device (`losetup -c`) — the "controller expansion" —,
//!   sets the PV's capacity, then marks the claim `NodeResizePending` with a
//!   `FileSystemResizePending` condition;
//! - the kubelet then grows the mounted file system online (its `local` plugin's `NodeExpand`:
//!   `xfs_growfs` on the mount), sets the claim's `status.capacity` and clears the rest
//!   (`FileSystemResizeSuccessful` events on the claim and the pod).
//!
//! XFS, not ext4: an online ext4 resize needs `CAP_SYS_RESOURCE`, which this machine's
//! container does not grant; XFS's grow needs `CAP_SYS_ADMIN` only.
//!
//! On the host: one sparse image file per volume under the node's directory (`loop-volumes/`),
//! one loop device attached to each. [`Drop`] stops the resizer, detaches the devices (a device
//! still mounted by the kubelet is released when the node's teardown unmounts it) and removes
//! the images; [`super::host::cleanup`] detaches any device backed by a file under a node's
//! directory, for a run that crashed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Node;
use super::config::NODE_NAME;
use crate::peer_bin;
use crate::process::run;

/// The StorageClass whose volumes this module provides and expands.
pub const LOOP_CLASS: &str = "coffer-loop";
/// How often the resizer looks at the claims.
const RESIZE_PERIOD: Duration = Duration::from_secs(1);
/// The message the external-resizer writes on `FileSystemResizePending`.
const NODE_RESIZE_PENDING_MESSAGE: &str =
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node.";

/// A volume's backing: its image file and the loop device it is attached to.
#[derive(Debug, Clone)]
struct Backing {
    image: PathBuf,
    device: String,
}

/// `kubectl` with the node's admin kubeconfig, usable from the resizer's thread.
#[derive(Debug, Clone)]
struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn command(&self) -> Command {
        let mut command = Command::new(peer_bin("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// `kubectl ARGS`: its stdout, or what it said when it failed.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Kubectl {
    /// `kubectl apply -f -` of `yaml`.
    fn apply(&self, yaml: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = self
            .command()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("kubectl apply: {e}"))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(yaml.as_bytes())
            .map_err(|e| format!("kubectl apply: {e}"))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("kubectl apply: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "kubectl apply: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// The provider of [`LOOP_CLASS`]'s volumes and their resizer. Dropping it undoes what it did
/// on the host.
pub struct LoopVolumes {
    dir: PathBuf,
    kubectl: Kubectl,
    /// By PersistentVolume name.
    volumes: Arc<Mutex<BTreeMap<String, Backing>>>,
    stop: Arc<AtomicBool>,
    resizer: Option<JoinHandle<()>>,
}

impl LoopVolumes {
    /// Creates StorageClass [`LOOP_CLASS`] on `node` and starts the resizer.
    pub fn start(node: &Node) -> LoopVolumes {
        let dir = node.dir().join("loop-volumes");
        std::fs::create_dir_all(&dir).expect("loop volumes dir");
        node.api.apply(&format!(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: {LOOP_CLASS}}}\n\
             provisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: WaitForFirstConsumer\n\
             allowVolumeExpansion: true\n"
        ));
        let kubectl = Kubectl {
            kubeconfig: node.api.kubeconfig.clone(),
        };
        let volumes = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let resizer = {
            let (kubectl, volumes, stop) = (kubectl.clone(), volumes.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = resize_pass(&kubectl, &volumes) {
                        eprintln!("[loop-volumes] resizer: {e}");
                    }
                    std::thread::sleep(RESIZE_PERIOD);
                }
            })
        };
        LoopVolumes {
            dir,
            kubectl,
            volumes,
            stop,
            resizer: Some(resizer),
        }
    }

    /// A volume of `size` (a quantity such as `1Gi`) reserved for claim `namespace/claim`
    /// (its `claimRef`), formatted XFS; returns the PersistentVolume's name.
    pub fn add_for_claim(&self, namespace: &str, claim: &str, size: &str) -> String {
        let name = format!("loop-{namespace}-{claim}");
        let bytes = quantity_bytes(size);
        let image = self.dir.join(format!("{name}.img"));
        run(
            "truncate",
            Command::new("truncate")
                .arg(format!("--size={bytes}"))
                .arg(&image),
        );
        let device = run(
            "losetup",
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&image),
        )
        .trim()
        .to_string();
        self.volumes.lock().expect("volumes").insert(
            name.clone(),
            Backing {
                image,
                device: device.clone(),
            },
        );
        run("mkfs.xfs", Command::new("mkfs.xfs").args(["-q", &device]));
        let pv = format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n  \
             capacity: {{storage: {size}}}\n  accessModes: [ReadWriteOnce]\n  \
             persistentVolumeReclaimPolicy: Retain\n  storageClassName: {LOOP_CLASS}\n  \
             volumeMode: Filesystem\n  claimRef: {{namespace: {namespace}, name: {claim}}}\n  \
             local: {{path: {device}, fsType: xfs}}\n  nodeAffinity:\n    required:\n      \
             nodeSelectorTerms:\n      - matchExpressions: [{{key: kubernetes.io/hostname, \
             operator: In, values: [{NODE_NAME}]}}]\n"
        );
        if let Err(e) = self.kubectl.apply(&pv) {
            panic!("{e}\n{pv}");
        }
        name
    }

    /// The size of the image behind PersistentVolume `pv`, in bytes.
    pub fn image_bytes(&self, pv: &str) -> u64 {
        let volumes = self.volumes.lock().expect("volumes");
        let backing = volumes
            .get(pv)
            .unwrap_or_else(|| panic!("no loop volume {pv}"));
        std::fs::metadata(&backing.image)
            .expect("loop volume image")
            .len()
    }
}

impl Drop for LoopVolumes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(resizer) = self.resizer.take() {
            let _ = resizer.join();
        }
        let volumes = std::mem::take(&mut *self.volumes.lock().unwrap_or_else(|p| p.into_inner()));
        for backing in volumes.values() {
            // Detaching a device that is still mounted marks it to be freed on the last unmount.
            let _ = Command::new("losetup")
                .args(["--detach", &backing.device])
                .status();
            let _ = std::fs::remove_file(&backing.image);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A claim of [`LOOP_CLASS`], as the resizer reads it.
#[derive(Debug, PartialEq)]
struct Claim {
    namespace: String,
    name: String,
    volume: String,
    requested: String,
    capacity: String,
    resize_status: String,
}

/// The bound claims of [`LOOP_CLASS`] in `kubectl get pvc -A -o json`'s output.
fn loop_claims(list: &serde_json::Value) -> Vec<Claim> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["spec"]["storageClassName"] == LOOP_CLASS && c["status"]["phase"] == "Bound")
        .map(|c| Claim {
            namespace: text(&c["metadata"]["namespace"]),
            name: text(&c["metadata"]["name"]),
            volume: text(&c["spec"]["volumeName"]),
            requested: text(&c["spec"]["resources"]["requests"]["storage"]),
            capacity: text(&c["status"]["capacity"]["storage"]),
            resize_status: text(&c["status"]["allocatedResourceStatuses"]["storage"]),
        })
        .collect()
}

/// One look at the claims: every claim of a volume of ours that asks for more than it has,
/// and whose controller expansion is not done, is expanded.
fn resize_pass(
    kubectl: &Kubectl,
    volumes: &Mutex<BTreeMap<String, Backing>>,
) -> Result<(), String> {
    let list = kubectl.run(&["get", "pvc", "-A", "-o", "json"])?;
    let list: serde_json::Value = serde_json::from_str(&list).map_err(|e| e.to_string())?;
    for claim in loop_claims(&list) {
        let Some(backing) = volumes.lock().expect("volumes").get(&claim.volume).cloned() else {
            continue;
        };
        let wants_more = quantity_bytes(&claim.requested) > quantity_bytes(&claim.capacity);
        // "" (never started) or a controller expansion interrupted; the node's part and a
        // finished one are the kubelet's business.
        let controller_part = matches!(
            claim.resize_status.as_str(),
            "" | "ControllerResizeInProgress"
        );
        if wants_more && controller_part {
            expand(kubectl, &claim, &backing)?;
        }
    }
    Ok(())
}

/// The controller part of an expansion, as the module doc says.
fn expand(kubectl: &Kubectl, claim: &Claim, backing: &Backing) -> Result<(), String> {
    let size = &claim.requested;
    let claim_status = |status: &str, condition: &str, message: &str| {
        let patch = serde_json::json!({"status": {
            "allocatedResources": {"storage": size},
            "allocatedResourceStatuses": {"storage": status},
            "conditions": [{"type": condition, "status": "True", "message": message}],
        }});
        kubectl.run(&[
            "patch",
            "pvc",
            &claim.name,
            "-n",
            &claim.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
    };
    claim_status("ControllerResizeInProgress", "Resizing", "")?;
    let bytes = quantity_bytes(size);
    let grown = Command::new("truncate")
        .arg(format!("--size={bytes}"))
        .arg(&backing.image)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("losetup")
            .args(["--set-capacity", &backing.device])
            .status()
            .is_ok_and(|s| s.success());
    if !grown {
        return Err(format!(
            "could not grow {} ({}) to {size}",
            backing.image.display(),
            backing.device
        ));
    }
    let pv = serde_json::json!({"spec": {"capacity": {"storage": size}}});
    kubectl.run(&[
        "patch",
        "pv",
        &claim.volume,
        "--type=merge",
        "-p",
        &pv.to_string(),
    ])?;
    claim_status(
        "NodeResizePending",
        "FileSystemResizePending",
        NODE_RESIZE_PENDING_MESSAGE,
    )?;
    eprintln!(
        "[loop-volumes] {}/{}: {} grown to {size}; the kubelet grows the file system",
        claim.namespace, claim.name, backing.device
    );
    Ok(())
}

/// A quantity the API server wrote for a size (`1Gi`, `1536Mi`, `1073741824`) in bytes. Only
/// binary suffixes and plain bytes: the sizes the tests use.
fn quantity_bytes(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: u64 = number.parse().unwrap_or_else(|_| panic!("quantity {q:?}"));
    let shift = match suffix {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        _ => panic!("quantity {q:?}: only Ki, Mi, Gi, Ti or bytes"),
    };
    number << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("1Gi"), 1 << 30);
        assert_eq!(quantity_bytes("1536Mi"), 1536 << 20);
        assert_eq!(quantity_bytes("4096"), 4096);
    }

    #[test]
    fn only_bound_claims_of_the_class_are_read() {
        let list = serde_json::json!({"items": [
            {"metadata": {"namespace": "n", "name": "a"},
             "spec": {"storageClassName": LOOP_CLASS, "volumeName": "v",
                      "resources": {"requests": {"storage": "2Gi"}}},
             "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                        "allocatedResourceStatuses": {"storage": "NodeResizePending"}}},
            {"metadata": {"namespace": "n", "name": "b"},
             "spec": {"storageClassName": "local", "volumeName": "w"},
             "status": {"phase": "Bound"}},
            {"metadata": {"namespace": "n", "name": "c"},
             "spec": {"storageClassName": LOOP_CLASS},
             "status": {"phase": "Pending"}},
        ]});
        assert_eq!(
            loop_claims(&list),
            vec![Claim {
                namespace: "n".into(),
                name: "a".into(),
                volume: "v".into(),
                requested: "2Gi".into(),
                capacity: "1Gi".into(),
                resize_status: "NodeResizePending".into(),
            }]
        );
    }
}
