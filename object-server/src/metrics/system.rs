//! Readings of this process and its drive, taken when a scrape asks (never per request).
//!
//! Linux only: everything comes from `/proc/self` and `statvfs(2)`; elsewhere the readings are
//! absent and their metrics are left out.
use std::path::Path;

/// What `/proc/self` says of this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub fd_limit: Option<u64>,
    /// `/proc/self/io`: bytes read and written through syscalls, and the syscall counts.
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
}

/// A filesystem's size.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Drive {
    pub total_bytes: u64,
    /// Bytes an unprivileged writer can still use.
    pub free_bytes: u64,
    pub used_bytes: u64,
    pub free_inodes: u64,
}

/// Parses `/proc/self/stat`'s fields after the command name: (utime+stime ticks, vsize, rss pages).
fn parse_stat(stat: &str) -> Option<(u64, u64, u64)> {
    // The command name is in parentheses and may itself hold spaces or parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields are numbered from 1 with pid; `rest` starts at field 3 (state).
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(23)?, field(24)?))
}

/// Parses `/proc/self/io`.
fn parse_io(io: &str, p: &mut Process) {
    for line in io.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().parse().unwrap_or(0);
        match k {
            "rchar" => p.rchar = v,
            "wchar" => p.wchar = v,
            "syscr" => p.syscr = v,
            "syscw" => p.syscw = v,
            _ => {}
        }
    }
}

/// Reads this process's figures.
#[cfg(target_os = "linux")]
pub fn process() -> Option<Process> {
    let mut p = Process::default();
    let (ticks, vsize, rss) = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    p.cpu_seconds = ticks as f64 / rustix::param::clock_ticks_per_second() as f64;
    p.virtual_bytes = vsize;
    p.resident_bytes = rss * rustix::param::page_size() as u64;
    // /proc/self/io is absent in some sandboxes: the rest stays valid.
    if let Ok(io) = std::fs::read_to_string("/proc/self/io") {
        parse_io(&io, &mut p);
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    p.fd_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    Some(p)
}

#[cfg(not(target_os = "linux"))]
pub fn process() -> Option<Process> {
    None
}

/// The filesystem holding `dir`.
#[cfg(target_os = "linux")]
pub fn drive(dir: &Path) -> Option<Drive> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let unit = s.f_frsize;
    Some(Drive {
        total_bytes: s.f_blocks * unit,
        free_bytes: s.f_bavail * unit,
        used_bytes: s.f_blocks.saturating_sub(s.f_bfree) * unit,
        free_inodes: s.f_ffree,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn drive(_dir: &Path) -> Option<Drive> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 123456789 2048 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((300, 123_456_789, 2048)));
    }

    #[test]
    fn io_counters_are_read_by_name() {
        let mut p = Process::default();
        parse_io(
            "rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 0\n",
            &mut p,
        );
        assert_eq!((p.rchar, p.wchar, p.syscr, p.syscw), (10, 20, 3, 4));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_and_its_drive_read_plausibly() {
        let p = process().unwrap();
        assert!(p.resident_bytes > 1 << 20 && p.open_fds > 0, "{p:?}");
        let d = drive(Path::new(".")).unwrap();
        assert!(d.total_bytes >= d.free_bytes && d.total_bytes > 0, "{d:?}");
    }
}
