//! Sign-in throttling per address: after [`SignInLimits::max_failures`] failed sign-ins from one
//! address within [`SignInLimits::window`], that address may not try again until
//! [`SignInLimits::lockout`] has passed; a successful sign-in clears its count. Every attempt
//! is counted as a failure when it starts and forgiven when it succeeds, so attempts sent in
//! parallel cannot all slip in before the first failure is recorded.
//!
//! An IPv6 address counts by its /64 (one host usually holds a whole /64). Behind a proxy every
//! browser has the proxy's address: then the proxy shares one count. The table is bounded; when
//! full, the entries that neither lock out nor count any more are dropped first.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses remembered at once.
const MAX_ADDRESSES: usize = 10_000;

/// When failed sign-ins lock an address out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failures allowed within the window.
    pub max_failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long an address is refused after too many failures.
    pub lockout: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Failed sign-ins per address.
pub struct SignInThrottle {
    limits: SignInLimits,
    map: Mutex<HashMap<IpAddr, Entry>>,
}

/// The address a count is kept under.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl SignInThrottle {
    /// A throttle with these limits.
    pub fn new(limits: SignInLimits) -> Self {
        SignInThrottle {
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self, e: &Entry, now: Instant) -> bool {
        e.locked_until.is_some_and(|t| t > now) || now.duration_since(e.first) < self.limits.window
    }

    /// Starts an attempt from `ip`, counted as a failure until [`Self::succeeded`]; `Err` is how
    /// long the address is still locked out (the attempt must not be made).
    pub fn begin(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let key = bucket(ip);
        let mut map = self.map.lock().expect("throttle lock");
        if !map.contains_key(&key) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, e| self.live(e, now));
            if map.len() >= MAX_ADDRESSES
                && let Some(oldest) = map
                    .iter()
                    .filter(|(_, e)| e.locked_until.is_none())
                    .min_by_key(|(_, e)| e.first)
                    .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let e = map.entry(key).or_insert(Entry {
            failures: 0,
            first: now,
            locked_until: None,
        });
        if let Some(until) = e.locked_until {
            if until > now {
                return Err(until - now);
            }
            *e = Entry {
                failures: 0,
                first: now,
                locked_until: None,
            };
        }
        if now.duration_since(e.first) >= self.limits.window {
            e.failures = 0;
            e.first = now;
        }
        if e.failures >= self.limits.max_failures {
            let until = now + self.limits.lockout;
            e.locked_until = Some(until);
            return Err(self.limits.lockout);
        }
        e.failures += 1;
        Ok(())
    }

    /// The attempt from `ip` succeeded: its count is cleared.
    pub fn succeeded(&self, ip: IpAddr) {
        self.map.lock().expect("throttle lock").remove(&bucket(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(lockout_ms: u64) -> SignInLimits {
        SignInLimits {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_millis(lockout_ms),
        }
    }

    #[test]
    fn too_many_failures_lock_the_address_out_for_a_while() {
        let t = SignInThrottle::new(limits(200));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            t.begin(a).unwrap();
        }
        let left = t.begin(a).unwrap_err();
        assert!(left <= Duration::from_millis(200));
        assert!(t.begin(a).is_err(), "still locked");
        t.begin(b).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        t.begin(a).unwrap();
    }

    #[test]
    fn a_success_clears_and_ipv6_counts_by_its_64() {
        let t = SignInThrottle::new(limits(10_000));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        t.begin(a).unwrap();
        t.begin(a).unwrap();
        t.succeeded(a);
        for _ in 0..3 {
            t.begin(same_64).unwrap();
        }
        assert!(t.begin(a).is_err());
        assert!(t.begin("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }
}
