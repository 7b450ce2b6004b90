//! The error and audit log streams (`/v1/log/error`, `/v1/log/audit`): JSON lines
//! fanned out to every subscriber, and mirrored to tracing; and the audit log that
//! `log.audit` writes to standard output or a file.
//!
//! **What an audit event holds.** KES's shape (time, the request's path, client IP and
//! identity, the response's status and duration) plus, for a key operation, `key`: the
//! operation, the key's name and the key version used where known (create, import, rotate,
//! info, generate, encrypt; decrypt when the ciphertext names it), and `response.error`, the
//! API's error text, for a failure. Never a request's or response's body: no key material, no
//! plaintext, no ciphertext, no context. Error texts never hold key material either (see
//! [`crate::api::error`]). Every API call but `/version` and the log streams is audited.

use serde::Serialize;
use tokio::sync::broadcast;

/// A fan-out of JSON lines.
#[derive(Clone)]
pub struct LogStream {
    tx: broadcast::Sender<String>,
}

impl Default for LogStream {
    fn default() -> Self {
        LogStream {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl LogStream {
    /// Sends one event as a JSON line to every subscriber.
    pub fn send<T: Serialize>(&self, event: &T) {
        self.send_with(|| event);
    }

    /// Sends the event `make` builds to every subscriber; without one, `make` is not called
    /// (an audit event's timestamp is a clock read per request).
    pub fn send_with<T: Serialize>(&self, make: impl FnOnce() -> T) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        if let Ok(mut line) = serde_json::to_string(&make()) {
            line.push('\n');
            let _ = self.tx.send(line);
        }
    }

    /// Sends one line (ending in a newline) to every subscriber.
    pub fn send_line(&self, line: String) {
        if self.has_subscribers() {
            let _ = self.tx.send(line);
        }
    }

    /// Whether anyone listens.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A new subscriber.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }
}

/// An audit event, in KES's JSON shape.
#[derive(Serialize)]
pub struct AuditEvent<'a> {
    /// RFC 3339 time of the response.
    #[serde(with = "time::serde::rfc3339")]
    pub time: time::OffsetDateTime,
    /// The request.
    pub request: AuditRequest<'a>,
    /// The response.
    pub response: AuditResponse<'a>,
    /// The key operation, for the key APIs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<AuditKey<'a>>,
}

/// The key part of an audit event.
#[derive(Serialize)]
pub struct AuditKey<'a> {
    /// `create`, `import`, `describe`, `delete`, `generate`, `encrypt`, `decrypt`, `hmac`,
    /// `rotate` or `info`.
    pub operation: &'static str,
    /// The key's name (as the request gave it).
    pub name: &'a str,
    /// The key version used, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// The request part of an audit event.
#[derive(Serialize)]
pub struct AuditRequest<'a> {
    /// Client IP.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub ip: &'a str,
    /// API path.
    pub path: &'a str,
    /// Client identity.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub identity: &'a str,
}

/// The response part of an audit event.
#[derive(Serialize)]
pub struct AuditResponse<'a> {
    /// HTTP status.
    pub code: u16,
    /// Response time in microseconds.
    pub time: u64,
    /// The error text of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// Where `log.audit` writes audit events, one JSON line each.
pub struct AuditLog {
    out: std::sync::Mutex<Box<dyn std::io::Write + Send>>,
}

impl AuditLog {
    /// Standard output (`log.audit: on`, as KES).
    pub fn stdout() -> Self {
        AuditLog {
            out: std::sync::Mutex::new(Box::new(std::io::stdout())),
        }
    }

    /// Appends to `path` (`log.audit: <path>`), created with mode 0600 if missing.
    pub fn file(path: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(AuditLog {
            out: std::sync::Mutex::new(Box::new(file)),
        })
    }

    /// Writes one line with a single write (appends from several threads do not interleave);
    /// a failed write is reported on the error log, never dropped silently.
    pub fn write(&self, line: &str) {
        let mut out = self.out.lock().expect("lock");
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            tracing::error!("audit log: write failed: {e}");
        }
    }
}

/// An error event, in KES's JSON shape.
#[derive(Serialize)]
pub struct ErrorEvent<'a> {
    /// The message (never contains key material).
    pub message: &'a str,
}
