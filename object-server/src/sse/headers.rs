//! The rules that turn a request's SSE headers into an encryption mode.
//!
//! - SSE-C (`x-amz-server-side-encryption-customer-*`) needs TLS, `AES256`, a 32-byte key and its
//!   matching MD5; it cannot be combined with `x-amz-server-side-encryption`.
//! - `x-amz-server-side-encryption: AES256` is SSE-S3, `aws:kms` is SSE-KMS (key id and context).
//! - A PUT without SSE headers takes the bucket's default encryption, else SSE-S3 when
//!   auto-encryption is on, else no encryption. Explicit headers always win.
//! - GET/HEAD accept only SSE-C headers.
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A request's SSE headers were unacceptable. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    /// SSE-C over plain HTTP.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
    )]
    InsecureCustomerKey,
    /// An algorithm other than AES256.
    #[error("The encryption algorithm specified is not valid.")]
    InvalidAlgorithm,
    /// The customer key is not 32 bytes of base64.
    #[error("The secret key was invalid for the specified algorithm.")]
    InvalidCustomerKey,
    /// The key MD5 header does not match the key.
    #[error("The calculated MD5 hash of the key did not match the hash that was provided.")]
    CustomerKeyMd5Mismatch,
    /// Only some of the SSE-C headers were sent.
    #[error(
        "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm, the key and its MD5."
    )]
    IncompleteCustomerKey,
    /// SSE-C together with `x-amz-server-side-encryption`, or KMS parameters without `aws:kms`.
    #[error("Server side encryption headers are in conflict.")]
    Conflict,
    /// An `x-amz-server-side-encryption` value we do not serve.
    #[error("The server side encryption method is not supported.")]
    Unsupported,
    /// `x-amz-server-side-encryption-context` is not base64 of a JSON object of strings.
    #[error("The encryption context is not valid.")]
    InvalidContext,
    /// SSE headers other than SSE-C on GET or HEAD.
    #[error("The encryption parameters are not applicable to this request.")]
    NotApplicable,
}

/// A customer-provided key (SSE-C) with the base64 MD5 the client sent; wiped on drop.
#[derive(Clone)]
pub struct CustomerKey {
    /// The 32 key bytes.
    pub key: Zeroizing<[u8; 32]>,
    /// Base64 MD5 of the key, echoed in responses.
    pub key_md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(..)")
    }
}

/// The encryption a write asked for (or was given by default).
#[derive(Debug, Clone)]
pub enum SseRequest {
    /// Stored as plaintext.
    None,
    /// SSE-S3: the KMS default key.
    S3,
    /// SSE-KMS: a named KMS key (None = the default key) and the caller's extra context.
    Kms {
        /// Key name, `arn:aws:kms:` prefix removed.
        key_id: Option<String>,
        /// Extra context, bound into the KMS data key.
        context: BTreeMap<String, String>,
    },
    /// SSE-C: the customer's key.
    C(CustomerKey),
}

/// A bucket's default encryption (`PutBucketEncryption`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm")]
pub enum BucketDefault {
    /// `AES256`.
    #[serde(rename = "AES256")]
    S3,
    /// `aws:kms` with an optional key id.
    #[serde(rename = "aws:kms")]
    Kms {
        /// Key name.
        key_id: Option<String>,
    },
}

/// A bucket's default encryption as stored: the default and AWS's `BucketKeyEnabled`
/// ([`super::bucket_key`]; absent in files written before it existed: off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// The default mode.
    #[serde(flatten)]
    pub default: BucketDefault,
    /// Whether objects take a bucket key unless their request says otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket_key: bool,
}

/// The SSE header values of a write request.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteHeaders<'a> {
    /// `x-amz-server-side-encryption`.
    pub sse: Option<&'a str>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub kms_key_id: Option<&'a str>,
    /// `x-amz-server-side-encryption-context` (base64 JSON).
    pub kms_context: Option<&'a str>,
    /// `x-amz-server-side-encryption-customer-algorithm`.
    pub c_algorithm: Option<&'a str>,
    /// `x-amz-server-side-encryption-customer-key`.
    pub c_key: Option<&'a str>,
    /// `x-amz-server-side-encryption-customer-key-MD5`.
    pub c_key_md5: Option<&'a str>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key: Option<bool>,
}

/// Strips the `arn:aws:kms:` prefix clients put in front of key names.
pub fn kms_key_name(id: &str) -> &str {
    id.strip_prefix("arn:aws:kms:").unwrap_or(id)
}

/// Parses SSE-C headers (`None` when none are present).
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
    tls: bool,
) -> Result<Option<CustomerKey>, SseError> {
    let (algorithm, key, key_md5) = match (algorithm, key, key_md5) {
        (None, None, None) => return Ok(None),
        (Some(a), Some(k), Some(m)) => (a, k, m),
        _ => return Err(SseError::IncompleteCustomerKey),
    };
    if !tls {
        return Err(SseError::InsecureCustomerKey);
    }
    if algorithm != "AES256" {
        return Err(SseError::InvalidAlgorithm);
    }
    let raw = Zeroizing::new(
        B64.decode(key.trim())
            .map_err(|_| SseError::InvalidCustomerKey)?,
    );
    if raw.len() != 32 {
        return Err(SseError::InvalidCustomerKey);
    }
    let digest = <s3s::crypto::Md5 as s3s::crypto::Checksum>::checksum(&raw);
    if B64.encode(digest.as_ref()) != key_md5.trim() {
        return Err(SseError::CustomerKeyMd5Mismatch);
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&raw);
    Ok(Some(CustomerKey {
        key: k,
        key_md5: key_md5.trim().to_owned(),
    }))
}

fn parse_context(b64: &str) -> Result<BTreeMap<String, String>, SseError> {
    let raw = B64
        .decode(b64.trim())
        .map_err(|_| SseError::InvalidContext)?;
    serde_json::from_slice(&raw).map_err(|_| SseError::InvalidContext)
}

/// Decides the encryption of a write (PUT, CreateMultipartUpload, CopyObject's destination).
pub fn for_write(
    h: &WriteHeaders<'_>,
    tls: bool,
    bucket_default: Option<&BucketDefault>,
    auto_encryption: bool,
) -> Result<SseRequest, SseError> {
    if let Some(ck) = customer_key(h.c_algorithm, h.c_key, h.c_key_md5, tls)? {
        if h.sse.is_some() || h.kms_key_id.is_some() || h.kms_context.is_some() {
            return Err(SseError::Conflict);
        }
        return Ok(SseRequest::C(ck));
    }
    match h.sse {
        Some("AES256") => {
            if h.kms_key_id.is_some() || h.kms_context.is_some() {
                return Err(SseError::Conflict);
            }
            Ok(SseRequest::S3)
        }
        Some("aws:kms") => {
            let context = match h.kms_context {
                Some(c) => parse_context(c)?,
                None => BTreeMap::new(),
            };
            let key_id = h
                .kms_key_id
                .map(|k| kms_key_name(k).to_owned())
                .filter(|k| !k.is_empty());
            Ok(SseRequest::Kms { key_id, context })
        }
        Some(_) => Err(SseError::Unsupported),
        None if h.kms_key_id.is_some() || h.kms_context.is_some() => Err(SseError::Conflict),
        None => Ok(match bucket_default {
            Some(BucketDefault::S3) => SseRequest::S3,
            Some(BucketDefault::Kms { key_id }) => SseRequest::Kms {
                key_id: key_id.clone(),
                context: BTreeMap::new(),
            },
            None if auto_encryption => SseRequest::S3,
            None => SseRequest::None,
        }),
    }
}

/// Checks that a read (GET/HEAD) carries no SSE headers other than SSE-C.
pub fn check_read(headers: &http::HeaderMap) -> Result<(), SseError> {
    for name in [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-context",
    ] {
        if headers.contains_key(name) {
            return Err(SseError::NotApplicable);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_headers() -> (String, String) {
        let key = [9u8; 32];
        let md5 = <s3s::crypto::Md5 as s3s::crypto::Checksum>::checksum(&key);
        (B64.encode(key), B64.encode(md5.as_ref()))
    }

    #[test]
    fn ssec_needs_tls() {
        let (k, m) = key_headers();
        let h = WriteHeaders {
            c_algorithm: Some("AES256"),
            c_key: Some(&k),
            c_key_md5: Some(&m),
            ..Default::default()
        };
        assert_eq!(
            for_write(&h, false, None, false).unwrap_err(),
            SseError::InsecureCustomerKey
        );
        assert!(matches!(
            for_write(&h, true, None, false).unwrap(),
            SseRequest::C(_)
        ));
    }

    #[test]
    fn ssec_validation() {
        let (k, m) = key_headers();
        let bad_md5 = WriteHeaders {
            c_algorithm: Some("AES256"),
            c_key: Some(&k),
            c_key_md5: Some("AAAA"),
            ..Default::default()
        };
        assert_eq!(
            for_write(&bad_md5, true, None, false).unwrap_err(),
            SseError::CustomerKeyMd5Mismatch
        );
        let bad_alg = WriteHeaders {
            c_algorithm: Some("AES128"),
            c_key: Some(&k),
            c_key_md5: Some(&m),
            ..Default::default()
        };
        assert_eq!(
            for_write(&bad_alg, true, None, false).unwrap_err(),
            SseError::InvalidAlgorithm
        );
        let short = B64.encode([1u8; 16]);
        let bad_key = WriteHeaders {
            c_algorithm: Some("AES256"),
            c_key: Some(&short),
            c_key_md5: Some(&m),
            ..Default::default()
        };
        assert_eq!(
            for_write(&bad_key, true, None, false).unwrap_err(),
            SseError::InvalidCustomerKey
        );
        let partial = WriteHeaders {
            c_algorithm: Some("AES256"),
            ..Default::default()
        };
        assert_eq!(
            for_write(&partial, true, None, false).unwrap_err(),
            SseError::IncompleteCustomerKey
        );
        let both = WriteHeaders {
            sse: Some("AES256"),
            c_algorithm: Some("AES256"),
            c_key: Some(&k),
            c_key_md5: Some(&m),
            ..Default::default()
        };
        assert_eq!(
            for_write(&both, true, None, false).unwrap_err(),
            SseError::Conflict
        );
    }

    #[test]
    fn explicit_wins_over_defaults() {
        let h = WriteHeaders {
            sse: Some("aws:kms"),
            kms_key_id: Some("arn:aws:kms:my-key"),
            ..Default::default()
        };
        match for_write(&h, false, Some(&BucketDefault::S3), true).unwrap() {
            SseRequest::Kms { key_id, .. } => assert_eq!(key_id.as_deref(), Some("my-key")),
            other => panic!("{other:?}"),
        }
        let none = WriteHeaders::default();
        assert!(matches!(
            for_write(&none, false, None, false).unwrap(),
            SseRequest::None
        ));
        assert!(matches!(
            for_write(&none, false, None, true).unwrap(),
            SseRequest::S3
        ));
        let d = BucketDefault::Kms {
            key_id: Some("k".into()),
        };
        assert!(matches!(
            for_write(&none, false, Some(&d), true).unwrap(),
            SseRequest::Kms { .. }
        ));
    }

    #[test]
    fn kms_context() {
        let ctx = B64.encode(br#"{"a":"b"}"#);
        let h = WriteHeaders {
            sse: Some("aws:kms"),
            kms_context: Some(&ctx),
            ..Default::default()
        };
        match for_write(&h, false, None, false).unwrap() {
            SseRequest::Kms { context, key_id } => {
                assert_eq!(context.get("a").map(String::as_str), Some("b"));
                assert!(key_id.is_none());
            }
            other => panic!("{other:?}"),
        }
        let bad = WriteHeaders {
            sse: Some("aws:kms"),
            kms_context: Some("bm90IGpzb24="),
            ..Default::default()
        };
        assert_eq!(
            for_write(&bad, false, None, false).unwrap_err(),
            SseError::InvalidContext
        );
        let stray = WriteHeaders {
            kms_key_id: Some("k"),
            ..Default::default()
        };
        assert_eq!(
            for_write(&stray, false, None, false).unwrap_err(),
            SseError::Conflict
        );
        let unsupported = WriteHeaders {
            sse: Some("aws:kms:dsse"),
            ..Default::default()
        };
        assert_eq!(
            for_write(&unsupported, false, None, false).unwrap_err(),
            SseError::Unsupported
        );
    }

    #[test]
    fn reads_refuse_non_ssec_headers() {
        let mut h = http::HeaderMap::new();
        assert!(check_read(&h).is_ok());
        h.insert("x-amz-server-side-encryption", "AES256".parse().unwrap());
        assert_eq!(check_read(&h).unwrap_err(), SseError::NotApplicable);
    }
}
