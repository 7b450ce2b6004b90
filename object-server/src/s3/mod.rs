//! The S3 API: one implementation of s3s's [`S3`] trait, split by family of operations
//! (buckets, put, get, list, multipart, copy, encryption, versioning, tagging, object lock, lifecycle) like
//! Garage's `src/api/s3/`.
use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::kms::{Kms, KmsError};
use crate::sse::SseError;
use crate::storage::engine::Storage;
use crate::storage::{StorageError, Store};

mod access;
mod attributes;
mod body;
mod bucket;
pub(crate) mod checksum;
mod copy;
pub(crate) mod cors;
mod delete_objects;
mod encryption;
mod get;
pub(crate) mod lifecycle;
pub(crate) mod list;
pub(crate) mod lock;
mod multipart;
mod opened;
pub mod post;
pub(crate) mod put;
mod read_buffers;
mod remote_body;
pub(crate) mod tagging;
mod versioning;

/// The pure checks of configuration bodies (lifecycle, object lock, tagging) that the handlers
/// apply before storing anything; public for the fuzz targets (`fuzz/`).
pub mod checks {
    pub use super::lifecycle::{lifecycle_rules_of, validate_lifecycle};
    pub use super::lock::{LockConfig, validate_lock_configuration};

    /// Checks a PutObjectTagging (`bucket` false) or PutBucketTagging body as the handlers do.
    pub fn validate_tagging(
        tagging: s3s::dto::Tagging,
        bucket: bool,
    ) -> s3s::S3Result<std::collections::BTreeMap<String, String>> {
        let max = if bucket { 50 } else { 10 };
        let pairs = tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        super::tagging::validate(pairs, max)
    }
}

/// The object server's S3 implementation.
pub struct CofferS3 {
    /// The data directory; in gateway mode only the process's state (IAM, staged temp files).
    pub(crate) store: Store,
    /// The S3 backend that holds every bucket and object in gateway mode (`--backend`); `None`
    /// when `store` is the engine.
    pub(crate) gateway: Option<Arc<dyn Storage>>,
    pub(crate) kms: Arc<dyn Kms>,
    pub(crate) auto_encryption: bool,
    pub(crate) tls: bool,
    /// This process's S3 Bucket Keys.
    pub(crate) bucket_keys: crate::sse::bucket_key::BucketKeys,
}

impl CofferS3 {
    /// Serves `store`, encrypting through `kms`; `tls` says whether clients reach us over TLS
    /// (SSE-C is refused otherwise); `auto_encryption` encrypts objects sent without SSE headers.
    pub fn new(store: Store, kms: Arc<dyn Kms>, auto_encryption: bool, tls: bool) -> Self {
        Self {
            store,
            gateway: None,
            kms,
            auto_encryption,
            tls,
            bucket_keys: Default::default(),
        }
    }

    /// Serves the buckets of `engine` (a gateway backend), keeping nothing but staged temp files
    /// in `state`'s directory.
    pub fn with_gateway(mut self, engine: Arc<dyn Storage>) -> Self {
        self.gateway = Some(engine);
        self
    }

    /// The engine that holds buckets and objects.
    pub(crate) fn engine(&self) -> &dyn Storage {
        match &self.gateway {
            Some(g) => g.as_ref(),
            None => &self.store,
        }
    }

    /// Checks that `bucket` exists and that `key` can be stored, before a body is read.
    pub(crate) async fn require_writable(&self, bucket: &str, key: &str) -> S3Result<()> {
        match &self.gateway {
            Some(g) => {
                g.head_bucket(bucket).await.map_err(storage_err)?;
                crate::storage::layout::key_dir(key)
                    .map(drop)
                    .map_err(|e| storage_err(e.into()))
            }
            None => {
                self.store.require_bucket(bucket).map_err(storage_err)?;
                self.store
                    .object_path(bucket, key)
                    .map(drop)
                    .map_err(storage_err)
            }
        }
    }
}

/// The operations `object-server` serves over a gateway backend (`--backend`). The access hook
/// refuses every other one with [`gateway_refuses`] (`501 NotImplemented`) before its handler
/// runs, so no handler that still reads the local data directory answers for a backend: the
/// bucket settings other than default encryption and versioning (policy, CORS, lifecycle,
/// tagging, object lock), object tags, retention and legal holds, ACLs and browser POST uploads.
pub const GATEWAY_OPERATIONS: &[&str] = &[
    "ListBuckets",
    "CreateBucket",
    "HeadBucket",
    "DeleteBucket",
    "GetBucketLocation",
    "GetBucketVersioning",
    "PutBucketVersioning",
    "ListObjectVersions",
    "PutBucketEncryption",
    "GetBucketEncryption",
    "DeleteBucketEncryption",
    "PutObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "ListObjects",
    "ListObjectsV2",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "ListMultipartUploads",
    "GetObjectAttributes",
];

/// What an operation the gateway does not have yet answers (see [`GATEWAY_OPERATIONS`]).
pub(crate) fn gateway_refuses(what: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        format!("{what} is not implemented by this server's S3 backend (gateway) mode yet."),
    )
}

/// Maps a storage error to its S3 error.
pub(crate) fn storage_err(e: StorageError) -> S3Error {
    match e {
        StorageError::NoSuchBucket => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        StorageError::BucketExists => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        StorageError::BucketNotEmpty => s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        ),
        StorageError::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        StorageError::PreconditionFailed => s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ),
        StorageError::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        // An encrypted object's ETag and checksums are sealed under the metadata key, which this
        // process could not get from the KMS yet.
        StorageError::MetadataKeyUnavailable(_) => {
            s3_error!(ServiceUnavailable, "The KMS is not available.")
        }
        StorageError::InvalidKey(k) => match k {
            crate::storage::KeyError::TooLong => s3_error!(KeyTooLongError, "Your key is too long"),
            other => S3Error::with_message(S3ErrorCode::InvalidArgument, other.to_string()),
        },
        StorageError::Unavailable(detail) => {
            tracing::warn!(%detail, "storage backend unavailable");
            s3_error!(SlowDown, "Please reduce your request rate.")
        }
        // Overwritten while it was read: the client's retry reads the new object whole.
        StorageError::Changed => s3_error!(SlowDown, "Please reduce your request rate."),
        StorageError::NotSupported(what) => S3Error::with_message(
            S3ErrorCode::NotImplemented,
            format!("The storage backend of this server does not support {what}."),
        ),
        e => {
            tracing::error!(error = %e, "storage error");
            S3Error::with_message(
                S3ErrorCode::InternalError,
                "We encountered an internal error. Please try again.",
            )
        }
    }
}

/// Maps an SSE header error to its S3 error.
pub(crate) fn sse_err(e: SseError) -> S3Error {
    let code = match e {
        SseError::InvalidAlgorithm => S3ErrorCode::InvalidEncryptionAlgorithmError,
        SseError::InsecureCustomerKey => S3ErrorCode::InvalidRequest,
        SseError::Unsupported => S3ErrorCode::NotImplemented,
        _ => S3ErrorCode::InvalidArgument,
    };
    S3Error::with_message(code, e.to_string())
}

/// Maps a KMS error to its S3 error (never includes key material).
pub(crate) fn kms_err(e: KmsError) -> S3Error {
    match e {
        KmsError::KeyNotFound => {
            custom_error("KMS.NotFoundException", 400, "The KMS key does not exist.")
        }
        KmsError::DecryptionFailed => {
            s3_error!(InternalError, "The object key could not be decrypted.")
        }
        KmsError::NotAuthorized(_) => s3_error!(AccessDenied, "The KMS refused the request."),
        other => {
            tracing::error!(error = %other, "KMS error");
            s3_error!(ServiceUnavailable, "The KMS is not available.")
        }
    }
}

/// An S3 error whose code s3s does not know.
pub(crate) fn custom_error(code: &str, status: u16, message: &'static str) -> S3Error {
    let code: S3ErrorCode = code.parse().unwrap_or(S3ErrorCode::InternalError);
    let mut e = S3Error::with_message(code, message);
    e.set_status_code(http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST));
    e
}

pub(crate) fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

#[async_trait::async_trait]
impl S3 for CofferS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.do_list_buckets(req).await
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.do_create_bucket(req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.do_head_bucket(req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.do_delete_bucket(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.do_get_bucket_location(req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.do_get_bucket_versioning(req).await
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.do_put_object(req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.do_get_object(req).await
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.do_head_object(req).await
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.do_get_object_attributes(req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.do_delete_object(req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.do_delete_objects_per_key(req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.do_list_objects(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.do_list_objects_v2(req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.do_copy_object(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.do_create_multipart_upload(req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.do_upload_part(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.do_upload_part_copy(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.do_complete_multipart_upload(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.do_abort_multipart_upload(req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.do_list_parts(req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.do_list_multipart_uploads(req).await
    }
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        self.do_put_bucket_encryption(req).await
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        self.do_get_bucket_encryption(req).await
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.do_delete_bucket_encryption(req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.do_put_bucket_versioning(req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.do_list_object_versions(req).await
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.do_put_object_tagging(req).await
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.do_get_object_tagging(req).await
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.do_delete_object_tagging(req).await
    }
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        self.do_put_bucket_tagging(req).await
    }
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        self.do_get_bucket_tagging(req).await
    }
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.do_delete_bucket_tagging(req).await
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        self.do_put_object_lock_configuration(req).await
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        self.do_get_object_lock_configuration(req).await
    }
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        self.do_put_object_retention(req).await
    }
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        self.do_get_object_retention(req).await
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        self.do_put_object_legal_hold(req).await
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        self.do_get_object_legal_hold(req).await
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        self.do_put_bucket_lifecycle_configuration(req).await
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.do_get_bucket_lifecycle_configuration(req).await
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.do_delete_bucket_lifecycle(req).await
    }
    // CORS (s3/cors.rs).
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        self.do_put_bucket_cors(req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.do_get_bucket_cors(req).await
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.do_delete_bucket_cors(req).await
    }
    // Access: bucket policies and ACLs (s3/access.rs).
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        self.do_put_bucket_policy(req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.do_get_bucket_policy(req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.do_delete_bucket_policy(req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        self.do_get_bucket_policy_status(req).await
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.do_get_bucket_acl(req).await
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.do_put_bucket_acl(req).await
    }
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.do_get_object_acl(req).await
    }
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.do_put_object_acl(req).await
    }
}
