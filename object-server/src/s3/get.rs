//! GetObject and HeadObject: conditional requests, SSE-C keys, single ranges, part numbers.
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::body::ReadError;
use super::checksum;
use super::encryption::SseResponse;
use super::{CofferS3, etag, sse_err, timestamp};
use crate::sse::headers::{CustomerKey, check_read};
use crate::storage::ObjectMeta;

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

/// The checksums a GET or HEAD answers with (`x-amz-checksum-mode: ENABLED` only): the object's
/// for the whole object; for one part of a multipart object (`partNumber`), that part's of the
/// object's algorithm, which describe the bytes sent; none for a byte range.
fn response_checksums(
    meta: &ObjectMeta,
    ranged: bool,
    part_number: Option<i32>,
    mode: Option<&ChecksumMode>,
) -> Checksum {
    if mode.is_none_or(|m| m.as_str() != ChecksumMode::ENABLED) {
        return Checksum::default();
    }
    let kind = Some(meta.checksum_kind);
    if let Some(n) = part_number
        && !meta.parts.is_empty()
    {
        let part = usize::try_from(n - 1).ok().and_then(|i| meta.parts.get(i));
        let values = part
            .map(|p| {
                p.checksums
                    .iter()
                    .filter(|(k, _)| meta.checksums.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        return checksum::checksum_dto(&values, kind);
    }
    if ranged {
        return Checksum::default();
    }
    checksum::checksum_dto(&meta.checksums, kind)
}

pub(crate) fn read_error(e: ReadError) -> s3s::S3Error {
    if let ReadError::Storage(e) = e {
        return super::storage_err(e);
    }
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
        meta: &ObjectMeta,
        bucket: &str,
        key: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<crate::sse::ObjectKey>> {
        let ok = match &meta.encryption {
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

    /// What a request that reads only metadata (HEAD, GetObjectAttributes) asks of SSE-C: the
    /// key of an SSE-C object, proved by opening its object key, as AWS does; no key for an
    /// object of another SSE mode.
    pub(crate) async fn prove_customer_key(
        &self,
        meta: &ObjectMeta,
        bucket: &str,
        key: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<()> {
        if let Some(enc) = &meta.encryption {
            if enc.mode == crate::storage::SseMode::C {
                self.open_object_key(enc, bucket, key, customer).await?;
            } else if customer.is_some() {
                return Err(s3_error!(
                    InvalidRequest,
                    "The encryption parameters are not applicable to this object."
                ));
            }
        }
        Ok(())
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
        crate::iam::object_tags::check_object_tags(&req.extensions, &obj.meta().tags)?;
        check_read_conditions(
            obj.meta(),
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        let ok = self
            .key_for(obj.meta(), &input.bucket, &input.key, customer.as_ref())
            .await?;
        let meta = obj.meta().clone();
        let range = request_range(&meta, input.range.as_ref(), input.part_number)?;
        let (start, end) = range.unwrap_or((0, meta.size));
        // A Range header, or a part of a multipart object, is answered as partial content.
        let partial = range.is_some();
        let mut reader = obj.reader(ok.as_ref(), start, end).map_err(read_error)?;
        // Read the first chunk before answering, so a damaged object (or a backend away) is an
        // error response.
        let first = reader.next().await.transpose().map_err(read_error)?;
        let stream = futures::stream::iter(first.map(Ok)).chain(reader);
        let sse = SseResponse::of(meta.encryption.as_ref(), customer.as_ref());
        let (lock_mode, lock_until, legal_hold) = super::lock::lock_headers(&meta);
        let sums = response_checksums(
            &meta,
            range.is_some(),
            input.part_number,
            input.checksum_mode.as_ref(),
        );
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
            bucket_key_enabled: sse.bucket_key,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_type: sums.checksum_type,
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
        let meta = self
            .open_named_meta(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        crate::iam::object_tags::check_object_tags(&req.extensions, &meta.tags)?;
        check_read_conditions(
            &meta,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        )?;
        self.prove_customer_key(&meta, &input.bucket, &input.key, customer.as_ref())
            .await?;
        let range = request_range(&meta, input.range.as_ref(), input.part_number)?;
        let (start, end) = range.unwrap_or((0, meta.size));
        // A Range header, or a part of a multipart object, is answered as partial content.
        let partial = range.is_some();
        let sse = SseResponse::of(meta.encryption.as_ref(), customer.as_ref());
        let (lock_mode, lock_until, legal_hold) = super::lock::lock_headers(&meta);
        let sums = response_checksums(
            &meta,
            range.is_some(),
            input.part_number,
            input.checksum_mode.as_ref(),
        );
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
            bucket_key_enabled: sse.bucket_key,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_type: sums.checksum_type,
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
