//! CSRF: every change carries a token the attacker's page cannot know.
//!
//! A signed-in session has one random token ([`super::session::Session::csrf`]), written into
//! each form of its pages (and a `<meta>` for the upload script, which sends it as
//! `X-CSRF-Token`). The sign-in form, which has no session yet, uses a double submit: a random
//! token in a short-lived SameSite=Strict cookie and the same value in the form. Tokens are
//! compared in constant time. SameSite=Strict cookies already keep other sites' requests
//! unauthenticated; the token also stops a request forged from a page of the same site.

/// The header the upload script sends the token in.
pub const HEADER: &str = "x-csrf-token";

/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "coffer_login";

/// Whether `given` is `expected` (constant time; an empty or missing token never matches).
pub fn matches(expected: &str, given: Option<&str>) -> bool {
    match given {
        Some(g) if !expected.is_empty() =>
        {
            #[allow(deprecated)]
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), g.as_bytes())
                .is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(matches("abc", Some("abc")));
        assert!(!matches("abc", Some("abd")));
        assert!(!matches("abc", Some("ab")));
        assert!(!matches("abc", None));
        assert!(!matches("", Some("")));
    }
}
