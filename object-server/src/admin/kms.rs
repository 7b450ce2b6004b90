//! `mc admin kms key status|create|list` (and the KMS status), through the configured KMS, and
//! Coffer's `POST /minio/kms/v1/key/rotate?key-id=` (`kms:RotateKey`, MinIO has none): a new
//! version of the key, where the KMS can rotate (Coffer's sidecar-kes); 501 where it cannot.
use s3s::{Body, S3Error, S3ErrorCode, S3Response, S3Result};
use serde_json::json;

use super::{AdminRoute, Call, json as reply, ok};
use crate::kms::KmsError;

pub(super) fn kms_err(e: KmsError) -> S3Error {
    let (code, status) = match &e {
        KmsError::KeyNotFound => ("XMinioKMSKeyNotFound", 404),
        KmsError::KeyExists => ("XMinioKMSKeyExists", 409),
        KmsError::NotAuthorized(_) => ("XMinioKMSNotAuthorized", 403),
        KmsError::Unsupported(_) => ("NotImplemented", 501),
        _ => ("XMinioKMSUnavailable", 503),
    };
    let mut err = S3Error::with_message(
        code.parse().unwrap_or(S3ErrorCode::InternalError),
        e.to_string(),
    );
    err.set_status_code(http::StatusCode::from_u16(status).expect("valid status"));
    err
}

pub(super) async fn handle(a: &AdminRoute, c: &Call, action: &str) -> S3Result<S3Response<Body>> {
    let kms = a.iam.kms();
    match action {
        "kms:CreateKey" => {
            let id = c.require("key-id")?;
            kms.create_key(id).await.map_err(kms_err)?;
            tracing::info!(key = %id, by = %c.access_key, "KMS key created");
            ok()
        }
        "kms:RotateKey" => {
            let id = c.require("key-id")?;
            let version = kms.rotate_key(id).await.map_err(kms_err)?;
            tracing::info!(key = %id, version, by = %c.access_key, "KMS key rotated");
            reply(&json!({"key-id": id, "version": version}))
        }
        "kms:ListKeys" => {
            let pattern = c.param("pattern").unwrap_or("*");
            // A trailing `*` is a prefix; MinIO's KES patterns are prefixes too.
            let prefix = pattern.trim_end_matches('*');
            let names = kms.list_keys(prefix).await.map_err(kms_err)?;
            let list: Vec<_> = names
                .into_iter()
                .filter(|n| crate::iam::policy::wildcard_match(pattern, n))
                .map(|n| json!({"name": n, "createdAt": "0001-01-01T00:00:00Z", "createdBy": ""}))
                .collect();
            reply(&serde_json::Value::Array(list))
        }
        "kms:KeyStatus" => {
            // As MinIO does: generate a data key and decrypt it again.
            let id = c.param("key-id").unwrap_or(kms.default_key()).to_owned();
            let context = br#"{"coffer":"key-status"}"#;
            let mut status = json!({"key-id": id});
            match kms.generate_key(&id, context).await {
                // Deleted (crypto-shredded) or never made: nothing under it decrypts either,
                // which `mc` would otherwise show as a working decryption.
                Err(KmsError::KeyNotFound) => {
                    status["encryption-error"] = json!(KmsError::KeyNotFound.to_string());
                    status["decryption-error"] = json!(
                        "key does not exist: objects encrypted under it can no longer be read"
                    );
                }
                Err(e) => status["encryption-error"] = json!(e.to_string()),
                Ok(dk) => match kms.decrypt_key(&id, &dk.ciphertext, context).await {
                    Ok(p) if p[..] == dk.plaintext[..] => {}
                    Ok(_) => status["decryption-error"] = json!("the decrypted key differs"),
                    Err(e) => status["decryption-error"] = json!(e.to_string()),
                },
            }
            reply(&status)
        }
        "kms:Status" => {
            let ready = kms.ready().await;
            reply(&json!({
                "name": kms.describe(),
                "defaultKeyID": kms.default_key(),
                "endpoints": {kms.describe(): if ready.is_ok() { "online" } else { "offline" }},
                "state": {"keyStoreReachable": ready.is_ok()},
            }))
        }
        "kms:Version" => reply(&json!({"version": env!("CARGO_PKG_VERSION")})),
        _ => {
            let mut e = S3Error::with_message(
                S3ErrorCode::NotImplemented,
                format!("{} is not implemented by this server", c.route),
            );
            e.set_status_code(http::StatusCode::NOT_IMPLEMENTED);
            Err(e)
        }
    }
}
