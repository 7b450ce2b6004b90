//! Container images for the test node, written without Docker or a registry.
//!
//! Each function writes a *docker-archive* tarball (what `docker save` writes and
//! `ctr images import` reads) holding one image of one layer:
//!
//! ```text
//! manifest.json              [{"Config": "<config sha256>.json", "RepoTags": [tag], "Layers": ["<diff id>/layer.tar"]}]
//! <config sha256>.json       the image config: amd64/linux, User, Entrypoint, Cmd, Env, rootfs.diff_ids
//! <diff id>/layer.tar        the root file system, an uncompressed tar whose sha256 is the diff id
//! ```
//!
//! The archives are reproducible: every entry has mtime 0 and an explicit owner and mode, entries
//! are in path order, so the same inputs give the same image ID. Parent directories are added
//! (root, 0755) for every path that needs one.
//!
//! The Coffer image here differs from `manifests/image/Dockerfile`'s in one way that matters: the
//! binaries are the workspace's glibc builds (no musl target can be installed on the test machines),
//! so the image carries the shared libraries `ldd` names and the dynamic loader, where the
//! Dockerfile's binaries are static on `distroless/static`. Layout, user, environment, ports and
//! entry point are the Dockerfile's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The image the chart and the operator use by default: `ghcr.io/coffer-dev/coffer`.
pub const COFFER_REPOSITORY: &str = "ghcr.io/coffer-dev/coffer";
/// What `manifests/vault/vault.yaml` runs for Vault (and copies `bao` out of).
pub const OPENBAO_TAG: &str = "quay.io/openbao/openbao:2.7.2";
/// What `manifests/vault/vault.yaml`'s setup Job runs `setup.sh` in (a shell and `kubectl`).
pub const KUBECTL_TAG: &str = "docker.io/alpine/k8s:1.33.4";

/// distroless's `PATH` and CA bundle variable, which the Dockerfile's base sets.
const DISTROLESS_ENV: [&str; 2] = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
];
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One owner for a layer entry: `(uid, gid)`.
pub type Owner = (u64, u64);
pub const ROOT: Owner = (0, 0);
/// distroless's `nonroot`, the Dockerfile's `USER 65532:65532`.
pub const NONROOT: Owner = (65532, 65532);
/// The official OpenBao image's `openbao` user (uid 100, group 1000), which `vault.yaml` runs as.
pub const OPENBAO: Owner = (100, 1000);

/// Where a regular file's bytes come from.
#[derive(Debug, Clone)]
enum Contents {
    Bytes(Vec<u8>),
    /// A host file, read when the archive is written (binaries are hundreds of MB).
    HostFile(PathBuf),
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(Contents),
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    mode: u32,
    owner: Owner,
}

/// A root file system: the single layer of an image. Paths are absolute inside the image.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    entries: BTreeMap<String, Entry>,
}

impl Layer {
    /// A directory (replaces an implicit parent directory added earlier).
    pub fn dir(&mut self, path: &str, mode: u32, owner: Owner) -> &mut Self {
        self.insert(path, Kind::Dir, mode, owner)
    }

    /// A regular file owned by root with these bytes.
    pub fn file(&mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.insert(path, Kind::File(Contents::Bytes(bytes.into())), mode, ROOT)
    }

    /// A regular file owned by root with the contents of a host file (symlinks followed).
    pub fn copy(&mut self, path: &str, host: &Path, mode: u32) -> &mut Self {
        self.insert(
            path,
            Kind::File(Contents::HostFile(host.to_path_buf())),
            mode,
            ROOT,
        )
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(path, Kind::Symlink(target.to_string()), 0o777, ROOT)
    }

    /// A program at `path` (mode 0755) and, when it is dynamically linked, every shared library
    /// `ldd` resolves for it and the dynamic loader, each at the path `ldd` names.
    pub fn program(&mut self, path: &str, host: &Path) -> Result<&mut Self> {
        for library in shared_libraries(host)? {
            let name = library.to_str().context("library path is not UTF-8")?;
            self.copy(name, &library, 0o755);
        }
        Ok(self.copy(path, host, 0o755))
    }

    /// Static busybox at `/bin/busybox` and a symlink in `/bin` for each of its applets (except
    /// where the layer already has that path).
    pub fn busybox(&mut self, host: &Path) -> Result<&mut Self> {
        let list = Command::new(host)
            .arg("--list")
            .output()
            .with_context(|| format!("running {} --list", host.display()))?;
        if !list.status.success() {
            bail!("{} --list failed", host.display());
        }
        if !shared_libraries(host)?.is_empty() {
            bail!(
                "{} is not static: use Debian's busybox-static",
                host.display()
            );
        }
        self.copy("/bin/busybox", host, 0o755);
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            let path = format!("/bin/{applet}");
            if applet != "busybox" && !self.entries.contains_key(path.trim_start_matches('/')) {
                self.symlink(&path, "busybox");
            }
        }
        Ok(self)
    }

    /// `/etc/passwd` and `/etc/group` for `root` and the given users `(name, uid, gid, home)`.
    pub fn users(&mut self, users: &[(&str, u64, u64, &str)]) -> &mut Self {
        let mut passwd = String::from("root:x:0:0:root:/root:/sbin/nologin\n");
        let mut group = String::from("root:x:0:\n");
        for (name, uid, gid, home) in users {
            passwd.push_str(&format!(
                "{name}:x:{uid}:{gid}:{name}:{home}:/sbin/nologin\n"
            ));
            group.push_str(&format!("{name}:x:{gid}:\n"));
        }
        self.file("/etc/passwd", passwd, 0o644)
            .file("/etc/group", group, 0o644)
    }

    /// What every image here has: `/tmp` (1777), `/root`, `/etc/nsswitch.conf` and the host's CA
    /// bundle where distroless keeps it.
    fn base(&mut self) -> &mut Self {
        self.dir("/tmp", 0o1777, ROOT)
            .dir("/root", 0o700, ROOT)
            .file("/etc/nsswitch.conf", "hosts: files dns\n", 0o644)
            .copy(
                "/etc/ssl/certs/ca-certificates.crt",
                Path::new(HOST_CA_BUNDLE),
                0o644,
            )
    }

    fn insert(&mut self, path: &str, kind: Kind, mode: u32, owner: Owner) -> &mut Self {
        let path = path.trim_matches('/');
        assert!(!path.is_empty(), "an image path names a file");
        for dir in Path::new(path).ancestors().skip(1) {
            let dir = dir.to_str().expect("UTF-8 path");
            if dir.is_empty() {
                break;
            }
            self.entries.entry(dir.to_string()).or_insert(Entry {
                kind: Kind::Dir,
                mode: 0o755,
                owner: ROOT,
            });
        }
        self.entries
            .insert(path.to_string(), Entry { kind, mode, owner });
        self
    }

    /// Writes the layer tarball and returns the sha256 of its bytes (the diff id).
    fn write_to(&self, out: impl Write) -> Result<String> {
        let mut hashing = HashingWriter {
            inner: out,
            hasher: Sha256::new(),
        };
        {
            let mut tar = tar::Builder::new(&mut hashing);
            for (path, entry) in &self.entries {
                let mut header = tar::Header::new_gnu();
                header.set_mode(entry.mode);
                header.set_uid(entry.owner.0);
                header.set_gid(entry.owner.1);
                header.set_mtime(0);
                match &entry.kind {
                    Kind::Dir => {
                        header.set_entry_type(tar::EntryType::Directory);
                        header.set_size(0);
                        tar.append_data(&mut header, format!("{path}/"), io::empty())?;
                    }
                    Kind::Symlink(target) => {
                        header.set_entry_type(tar::EntryType::Symlink);
                        header.set_size(0);
                        tar.append_link(&mut header, path, target)?;
                    }
                    Kind::File(Contents::Bytes(bytes)) => {
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(bytes.len() as u64);
                        tar.append_data(&mut header, path, bytes.as_slice())?;
                    }
                    Kind::File(Contents::HostFile(host)) => {
                        let file = File::open(host)
                            .with_context(|| format!("opening {}", host.display()))?;
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(file.metadata()?.len());
                        tar.append_data(&mut header, path, file)
                            .with_context(|| format!("adding {}", host.display()))?;
                    }
                }
            }
            tar.finish()?;
        }
        Ok(format!("{:x}", hashing.hasher.finalize()))
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The parts of an image config (`config` in the OCI image config) the node uses.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `uid:gid`, as `USER` in a Dockerfile.
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// Ports as `9000/tcp`.
    pub exposed_ports: Vec<String>,
}

/// One image: its name and tag, its config and its only layer.
#[derive(Debug, Clone)]
pub struct Image {
    pub tag: String,
    pub config: Config,
    pub layer: Layer,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// Writes `images` as one docker-archive tarball at `out` (written beside it, then renamed:
/// a failed write leaves no archive). Returns `out`.
pub fn write_archive(images: &[Image], out: &Path) -> Result<PathBuf> {
    let dir = out.parent().filter(|dir| !dir.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = tempfile::NamedTempFile::new_in(dir)?;
    let mut archive = tar::Builder::new(BufWriter::new(partial.reopen()?));
    let mut manifest = Vec::new();
    for image in images {
        let mut layer_file = tempfile::tempfile_in(dir)?;
        let diff_id = image.layer.write_to(BufWriter::new(&mut layer_file))?;
        let config = config_json(&image.config, &diff_id);
        let config_name = format!("{:x}.json", Sha256::digest(&config));
        let layer_name = format!("{diff_id}/layer.tar");

        let mut dir_header = archive_header(tar::EntryType::Directory, 0);
        archive.append_data(&mut dir_header, format!("{diff_id}/"), io::empty())?;
        let layer_len = layer_file.seek(io::SeekFrom::End(0))?;
        layer_file.rewind()?;
        let mut layer_header = archive_header(tar::EntryType::Regular, layer_len);
        archive.append_data(&mut layer_header, &layer_name, layer_file)?;
        let mut config_header = archive_header(tar::EntryType::Regular, config.len() as u64);
        archive.append_data(&mut config_header, &config_name, config.as_slice())?;
        manifest
            .push(json!({"Config": config_name, "RepoTags": [image.tag], "Layers": [layer_name]}));
    }
    let manifest = serde_json::to_vec(&manifest)?;
    let mut header = archive_header(tar::EntryType::Regular, manifest.len() as u64);
    archive.append_data(&mut header, "manifest.json", manifest.as_slice())?;
    archive.into_inner()?.flush()?;
    partial
        .persist(out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(out.to_path_buf())
}

fn archive_header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_mtime(0);
    header
}

fn config_json(config: &Config, diff_id: &str) -> Vec<u8> {
    let ports: serde_json::Map<String, serde_json::Value> = config
        .exposed_ports
        .iter()
        .map(|port| (port.clone(), json!({})))
        .collect();
    let value = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "User": config.user,
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "Env": config.env,
            "WorkingDir": config.working_dir,
            "ExposedPorts": ports,
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "coffer-e2e image.rs"}],
    });
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

/// The shared libraries and the dynamic loader `ldd` resolves for `binary`; empty for a static
/// binary. A library `ldd` cannot find is an error.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (Debian's libc-bin)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.contains("statically linked") {
        // ldd exits 1 with "not a dynamic executable" on a static binary.
        let stderr = String::from_utf8_lossy(&output.stderr);
        if text.contains("statically linked") || stderr.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {stderr}", binary.display());
    }
    let mut libraries = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            bail!(
                "{}: a shared library is missing: {}",
                binary.display(),
                line.trim()
            );
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`,
        // and `linux-vdso.so.1 (0x…)`, which the kernel provides.
        let resolved = line.split("=>").last().unwrap_or_default().trim();
        if let Some(path) = resolved
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// `appVersion` of `charts/coffer-operator/Chart.yaml`: the tag the chart's defaults pull.
pub fn chart_app_version() -> Result<String> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/coffer-operator/Chart.yaml");
    let text =
        std::fs::read_to_string(&chart).with_context(|| format!("reading {}", chart.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("appVersion:"))
        .map(|value| value.trim().trim_matches(['"', '\'']).to_string())
        .filter(|value| !value.is_empty())
        .with_context(|| format!("{} has no appVersion", chart.display()))
}

/// `ghcr.io/coffer-dev/coffer:<appVersion>`: the image the chart's defaults run.
pub fn coffer_tag() -> Result<String> {
    Ok(format!("{COFFER_REPOSITORY}:{}", chart_app_version()?))
}

/// The Coffer image from the binaries in `bin_dir` (`object-server`, `kes`, `operator`):
/// `manifests/image/Dockerfile`'s layout (`/usr/local/bin/`), user `65532:65532`, ports, empty
/// entry point and `object-server --help` command, distroless's `/etc/passwd`, `/tmp`, CA bundle
/// and environment; plus the glibc libraries and loader the binaries need.
pub fn coffer_image(bin_dir: &Path, tag: &str, out: &Path) -> Result<PathBuf> {
    let mut layer = Layer::default();
    layer.base();
    layer
        .users(&[
            ("nobody", 65534, 65534, "/nonexistent"),
            ("nonroot", 65532, 65532, "/home/nonroot"),
        ])
        .dir("/home/nonroot", 0o700, NONROOT);
    for binary in ["object-server", "kes", "operator"] {
        let host = bin_dir.join(binary);
        if !host.is_file() {
            bail!(
                "{} is missing: build the workspace's binaries first",
                host.display()
            );
        }
        layer.program(&format!("/usr/local/bin/{binary}"), &host)?;
    }
    let config = Config {
        user: "65532:65532".into(),
        entrypoint: Vec::new(),
        cmd: strings(&["object-server", "--help"]),
        env: strings(&DISTROLESS_ENV),
        working_dir: "/home/nonroot".into(),
        exposed_ports: strings(&["9000/tcp", "7373/tcp", "8080/tcp"]),
    };
    write_archive(
        &[Image {
            tag: tag.into(),
            config,
            layer,
        }],
        out,
    )
}

/// An OpenBao image that `manifests/vault/` runs unchanged: the `bao` binary (the peers' PyPI
/// wheel build, `bao` on `PATH`) at `/bin/bao`, static busybox (`busybox` on `PATH`) for `cp` and a
/// shell as in the official Alpine-based image, the `openbao` user (100:1000) and its `/vault/*`
/// directories, command `bao server -dev`.
pub fn openbao_image(tag: &str, out: &Path) -> Result<PathBuf> {
    let mut layer = Layer::default();
    layer.base();
    layer.users(&[("openbao", OPENBAO.0, OPENBAO.1, "/home/openbao")]);
    layer.dir("/home/openbao", 0o700, OPENBAO);
    for dir in ["/vault/config", "/vault/data", "/vault/file", "/vault/logs"] {
        layer.dir(dir, 0o755, OPENBAO);
    }
    layer.program("/bin/bao", &peer("bao")?)?;
    layer.busybox(&peer("busybox")?)?;
    let config = Config {
        user: "100:1000".into(),
        entrypoint: Vec::new(),
        cmd: strings(&["bao", "server", "-dev"]),
        env: strings(&DISTROLESS_ENV[..1]),
        working_dir: "/".into(),
        exposed_ports: strings(&["8200/tcp"]),
    };
    write_archive(
        &[Image {
            tag: tag.into(),
            config,
            layer,
        }],
        out,
    )
}

/// What `manifests/vault/`'s setup Job needs from `docker.io/alpine/k8s`: a shell and the busybox
/// tools (`sh`, `sed`, `grep`, `base64`, `sleep`) and `kubectl` (the peers', on `PATH`) at
/// `/usr/bin/kubectl`. Runs as root unless the pod says otherwise, as the original does.
pub fn kubectl_image(tag: &str, out: &Path) -> Result<PathBuf> {
    let mut layer = Layer::default();
    layer.base();
    layer.users(&[("nobody", 65534, 65534, "/nonexistent")]);
    layer.program("/usr/bin/kubectl", &peer("kubectl")?)?;
    layer.busybox(&peer("busybox")?)?;
    let config = Config {
        user: "0:0".into(),
        entrypoint: Vec::new(),
        cmd: strings(&["sh"]),
        env: strings(&DISTROLESS_ENV[..1]),
        working_dir: "/".into(),
        exposed_ports: Vec::new(),
    };
    write_archive(
        &[Image {
            tag: tag.into(),
            config,
            layer,
        }],
        out,
    )
}

/// The sandbox image: `pause_bin` (Kubernetes' `pause.c`, static: the peers' `pause`) at `/pause`,
/// user 65535 and entry point `/pause`, as `registry.k8s.io/pause`.
pub fn pause_image(pause_bin: &Path, tag: &str, out: &Path) -> Result<PathBuf> {
    if !shared_libraries(pause_bin)?.is_empty() {
        bail!(
            "{} is not static (build it with gcc -static)",
            pause_bin.display()
        );
    }
    let mut layer = Layer::default();
    layer.copy("/pause", pause_bin, 0o755);
    let config = Config {
        user: "65535:65535".into(),
        entrypoint: strings(&["/pause"]),
        cmd: Vec::new(),
        env: strings(&DISTROLESS_ENV[..1]),
        working_dir: "/".into(),
        exposed_ports: Vec::new(),
    };
    write_archive(
        &[Image {
            tag: tag.into(),
            config,
            layer,
        }],
        out,
    )
}

/// A peer on `PATH` (panics naming how to install it when missing), symlinks resolved.
fn peer(name: &str) -> Result<PathBuf> {
    let path = crate::peer_bin(name);
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

#[cfg(test)]
mod tests;
