//! API errors: a status code and KES's exact message text, sent as `{"message": "..."}`.

use crate::keystore::StoreError;
use http::StatusCode;
use std::borrow::Cow;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `message` text (never contains key material).
    pub message: Cow<'static, str>,
}

impl ApiError {
    /// An error with a fixed text.
    pub const fn new(status: StatusCode, message: &'static str) -> Self {
        ApiError {
            status,
            message: Cow::Borrowed(message),
        }
    }

    /// An error with a formatted text.
    pub fn msg(status: StatusCode, message: String) -> Self {
        ApiError {
            status,
            message: Cow::Owned(message),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "message": self.message })).unwrap_or_default()
    }
}

/// 403 for an identity that may not call the API.
pub const NOT_ALLOWED: ApiError = ApiError::new(
    StatusCode::FORBIDDEN,
    "not authorized: insufficient permissions",
);
/// 404 for a missing key.
pub const KEY_NOT_FOUND: ApiError = ApiError::new(StatusCode::NOT_FOUND, "key does not exist");
/// 400 for creating a key that exists.
pub const KEY_EXISTS: ApiError = ApiError::new(StatusCode::BAD_REQUEST, "key already exists");
/// 400 for a ciphertext that does not authenticate.
pub const DECRYPT: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "decryption failed: ciphertext is not authentic",
);
/// 502 while Vault is sealed.
pub const SEALED: ApiError = ApiError::new(StatusCode::BAD_GATEWAY, "key store is sealed");
/// 400 for a body that is not the expected JSON (or too large).
pub const INVALID_BODY: ApiError = ApiError::new(StatusCode::BAD_REQUEST, "invalid request body");
/// 404 for a missing policy.
pub const POLICY_NOT_FOUND: ApiError =
    ApiError::new(StatusCode::NOT_FOUND, "policy does not exist");
/// 404 for a missing identity.
pub const IDENTITY_NOT_FOUND: ApiError =
    ApiError::new(StatusCode::NOT_FOUND, "identity does not exist");

/// A keystore error as the API reports it; `fallback` is KES's text for other failures
/// (e.g. `failed to read key`).
pub fn store_error(e: &StoreError, fallback: &'static str) -> ApiError {
    match e {
        StoreError::Exists => KEY_EXISTS,
        StoreError::NotFound => KEY_NOT_FOUND,
        StoreError::Sealed => SEALED,
        StoreError::InvalidName => ApiError::new(StatusCode::BAD_REQUEST, "key name is invalid"),
        StoreError::Changed => ApiError::new(
            StatusCode::CONFLICT,
            "key was changed concurrently: try again",
        ),
        StoreError::Unreachable(_) | StoreError::Other(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, fallback)
        }
    }
}

/// 400 for an invalid key name, with KES's text.
pub fn invalid_name(kind: &str, name: &str) -> ApiError {
    ApiError::msg(
        StatusCode::BAD_REQUEST,
        format!("{kind} '{name}' is empty, too long or contains invalid characters"),
    )
}

/// 400 for an invalid listing pattern, with KES's text.
pub fn invalid_pattern(pattern: &str) -> ApiError {
    ApiError::msg(
        StatusCode::BAD_REQUEST,
        format!("listing pattern '{pattern}' is empty, too long or is invalid"),
    )
}
