//! Our `kes` binary as a child process (for peers that talk to it over the network).

use coffer_e2e::{Process, wait_until};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running `kes server` (our binary).
pub struct OurKes {
    pub endpoint: String,
    pub api_key: Option<String>,
    pub process: Process,
    pub dir: TempDir,
}

pub fn kes_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kes")
}

impl OurKes {
    /// `kes server --dev` on a port the server picks (a port picked free here and bound later
    /// by the server could be taken by another test in between).
    pub fn dev() -> OurKes {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(kes_bin());
        cmd.args(["server", "--dev", "--addr", "127.0.0.1:0"]);
        Self::spawn(cmd, dir)
    }

    /// `kes server --config FILE` where the config is `text` with `{port}` replaced by 0: the
    /// server picks its port, and [`OurKes::endpoint`] names it.
    pub fn with_config(text: &str, extra_args: &[&str]) -> OurKes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, text.replace("{port}", "0")).unwrap();
        let mut cmd = Command::new(kes_bin());
        cmd.args(["server", "--config"]).arg(&path).args(extra_args);
        Self::spawn(cmd, dir)
    }

    /// Runs `cmd` (a `kes server` listening on a port it picks, e.g. `127.0.0.1:0`) logging into
    /// `dir`, and waits until it is up.
    pub fn spawn(cmd: Command, dir: TempDir) -> OurKes {
        let process = Process::spawn("kes (ours)", cmd, &dir.path().join("kes.log"));
        wait_until(
            "our kes to start",
            Duration::from_secs(60),
            || {
                process.assert_running();
                process.log().contains("Server is up").then_some(())
            },
            || process.log_tail(),
        );
        let log = process.log();
        let field = |name: &str| {
            log.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .map(String::from)
        };
        let endpoint = field("Endpoint").expect("kes printed the endpoint it listens on");
        let api_key = field("API Key");
        OurKes {
            endpoint,
            api_key,
            process,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs a command, returning (success, stdout + stderr).
pub fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run command");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs a command that must succeed; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
