//! Policies: which API paths an identity may call. A pattern ending in `*` matches
//! every path with that prefix, any other pattern matches exactly; deny wins over allow.

/// An allow/deny list of API path patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Patterns that grant access.
    pub allow: Vec<String>,
    /// Patterns that refuse access, even if allowed.
    pub deny: Vec<String>,
}

/// Whether `path` matches `pattern` (trailing `*` = prefix, else exact).
pub fn matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

impl Policy {
    /// Whether the policy grants `path` (e.g. `/v1/key/create/my-key`).
    pub fn verify(&self, path: &str) -> bool {
        if self.deny.iter().any(|p| matches(p, path)) {
            return false;
        }
        self.allow.iter().any(|p| matches(p, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(allow: &[&str], deny: &[&str]) -> Policy {
        Policy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn prefix_and_exact() {
        let pol = p(&["/v1/key/create/minio-*", "/v1/status"], &[]);
        assert!(pol.verify("/v1/key/create/minio-a"));
        assert!(pol.verify("/v1/key/create/minio-"));
        assert!(!pol.verify("/v1/key/create/other"));
        assert!(pol.verify("/v1/status"));
        assert!(!pol.verify("/v1/status2"));
        assert!(!pol.verify("/v1/key/delete/minio-a"));
    }

    #[test]
    fn deny_wins() {
        let pol = p(&["/v1/key/*"], &["/v1/key/delete/*"]);
        assert!(pol.verify("/v1/key/generate/k"));
        assert!(!pol.verify("/v1/key/delete/k"));
    }

    #[test]
    fn empty_policy_allows_nothing() {
        assert!(!Policy::default().verify("/v1/ready"));
    }
}
