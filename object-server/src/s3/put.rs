//! PutObject, DeleteObject, DeleteObjects, and the body ingestion every write shares: hash the
//! plaintext (MD5 and the S3 checksums), encrypt it into packages, write it to a temp file.
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksum::{self, Algorithm, checksum_map};
use super::encryption::SseResponse;
use super::{CofferS3, etag, now_ms, storage_err};
use crate::sse::ObjectKey;
use crate::sse::headers::WriteHeaders;
use crate::sse::package::Encryptor;
use crate::storage::engine::Storage;
use crate::storage::{
    ChecksumKind, EtagMatch, ObjectMeta, ObjectWriter, SseMode, StorageError, WriteCondition,
};

/// Bytes buffered before a write to the temp file.
const WRITE_BUF: usize = 1 << 20;

/// A body written to a temp file, with what was learned while writing it.
pub(crate) struct Ingested {
    pub writer: ObjectWriter,
    pub size: u64,
    pub md5_hex: String,
    pub md5: Vec<u8>,
    /// The checksums computed, base64 by algorithm name.
    pub checksums: BTreeMap<String, String>,
}

/// Streams `body` into a temp file, encrypting with `key` if given.
/// `need_md5` is false only where nothing uses the MD5 (SSE-C without Content-MD5: its ETag is
/// random), which saves the most expensive hash.
pub(crate) async fn ingest<S, E>(
    store: &dyn Storage,
    mut body: S,
    key: Option<&ObjectKey>,
    algos: &[Algorithm],
    need_md5: bool,
) -> S3Result<Ingested>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut writer = store
        .writer()
        .await
        .map_err(|e| storage_err(StorageError::from(e)))?;
    let mut md5 = need_md5.then(crate::md5::lanes::Stream::new);
    let mut hasher = checksum::hasher_for(algos);
    let mut enc = key.map(Encryptor::new);
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUF + 2 * crate::sse::package::PACKAGE);
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, "request body");
            s3_error!(IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header.")
        })?;
        size += chunk.len() as u64;
        if let Some(m) = &mut md5 {
            m.update(&chunk).await;
        }
        hasher.update(&chunk);
        match &mut enc {
            Some(e) => e.update(&chunk, &mut buf),
            None => buf.extend_from_slice(&chunk),
        }
        if buf.len() >= WRITE_BUF {
            // Handed over, not copied: it is written while the next one fills.
            buf = writer
                .write_owned(buf)
                .await
                .map_err(|e| storage_err(e.into()))?;
        }
    }
    if let Some(e) = enc {
        e.finish(&mut buf);
    }
    writer
        .write_owned(buf)
        .await
        .map_err(|e| storage_err(e.into()))?;
    let digest: Vec<u8> = match md5 {
        Some(m) => m.finalize().await.to_vec(),
        None => Vec::new(),
    };
    let checksums = checksum_map(&hasher.finalize());
    Ok(Ingested {
        writer,
        size,
        md5_hex: hex::encode(&digest),
        md5: digest,
        checksums,
    })
}

/// Checks Content-MD5, the given checksums and trailing checksums against what was computed.
pub(crate) fn verify_digests(
    ing: &Ingested,
    content_md5: Option<&str>,
    given: &BTreeMap<String, String>,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<()> {
    if let Some(m) = content_md5 {
        let want = B64
            .decode(m.trim())
            .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
        if want.len() != 16 {
            return Err(s3_error!(
                InvalidDigest,
                "The Content-MD5 you specified was invalid."
            ));
        }
        if want != ing.md5 {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            ));
        }
    }
    let mut expected = given.clone();
    if let Some(t) = trailers.and_then(|t| t.take()) {
        for a in Algorithm::ALL {
            let name = format!("x-amz-checksum-{}", a.name().to_ascii_lowercase());
            if let Some(v) = t.get(&name).and_then(|v| v.to_str().ok()) {
                expected.insert(a.name().to_owned(), v.to_owned());
            }
        }
    }
    for (name, v) in &expected {
        if ing.checksums.get(name) != Some(v) {
            let alg = Algorithm::parse(name).expect("keys are algorithm names");
            return Err(checksum::bad_digest(alg));
        }
    }
    Ok(())
}

/// An ETag for a new object: the plaintext MD5, except for SSE-C, whose ETag is random so it
/// tells nothing about the plaintext.
pub(crate) fn new_etag(mode: Option<SseMode>, md5_hex: &str) -> String {
    if mode == Some(SseMode::C) {
        let mut b = [0u8; 16];
        rand::fill(&mut b);
        hex::encode(b)
    } else {
        md5_hex.to_owned()
    }
}

/// Standard headers kept with an object.
pub(crate) fn standard_headers(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    content_disposition: Option<&str>,
    content_language: Option<&str>,
    cache_control: Option<&str>,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("content-type", content_type),
        ("content-encoding", content_encoding),
        ("content-disposition", content_disposition),
        ("content-language", content_language),
        ("cache-control", cache_control),
    ] {
        if let Some(v) = v {
            m.insert(k.to_owned(), v.to_owned());
        }
    }
    m
}

/// The storage form of a write's If-Match / If-None-Match.
pub(crate) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> WriteCondition {
    let side = |c: &ETagCondition| {
        if c.is_any() {
            EtagMatch::Any
        } else {
            EtagMatch::Tag(
                c.as_etag()
                    .map(|e| e.value().to_owned())
                    .unwrap_or_default(),
            )
        }
    };
    WriteCondition {
        if_match: if_match.map(side),
        if_none_match: if_none_match.map(side),
    }
}

/// Evaluates a write's condition against the key's latest version before the body is read, to
/// answer early; the commit decides it again under the key's lock.
pub(crate) async fn check_write_conditions(
    s3: &CofferS3,
    bucket: &str,
    key: &str,
    condition: &WriteCondition,
) -> S3Result<()> {
    if condition.is_none() {
        return Ok(());
    }
    let opened = match &s3.gateway {
        Some(g) => g.open_object(bucket, key).await.map(|o| o.meta),
        None => s3.store.open_latest(bucket, key).await.map(|o| o.meta),
    };
    let current = match opened {
        Ok(m) if !m.delete_marker => Some(m.etag),
        Ok(_) | Err(StorageError::NoSuchKey) => None,
        Err(e) => return Err(storage_err(e)),
    };
    condition.check(current.as_deref()).map_err(storage_err)
}

impl CofferS3 {
    pub(crate) async fn do_put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        // The key must be storable before the body is read.
        self.require_writable(bucket, key).await?;
        let tags = super::tagging::parse_header(input.tagging.as_deref())?;
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
        let (mode, bucket_key) = self.write_mode(bucket, &h).await?;
        let customer = match &mode {
            crate::sse::SseRequest::C(c) => Some(c.clone()),
            _ => None,
        };
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref());
        check_write_conditions(self, bucket, key, &condition).await?;
        let enc = self.new_object_key(&mode, bucket_key, bucket, key).await?;
        let given = checksum_map(&Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        });
        checksum::check_given(&given)?;
        let algos = checksum::or_default(checksum::requested_algorithms(
            &given,
            input.checksum_algorithm.as_ref().map(|a| a.as_str()),
            &req.headers,
        ));
        let body = input.body.unwrap_or_else(|| {
            s3s::dto::StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
        });
        let need_md5 = customer.is_none() || input.content_md5.is_some();
        let ing = ingest(
            self.engine(),
            body,
            enc.as_ref().map(|(k, _)| k),
            &algos,
            need_md5,
        )
        .await?;
        if let Some(len) = input.content_length
            && len >= 0
            && len as u64 != ing.size
        {
            return Err(s3_error!(
                IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header."
            ));
        }
        verify_digests(
            &ing,
            input.content_md5.as_deref(),
            &given,
            req.trailing_headers.as_ref(),
        )?;
        let encryption = enc.map(|(_, m)| m);
        let mut meta = ObjectMeta {
            size: ing.size,
            etag: new_etag(encryption.as_ref().map(|e| e.mode), &ing.md5_hex),
            modified_ms: now_ms(),
            headers: standard_headers(
                input.content_type.as_deref(),
                input.content_encoding.as_deref(),
                input.content_disposition.as_deref(),
                input.content_language.as_deref(),
                input.cache_control.as_deref(),
            ),
            user: input
                .metadata
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
            checksums: ing.checksums.clone(),
            encryption,
            parts: Vec::new(),
            tags,
            retention,
            legal_hold,
            ..Default::default()
        };
        let checksums = ing.checksums.clone();
        let version_id = self
            .commit_object(
                bucket, key, ing.writer, &mut meta, versioning, None, &condition,
            )
            .await?;
        let sse = SseResponse::of(meta.encryption.as_ref(), customer.as_ref());
        let out = PutObjectOutput {
            e_tag: Some(etag(&meta.etag)),
            server_side_encryption: sse.sse,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            checksum_crc32: checksums.get("CRC32").cloned(),
            checksum_crc32c: checksums.get("CRC32C").cloned(),
            checksum_crc64nvme: checksums.get("CRC64NVME").cloned(),
            checksum_sha1: checksums.get("SHA1").cloned(),
            checksum_sha256: checksums.get("SHA256").cloned(),
            checksum_type: Some(checksum::kind_dto(ChecksumKind::FullObject)),
            version_id,
            ..Default::default()
        };
        Ok(S3Response::new(out))
    }

    pub(crate) async fn do_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let bypass = req.input.bypass_governance_retention == Some(true)
            && super::lock::governance_bypass_permitted(&req);
        let input = req.input;
        let condition = write_condition(input.if_match.as_ref(), None);
        let done = self
            .delete_named(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                bypass,
                &condition,
            )
            .await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: done.delete_marker.then_some(true),
            version_id: done.version_id,
            ..Default::default()
        }))
    }

    pub(crate) async fn do_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bypass = req.input.bypass_governance_retention == Some(true)
            && super::lock::governance_bypass_permitted(&req);
        let input = req.input;
        self.engine()
            .head_bucket(&input.bucket)
            .await
            .map_err(storage_err)?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let named = obj.version_id.clone();
            match self
                .delete_named(
                    &input.bucket,
                    &obj.key,
                    named.as_deref(),
                    bypass,
                    &WriteCondition::default(),
                )
                .await
            {
                Ok(done) => {
                    if !quiet {
                        // A new delete marker is reported as such; a removed version by its id.
                        let (version_id, marker_id) = match &named {
                            Some(v) => (Some(v.clone()), None),
                            None => (None, done.version_id.clone()),
                        };
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            version_id,
                            delete_marker: done.delete_marker.then_some(true),
                            delete_marker_version_id: if named.is_some() && done.delete_marker {
                                named.clone()
                            } else {
                                marker_id
                            },
                        });
                    }
                }
                Err(e) => {
                    errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(obj.key),
                        message: e.message().map(str::to_owned),
                        version_id: named,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }
}
