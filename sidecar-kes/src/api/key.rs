//! The key APIs: create, import, describe, list, delete, generate, encrypt, decrypt, hmac;
//! and Coffer's own key-version APIs, rotate and info (see [`super`]'s route table).

use super::error::{self, ApiError, store_error};
use super::names::{valid_name, valid_pattern};
use super::{Body, Req, Shared, UsedVersion, b64, json, ok, parse_body};
use crate::crypto::{Cipher, HmacKey, SecretKey};
use crate::keys::KeyError;
use crate::keystore::StoreError;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
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

/// The key version a ciphertext names: Coffer's version tag, or Transit's `vault:vN:` prefix.
fn named_version(ciphertext: &[u8]) -> Option<u32> {
    crate::crypto::ciphertext::tagged_version(ciphertext).or_else(|| {
        let rest = ciphertext.strip_prefix(b"vault:v")?;
        let end = rest.iter().position(|&b| b == b':')?;
        std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
    })
}

/// `resp` carrying the key version used, for the audit event (see [`super::UsedVersion`]).
fn used(mut resp: Response<Body>, version: Option<u32>) -> Response<Body> {
    if let Some(v) = version {
        resp.extensions_mut().insert(UsedVersion(v));
    }
    resp
}

/// A key operation's error as the API reports it. Failures of the keystore (not a missing key)
/// are logged; `failed` is KES's text for a failure of the operation itself.
fn key_error(s: &Shared, name: &str, e: KeyError, failed: &'static str) -> ApiError {
    match e {
        KeyError::Store(StoreError::NotFound) => error::KEY_NOT_FOUND,
        KeyError::Store(e) => {
            s.log_error(&format!("failed to read key '{name}': {e}"));
            store_error(&e, "failed to read key")
        }
        KeyError::Invalid(_) => {
            s.log_error(&format!("failed to read key '{name}': {e}"));
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "failed to read key")
        }
        KeyError::NotAuthentic => error::DECRYPT,
        KeyError::Crypto => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, failed),
        KeyError::NoHmac => ApiError::new(StatusCode::CONFLICT, "key does not support HMAC"),
        KeyError::Unsupported(text) => ApiError::new(StatusCode::NOT_IMPLEMENTED, text),
        KeyError::Version(v) => ApiError::msg(StatusCode::BAD_REQUEST, v.to_string()),
    }
}

/// The answer to a create or import.
fn created(s: &Shared, name: &str, r: std::result::Result<(), StoreError>) -> Result {
    r.map_err(|e| {
        if !matches!(e, StoreError::Exists) {
            s.log_error(&format!("failed to create key '{name}': {e}"));
        }
        store_error(&e, "failed to create key")
    })?;
    audit(format!("secret key '{name}' created"));
    Ok(used(ok(), Some(1)))
}

pub async fn create(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let r = s.keys.create(req.resource, s.cipher, req.identity).await;
    created(s, req.resource, r)
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
    match s.keys.import(req.resource, key, req.identity).await {
        Ok(()) => created(s, req.resource, Ok(())),
        Err(KeyError::Store(e)) => created(s, req.resource, Err(e)),
        Err(e) => Err(key_error(s, req.resource, e, "failed to create key")),
    }
}

pub async fn describe(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let info = s
        .keys
        .info(req.resource, req.received)
        .await
        .map_err(|e| key_error(s, req.resource, e, "failed to read key"))?;
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
            algorithm: &info.algorithm,
            created_at: info.created_at,
            created_by: info.created_by.as_str(),
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
        if e != StoreError::NotFound {
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
    let dek = s
        .keys
        .generate(req.resource, &gen_req.context, req.received)
        .await
        .map_err(|e| key_error(s, req.resource, e, "failed to generate encryption key"))?;
    // Our own ciphertexts name their version unless it is version 1.
    let version = named_version(&dek.ciphertext).unwrap_or(1);
    Ok(used(
        json(
            StatusCode::OK,
            &GenerateResponse {
                plaintext: &dek.plaintext[..],
                ciphertext: &dek.ciphertext,
            },
        ),
        Some(version),
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
    let ciphertext = s
        .keys
        .encrypt(req.resource, &enc.plaintext, &enc.context, req.received)
        .await
        .map_err(|e| key_error(s, req.resource, e, "failed to encrypt plaintext"))?;
    #[derive(Serialize)]
    struct Resp<'a> {
        #[serde(with = "b64")]
        ciphertext: &'a [u8],
    }
    let version = named_version(&ciphertext).unwrap_or(1);
    Ok(used(
        json(
            StatusCode::OK,
            &Resp {
                ciphertext: &ciphertext,
            },
        ),
        Some(version),
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
    let plaintext = s
        .keys
        .decrypt(req.resource, &dec.ciphertext, &dec.context, req.received)
        .await
        .map_err(|e| key_error(s, req.resource, e, "failed to decrypt ciphertext"))?;
    #[derive(Serialize)]
    struct Resp<'a> {
        #[serde(with = "b64")]
        plaintext: &'a [u8],
    }
    Ok(used(
        json(
            StatusCode::OK,
            &Resp {
                plaintext: &plaintext,
            },
        ),
        named_version(&dec.ciphertext),
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
    let hmac = s
        .keys
        .hmac(req.resource, &body.message, req.received)
        .await
        .map_err(|e| key_error(s, req.resource, e, "failed to compute HMAC"))?;
    #[derive(Serialize)]
    struct Resp {
        #[serde(with = "b64")]
        hmac: Vec<u8>,
    }
    Ok(json(StatusCode::OK, &Resp { hmac }))
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Add a version (default); `false` with `min_version` only moves the minimum.
    #[serde(default = "yes")]
    add_version: bool,
    #[serde(default)]
    min_version: Option<u32>,
}

fn yes() -> bool {
    true
}

/// `/v1/coffer/key/rotate/<name>` `{add_version?, min_version?}` (an empty body adds a
/// version): the key's versions afterwards.
pub async fn rotate(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let r: RotateRequest = if req.body.trim_ascii().is_empty() {
        RotateRequest {
            add_version: true,
            min_version: None,
        }
    } else {
        parse_body(&req.body)?
    };
    if !r.add_version && r.min_version.is_none() {
        return Err(error::INVALID_BODY);
    }
    let rotation = crate::keys::Rotation {
        add_version: r.add_version,
        min_version: r.min_version,
    };
    let versions = s
        .keys
        .rotate(req.resource, rotation, req.identity)
        .await
        .map_err(|e| match e {
            KeyError::Store(e @ StoreError::Changed) => store_error(&e, "failed to rotate key"),
            e => key_error(s, req.resource, e, "failed to rotate key"),
        })?;
    audit(format!(
        "secret key '{}' rotated: newest version {}, minimum version {}",
        req.resource, versions.newest, versions.min_version
    ));
    Ok(used(json(StatusCode::OK, &versions), Some(versions.newest)))
}

/// `/v1/coffer/key/info/<name>`: every version with its creation time, the newest and the
/// minimum version.
pub async fn info(s: &Shared, req: Req<'_>) -> Result {
    check_name(req.resource)?;
    let versions = s
        .keys
        .versions(req.resource)
        .await
        .map_err(|e| key_error(s, req.resource, e, "failed to read key"))?;
    Ok(used(json(StatusCode::OK, &versions), Some(versions.newest)))
}
