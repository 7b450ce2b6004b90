//! Encryption: choosing and sealing an object's key, opening it again, the response headers of
//! each SSE mode, and Put/Get/DeleteBucketEncryption.
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::{CofferS3, kms_err, sse_err, storage_err};
use crate::kms::KmsError;
use crate::kms::object_context;
use crate::sse::bucket_key::{self, BucketKeyError};
use crate::sse::headers::{
    BucketDefault, BucketEncryption, CustomerKey, WriteHeaders, customer_key, for_write,
};
use crate::sse::{ObjectKey, SseRequest, seal};
use crate::storage::{EncryptionMeta, SseMode, StorageError};

/// The SSE response headers of an object.
#[derive(Debug, Default, Clone)]
pub(crate) struct SseResponse {
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub c_algorithm: Option<String>,
    pub c_key_md5: Option<String>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`: `true` for an object under a bucket
    /// key, absent otherwise.
    pub bucket_key: Option<bool>,
}

impl SseResponse {
    pub(crate) fn of(enc: Option<&EncryptionMeta>, customer: Option<&CustomerKey>) -> Self {
        match enc.map(|e| e.mode) {
            None => Self::default(),
            Some(SseMode::S3) => Self {
                sse: Some(ServerSideEncryption::from_static(
                    ServerSideEncryption::AES256,
                )),
                bucket_key: bucket_key_flag(enc),
                ..Default::default()
            },
            Some(SseMode::Kms) => Self {
                sse: Some(ServerSideEncryption::from_static(
                    ServerSideEncryption::AWS_KMS,
                )),
                kms_key_id: enc
                    .and_then(|e| e.kms_key.as_ref())
                    .map(|k| format!("arn:aws:kms:{k}")),
                bucket_key: bucket_key_flag(enc),
                ..Default::default()
            },
            Some(SseMode::C) => Self {
                c_algorithm: Some("AES256".to_owned()),
                c_key_md5: customer.map(|c| c.key_md5.clone()),
                ..Default::default()
            },
        }
    }
}

fn bucket_key_flag(enc: Option<&EncryptionMeta>) -> Option<bool> {
    enc.is_some_and(|e| e.bucket_key.is_some()).then_some(true)
}

/// A bucket key that could not be had, as the S3 error (logged: it names the bucket key's
/// trouble, never key material).
fn bucket_key_err(bucket: &str, e: BucketKeyError) -> S3Error {
    match e {
        BucketKeyError::Kms(KmsError::DecryptionFailed) => {
            tracing::error!(%bucket, "a bucket key record does not decrypt: changed, moved or not this KMS's");
            s3_error!(
                InternalError,
                "The object's bucket key could not be decrypted."
            )
        }
        BucketKeyError::Kms(k) => kms_err(k),
        BucketKeyError::Missing => {
            tracing::error!(%bucket, "an object names a bucket key record that is not there");
            s3_error!(InternalError, "The object's bucket key is missing.")
        }
        BucketKeyError::Damaged => {
            tracing::error!(%bucket, "a bucket key record is damaged");
            s3_error!(InternalError, "The object's bucket key is damaged.")
        }
        BucketKeyError::Storage(e) => storage_err(e),
    }
}

/// The bucket configuration file of the default encryption.
const ENCRYPTION_CONFIG: &str = "encryption";

/// A failed read of `.encryption.json` as the S3 error. Damage is an error, never "no default".
fn default_read_err(bucket: &str, e: StorageError) -> S3Error {
    if matches!(e, StorageError::Damaged) {
        tracing::error!(%bucket, "the bucket's default encryption file does not parse; writes refused");
        return s3_error!(
            InternalError,
            "We encountered an internal error. Please try again."
        );
    }
    storage_err(e)
}

impl CofferS3 {
    /// The bucket's default encryption, if set. A file that is there but does not parse fails
    /// the request (500, logged): taking it for "no default" would store plaintext in a bucket
    /// whose owner asked for encryption.
    pub(crate) async fn bucket_default(&self, bucket: &str) -> S3Result<Option<BucketEncryption>> {
        let raw = self
            .engine()
            .read_bucket_config(bucket, ENCRYPTION_CONFIG)
            .await
            .map_err(|e| default_read_err(bucket, e))?;
        raw.map(|r| serde_json::from_slice(&r))
            .transpose()
            .map_err(|_| default_read_err(bucket, StorageError::Damaged))
    }

    /// Decides a write's encryption from its headers, the bucket default and auto-encryption,
    /// and whether it asks for a bucket key: the request's
    /// `x-amz-server-side-encryption-bucket-key-enabled`, else the bucket default's
    /// `BucketKeyEnabled` (as AWS decides).
    pub(crate) async fn write_mode(
        &self,
        bucket: &str,
        h: &WriteHeaders<'_>,
    ) -> S3Result<(SseRequest, bool)> {
        let conf = self.bucket_default(bucket).await?;
        let mode = for_write(
            h,
            self.tls,
            conf.as_ref().map(|c| &c.default),
            self.auto_encryption,
        )
        .map_err(sse_err)?;
        let bucket_key = h
            .bucket_key
            .unwrap_or_else(|| conf.is_some_and(|c| c.bucket_key));
        Ok((mode, bucket_key))
    }

    /// A fresh object key for `bucket/key`, sealed as `mode` asks (`None` for plaintext). With
    /// `bucket_key`, an SSE-S3 or SSE-KMS object key is sealed under the bucket key
    /// ([`bucket_key`]) instead of a data key of its own; not when the client gave an SSE-KMS
    /// context of its own, which is bound into the object's own data key.
    pub(crate) async fn new_object_key(
        &self,
        mode: &SseRequest,
        bucket_key: bool,
        bucket: &str,
        key: &str,
    ) -> S3Result<Option<(ObjectKey, EncryptionMeta)>> {
        let ok = ObjectKey::generate();
        let (sse_mode, kms_name, context) = match mode {
            SseRequest::None => return Ok(None),
            SseRequest::C(ck) => {
                let sealed = seal::seal(&ck.key[..], SseMode::C.domain(), bucket, key, &ok);
                let meta = EncryptionMeta {
                    mode: SseMode::C,
                    sealed_key: sealed,
                    kms_key: None,
                    kms_ciphertext: None,
                    kms_context: BTreeMap::new(),
                    bucket_key: None,
                };
                return Ok(Some((ok, meta)));
            }
            SseRequest::S3 => (
                SseMode::S3,
                self.kms.default_key().to_owned(),
                BTreeMap::new(),
            ),
            SseRequest::Kms { key_id, context } => (
                SseMode::Kms,
                key_id
                    .clone()
                    .unwrap_or_else(|| self.kms.default_key().to_owned()),
                context.clone(),
            ),
        };
        if bucket_key && context.is_empty() {
            let bk = self
                .bucket_keys
                .current(self.kms.as_ref(), self.engine(), bucket, &kms_name)
                .await
                .map_err(|e| bucket_key_err(bucket, e))?;
            let sealed = seal::seal(bk.kek(), &bucket_key::domain(sse_mode), bucket, key, &ok);
            let meta = EncryptionMeta {
                mode: sse_mode,
                sealed_key: sealed,
                kms_key: Some(kms_name),
                kms_ciphertext: None,
                kms_context: context,
                bucket_key: Some(bk.id().to_owned()),
            };
            return Ok(Some((ok, meta)));
        }
        let ctx = object_context(bucket, key, &context);
        let dk = self
            .kms
            .generate_key(&kms_name, &ctx)
            .await
            .map_err(kms_err)?;
        let sealed = seal::seal(&dk.plaintext, sse_mode.domain(), bucket, key, &ok);
        let meta = EncryptionMeta {
            mode: sse_mode,
            sealed_key: sealed,
            kms_key: Some(kms_name),
            kms_ciphertext: Some(B64.encode(&dk.ciphertext)),
            kms_context: context,
            bucket_key: None,
        };
        Ok(Some((ok, meta)))
    }

    /// Opens the object key of `bucket/key`. SSE-C objects need the customer's key; other objects
    /// refuse one.
    pub(crate) async fn open_object_key(
        &self,
        enc: &EncryptionMeta,
        bucket: &str,
        key: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<ObjectKey> {
        match (enc.mode, customer) {
            (SseMode::C, None) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
                ));
            }
            (SseMode::C, Some(ck)) => {
                return seal::unseal(
                    &ck.key[..],
                    SseMode::C.domain(),
                    bucket,
                    key,
                    &enc.sealed_key,
                )
                .map_err(|_| {
                    s3_error!(
                        AccessDenied,
                        "The provided customer key does not match the object's key."
                    )
                });
            }
            (_, Some(_)) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "The encryption parameters are not applicable to this object."
                ));
            }
            _ => {}
        }
        if let Some(id) = &enc.bucket_key {
            let bk = self
                .bucket_keys
                .open(self.kms.as_ref(), self.engine(), bucket, id)
                .await
                .map_err(|e| bucket_key_err(bucket, e))?;
            return seal::unseal(
                bk.kek(),
                &bucket_key::domain(enc.mode),
                bucket,
                key,
                &enc.sealed_key,
            )
            .map_err(|_| s3_error!(InternalError, "The object key could not be unsealed."));
        }
        let (Some(name), Some(ct)) = (&enc.kms_key, &enc.kms_ciphertext) else {
            return Err(s3_error!(
                InternalError,
                "The object's key metadata is incomplete."
            ));
        };
        let ct = B64
            .decode(ct)
            .map_err(|_| s3_error!(InternalError, "The object's key metadata is damaged."))?;
        let ctx = object_context(bucket, key, &enc.kms_context);
        let dk = self
            .kms
            .decrypt_key(name, &ct, &ctx)
            .await
            .map_err(kms_err)?;
        seal::unseal(&dk, enc.mode.domain(), bucket, key, &enc.sealed_key)
            .map_err(|_| s3_error!(InternalError, "The object key could not be unsealed."))
    }

    /// Parses SSE-C headers of a read or of a copy source.
    pub(crate) fn read_customer_key(
        &self,
        alg: Option<&str>,
        key: Option<&str>,
        md5: Option<&str>,
    ) -> S3Result<Option<CustomerKey>> {
        customer_key(alg, key, md5, self.tls).map_err(sse_err)
    }

    pub(crate) async fn do_put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let input = req.input;
        let rule = input
            .server_side_encryption_configuration
            .rules
            .first()
            .and_then(|r| r.apply_server_side_encryption_by_default.as_ref());
        let Some(rule) = rule else {
            return Err(s3_error!(
                MalformedXML,
                "The encryption configuration has no default rule."
            ));
        };
        let d = match rule.sse_algorithm.as_str() {
            ServerSideEncryption::AES256 => BucketDefault::S3,
            ServerSideEncryption::AWS_KMS => BucketDefault::Kms {
                key_id: rule
                    .kms_master_key_id
                    .as_deref()
                    .map(|k| crate::sse::headers::kms_key_name(k).to_owned()),
            },
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "The server side encryption algorithm is not supported."
                ));
            }
        };
        if let BucketDefault::Kms { key_id: Some(k) } = &d {
            // Fail now, not at the first PUT, if the key does not exist.
            if let Err(e) = self.kms.generate_key(k, b"{}").await {
                return Err(kms_err(e));
            }
        }
        let conf = BucketEncryption {
            default: d,
            bucket_key: input
                .server_side_encryption_configuration
                .rules
                .first()
                .and_then(|r| r.bucket_key_enabled)
                .unwrap_or(false),
        };
        let doc = serde_json::to_vec(&conf).expect("configuration values serialize");
        self.engine()
            .write_bucket_config(&input.bucket, ENCRYPTION_CONFIG, Some(doc))
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(crate) async fn do_get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let Some(conf) = self.bucket_default(&req.input.bucket).await? else {
            return Err(s3_error!(
                ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found"
            ));
        };
        let (alg, key) = match conf.default {
            BucketDefault::S3 => (ServerSideEncryption::AES256, None),
            BucketDefault::Kms { key_id } => (
                ServerSideEncryption::AWS_KMS,
                key_id.map(|k| format!("arn:aws:kms:{k}")),
            ),
        };
        let rule = ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: key,
                sse_algorithm: ServerSideEncryption::from_static(alg),
            }),
            bucket_key_enabled: Some(conf.bucket_key),
        };
        let conf = ServerSideEncryptionConfiguration { rules: vec![rule] };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(conf),
        }))
    }

    pub(crate) async fn do_delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.engine()
            .write_bucket_config(&req.input.bucket, ENCRYPTION_CONFIG, None)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_damaged_default_is_an_error_not_plaintext() {
        let d = tempfile::tempdir().unwrap();
        let store = crate::storage::Store::open(d.path()).unwrap();
        store.create_bucket("b").await.unwrap();
        let read = || store.read_bucket_json::<BucketDefault>("b", ENCRYPTION_CONFIG);
        assert!(read().await.unwrap().is_none());
        store
            .write_bucket_json("b", ENCRYPTION_CONFIG, &BucketDefault::S3)
            .await
            .unwrap();
        assert!(matches!(read().await.unwrap(), Some(BucketDefault::S3)));
        let s3 = serde_json::to_vec(&BucketDefault::S3).unwrap();
        for damaged in [
            &b""[..],
            b"{",
            b"null",
            b"{\"mode\":\"rot13\"}",
            &s3[..s3.len() - 1],
        ] {
            store
                .write_bucket_config("b", ENCRYPTION_CONFIG, Some(damaged.to_vec()))
                .await
                .unwrap();
            let e = read().await.expect_err("damaged");
            assert!(matches!(e, StorageError::Damaged));
            let e = default_read_err("b", e);
            assert_eq!(e.code(), &s3s::S3ErrorCode::InternalError);
        }
    }
}
