//! Where a container's paths and ports land on this machine when a pod runs as local processes.
//!
//! A container sees its volumes at mount paths such as `/etc/kes/tls` and listens on fixed
//! ports such as `7373`. Run without a kubelet, every mount becomes a directory under a temp dir
//! and every port a free loopback port, so several pods (and several tests) can run at once.
//! [`PathMap`] rewrites the strings that name those paths and ports — arguments, environment
//! values, configuration files — and nothing else: a path is rewritten only where it starts at a
//! path boundary and ends at one (`/data` in `/data/x` or `"/data"`, never in `/var/data` or
//! `/database`), and a port only as `:PORT` not followed by another digit.

use std::path::{Path, PathBuf};

/// Container paths → host paths, container ports → host ports.
#[derive(Clone, Debug, Default)]
pub struct PathMap {
    // Longest container path first, so `/etc/kes/tls` wins over `/etc/kes`.
    mounts: Vec<(String, PathBuf)>,
    ports: Vec<(u16, u16)>,
}

/// Characters that continue a path component: a mount path followed or preceded by one of them
/// is part of a longer name and is left alone.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

impl PathMap {
    /// An empty map: rewrites nothing.
    pub fn new() -> PathMap {
        PathMap::default()
    }

    /// Maps the container directory or file `container` (absolute, no trailing `/`) to `host`.
    pub fn mount(&mut self, container: &str, host: &Path) {
        let container = container.trim_end_matches('/');
        assert!(
            container.starts_with('/'),
            "mount path {container:?} is not absolute"
        );
        self.mounts.retain(|(c, _)| c != container);
        self.mounts
            .push((container.to_string(), host.to_path_buf()));
        self.mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
    }

    /// Maps the container port `container` to the host port `host`.
    pub fn port(&mut self, container: u16, host: u16) {
        self.ports.retain(|(c, _)| *c != container);
        self.ports.push((container, host));
    }

    /// The host port of a container port (the port itself when it is not mapped).
    pub fn host_port(&self, container: u16) -> u16 {
        self.ports
            .iter()
            .find(|(c, _)| *c == container)
            .map_or(container, |(_, h)| *h)
    }

    /// The host path of an absolute container path under one of the mounts, if any.
    pub fn host_path(&self, container_path: &str) -> Option<PathBuf> {
        self.mounts.iter().find_map(|(c, host)| {
            let rest = container_path.strip_prefix(c.as_str())?;
            if rest.is_empty() {
                Some(host.clone())
            } else {
                rest.strip_prefix('/').map(|r| host.join(r))
            }
        })
    }

    /// `text` with every mounted container path and every mapped `:PORT` replaced.
    pub fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut prev: Option<char> = None;
        let mut i = 0;
        'scan: while i < text.len() {
            let rest = &text[i..];
            if !prev.is_some_and(is_path_char) {
                for (container, host) in &self.mounts {
                    if let Some(after) = rest.strip_prefix(container.as_str())
                        && after
                            .chars()
                            .next()
                            .is_none_or(|c| c == '/' || !is_path_char(c))
                    {
                        out.push_str(&host.display().to_string());
                        i += container.len();
                        prev = container.chars().last();
                        continue 'scan;
                    }
                }
            }
            if let Some(digits) = rest.strip_prefix(':') {
                let len = digits.bytes().take_while(u8::is_ascii_digit).count();
                if let Ok(port) = digits[..len].parse::<u16>()
                    && let Some((_, host)) = self.ports.iter().find(|(c, _)| *c == port)
                {
                    out.push_str(&format!(":{host}"));
                    i += 1 + len;
                    prev = Some('0');
                    continue;
                }
            }
            let c = rest.chars().next().expect("non-empty rest");
            out.push(c);
            prev = Some(c);
            i += c.len_utf8();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PathMap {
        let mut m = PathMap::new();
        m.mount("/etc/kes", Path::new("/tmp/p/kes"));
        m.mount("/etc/kes/tls/", Path::new("/tmp/p/tls"));
        m.mount("/data", Path::new("/tmp/p/data"));
        m.port(7373, 41000);
        m.port(9000, 42000);
        m
    }

    #[test]
    fn longest_mount_wins_and_subpaths_follow() {
        let m = map();
        assert_eq!(
            m.rewrite("/etc/kes/tls/server.key"),
            "/tmp/p/tls/server.key"
        );
        assert_eq!(m.rewrite("/etc/kes/config.yaml"), "/tmp/p/kes/config.yaml");
        assert_eq!(m.rewrite("/data"), "/tmp/p/data");
        assert_eq!(
            m.host_path("/etc/kes/tls/ca.crt"),
            Some(PathBuf::from("/tmp/p/tls/ca.crt"))
        );
        assert_eq!(m.host_path("/etc/kes"), Some(PathBuf::from("/tmp/p/kes")));
        assert_eq!(m.host_path("/etc/kestrel"), None);
        assert_eq!(m.host_path("/other"), None);
    }

    #[test]
    fn only_whole_paths_are_rewritten() {
        let m = map();
        for untouched in [
            "/var/data",
            "/database",
            "/data.old",
            "x/data",
            "/etc/kestrel/a",
        ] {
            assert_eq!(m.rewrite(untouched), untouched);
        }
        assert_eq!(
            m.rewrite("key: \"/etc/kes/tls/a\"\ncert: /data,/data/b"),
            "key: \"/tmp/p/tls/a\"\ncert: /tmp/p/data,/tmp/p/data/b"
        );
        assert_eq!(m.rewrite("--certs-dir=/data"), "--certs-dir=/tmp/p/data");
    }

    #[test]
    fn mapped_ports_are_rewritten_where_they_are_whole() {
        let m = map();
        assert_eq!(m.rewrite("0.0.0.0:7373"), "0.0.0.0:41000");
        assert_eq!(
            m.rewrite("https://127.0.0.1:7373/v1"),
            "https://127.0.0.1:41000/v1"
        );
        assert_eq!(m.rewrite(":9000"), ":42000");
        assert_eq!(m.rewrite("a:73730 b:737 c:8080"), "a:73730 b:737 c:8080");
        assert_eq!(m.host_port(7373), 41000);
        assert_eq!(m.host_port(8080), 8080);
    }

    #[test]
    fn unicode_and_empty_text_pass_through() {
        let m = map();
        assert_eq!(m.rewrite(""), "");
        assert_eq!(m.rewrite("é /data ü"), "é /tmp/p/data ü");
        assert_eq!(PathMap::new().rewrite("/data:9000"), "/data:9000");
    }
}
