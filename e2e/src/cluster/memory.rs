//! The node's memory: every 2 s, the resident set of every process of the node (the daemons it
//! started, containerd's shims, and everything below them: the pods' processes), summed. The
//! peak is what a machine must have free to run the suite.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The highest sum seen, and how it split by command name at that moment (KiB).
#[derive(Clone, Debug, Default)]
pub struct Peak {
    pub total_kib: u64,
    pub by_command: BTreeMap<String, u64>,
}

impl std::fmt::Display for Peak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<(&String, &u64)> = self.by_command.iter().collect();
        parts.sort_by(|a, b| b.1.cmp(a.1));
        write!(f, "{} MiB (", self.total_kib / 1024)?;
        for (i, (name, kib)) in parts.iter().enumerate() {
            write!(
                f,
                "{}{name} {} MiB",
                if i > 0 { ", " } else { "" },
                *kib / 1024
            )?;
        }
        write!(f, ")")
    }
}

/// Samples in a thread until dropped.
pub struct Sampler {
    roots: Arc<Mutex<HashSet<u32>>>,
    peak: Arc<Mutex<Peak>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling the processes under `roots` (added later with [`Sampler::add`]) and every
    /// process whose executable is `shim` (containerd reparents its shims to init).
    pub fn start(shim: PathBuf) -> Sampler {
        let roots = Arc::new(Mutex::new(HashSet::new()));
        let peak = Arc::new(Mutex::new(Peak::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (roots, peak, stop) = (roots.clone(), peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = {
                        let roots = roots.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        sample(&roots, &shim)
                    };
                    let mut peak = peak.lock().unwrap_or_else(|p| p.into_inner());
                    if now.total_kib > peak.total_kib {
                        *peak = now;
                    }
                    drop(peak);
                    std::thread::sleep(Duration::from_secs(2));
                }
            })
        };
        Sampler {
            roots,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Counts process `pid` and its descendants from now on.
    pub fn add(&self, pid: u32) {
        self.roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid);
    }

    /// The peak so far.
    pub fn peak(&self) -> Peak {
        self.peak.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One process as `/proc` shows it.
struct Proc {
    ppid: u32,
    command: String,
    rss_kib: u64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    Some(Proc {
        ppid: field("PPid:")?.parse().ok()?,
        command: field("Name:")?,
        rss_kib: field("VmRSS:")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
    })
}

fn sample(roots: &HashSet<u32>, shim: &std::path::Path) -> Peak {
    let mut procs = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            && let Some(p) = read_proc(pid)
        {
            procs.insert(pid, p);
        }
    }
    let mut counted: HashSet<u32> = roots.iter().copied().collect();
    for pid in procs.keys() {
        if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == shim) {
            counted.insert(*pid);
        }
    }
    // Descendants: repeat until no process joins (a tree is a few levels deep).
    loop {
        let before = counted.len();
        for (pid, p) in &procs {
            if counted.contains(&p.ppid) {
                counted.insert(*pid);
            }
        }
        if counted.len() == before {
            break;
        }
    }
    let mut peak = Peak::default();
    for pid in counted {
        if let Some(p) = procs.get(&pid) {
            peak.total_kib += p.rss_kib;
            *peak.by_command.entry(p.command.clone()).or_default() += p.rss_kib;
        }
    }
    peak
}
