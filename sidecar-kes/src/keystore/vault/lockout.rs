//! Vault's user lockout, and how a client that logs in on its own keeps clear of it.
//!
//! Vault and OpenBao lock an AppRole role ID out (and a userpass or LDAP user) after
//! `lockout_threshold` failed logins (default 5), for `lockout_duration` (15 min): every login
//! of that role ID is then refused, the right secret ID included. The failure counter goes back
//! to zero only after `lockout_counter_reset` (15 min) **without any login attempt**, or at a
//! successful login. So a client retrying a refused login every `retry` (15 s in KES's sample
//! configuration) locks the role out in about a minute — and with it every KES sidecar and the
//! operator, which share the role ID. Any period shorter than the counter reset adds up too: a
//! retry every 5 minutes reaches 5 failures in 20.
//!
//! The rule both the operator's probe and our `kes` follow: a login refused for its credentials
//! ([`refused_for_credentials`]) is tried again with the same credentials only after
//! [`REFUSED_LOGIN_RETRY`], longer than the default counter reset, so that a client's own
//! failures never add up to more than one per counter window. New credentials (a changed Secret,
//! a restart with a fixed configuration) are tried at once. A 429, a 5xx or no answer is not a
//! refusal of the credentials and does not count towards a lockout: those are retried at the
//! usual pace.
//!
//! Kubernetes auth has no user lockout, and its credential (the service account token) is
//! renewed by the kubelet under the client's feet: its refusals are retried every `retry`.

use std::time::Duration;

/// Vault's and OpenBao's default `lockout_counter_reset`.
pub const LOCKOUT_COUNTER_RESET: Duration = Duration::from_secs(15 * 60);

/// How long a login refused for its credentials is not tried again with the same ones: one
/// minute past the default counter reset, so that the counter is back at zero each time.
pub const REFUSED_LOGIN_RETRY: Duration = Duration::from_secs(16 * 60);

/// Whether an HTTP status answering a login means Vault refused the credentials (and counted a
/// failure towards the lockout): a 4xx other than 429 (rate limited).
pub fn refused_for_credentials(status: u16) -> bool {
    (400..500).contains(&status) && status != 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_of_the_credentials_is_held_back() {
        for s in [400, 401, 403, 404] {
            assert!(refused_for_credentials(s), "{s}");
        }
        for s in [200, 204, 429, 500, 502, 503] {
            assert!(!refused_for_credentials(s), "{s}");
        }
        assert!(REFUSED_LOGIN_RETRY > LOCKOUT_COUNTER_RESET);
    }
}
