//! The web console: server-rendered pages on their own port (`--console-address`, default
//! `:9001`, MinIO's), for browsing and managing the store in a browser.
//!
//! Invariants, each kept by one module:
//! - **One decision.** The console holds no access rules of its own. Every read and every change
//!   is an S3 request, signed with the signed-in user's keys and handed in-process to the same
//!   s3s service the S3 port serves ([`s3call`]): the signature check, the IAM and bucket-policy
//!   decision, encryption and versioning are exactly the S3 API's. A readonly user sees and does
//!   in the console what it could with `aws s3`, no more.
//! - **Secrets stay on the server.** The browser holds one random session id ([`session`]), an
//!   HttpOnly, SameSite=Strict cookie (Secure under TLS). The user's secret key lives only in the
//!   session, in memory, until the session expires or the user signs out; it is never written
//!   into a page, a URL, a log or another cookie. Object details show key names, never key
//!   material.
//! - **No change without a token.** Every POST and PUT carries the session's CSRF token ([`csrf`])
//!   in a form field or the `X-CSRF-Token` header; without it nothing is done (403). The sign-in
//!   form has its own double-submit token.
//! - **Server-side expiry.** A session ends after its lifetime
//!   (`COFFER_CONSOLE_SESSION_LIFETIME`, default 12h) whatever the browser keeps; an expired
//!   session is sent to the sign-in page.
//!
//! The pages ([`pages`]) are askama templates (`templates/console/`), the CSS and the small
//! progressive-enhancement script (multipart upload with a progress bar) are embedded
//! ([`assets`]); every form works without the script.
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{ConfigError, Env, parse_address};

mod assets;
mod csrf;
mod http_util;
mod pages;
mod rates;
mod router;
pub mod s3call;
mod session;
mod throttle;
pub(crate) mod xml;

pub use router::{ConsoleDeps, serve};
pub use throttle::SignInLimits;

/// The console's address when `--console-address` is not given (MinIO's).
pub const DEFAULT_ADDRESS: &str = ":9001";

/// How long a session lasts when `COFFER_CONSOLE_SESSION_LIFETIME` is not set.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Where and how the console is served.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The listening address.
    pub address: SocketAddr,
    /// Whether the address was asked for (`--console-address`): then failing to listen on it
    /// stops the server. The default address being taken (another server on the same host)
    /// only turns the console off, with a warning.
    pub explicit: bool,
    /// How long a session lasts from sign-in.
    pub session_lifetime: Duration,
    /// When failed sign-ins lock an address out.
    pub sign_in_limits: SignInLimits,
}

impl ConsoleConfig {
    /// The console from the environment: off with MinIO's `MINIO_BROWSER=off`; the session
    /// lifetime from `COFFER_CONSOLE_SESSION_LIFETIME` (a duration such as `30m` or `12h`); how
    /// long an address that failed to sign in too often is refused from
    /// `COFFER_CONSOLE_SIGNIN_LOCKOUT` (default 15m).
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        match env.get("MINIO_BROWSER").as_deref() {
            None | Some("on") => {}
            Some("off") => return Ok(None),
            Some(v) => {
                return Err(ConfigError::Invalid(format!(
                    "MINIO_BROWSER must be on or off, not '{v}'"
                )));
            }
        }
        let duration = |name: &str, default: Duration| match env.get(name) {
            None => Ok(default),
            Some(v) => sidecar_kes::config::duration::parse(&v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "{name} must be a duration above zero such as 30m or 12h, not '{v}'"
                    ))
                }),
        };
        let session_lifetime =
            duration("COFFER_CONSOLE_SESSION_LIFETIME", DEFAULT_SESSION_LIFETIME)?;
        let defaults = SignInLimits::default();
        let sign_in_limits = SignInLimits {
            lockout: duration("COFFER_CONSOLE_SIGNIN_LOCKOUT", defaults.lockout)?,
            ..defaults
        };
        Ok(Some(ConsoleConfig {
            address: parse_address(DEFAULT_ADDRESS)?,
            explicit: false,
            session_lifetime,
            sign_in_limits,
        }))
    }

    /// `--console-address`: MinIO's forms (`:9001`, `HOST:PORT`).
    pub fn set_address(&mut self, address: &str) -> Result<(), ConfigError> {
        self.address = parse_address(address)?;
        self.explicit = true;
        Ok(())
    }
}

/// The console's listener, bound before the server says it is ready; `None` when the default
/// address is taken (logged).
pub async fn bind(cfg: &ConsoleConfig) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match tokio::net::TcpListener::bind(cfg.address).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !cfg.explicit => {
            tracing::warn!(address = %cfg.address, error = ?e.kind(), "the console's default address is not free; the console is off (set --console-address)");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("console: listen on {}: {e}", cfg.address)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Env for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let c = ConsoleConfig::from_env(&Map(HashMap::new()))
            .unwrap()
            .unwrap();
        assert_eq!(c.address.port(), 9001);
        assert!(!c.explicit);
        assert_eq!(c.session_lifetime, DEFAULT_SESSION_LIFETIME);
        let c = ConsoleConfig::from_env(&Map(HashMap::from([(
            "COFFER_CONSOLE_SESSION_LIFETIME",
            "3s",
        )])))
        .unwrap()
        .unwrap();
        assert_eq!(c.session_lifetime, Duration::from_secs(3));
        let mut c = c;
        c.set_address("127.0.0.1:0").unwrap();
        assert!(c.explicit);
        assert!(c.set_address("nonsense").is_err());
    }

    #[test]
    fn off_and_bad_values() {
        let off = Map(HashMap::from([("MINIO_BROWSER", "off")]));
        assert!(ConsoleConfig::from_env(&off).unwrap().is_none());
        for (k, v) in [
            ("MINIO_BROWSER", "maybe"),
            ("COFFER_CONSOLE_SESSION_LIFETIME", "0s"),
            ("COFFER_CONSOLE_SESSION_LIFETIME", "soon"),
            ("COFFER_CONSOLE_SIGNIN_LOCKOUT", "0s"),
        ] {
            assert!(ConsoleConfig::from_env(&Map(HashMap::from([(k, v)]))).is_err());
        }
    }
}
