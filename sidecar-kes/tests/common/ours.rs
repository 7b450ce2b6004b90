//! Our `kes` binary as a child process (for peers that talk to it over the network).

use coffer_e2e::{Process, free_port, wait_until};
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
    /// `kes server --dev` on a free port.
    pub fn dev() -> OurKes {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(kes_bin());
        cmd.args(["server", "--dev", "--addr", &format!("127.0.0.1:{port}")]);
        Self::spawn(cmd, dir, port)
    }

    /// `kes server --config FILE` where the config is `text` with `{port}` replaced.
    pub fn with_config(text: &str, extra_args: &[&str]) -> OurKes {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, text.replace("{port}", &port.to_string())).unwrap();
        let mut cmd = Command::new(kes_bin());
        cmd.args(["server", "--config"]).arg(&path).args(extra_args);
        Self::spawn(cmd, dir, port)
    }

    fn spawn(cmd: Command, dir: TempDir, port: u16) -> OurKes {
        let process = Process::spawn("kes (ours)", cmd, &dir.path().join("kes.log"));
        wait_until(
            "our kes to start",
            Duration::from_secs(20),
            || {
                process.assert_running();
                process.log().contains("Server is up").then_some(())
            },
            || process.log_tail(),
        );
        let api_key = process
            .log()
            .lines()
            .find(|l| l.starts_with("API Key"))
            .and_then(|l| l.split_whitespace().last())
            .map(String::from);
        OurKes {
            endpoint: format!("https://127.0.0.1:{port}"),
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
