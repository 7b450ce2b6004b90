//! Object keys as backend keys: a key's path segments `.` and `..` are kept apart from the
//! segments URLs give a meaning to.
//!
//! A backend request names the key in its URL path, and URL parsing removes dot segments (`a/../b`
//! is `b`, and so is `a/%2E%2E/b`): an object `../escape` would be written somewhere else, or
//! refused. So a segment that is `.` or `..` and is followed by `/` is stored with [`DOT_MARK`]
//! after it (`..` becomes `..\u{2}`); a last segment never needs it, since the key's
//! [`super::KEY_END`] follows it. Keys hold no control characters of this kind in practice, and
//! a key that does is still stored as given: only whole `.`/`..` segments are marked, and only
//! marked segments are unmarked, so the mapping is one to one.
//!
//! Order and prefixes: a marked segment sorts where the dot segment would, except against keys
//! continuing it with a character below `/` (`..!`); a prefix ending in a partial segment
//! (`a/.`) is sent as it is and matches the marked segments it should.

/// Follows a `.` or `..` segment in a backend key.
pub(super) const DOT_MARK: char = '\u{2}';

/// The backend form of a key, prefix or marker (before its [`super::KEY_END`]).
pub(super) fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut segments = key.split('/').peekable();
    while let Some(seg) = segments.next() {
        out.push_str(seg);
        if segments.peek().is_some() {
            if seg == "." || seg == ".." {
                out.push(DOT_MARK);
            }
            out.push('/');
        }
    }
    out
}

/// The key (or common prefix) a backend key stands for.
pub(super) fn decode(stored: &str) -> String {
    let mut out = String::with_capacity(stored.len());
    let mut segments = stored.split('/').peekable();
    while let Some(seg) = segments.next() {
        let followed = segments.peek().is_some();
        match seg.strip_suffix(DOT_MARK) {
            Some(dots @ ("." | "..")) if followed => out.push_str(dots),
            _ => out.push_str(seg),
        }
        if followed {
            out.push('/');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_round_trip_and_nothing_else_changes() {
        for (key, stored) in [
            ("../escape", "..\u{2}/escape"),
            ("a/../../x", "a/..\u{2}/..\u{2}/x"),
            ("./a/.b/..c/", ".\u{2}/a/.b/..c/"),
            ("..", ".."),
            (".", "."),
            ("a/..", "a/.."),
            ("plain/key", "plain/key"),
            ("", ""),
        ] {
            assert_eq!(encode(key), stored, "{key}");
            assert_eq!(decode(stored), key, "{key}");
        }
        // A key that already holds the mark is stored as given and read back the same.
        assert_eq!(encode("x\u{2}/y"), "x\u{2}/y");
        assert_eq!(decode("x\u{2}/y"), "x\u{2}/y");
    }
}
