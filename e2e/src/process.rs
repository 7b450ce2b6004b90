//! Child processes of a test: found on PATH, logged to a file, killed when dropped.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Finds a peer binary on `PATH`, or panics with how to install it.
///
/// The panic is deliberate: a test that needs a peer must fail loudly when the peer is absent.
pub fn peer_bin(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "peer `{name}` is not on PATH: run `e2e/peers/install` and `eval \"$(e2e/peers/env)\"` \
         (the README test command does both)"
    );
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral loopback port")
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what` and `context()`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running peer. Its stdout and stderr go to a log file; dropping it kills the process.
pub struct Process {
    name: String,
    // Behind a lock so that a readiness check and a failure message can both look at the child.
    child: Mutex<Option<Child>>,
    log_path: PathBuf,
}

impl Process {
    /// Starts `command`, sending its output to `log_path`.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> Process {
        let log = File::create(log_path).expect("create peer log file");
        let err = log.try_clone().expect("clone peer log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Process {
            name: name.to_string(),
            child: Mutex::new(Some(child)),
            log_path: log_path.to_path_buf(),
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything the process has written so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The error lines and the last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(40);
        // The cause of an exit is often far above the last lines: keep every line that looks like
        // an error (klog's E/F prefixes, or the word itself).
        let errors: Vec<&str> = lines[..start]
            .iter()
            .filter(|l| {
                let klog = l.len() > 1
                    && (l.starts_with('E') || l.starts_with('F'))
                    && l.as_bytes()[1].is_ascii_digit();
                klog || l.to_ascii_lowercase().contains("error")
            })
            .take(40)
            .copied()
            .collect();
        format!(
            "--- {} ({}) ---\n{}{}{}",
            self.name,
            self.log_path.display(),
            errors.join("\n"),
            if errors.is_empty() { "" } else { "\n...\n" },
            lines[start..].join("\n")
        )
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        match self.child().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&self) {
        if !self.is_running() {
            panic!("{} exited early\n{}", self.name, self.log_tail());
        }
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process with SIGTERM and waits up to `grace` before killing it.
    pub fn terminate(&self, grace: Duration) {
        let taken = self.child().take();
        if let Some(mut child) = taken {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `command` to completion and returns its stdout, panicking with stderr on failure.
pub fn run(what: &str, command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}
