//! Typed errors of the KES client, mapped from KES's status codes and texts.

/// An error returned by [`super::KesClient`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// 400 `key already exists`.
    #[error("key already exists")]
    KeyExists,
    /// 404 `key does not exist`.
    #[error("key does not exist")]
    KeyNotFound,
    /// 403: the identity may not call this API.
    #[error("not authorized: insufficient permissions")]
    NotAuthorized,
    /// 400 `decryption failed: ciphertext is not authentic` (wrong key, context or tampered).
    #[error("decryption failed: ciphertext is not authentic")]
    DecryptionFailed,
    /// 502 `key store is sealed`.
    #[error("key store is sealed")]
    Sealed,
    /// Any other error answer of the server.
    #[error("kes: {status}: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// The server's `message` text.
        message: String,
    },
    /// No endpoint could be reached (after retries).
    #[error("kes: network error: {0}")]
    Network(String),
    /// The server answered something that is not the KES API.
    #[error("kes: invalid response: {0}")]
    InvalidResponse(String),
    /// The client configuration is invalid (certificate, key, CA, endpoint).
    #[error("kes: invalid configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Maps a KES error answer (status and message) to a typed error.
    pub fn from_response(status: u16, message: &str) -> Self {
        match (status, message) {
            (400, "key already exists" | "key does already exist") => ClientError::KeyExists,
            (404, "key does not exist") => ClientError::KeyNotFound,
            (403, _) => ClientError::NotAuthorized,
            (400, "decryption failed: ciphertext is not authentic") => {
                ClientError::DecryptionFailed
            }
            (502, "key store is sealed") => ClientError::Sealed,
            _ => ClientError::Api {
                status,
                message: message.to_string(),
            },
        }
    }

    /// Parses an error body: JSON `{"message"}` (or `{"error"}`), or plain text.
    pub fn from_body(status: u16, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            message: String,
            #[serde(default)]
            error: String,
        }
        let message = match serde_json::from_slice::<Body>(body) {
            Ok(b) if !b.error.is_empty() => b.error,
            Ok(b) => b.message,
            Err(_) => String::from_utf8_lossy(body).trim().to_string(),
        };
        Self::from_response(status, &message)
    }

    /// Whether another endpoint (or a later attempt) might succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Network(_) => true,
            ClientError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kes_texts() {
        assert_eq!(
            ClientError::from_body(400, br#"{"message":"key already exists"}"#),
            ClientError::KeyExists
        );
        assert_eq!(
            ClientError::from_body(400, br#"{"message":"key does already exist"}"#),
            ClientError::KeyExists
        );
        assert_eq!(
            ClientError::from_body(404, br#"{"message":"key does not exist"}"#),
            ClientError::KeyNotFound
        );
        assert_eq!(
            ClientError::from_body(403, br#"{"message":"prohibited by policy"}"#),
            ClientError::NotAuthorized
        );
        assert_eq!(
            ClientError::from_body(
                400,
                br#"{"message":"decryption failed: ciphertext is not authentic"}"#
            ),
            ClientError::DecryptionFailed
        );
        assert_eq!(
            ClientError::from_body(502, br#"{"message":"key store is sealed"}"#),
            ClientError::Sealed
        );
        assert_eq!(
            ClientError::from_body(500, b"boom\n"),
            ClientError::Api {
                status: 500,
                message: "boom".into()
            }
        );
        assert_eq!(
            ClientError::from_body(400, br#"{"error":"bad"}"#),
            ClientError::Api {
                status: 400,
                message: "bad".into()
            }
        );
    }

    #[test]
    fn retry_classes() {
        assert!(ClientError::Network("x".into()).is_retryable());
        assert!(
            ClientError::Api {
                status: 503,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!ClientError::KeyNotFound.is_retryable());
        assert!(!ClientError::Sealed.is_retryable());
    }
}
