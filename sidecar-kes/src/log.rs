//! The error and audit log streams (`/v1/log/error`, `/v1/log/audit`): JSON lines
//! fanned out to every subscriber, and mirrored to tracing.

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
    pub response: AuditResponse,
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
pub struct AuditResponse {
    /// HTTP status.
    pub code: u16,
    /// Response time in microseconds.
    pub time: u64,
}

/// An error event, in KES's JSON shape.
#[derive(Serialize)]
pub struct ErrorEvent<'a> {
    /// The message (never contains key material).
    pub message: &'a str,
}
