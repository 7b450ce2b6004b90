//! Virtual-host-style addressing (`MINIO_DOMAIN`): with the domain `example.com`, a request to
//! `bucket.example.com` addresses `bucket`, as in MinIO; every other host (the domain itself, an
//! IP address, any other name) is path style, so path-style clients keep working.
use std::borrow::Cow;

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The base domains of `MINIO_DOMAIN`, lower-case, without ports.
#[derive(Debug, Clone)]
pub struct Domains(Vec<String>);

impl Domains {
    /// Parses `MINIO_DOMAIN`'s comma-separated list; the message of an error names what is
    /// wrong with which entry.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut out: Vec<String> = Vec::new();
        for d in list.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let d = d.to_ascii_lowercase();
            let valid = d.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            if !valid || d.len() > 253 {
                return Err(format!(
                    "MINIO_DOMAIN: '{d}' is not a domain name (no scheme, port or path)"
                ));
            }
            if !out.contains(&d) {
                out.push(d);
            }
        }
        if out.is_empty() {
            return Err("MINIO_DOMAIN is set but names no domain".into());
        }
        Ok(Self(out))
    }

    /// The domains, as configured.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The bucket a `Host` header addresses virtual-host style, if any.
    pub fn bucket_of(&self, host: &str) -> Option<String> {
        let name = strip_port(host).to_ascii_lowercase();
        if self.0.contains(&name) {
            return None;
        }
        // The longest domain first, so `s3.example.com` wins over `example.com`.
        let mut best: Option<&str> = None;
        for d in &self.0 {
            if let Some(bucket) = name
                .strip_suffix(d.as_str())
                .and_then(|b| b.strip_suffix('.'))
                .filter(|b| !b.is_empty())
                && best.is_none_or(|b| bucket.len() < b.len())
            {
                best = Some(bucket);
            }
        }
        best.map(str::to_owned)
    }
}

/// `host` without its `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(Cow::Borrowed(host)).with_bucket(bucket),
            None => VirtualHost::new(Cow::Borrowed(host)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_of_hosts() {
        let d = Domains::parse(" Example.com, s3.example.com ,minio.local").unwrap();
        assert_eq!(d.names(), ["example.com", "s3.example.com", "minio.local"]);
        assert_eq!(d.bucket_of("photos.example.com").as_deref(), Some("photos"));
        assert_eq!(
            d.bucket_of("Photos.EXAMPLE.com:9000").as_deref(),
            Some("photos")
        );
        assert_eq!(d.bucket_of("a.b.example.com").as_deref(), Some("a.b"));
        // The longest matching domain decides.
        assert_eq!(d.bucket_of("docs.s3.example.com").as_deref(), Some("docs"));
        assert_eq!(d.bucket_of("x.minio.local:443").as_deref(), Some("x"));
        // Path style: the domain itself, other names, addresses.
        for host in [
            "example.com",
            "example.com:9000",
            "s3.example.com",
            "notexample.com",
            "photos.example.org",
            "localhost:9000",
            "127.0.0.1:9000",
            "[::1]:9000",
            ".example.com",
        ] {
            assert_eq!(d.bucket_of(host), None, "{host}");
        }
    }

    #[test]
    fn bad_domains_are_refused() {
        for bad in [
            "",
            " , ",
            "http://example.com",
            "example.com:9000",
            "example..com",
            "a/b",
        ] {
            assert!(Domains::parse(bad).is_err(), "{bad:?}");
        }
    }
}
