//! GetObject and HeadObject: conditional requests, SSE-C keys, single ranges, part numbers.
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::body::{BodyReader, ReadError};
use super::encryption::SseResponse;
use super::{CofferS3, etag, sse_err, timestamp};
use crate::sse::headers::{CustomerKey, check_read};
use crate::storage::{ObjectMeta, OpenObject};

/// Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since (RFC 9110 order).
pub(crate) fn check_read_conditions(
    meta: &ObjectMeta,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified_s = meta.modified_ms.div_euclid(1000);
    let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    let matches =
        |c: &ETagCondition| c.is_any() || c.as_etag().is_some_and(|e| e.value() == meta.etag);
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
    } else if let Some(t) = if_unmodified_since
        && modified_s > secs(t)
    {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since
        && modified_s <= secs(t)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// The plaintext range `[start, end)` a request asks for, from a Range header or a part number.
fn request_range(
    meta: &ObjectMeta,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<Option<(u64, u64)>> {
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter"
            ));
        }
        if meta.parts.is_empty() {
            return if n == 1 {
                Ok(None)
            } else {
                Err(super::custom_error(
                    "InvalidPartNumber",
                    416,
                    "The requested partnumber is not satisfiable",
                ))
            };
        }
        let idx = usize::try_from(n - 1)
            .ok()
            .filter(|i| *i < meta.parts.len());
        let Some(idx) = idx else {
            return Err(super::custom_error(
                "InvalidPartNumber",
                416,
                "The requested partnumber is not satisfiable",
            ));
        };
        let start: u64 = meta.parts[..idx].iter().map(|p| p.size).sum();
        return Ok(Some((start, start + meta.parts[idx].size)));
    }
    match range {
        None => Ok(None),
        Some(r) => {
            let r = r
                .check(meta.size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            Ok(Some((r.start, r.end)))
        }
    }
}

fn read_error(e: ReadError) -> s3s::S3Error {
    tracing::error!(error = %e, "object body is damaged");
    s3_error!(
        InternalError,
        "The object's stored data failed authentication."
    )
}

impl CofferS3 {
    /// The object key of an opened object (`None` for plaintext objects).
    pub(crate) async fn key_for(
        &self,
        obj: &OpenObject,
        bucket: &str,
        key: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<crate::sse::ObjectKey>> {
        let ok = match &obj.meta.encryption {
            None => {
                if customer.is_some() {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The encryption parameters are not applicable to this object."
                    ));
                }
                None
            }
            Some(enc) => Some(self.open_object_key(enc, bucket, key, customer).await?),
        };
        Ok(ok)
    }

    pub(crate) async fn do_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        check_read(&req.headers).map_err(sse_err)?;
        let input = req.input;
        let customer = self.read_customer_key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let obj = self
            .open_named_body(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        crate::iam::object_tags::check_object_tags(&req.extensions, &obj.meta.tags)?;
        check_read_conditions(
            &obj.meta,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let ok = self
            .key_for(&obj, &input.bucket, &input.key, customer.as_ref())
            .await?;
        let meta = obj.meta.clone();
        let range = request_range(&meta, input.range.as_ref(), input.part_number)?;
        let (start, end) = range.unwrap_or((0, meta.size));
        // A Range header, or a part of a multipart object, is answered as partial content.
        let partial = range.is_some();
        let reader = BodyReader::new(&obj, ok.as_ref(), start, end).map_err(read_error)?;
        // Read the first chunk before answering, so a damaged object is an error response.
        let (reader, first) = reader.read_next().await.map_err(read_error)?;
        let stream = futures::stream::iter(first.map(Ok)).chain(reader.into_stream());
        let sse = SseResponse::of(meta.encryption.as_ref(), customer.as_ref());
        let (lock_mode, lock_until, legal_hold) = super::lock::lock_headers(&meta);
        // Full-object checksums only when asked for, and only for the whole object.
        let full = range.is_none()
            && input
                .checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let out = GetObjectOutput {
            tag_count: (!meta.tags.is_empty()).then_some(meta.tags.len() as i32),
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some((end - start) as i64),
            content_range: partial
                .then(|| format!("bytes {start}-{}/{}", end.saturating_sub(1), meta.size)),
            accept_ranges: Some("bytes".to_owned()),
            parts_count: (input.part_number.is_some() && !meta.parts.is_empty())
                .then_some(meta.parts.len() as i32),
            e_tag: Some(etag(&meta.etag)),
            last_modified: Some(timestamp(meta.modified_ms)),
            content_type: input
                .response_content_type
                .or_else(|| meta.headers.get("content-type").cloned()),
            content_encoding: input
                .response_content_encoding
                .or_else(|| meta.headers.get("content-encoding").cloned()),
            content_disposition: input
                .response_content_disposition
                .or_else(|| meta.headers.get("content-disposition").cloned()),
            content_language: input
                .response_content_language
                .or_else(|| meta.headers.get("content-language").cloned()),
            cache_control: input
                .response_cache_control
                .or_else(|| meta.headers.get("cache-control").cloned()),
            metadata: (!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect()),
            server_side_encryption: sse.sse,
            ssekms_key_id: sse.kms_key_id,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            checksum_crc32: full.then(|| meta.checksums.get("CRC32").cloned()).flatten(),
            checksum_crc32c: full
                .then(|| meta.checksums.get("CRC32C").cloned())
                .flatten(),
            checksum_crc64nvme: full
                .then(|| meta.checksums.get("CRC64NVME").cloned())
                .flatten(),
            checksum_sha1: full.then(|| meta.checksums.get("SHA1").cloned()).flatten(),
            checksum_sha256: full
                .then(|| meta.checksums.get("SHA256").cloned())
                .flatten(),
            version_id: meta.version_id.clone(),
            object_lock_mode: lock_mode,
            object_lock_retain_until_date: lock_until,
            object_lock_legal_hold_status: legal_hold,
            ..Default::default()
        };
        let mut resp = S3Response::new(out);
        if partial {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    pub(crate) async fn do_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        check_read(&req.headers).map_err(sse_err)?;
        let input = req.input;
        let customer = self.read_customer_key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let obj = self
            .open_named(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        crate::iam::object_tags::check_object_tags(&req.extensions, &obj.meta.tags)?;
        check_read_conditions(
            &obj.meta,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let meta = obj.meta;
        if let Some(enc) = &meta.encryption {
            if enc.mode == crate::storage::SseMode::C {
                // Proves the caller holds the key, as AWS does for HEAD of SSE-C objects.
                self.open_object_key(enc, &input.bucket, &input.key, customer.as_ref())
                    .await?;
            } else if customer.is_some() {
                return Err(s3_error!(
                    InvalidRequest,
                    "The encryption parameters are not applicable to this object."
                ));
            }
        }
        let range = request_range(&meta, input.range.as_ref(), input.part_number)?;
        let (start, end) = range.unwrap_or((0, meta.size));
        // A Range header, or a part of a multipart object, is answered as partial content.
        let partial = range.is_some();
        let sse = SseResponse::of(meta.encryption.as_ref(), customer.as_ref());
        let (lock_mode, lock_until, legal_hold) = super::lock::lock_headers(&meta);
        // Full-object checksums only when asked for, and only for the whole object.
        let full = range.is_none()
            && input
                .checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let out = HeadObjectOutput {
            content_length: Some((end - start) as i64),
            content_range: partial
                .then(|| format!("bytes {start}-{}/{}", end.saturating_sub(1), meta.size)),
            accept_ranges: Some("bytes".to_owned()),
            parts_count: (input.part_number.is_some() && !meta.parts.is_empty())
                .then_some(meta.parts.len() as i32),
            e_tag: Some(etag(&meta.etag)),
            last_modified: Some(timestamp(meta.modified_ms)),
            content_type: meta.headers.get("content-type").cloned(),
            content_encoding: meta.headers.get("content-encoding").cloned(),
            content_disposition: meta.headers.get("content-disposition").cloned(),
            content_language: meta.headers.get("content-language").cloned(),
            cache_control: meta.headers.get("cache-control").cloned(),
            metadata: (!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect()),
            server_side_encryption: sse.sse,
            ssekms_key_id: sse.kms_key_id,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            checksum_crc32: full.then(|| meta.checksums.get("CRC32").cloned()).flatten(),
            checksum_crc32c: full
                .then(|| meta.checksums.get("CRC32C").cloned())
                .flatten(),
            checksum_crc64nvme: full
                .then(|| meta.checksums.get("CRC64NVME").cloned())
                .flatten(),
            checksum_sha1: full.then(|| meta.checksums.get("SHA1").cloned()).flatten(),
            checksum_sha256: full
                .then(|| meta.checksums.get("SHA256").cloned())
                .flatten(),
            version_id: meta.version_id.clone(),
            object_lock_mode: lock_mode,
            object_lock_retain_until_date: lock_until,
            object_lock_legal_hold_status: legal_hold,
            ..Default::default()
        };
        let mut resp = S3Response::new(out);
        if partial {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }
}
