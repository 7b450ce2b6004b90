//! The key APIs: create, import, describe, list, delete, generate, encrypt, decrypt, hmac.

use super::error::{self, ApiError, cache_error, store_error};
use super::names::{valid_name, valid_pattern};
use super::{Body, Req, Shared, b64, json, ok, parse_body};
use crate::crypto::{Cipher, CryptoError, HmacKey, KeyVersion, SecretKey};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zeroize::Zeroizing;

type Result = std::result::Result<Response<Body>, ApiError>;

fn check_name(name: &str) -> std::result::Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(error::invalid_name("key name", name))
    }
}

fn audit(msg: String) {
    tracing::info!("{msg}");
}

/// The key `req` names, from the cache (fresh as of the request's arrival) or the keystore.
async fn key(s: &Shared, req: &Req<'_>) -> std::result::Result<Arc<KeyVersion>, ApiError> {
    let name = req.resource;
    s.keys.get_at(name, req.received).await.map_err(|e| {
        if !matches!(
            e,
            crate::cache::CacheError::Store(crate::keystore::StoreError::NotFound)
        ) {
            s.log_error(&format!("failed to read key '{name}': {e}"));
        }
        cache_error(&e, "failed to read key")
    })
}

async fn store_new(s: &Shared, name: &str, kv: KeyVersion, what: &str) -> Result {
    s.keys.create(name, &kv).await.map_err(|e| {
        if !matches!(e, crate::keystore::StoreError::Exists) {
            s.log_error(&format!("failed to create key '{name}': {e}"));
        }
        store_error(&e, "failed to create key")
    })?;
    audit(format!("secret key '{name}' {what}"));
    Ok(ok())
}

pub async fn create(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let kv = KeyVersion::generate(s.cipher, req.identity.clone());
    store_new(s, req.resource, kv, "created").await
}

#[derive(Deserialize)]
struct ImportRequest {
    #[serde(with = "b64")]
    key: Zeroizing<Vec<u8>>,
    #[serde(default)]
    cipher: String,
}

/// The key an import request's body carries.
fn imported_key(body: &[u8]) -> std::result::Result<SecretKey, ApiError> {
    let imp: ImportRequest = parse_body(body)?;
    let cipher = Cipher::parse(&imp.cipher).ok_or_else(|| {
        ApiError::msg(
            StatusCode::NOT_ACCEPTABLE,
            format!("algorithm '{}' is not supported", imp.cipher),
        )
    })?;
    SecretKey::new(cipher, &imp.key).map_err(|_| {
        ApiError::msg(
            StatusCode::NOT_ACCEPTABLE,
            format!("invalid key size for '{}'", imp.cipher),
        )
    })
}

pub async fn import(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let key = imported_key(&req.body)?;
    let kv = KeyVersion {
        key,
        hmac: Some(HmacKey::generate()),
        created_at: time::OffsetDateTime::now_utc(),
        created_by: req.identity.clone(),
    };
    store_new(s, req.resource, kv, "created").await
}

pub async fn describe(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let kv = key(s, &req).await?;
    #[derive(Serialize)]
    struct Resp<'a> {
        name: &'a str,
        algorithm: &'a str,
        #[serde(with = "time::serde::rfc3339")]
        created_at: time::OffsetDateTime,
        #[serde(skip_serializing_if = "str::is_empty")]
        created_by: &'a str,
    }
    Ok(json(
        StatusCode::OK,
        &Resp {
            name: req.resource,
            algorithm: kv.key.cipher().as_str(),
            created_at: kv.created_at,
            created_by: kv.created_by.as_str(),
        },
    ))
}

pub async fn list(s: &Shared, req: Req<'_>) -> Result {
    if !valid_pattern(req.resource) {
        return Err(error::invalid_pattern(req.resource));
    }
    let prefix = req.resource.trim_end_matches('*');
    let names = s.keys.list(prefix).await.map_err(|e| {
        s.log_error(&format!("failed to list keys: {e}"));
        store_error(&e, "failed to list keys")
    })?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "names": names })))
}

pub async fn delete(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    s.keys.delete(req.resource).await.map_err(|e| {
        if e != crate::keystore::StoreError::NotFound {
            s.log_error(&format!("failed to delete key '{}': {e}", req.resource));
        }
        store_error(&e, "failed to delete key")
    })?;
    audit(format!("secret key '{}' deleted", req.resource));
    Ok(ok())
}

#[derive(Deserialize, Default)]
struct ContextRequest {
    #[serde(default, with = "b64")]
    context: Zeroizing<Vec<u8>>,
}

/// A generate request's body: MinIO may send none at all.
fn generate_request(body: &[u8]) -> std::result::Result<ContextRequest, ApiError> {
    if body.is_empty() {
        Ok(ContextRequest::default())
    } else {
        parse_body(body)
    }
}

#[derive(Serialize)]
struct GenerateResponse<'a> {
    #[serde(with = "b64")]
    plaintext: &'a [u8],
    #[serde(with = "b64")]
    ciphertext: &'a [u8],
}

pub async fn generate(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let gen_req = generate_request(&req.body)?;
    let kv = key(s, &req).await?;
    let mut dek = Zeroizing::new([0u8; 32]);
    crate::crypto::rand::fill(&mut dek[..]);
    let ciphertext = kv.key.encrypt(&dek[..], &gen_req.context).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to generate encryption key",
        )
    })?;
    Ok(json(
        StatusCode::OK,
        &GenerateResponse {
            plaintext: &dek[..],
            ciphertext: &ciphertext,
        },
    ))
}

#[derive(Deserialize)]
struct EncryptRequest {
    #[serde(with = "b64")]
    plaintext: Zeroizing<Vec<u8>>,
    #[serde(default, with = "b64")]
    context: Zeroizing<Vec<u8>>,
}

pub async fn encrypt(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let enc: EncryptRequest = parse_body(&req.body)?;
    let kv = key(s, &req).await?;
    let ciphertext = kv.key.encrypt(&enc.plaintext, &enc.context).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encrypt plaintext",
        )
    })?;
    #[derive(Serialize)]
    struct Resp<'a> {
        #[serde(with = "b64")]
        ciphertext: &'a [u8],
    }
    Ok(json(
        StatusCode::OK,
        &Resp {
            ciphertext: &ciphertext,
        },
    ))
}

#[derive(Deserialize)]
struct DecryptRequest {
    #[serde(with = "b64")]
    ciphertext: Zeroizing<Vec<u8>>,
    #[serde(default, with = "b64")]
    context: Zeroizing<Vec<u8>>,
}

pub async fn decrypt(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let dec: DecryptRequest = parse_body(&req.body)?;
    let kv = key(s, &req).await?;
    let plaintext = kv
        .key
        .decrypt(&dec.ciphertext, &dec.context)
        .map_err(|e| match e {
            CryptoError::NotAuthentic => error::DECRYPT,
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to decrypt ciphertext",
            ),
        })?;
    #[derive(Serialize)]
    struct Resp<'a> {
        #[serde(with = "b64")]
        plaintext: &'a [u8],
    }
    Ok(json(
        StatusCode::OK,
        &Resp {
            plaintext: &plaintext,
        },
    ))
}

#[derive(Deserialize)]
struct HmacRequest {
    #[serde(with = "b64")]
    message: Zeroizing<Vec<u8>>,
}

pub async fn hmac(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let body: HmacRequest = parse_body(&req.body)?;
    let kv = key(s, &req).await?;
    let Some(h) = &kv.hmac else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key does not support HMAC",
        ));
    };
    #[derive(Serialize)]
    struct Resp {
        #[serde(with = "b64")]
        hmac: Vec<u8>,
    }
    Ok(json(
        StatusCode::OK,
        &Resp {
            hmac: h.sum(&body.message),
        },
    ))
}

/// Runs `body` through what each key route does with its request body once it has the key:
/// the routes' own parsing as a generate, encrypt, decrypt, hmac and import request, then
/// the crypto each route does with it under `key`. Errors are dropped: it exists for the fuzz
/// targets (`sidecar-kes/fuzz`), which look for panics.
#[doc(hidden)]
pub fn exercise_request_body(body: &[u8], key: &SecretKey) {
    if let Ok(r) = generate_request(body) {
        let _ = key.encrypt(&[0u8; 32], &r.context);
    }
    if let Ok(r) = parse_body::<EncryptRequest>(body) {
        let _ = key.encrypt(&r.plaintext, &r.context);
    }
    if let Ok(r) = parse_body::<DecryptRequest>(body) {
        let _ = key.decrypt(&r.ciphertext, &r.context);
    }
    if let Ok(r) = parse_body::<HmacRequest>(body) {
        let _ = HmacKey::new(key.bytes()).map(|h| h.sum(&r.message));
    }
    let _ = imported_key(body);
}
