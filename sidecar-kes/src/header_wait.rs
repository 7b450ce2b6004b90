//! The slowloris defence of an HTTP/1 connection: a client gets [`HEADER_TIMEOUT`] to send the
//! next request head, counted from when the connection became ready for it (the TLS handshake
//! done, or the previous response produced); a connection that waits longer is closed.
//!
//! Why not hyper's `header_read_timeout`: it arms a fresh timer for every request head (a clock
//! read, a boxed sleep, a timer-wheel insert and removal, and an extra poll of the connection).
//! Here a request only stores the time it ended, which the request handler has read anyway, and
//! one watchdog timer per connection wakes up at most once per timeout to look at it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a client may take to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `waiting_since` while a request is being served (its head has arrived).
const BUSY: u64 = u64::MAX;

/// Whether, and since when, a connection has been waiting for a request head.
#[derive(Debug)]
pub struct HeaderWait {
    epoch: Instant,
    /// Nanoseconds since `epoch` at which the wait began, or [`BUSY`].
    waiting_since: AtomicU64,
}

impl HeaderWait {
    /// A connection waiting for its first request head since `now`.
    pub fn new(now: Instant) -> Self {
        HeaderWait {
            epoch: now,
            waiting_since: AtomicU64::new(0),
        }
    }

    /// A request head has arrived: no deadline until the request is done.
    pub fn busy(&self) {
        self.waiting_since.store(BUSY, Ordering::Relaxed);
    }

    /// The request is done at `now`; the wait for the next head begins.
    pub fn waiting(&self, now: Instant) {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.waiting_since
            .store(nanos.min(BUSY - 1), Ordering::Relaxed);
    }

    /// Resolves once the connection has waited `timeout` for a request head: the caller then
    /// closes it. While a request is served it checks again every `timeout`.
    pub async fn expired(&self, timeout: Duration) {
        loop {
            let deadline = match self.waiting_since.load(Ordering::Relaxed) {
                BUSY => Instant::now() + timeout,
                since => self.epoch + Duration::from_nanos(since) + timeout,
            };
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn expires_only_while_waiting_and_never_early() {
        let timeout = Duration::from_millis(100);
        let wait = Arc::new(HeaderWait::new(Instant::now()));
        wait.busy();
        let watchdog = tokio::spawn({
            let wait = wait.clone();
            async move { wait.expired(timeout).await }
        });
        // Serving a request for several timeouts never expires.
        tokio::time::sleep(timeout * 4).await;
        assert!(!watchdog.is_finished());
        // Once the request is done, the next head is due one timeout later, not before.
        let done = Instant::now();
        wait.waiting(done);
        watchdog.await.unwrap();
        assert!(done.elapsed() >= timeout);
    }
}
