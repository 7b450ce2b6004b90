//! CopyObject: the source is decrypted (SSE-C sources with the copy-source key) and written again
//! under a fresh object key with the destination's encryption. Copying an object onto itself with
//! new SSE-C headers is how an SSE-C key is rotated. A source may name a version
//! (`?versionId=`); the copy is a new version of the destination, tags copied or replaced
//! (`x-amz-tagging-directive`): taking the source's tags needs `s3:GetObjectTagging` on it
//! (decided by the access check, held here against the source version opened).
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::checksum::{self, Algorithm};
use super::encryption::SseResponse;
use super::put::{ingest, new_etag, standard_headers};
use super::{CofferS3, etag, now_ms, storage_err, timestamp};
use crate::sse::SseRequest;
use crate::sse::headers::WriteHeaders;
use crate::storage::{ObjectMeta, StorageError, WriteCondition};

/// The bucket and key of `x-amz-copy-source`.
pub(crate) fn source_of(src: &CopySource) -> S3Result<(String, String)> {
    match src {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket.to_string(), key.to_string())),
        _ => Err(s3_error!(
            NotImplemented,
            "Access point copy sources are not supported"
        )),
    }
}

/// The version id `x-amz-copy-source` names, if any.
pub(crate) fn source_version(src: &CopySource) -> Option<&str> {
    match src {
        CopySource::Bucket { version_id, .. } => version_id.as_deref(),
        _ => None,
    }
}

/// Parses `x-amz-copy-source-range: bytes=first-last` into `[start, end)`.
pub(crate) fn parse_copy_range(r: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let spec = r.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok((first, last + 1))
}

/// Copy-source conditions answer 412, never 304.
pub(crate) fn not_modified_is_precondition(e: S3Error) -> S3Error {
    if *e.code() == S3ErrorCode::NotModified {
        s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )
    } else {
        e
    }
}

/// The destination's `If-Match` / `If-None-Match` of a CopyObject (AWS honours them as for a
/// PutObject; s3s's input has no fields for them, so they are read from the headers).
fn destination_condition(headers: &http::HeaderMap) -> S3Result<WriteCondition> {
    let parse = |name: &str| -> S3Result<Option<ETagCondition>> {
        headers
            .get(name)
            .map(|v| {
                ETagCondition::parse_http_header(v.as_bytes()).map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "The {name} header is not a valid ETag condition."
                    )
                })
            })
            .transpose()
    };
    let (if_match, if_none_match) = (parse("if-match")?, parse("if-none-match")?);
    Ok(super::put::write_condition(
        if_match.as_ref(),
        if_none_match.as_ref(),
    ))
}

impl CofferS3 {
    pub(crate) async fn do_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let condition = destination_condition(&req.headers)?;
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        self.require_writable(bucket, key).await?;
        super::put::check_write_conditions(self, bucket, key, &condition).await?;
        let (src_bucket, src_key) = source_of(&input.copy_source)?;
        let src_version = source_version(&input.copy_source).map(str::to_owned);
        let replace_tags = input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        let new_tags = super::tagging::parse_header(input.tagging.as_deref())?;
        let versioning = self.versioning(bucket).await?;
        let (retention, legal_hold) = self
            .new_version_lock(
                bucket,
                versioning,
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )
            .await?;
        let src_customer = self.read_customer_key(
            input.copy_source_sse_customer_algorithm.as_deref(),
            input.copy_source_sse_customer_key.as_deref(),
            input.copy_source_sse_customer_key_md5.as_deref(),
        )?;
        let sse_value = input
            .server_side_encryption
            .as_ref()
            .map(|s| s.as_str().to_owned());
        let h = WriteHeaders {
            sse: sse_value.as_deref(),
            kms_key_id: input.ssekms_key_id.as_deref(),
            kms_context: input.ssekms_encryption_context.as_deref(),
            c_algorithm: input.sse_customer_algorithm.as_deref(),
            c_key: input.sse_customer_key.as_deref(),
            c_key_md5: input.sse_customer_key_md5.as_deref(),
            bucket_key: input.bucket_key_enabled,
        };
        let explicit_sse = h.sse.is_some() || h.c_algorithm.is_some();
        let (mode, bucket_key) = self.write_mode(bucket, &h).await?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if src_bucket == bucket
            && src_key == key
            && src_version.is_none()
            && !replace
            && !replace_tags
            && !explicit_sse
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let src = self
            .open_named_body(&src_bucket, &src_key, src_version.as_deref())
            .await?;
        // The source's tags decide (a tag condition on the read; s3:GetObjectTagging to take
        // them) on the version opened, not on the one the access check saw.
        crate::iam::object_tags::check_copy_source(&req.extensions, &src.meta().tags)?;
        let src_ok = self
            .key_for(src.meta(), &src_bucket, &src_key, src_customer.as_ref())
            .await?;
        super::get::check_read_conditions(
            src.meta(),
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
        )
        .map_err(not_modified_is_precondition)?;
        let customer = match &mode {
            SseRequest::C(c) => Some(c.clone()),
            _ => None,
        };
        let enc = self.new_object_key(&mode, bucket_key, bucket, key).await?;
        let reader = src
            .reader(src_ok.as_ref(), 0, src.meta().size)
            .map_err(|_| storage_err(StorageError::Damaged))?;
        // The algorithm asked for, else the source's (computed anew over the whole copy, which is
        // one part), else AWS's default.
        let algos = match &input.checksum_algorithm {
            Some(a) => vec![Algorithm::parse(a.as_str()).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]"
                )
            })?],
            None => checksum::or_default(
                src.meta()
                    .checksums
                    .keys()
                    .filter_map(|k| Algorithm::parse(k))
                    .collect(),
            ),
        };
        let ing = ingest(
            self.engine(),
            reader,
            enc.as_ref().map(|(k, _)| k),
            &algos,
            customer.is_none(),
        )
        .await?;
        let encryption = enc.map(|(_, m)| m);
        let (headers, user) = if replace {
            (
                standard_headers(
                    input.content_type.as_deref(),
                    input.content_encoding.as_deref(),
                    input.content_disposition.as_deref(),
                    input.content_language.as_deref(),
                    input.cache_control.as_deref(),
                ),
                input
                    .metadata
                    .map(|m| m.into_iter().collect())
                    .unwrap_or_default(),
            )
        } else {
            (src.meta().headers.clone(), src.meta().user.clone())
        };
        // The copy is written as one part: its ETag is the plaintext MD5 (random for SSE-C).
        let tags = if replace_tags {
            new_tags
        } else {
            src.meta().tags.clone()
        };
        let mut meta = ObjectMeta {
            size: ing.size,
            etag: new_etag(encryption.as_ref().map(|e| e.mode), &ing.md5_hex),
            modified_ms: now_ms(),
            headers,
            user,
            checksums: ing.checksums.clone(),
            encryption,
            parts: Vec::new(),
            tags,
            retention,
            legal_hold,
            ..Default::default()
        };
        let copied_version = src.meta().version_id.clone();
        drop(src);
        let version_id = self
            .commit_object(
                bucket, key, ing.writer, &mut meta, versioning, None, &condition,
            )
            .await?;
        let sse = SseResponse::of(meta.encryption.as_ref(), customer.as_ref());
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some({
                let c = checksum::checksum_dto(&meta.checksums, Some(meta.checksum_kind));
                CopyObjectResult {
                    e_tag: Some(etag(&meta.etag)),
                    last_modified: Some(timestamp(meta.modified_ms)),
                    checksum_crc32: c.checksum_crc32,
                    checksum_crc32c: c.checksum_crc32c,
                    checksum_crc64nvme: c.checksum_crc64nvme,
                    checksum_sha1: c.checksum_sha1,
                    checksum_sha256: c.checksum_sha256,
                    checksum_type: c.checksum_type,
                }
            }),
            server_side_encryption: sse.sse,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            version_id,
            copy_source_version_id: copied_version,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges() {
        assert_eq!(parse_copy_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert!(parse_copy_range("bytes=5-100", 100).is_err());
        assert!(parse_copy_range("bytes=9-1", 100).is_err());
        assert!(parse_copy_range("0-1", 100).is_err());
    }
}
