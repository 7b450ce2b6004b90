//! The archives' structure, read back with the `tar` crate as `ctr images import` reads them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;

/// One layer entry as archived: type, mode, owner, link target.
#[derive(Debug)]
struct Archived {
    kind: tar::EntryType,
    mode: u32,
    owner: Owner,
    link: Option<String>,
}

struct ReadBack {
    manifest: Value,
    config: Value,
    layer: BTreeMap<String, Archived>,
}

fn read_back(path: &Path) -> ReadBack {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        manifest.as_array().unwrap().len(),
        1,
        "one image per archive"
    );
    let config_name = manifest[0]["Config"].as_str().unwrap();
    let config_bytes = &files[config_name];
    assert_eq!(
        config_name,
        format!("{:x}.json", Sha256::digest(config_bytes)),
        "the config is named by its digest"
    );
    let config: Value = serde_json::from_slice(config_bytes).unwrap();
    let layer_name = manifest[0]["Layers"][0].as_str().unwrap();
    let layer_bytes = &files[layer_name];
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([format!("sha256:{:x}", Sha256::digest(layer_bytes))]),
        "the diff id is the layer's digest"
    );
    assert_eq!(
        layer_name,
        format!("{:x}/layer.tar", Sha256::digest(layer_bytes))
    );
    let mut layer = BTreeMap::new();
    for entry in tar::Archive::new(layer_bytes.as_slice()).entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0, "reproducible: mtime 0");
        let name = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let archived = Archived {
            kind: header.entry_type(),
            mode: header.mode().unwrap(),
            owner: (header.uid().unwrap(), header.gid().unwrap()),
            link: entry
                .link_name()
                .unwrap()
                .map(|link| link.to_string_lossy().into_owned()),
        };
        assert!(
            layer.insert(name.clone(), archived).is_none(),
            "{name} twice"
        );
    }
    for name in layer.keys() {
        if let Some(parent) = Path::new(name)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let parent = parent.to_str().unwrap();
            assert!(
                layer
                    .get(parent)
                    .is_some_and(|p| p.kind == tar::EntryType::Directory),
                "{name}'s parent directory {parent} is in the layer"
            );
        }
    }
    ReadBack {
        manifest,
        config,
        layer,
    }
}

fn assert_entry(
    layer: &BTreeMap<String, Archived>,
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    owner: Owner,
) {
    let entry = layer
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in the layer"));
    assert_eq!(entry.kind, kind, "{name}'s type");
    assert_eq!(entry.mode, mode, "{name}'s mode: {:o}", entry.mode);
    assert_eq!(entry.owner, owner, "{name}'s owner");
}

/// A bin dir whose three programs are copies of the host's dynamically linked `true`.
fn fake_bins(dir: &Path) -> PathBuf {
    let bins = dir.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    for name in ["object-server", "kes", "operator"] {
        std::fs::copy("/bin/true", bins.join(name)).unwrap();
    }
    bins
}

#[test]
fn coffer_image_has_the_dockerfiles_layout_user_and_command_plus_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let out = coffer_image(
        &fake_bins(dir.path()),
        "ghcr.io/coffer-dev/coffer:9.9.9",
        &dir.path().join("c.tar"),
    )
    .unwrap();
    let image = read_back(&out);
    assert_eq!(
        image.manifest[0]["RepoTags"],
        serde_json::json!(["ghcr.io/coffer-dev/coffer:9.9.9"])
    );
    let config = &image.config["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], serde_json::json!([]));
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["object-server", "--help"])
    );
    assert_eq!(config["WorkingDir"], "/home/nonroot");
    assert_eq!(
        config["ExposedPorts"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["7373/tcp", "8080/tcp", "9000/tcp"]
    );
    assert!(config["Env"].as_array().unwrap().iter().any(|e| {
        e.as_str()
            .unwrap()
            .starts_with("PATH=/usr/local/sbin:/usr/local/bin:")
    }));
    assert_eq!(
        (
            image.config["architecture"].as_str(),
            image.config["os"].as_str()
        ),
        (Some("amd64"), Some("linux"))
    );

    use tar::EntryType::{Directory, Regular};
    for name in ["object-server", "kes", "operator"] {
        assert_entry(
            &image.layer,
            &format!("usr/local/bin/{name}"),
            Regular,
            0o755,
            ROOT,
        );
    }
    assert_entry(&image.layer, "tmp", Directory, 0o1777, ROOT);
    assert_entry(&image.layer, "home/nonroot", Directory, 0o700, NONROOT);
    assert_entry(&image.layer, "etc/passwd", Regular, 0o644, ROOT);
    assert_entry(
        &image.layer,
        "etc/ssl/certs/ca-certificates.crt",
        Regular,
        0o644,
        ROOT,
    );
    // What a glibc program needs, where ldd found it on the host (a file, not the host's symlink).
    for library in shared_libraries(Path::new("/bin/true")).unwrap() {
        let name = library.to_str().unwrap().trim_start_matches('/');
        assert_entry(&image.layer, name, Regular, 0o755, ROOT);
    }
    assert!(
        image.layer.contains_key("lib64/ld-linux-x86-64.so.2"),
        "the dynamic loader"
    );
    assert!(
        image.layer.keys().any(|name| name.ends_with("/libc.so.6")),
        "libc"
    );
}

#[test]
fn coffer_image_passwd_names_the_nonroot_user() {
    let mut layer = Layer::default();
    layer.users(&[("nonroot", 65532, 65532, "/home/nonroot")]);
    let Kind::File(Contents::Bytes(passwd)) = &layer.entries["etc/passwd"].kind else {
        panic!("passwd is a file")
    };
    let passwd = String::from_utf8(passwd.clone()).unwrap();
    assert!(
        passwd
            .lines()
            .any(|line| line.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
}

#[test]
fn the_same_inputs_give_the_same_archive() {
    let dir = tempfile::tempdir().unwrap();
    let bins = fake_bins(dir.path());
    let first =
        std::fs::read(coffer_image(&bins, "t:1", &dir.path().join("1.tar")).unwrap()).unwrap();
    let second =
        std::fs::read(coffer_image(&bins, "t:1", &dir.path().join("2.tar")).unwrap()).unwrap();
    assert!(first == second, "two builds of the same binaries differ");
}

#[test]
fn a_missing_binary_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bins = fake_bins(dir.path());
    std::fs::remove_file(bins.join("kes")).unwrap();
    let out = dir.path().join("c.tar");
    let error = coffer_image(&bins, "t:1", &out).unwrap_err().to_string();
    assert!(
        error.contains("kes") && error.contains("missing"),
        "{error}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial archive left behind"
    );
}

#[test]
fn the_coffer_tag_is_the_charts_app_version() {
    let chart = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/coffer-operator/Chart.yaml"),
    )
    .unwrap();
    let tag = coffer_tag().unwrap();
    let version = tag.strip_prefix("ghcr.io/coffer-dev/coffer:").unwrap();
    assert!(
        chart.contains(&format!("appVersion: \"{version}\""))
            || chart.contains(&format!("appVersion: {version}\n")),
        "{tag}"
    );
}

#[test]
fn pause_image_is_the_static_pause_as_user_65535() {
    let dir = tempfile::tempdir().unwrap();
    let out = pause_image(
        &crate::peer_bin("pause"),
        "registry.k8s.io/pause:3.10",
        &dir.path().join("p.tar"),
    )
    .unwrap();
    let image = read_back(&out);
    assert_eq!(image.config["config"]["User"], "65535:65535");
    assert_eq!(
        image.config["config"]["Entrypoint"],
        serde_json::json!(["/pause"])
    );
    assert_entry(&image.layer, "pause", tar::EntryType::Regular, 0o755, ROOT);
    assert_eq!(image.layer.len(), 1, "{:?}", image.layer.keys());

    let error = pause_image(
        Path::new("/bin/true"),
        "t:1",
        &dir.path().join("dynamic.tar"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("not static"), "{error}");
}

#[test]
fn openbao_image_runs_as_openbao_with_bao_and_cp_in_bin() {
    let dir = tempfile::tempdir().unwrap();
    let image = read_back(&openbao_image(OPENBAO_TAG, &dir.path().join("o.tar")).unwrap());
    assert_eq!(
        image.manifest[0]["RepoTags"],
        serde_json::json!([OPENBAO_TAG])
    );
    assert_eq!(image.config["config"]["User"], "100:1000");
    assert_eq!(
        image.config["config"]["Cmd"],
        serde_json::json!(["bao", "server", "-dev"])
    );
    use tar::EntryType::{Directory, Regular, Symlink};
    // vault.yaml: `command: ["bao", "server", …]` and the setup Job's `cp /bin/bao /tools/bao`.
    assert_entry(&image.layer, "bin/bao", Regular, 0o755, ROOT);
    assert_entry(&image.layer, "bin/busybox", Regular, 0o755, ROOT);
    for applet in ["cp", "sh"] {
        assert_entry(&image.layer, &format!("bin/{applet}"), Symlink, 0o777, ROOT);
        assert_eq!(
            image.layer[&format!("bin/{applet}")].link.as_deref(),
            Some("busybox")
        );
    }
    assert_entry(&image.layer, "vault/data", Directory, 0o755, OPENBAO);
    assert_entry(&image.layer, "tmp", Directory, 0o1777, ROOT);
}

#[test]
fn kubectl_image_has_a_shell_the_tools_setup_sh_uses_and_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let image = read_back(&kubectl_image(KUBECTL_TAG, &dir.path().join("k.tar")).unwrap());
    assert_eq!(
        image.manifest[0]["RepoTags"],
        serde_json::json!([KUBECTL_TAG])
    );
    assert_entry(
        &image.layer,
        "usr/bin/kubectl",
        tar::EntryType::Regular,
        0o755,
        ROOT,
    );
    for tool in ["sh", "sed", "grep", "base64", "sleep", "printf"] {
        assert!(
            image.layer.contains_key(&format!("bin/{tool}")),
            "{tool} is missing"
        );
    }
}

#[test]
fn shared_libraries_of_a_static_binary_are_none() {
    assert!(
        shared_libraries(&crate::peer_bin("busybox"))
            .unwrap()
            .is_empty()
    );
    let dynamic = shared_libraries(Path::new("/bin/true")).unwrap();
    assert!(
        dynamic
            .iter()
            .any(|lib| lib.ends_with("ld-linux-x86-64.so.2")),
        "{dynamic:?}"
    );
    assert!(
        dynamic.iter().all(|lib| lib.is_absolute() && lib.exists()),
        "{dynamic:?}"
    );
}
