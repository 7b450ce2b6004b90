//! Sessions: a random id in the browser, everything else in memory here.
//!
//! The id is 32 bytes from the system's CSPRNG (aws-lc), so guessing one is hopeless and no two
//! sessions share one. The cookie carries only that id: HttpOnly (no script reads it),
//! SameSite=Strict (no other site's page sends it), Secure under TLS, `Path=/`. Expiry is
//! decided here, from the sign-in time, whatever the cookie's Max-Age says; an expired session
//! is removed the first time it is seen. A restart forgets every session (users sign in again).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::s3call::Creds;

/// The session cookie's name.
pub const COOKIE: &str = "coffer_session";

/// Most sessions kept at once; beyond it the oldest are dropped (each needs a valid sign-in, so
/// only users can fill it).
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
pub struct Session {
    /// The user's keys, for signing its S3 requests.
    pub creds: Creds,
    /// The token every change must carry ([`super::csrf`]).
    pub csrf: String,
    expires: Instant,
}

impl Session {
    /// The access key of the signed-in user.
    pub fn user(&self) -> &str {
        self.creds.access_key()
    }
}

/// The sessions of this process.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    lifetime: Duration,
}

/// 32 random bytes, hex: session ids and tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("the system CSPRNG is available");
    hex::encode(b)
}

impl Sessions {
    /// Sessions that last `lifetime` from sign-in.
    pub fn new(lifetime: Duration) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session for `creds`; returns its id.
    pub fn create(&self, creds: Creds) -> String {
        let now = Instant::now();
        let id = random_token();
        let session = Arc::new(Session {
            creds,
            csrf: random_token(),
            expires: now + self.lifetime,
        });
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, s| s.expires > now);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            map.remove(&oldest);
        }
        map.insert(id.clone(), session);
        id
    }

    /// The live session with this id; an expired one is removed and not returned.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut map = self.map.lock().expect("sessions lock");
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Signs out.
    pub fn remove(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(id);
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, `Path=/`, Secure under TLS; `max_age`
/// zero deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, tls: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if tls { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Creds {
        Creds::new("user".into(), "secret-key".into())
    }

    #[test]
    fn ids_are_random_and_sessions_expire() {
        let s = Sessions::new(Duration::from_secs(1));
        let a = s.create(creds());
        let b = s.create(creds());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let sa = s.get(&a).unwrap();
        assert_eq!(sa.user(), "user");
        assert_ne!(sa.csrf, s.get(&b).unwrap().csrf);
        std::thread::sleep(Duration::from_millis(1100));
        assert!(s.get(&a).is_none());
        assert!(s.get("nonsense").is_none());
    }

    #[test]
    fn sign_out_removes() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.create(creds());
        s.remove(&a);
        assert!(s.get(&a).is_none());
    }

    #[test]
    fn cookies() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", "a=1; coffer_session=abc".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie(COOKIE, "abc", Duration::from_secs(60), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie(COOKIE, "abc", Duration::ZERO, false).contains("Secure"));
    }
}
