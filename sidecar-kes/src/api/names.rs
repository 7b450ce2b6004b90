//! KES's rules for key, policy and identity names and listing patterns.

const MAX_LEN: usize = 80;

/// A name: 1–80 of `[0-9A-Za-z_]` and `-` (not first or last), not `_` alone.
pub fn valid_name(s: &str) -> bool {
    if s.is_empty() || s == "_" || s.len() > MAX_LEN {
        return false;
    }
    let n = s.len() - 1;
    s.bytes()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphanumeric() || c == b'_' || (c == b'-' && i > 0 && i < n))
}

/// A listing pattern: empty, `*`, or a name-like prefix optionally ending in `*`.
pub fn valid_pattern(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    if s == "_" || s.len() > MAX_LEN {
        return false;
    }
    let n = s.len().saturating_sub(1);
    s.bytes().enumerate().all(|(i, c)| {
        c.is_ascii_alphanumeric()
            || c == b'_'
            || (c == b'-' && i > 0 && i < n)
            || (c == b'*' && i == n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("my-minio-key"));
        assert!(valid_name("a_b9"));
        for bad in [
            "",
            "_",
            "-a",
            "a-",
            "a/b",
            "a.b",
            "a b",
            "ü",
            &"a".repeat(81),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn patterns() {
        for ok in ["", "*", "my-*", "abc"] {
            assert!(valid_pattern(ok), "{ok:?}");
        }
        for bad in ["_", "a*b", "../x", "a-"] {
            assert!(!valid_pattern(bad), "{bad:?}");
        }
    }
}
