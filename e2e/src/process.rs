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

/// A loopback port that was free a moment ago. Another process may take it before a server
/// binds it: start servers with [`start_on_free_ports`], which retries then.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral loopback port")
}

/// Whether a peer's log says it could not bind an address because another process holds it
/// (Go's "bind: address already in use", Rust's "Address already in use (os error 98)").
pub fn address_in_use(log: &str) -> bool {
    log.contains("ddress already in use") || log.contains("os error 98")
}

/// Whether process `pid` itself has a TCP socket listening on `port` (any address), read from
/// `/proc`: a readiness probe alone could be answered by another test's server on that port.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 0A is LISTEN.
            if *state == "0A" && local_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Starts a server on `count` loopback ports picked free here (`spawn` gets them and starts
/// it) and returns it with its ports once it listens on the first one and `ready` says so.
///
/// A port picked free can be taken by another process (another test's server, an outgoing
/// connection) before the server binds it; the server then exits saying so, and is started
/// again on new ports, up to five times. Checking that this very process listens keeps a
/// readiness probe answered by that other process from passing for this one.
pub fn start_on_free_ports<T>(
    what: &str,
    count: usize,
    timeout: Duration,
    mut spawn: impl FnMut(&[u16]) -> Process,
    mut ready: impl FnMut(&Process, &[u16]) -> Option<T>,
) -> (Process, Vec<u16>, T) {
    let mut taken = Vec::new();
    for _attempt in 0..5 {
        let mut ports: Vec<u16> = Vec::with_capacity(count);
        while ports.len() < count {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let process = spawn(&ports);
        let deadline = Instant::now() + timeout;
        loop {
            if !process.is_running() {
                if address_in_use(&process.log()) {
                    taken.push(ports.clone());
                    break;
                }
                panic!("{what} exited early\n{}", process.log_tail());
            }
            let listening = process.pid().is_some_and(|pid| listens_on(pid, ports[0]));
            if listening && let Some(value) = ready(&process, &ports) {
                return (process, ports, value);
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} to listen on port {}\n{}",
                    ports[0],
                    process.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{what}: other processes took its ports first, five times: {taken:?}");
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

/// Whether `url` answers with a success status (through `curl`, which the peers check probes).
pub fn http_ok(url: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", url])
        .status()
        .is_ok_and(|s| s.success())
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

/// `<target>/<profile>/`, where cargo puts the workspace's binaries; a test runs from
/// `<target>/<profile>/deps/<name>-<hash>`. Panics naming the missing binaries.
pub fn workspace_bin_dir(needed: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps/")
        .to_path_buf();
    for name in needed {
        assert!(
            dir.join(name).is_file(),
            "`{name}` is not in {}: build it first with `cargo build --workspace --bins` \
             (or run `cargo test --workspace`, which builds every binary)",
            dir.display()
        );
    }
    dir
}
