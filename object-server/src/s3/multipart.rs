//! Multipart uploads. Every bit of state is on disk under `DIR/.coffer/multipart/<bucket>/<id>/`
//! (`upload.json`, and one object file per part, `part.<n>`), so any process serving the data
//! directory sees every upload. Each write of a part is its own package stream under a key derived
//! from the object key, the part number and a salt drawn for that write (kept in the part file's
//! metadata), so a part uploaded again never reuses the key of the one it replaces (see
//! `sse::package`); completing moves the upload's part files, unchanged, under the object's key
//! (see `storage::parts`): nothing is copied.
use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use super::checksum::{self, Algorithm, CompletingPart, UploadChecksum, checksum_map};
use super::copy::parse_copy_range;
use super::encryption::SseResponse;
use super::put::{ingest, new_etag, standard_headers, verify_digests};
use super::{CofferS3, custom_error, etag, now_ms, storage_err, timestamp};
use crate::sse::headers::{CustomerKey, WriteHeaders};
use crate::sse::{ObjectKey, PartSalt, SseRequest};
use crate::storage::parts::part_file_name;
use crate::storage::{
    EncryptionMeta, ObjectMeta, PartMeta, Retention, SseMode, StorageError, UploadParts,
};

/// Smallest part other than the last (as AWS and MinIO enforce).
const MIN_PART: u64 = 5 * 1024 * 1024;

/// What `upload.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadInfo {
    pub key: String,
    pub created_ms: i64,
    pub headers: BTreeMap<String, String>,
    pub user: BTreeMap<String, String>,
    pub encryption: Option<EncryptionMeta>,
    /// Tags from `x-amz-tagging`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Object lock retention the version will have (asked for, or the bucket's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Object lock legal hold.
    #[serde(default)]
    pub legal_hold: bool,
    /// The checksum algorithm and type asked for at creation; absent: none was (also every
    /// upload created before checksums were kept per upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<UploadChecksum>,
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

/// The upload and keys a part request writes with (see `part_target`).
struct PartTarget {
    n: u32,
    info: UploadInfo,
    customer: Option<CustomerKey>,
    /// An encrypted upload's key for this write of the part, and the salt it was derived with
    /// (stored with the part).
    part_key: Option<(ObjectKey, PartSalt)>,
}

fn part_number(n: i32) -> S3Result<u32> {
    if (1..=10000).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ))
    }
}

impl CofferS3 {
    async fn read_upload(&self, bucket: &str, key: &str, id: &str) -> S3Result<UploadInfo> {
        let data = match &self.gateway {
            Some(g) => match g.upload_state(bucket, key, id).await {
                Ok(d) => d,
                Err(StorageError::NoSuchUpload) => return Err(no_such_upload()),
                Err(e) => return Err(storage_err(e)),
            },
            None => {
                self.store.require_bucket(bucket).map_err(storage_err)?;
                if !valid_id(id) {
                    return Err(no_such_upload());
                }
                let p = self.store.upload_dir(bucket, id).join("upload.json");
                match tokio::fs::read(&p).await {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(no_such_upload());
                    }
                    Err(e) => return Err(storage_err(e.into())),
                }
            }
        };
        let info: UploadInfo =
            serde_json::from_slice(&data).map_err(|_| storage_err(StorageError::Damaged))?;
        if info.key != key {
            return Err(no_such_upload());
        }
        Ok(info)
    }

    /// What UploadPart and UploadPartCopy both start from: the part number checked, the upload's
    /// state, the SSE-C key the request carries (`[algorithm, key, key MD5]`; SSE-C uploads need
    /// it on every part) and the key of this write of the part, under a salt drawn for it.
    async fn part_target(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: i32,
        sse_c: [Option<&str>; 3],
    ) -> S3Result<PartTarget> {
        let n = part_number(part)?;
        let info = self.read_upload(bucket, key, upload_id).await?;
        let customer = self.read_customer_key(sse_c[0], sse_c[1], sse_c[2])?;
        let part_key = self
            .upload_key(&info, bucket, customer.as_ref())
            .await?
            .map(|k| {
                let salt = PartSalt::generate();
                (k.part_key(n, &salt), salt)
            });
        Ok(PartTarget {
            n,
            info,
            customer,
            part_key,
        })
    }

    async fn upload_key(
        &self,
        info: &UploadInfo,
        bucket: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<ObjectKey>> {
        match &info.encryption {
            None => {
                if customer.is_some() {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The encryption parameters are not applicable to this upload."
                    ));
                }
                Ok(None)
            }
            Some(enc) => Ok(Some(
                self.open_object_key(enc, bucket, &info.key, customer)
                    .await?,
            )),
        }
    }

    /// Stores part `n` of an upload (its staged body and metadata), replacing an earlier one.
    async fn store_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        n: u32,
        writer: crate::storage::ObjectWriter,
        meta: &ObjectMeta,
    ) -> S3Result<()> {
        if let Some(g) = &self.gateway {
            return g
                .put_part(bucket, key, upload_id, n, writer, meta)
                .await
                .map_err(|e| match e {
                    StorageError::NoSuchUpload => no_such_upload(),
                    e => storage_err(e),
                });
        }
        let dir = self.store.upload_dir(bucket, upload_id);
        writer
            .commit(meta, dir.join(part_file_name(n)))
            .await
            .map_err(|e| storage_err(e.into()))?;
        // An abort or complete that ran meanwhile removed the upload: do not leave a stray part.
        if !dir.join("upload.json").exists() {
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.remove_upload_dir(&dir)).await;
            return Err(no_such_upload());
        }
        Ok(())
    }

    pub(crate) async fn do_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        self.require_writable(bucket, key).await?;
        let checksum = checksum::upload_checksum(
            input.checksum_algorithm.as_ref(),
            input.checksum_type.as_ref(),
        )?
        .map(|(algorithm, kind)| UploadChecksum { algorithm, kind });
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
            SseRequest::C(c) => Some(c.clone()),
            _ => None,
        };
        let enc = self
            .new_object_key(&mode, bucket_key, bucket, key)
            .await?
            .map(|(_, m)| m);
        let info = UploadInfo {
            key: key.to_owned(),
            created_ms: now_ms(),
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
            encryption: enc,
            tags,
            retention,
            legal_hold,
            checksum,
        };
        let state = serde_json::to_vec(&info).expect("serializes");
        let id = match &self.gateway {
            Some(g) => g
                .create_upload(bucket, key, &state)
                .await
                .map_err(storage_err)?,
            None => {
                let mut idb = [0u8; 16];
                rand::fill(&mut idb);
                let id = hex::encode(idb);
                let mut w = self
                    .store
                    .writer()
                    .await
                    .map_err(|e| storage_err(e.into()))?;
                w.write(&state).await.map_err(|e| storage_err(e.into()))?;
                w.commit_plain(self.store.upload_dir(bucket, &id).join("upload.json"))
                    .await
                    .map_err(|e| storage_err(e.into()))?;
                id
            }
        };
        let sse = SseResponse::of(info.encryption.as_ref(), customer.as_ref());
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            server_side_encryption: sse.sse,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            checksum_algorithm: checksum.map(|c| c.algorithm.dto()),
            checksum_type: checksum.map(|c| checksum::kind_dto(c.kind)),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let PartTarget {
            n,
            info,
            customer,
            part_key,
        } = self
            .part_target(
                &input.bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                [
                    input.sse_customer_algorithm.as_deref(),
                    input.sse_customer_key.as_deref(),
                    input.sse_customer_key_md5.as_deref(),
                ],
            )
            .await?;
        let given = checksum_map(&Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        });
        checksum::check_given(&given)?;
        let algos = checksum::part_algorithms(
            info.checksum,
            checksum::requested_algorithms(
                &given,
                input.checksum_algorithm.as_ref().map(|a| a.as_str()),
                &req.headers,
            ),
        )?;
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let ssec = info
            .encryption
            .as_ref()
            .is_some_and(|e| e.mode == SseMode::C);
        let need_md5 = !ssec || input.content_md5.is_some();
        let ing = ingest(
            self.engine(),
            body,
            part_key.as_ref().map(|(k, _)| k),
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
        let meta = ObjectMeta {
            size: ing.size,
            etag: new_etag(info.encryption.as_ref().map(|e| e.mode), &ing.md5_hex),
            modified_ms: now_ms(),
            checksums: ing.checksums.clone(),
            key_salt: part_key.map(|(_, salt)| salt),
            ..Default::default()
        };
        let checksums = ing.checksums.clone();
        self.store_part(
            &input.bucket,
            &input.key,
            &input.upload_id,
            n,
            ing.writer,
            &meta,
        )
        .await?;
        let sse = SseResponse::of(info.encryption.as_ref(), customer.as_ref());
        Ok(S3Response::new(UploadPartOutput {
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
            ..Default::default()
        }))
    }

    pub(crate) async fn do_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let PartTarget {
            n,
            info,
            customer,
            part_key,
        } = self
            .part_target(
                &input.bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                [
                    input.sse_customer_algorithm.as_deref(),
                    input.sse_customer_key.as_deref(),
                    input.sse_customer_key_md5.as_deref(),
                ],
            )
            .await?;
        let src_customer = self.read_customer_key(
            input.copy_source_sse_customer_algorithm.as_deref(),
            input.copy_source_sse_customer_key.as_deref(),
            input.copy_source_sse_customer_key_md5.as_deref(),
        )?;
        let (src_bucket, src_key) = super::copy::source_of(&input.copy_source)?;
        let src = self
            .open_named_body(
                &src_bucket,
                &src_key,
                super::copy::source_version(&input.copy_source),
            )
            .await?;
        // What the access check decided on the source's tags holds for the version opened.
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
        .map_err(super::copy::not_modified_is_precondition)?;
        let (start, end) = match input.copy_source_range.as_deref() {
            Some(r) => parse_copy_range(r, src.meta().size)?,
            None => (0, src.meta().size),
        };
        let reader = src
            .reader(src_ok.as_ref(), start, end)
            .map_err(|_| storage_err(StorageError::Damaged))?;
        let stream = reader;
        let ssec = info
            .encryption
            .as_ref()
            .is_some_and(|e| e.mode == SseMode::C);
        // The upload's algorithm, else the CRC64NVME an upload without one combines.
        let algos = [info.checksum.map_or(Algorithm::Crc64Nvme, |c| c.algorithm)];
        let ing = ingest(
            self.engine(),
            stream,
            part_key.as_ref().map(|(k, _)| k),
            &algos,
            !ssec,
        )
        .await?;
        let meta = ObjectMeta {
            size: ing.size,
            etag: new_etag(info.encryption.as_ref().map(|e| e.mode), &ing.md5_hex),
            modified_ms: now_ms(),
            checksums: ing.checksums,
            key_salt: part_key.map(|(_, salt)| salt),
            ..Default::default()
        };
        self.store_part(
            &input.bucket,
            &input.key,
            &input.upload_id,
            n,
            ing.writer,
            &meta,
        )
        .await?;
        let sse = SseResponse::of(info.encryption.as_ref(), customer.as_ref());
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some({
                let c = checksum::checksum_dto(&meta.checksums, None);
                CopyPartResult {
                    e_tag: Some(etag(&meta.etag)),
                    last_modified: Some(timestamp(meta.modified_ms)),
                    checksum_crc32: c.checksum_crc32,
                    checksum_crc32c: c.checksum_crc32c,
                    checksum_crc64nvme: c.checksum_crc64nvme,
                    checksum_sha1: c.checksum_sha1,
                    checksum_sha256: c.checksum_sha256,
                }
            }),
            server_side_encryption: sse.sse,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            sse_customer_algorithm: sse.c_algorithm,
            sse_customer_key_md5: sse.c_key_md5,
            ..Default::default()
        }))
    }

    pub(crate) async fn do_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let (bucket, key, id) = (
            input.bucket.as_str(),
            input.key.as_str(),
            input.upload_id.as_str(),
        );
        let info = self.read_upload(bucket, key, id).await?;
        let condition =
            super::put::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref());
        super::put::check_write_conditions(self, bucket, key, &condition).await?;
        if let Some(t) = &input.checksum_type {
            let created = info.checksum.map(|c| c.kind);
            if checksum::parse_kind(t) != created || created.is_none() {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    format!(
                        "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                        created.map_or("null", |k| k.as_str())
                    ),
                ));
            }
        }
        let given_object = checksum_map(&Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        });
        let wanted = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if wanted.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let dir = self.store.upload_dir(bucket, id);
        let mut parts = Vec::with_capacity(wanted.len());
        // The checksums each part lists in the request.
        let mut listed = Vec::with_capacity(wanted.len());
        let mut upload = UploadParts::new(dir.clone(), id);
        let mut last = 0u32;
        for p in &wanted {
            let n = part_number(p.part_number.unwrap_or(0))?;
            if n <= last {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order. Parts must be ordered by part number."
                ));
            }
            last = n;
            let opened = match &self.gateway {
                Some(g) => g.part_meta(bucket, key, id, n).await.map(|m| (m, None)),
                None => self
                    .store
                    .open_path(dir.join(part_file_name(n)))
                    .await
                    .map(|o| (o.meta, Some(o.file))),
            };
            let (part_meta, part_file) = match opened {
                Ok(o) => o,
                Err(StorageError::NoSuchKey) => {
                    return Err(s3_error!(
                        InvalidPart,
                        "One or more of the specified parts could not be found."
                    ));
                }
                Err(e) => return Err(storage_err(e)),
            };
            if let Some(e) = &p.e_tag
                && e.value() != part_meta.etag
            {
                return Err(s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
                ));
            }
            parts.push(PartMeta {
                number: n,
                size: part_meta.size,
                etag: part_meta.etag.clone(),
                // The salt of the file `upload.add` pins: a part written again meanwhile is
                // refused at the commit, so salt and bytes stay together.
                key_salt: part_meta.key_salt.clone(),
                checksums: part_meta.checksums.clone(),
            });
            listed.push(checksum_map(&Checksum {
                checksum_crc32: p.checksum_crc32.clone(),
                checksum_crc32c: p.checksum_crc32c.clone(),
                checksum_crc64nvme: p.checksum_crc64nvme.clone(),
                checksum_sha1: p.checksum_sha1.clone(),
                checksum_sha256: p.checksum_sha256.clone(),
                ..Default::default()
            }));
            if let Some(file) = part_file {
                upload.add(n, &file).map_err(|e| storage_err(e.into()))?;
            }
        }
        for p in &parts[..parts.len() - 1] {
            if p.size < MIN_PART {
                return Err(custom_error(
                    "EntityTooSmall",
                    400,
                    "Your proposed upload is smaller than the minimum allowed object size.",
                ));
            }
        }
        let size: u64 = parts.iter().map(|p| p.size).sum();
        if let Some(want) = input.mpu_object_size
            && u64::try_from(want).ok() != Some(size)
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                format!(
                    "The provided 'x-amz-mp-object-size' header value {want} does not match what was computed: {size}"
                ),
            ));
        }
        let completing: Vec<CompletingPart<'_>> = parts
            .iter()
            .zip(listed)
            .map(|(p, listed)| CompletingPart {
                number: p.number,
                size: p.size,
                listed,
                stored: &p.checksums,
            })
            .collect();
        let formed = checksum::complete(info.checksum, &completing)?;
        checksum::check_object_given(&given_object, formed.as_ref())?;
        drop(completing);
        let mut md5 = crate::md5::Md5::new();
        for p in &parts {
            md5.update(&hex::decode(&p.etag).unwrap_or_default());
        }
        let etag_value = format!("{}-{}", hex::encode(md5.finalize()), parts.len());
        // The object file holds only the metadata: the parts' own files are moved in.
        let w = self
            .store
            .writer()
            .await
            .map_err(|e| storage_err(e.into()))?;
        let mut meta = ObjectMeta {
            size,
            etag: etag_value,
            modified_ms: now_ms(),
            headers: info.headers.clone(),
            user: info.user.clone(),
            checksums: formed
                .iter()
                .map(|f| (f.algorithm.name().to_owned(), f.value.clone()))
                .collect(),
            checksum_kind: formed.as_ref().map(|f| f.kind).unwrap_or_default(),
            encryption: info.encryption.clone(),
            parts,
            tags: info.tags.clone(),
            retention: info.retention,
            legal_hold: info.legal_hold,
            ..Default::default()
        };
        let versioning = self.versioning(bucket).await?;
        let mut gateway_version = None;
        if let Some(g) = &self.gateway {
            meta.version_id = (versioning == crate::storage::Versioning::Enabled)
                .then(|| crate::storage::engine::s3::BACKEND_VERSION.to_owned());
            gateway_version = g
                .complete_upload(bucket, key, id, &meta, &condition)
                .await
                .map_err(|e| match e {
                    StorageError::NoSuchUpload => no_such_upload(),
                    StorageError::Refused => s3_error!(
                        InvalidPart,
                        "One or more of the specified parts changed while the upload was being completed."
                    ),
                    e => storage_err(e),
                })?;
        }
        let version_id = if self.gateway.is_some() {
            drop(w);
            gateway_version
        } else {
            self
            .store
            .commit_object_if(
                bucket,
                key,
                w,
                &mut meta,
                versioning,
                Some(upload),
                &condition,
            )
            .await
            .map_err(|e| match e {
                // A part was uploaded again while completing.
                StorageError::Refused => s3_error!(
                    InvalidPart,
                    "One or more of the specified parts changed while the upload was being completed."
                ),
                e => storage_err(e),
            })?
        };
        let sse = SseResponse::of(meta.encryption.as_ref(), None);
        let c = checksum::checksum_dto(&meta.checksums, Some(meta.checksum_kind));
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            checksum_type: c.checksum_type,
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&meta.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id,
            server_side_encryption: sse.sse,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            ..Default::default()
        }))
    }

    pub(crate) async fn do_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.read_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        if let Some(g) = &self.gateway {
            g.abort_upload(&input.bucket, &input.key, &input.upload_id)
                .await
                .map_err(|e| match e {
                    StorageError::NoSuchUpload => no_such_upload(),
                    e => storage_err(e),
                })?;
            return Ok(S3Response::new(AbortMultipartUploadOutput::default()));
        }
        let (store, dir) = (
            self.store.clone(),
            self.store.upload_dir(&input.bucket, &input.upload_id),
        );
        // Completed or aborted meanwhile, it is no longer there to abort.
        let existed = tokio::task::spawn_blocking(move || store.remove_upload_dir(&dir))
            .await
            .map_err(|e| storage_err(std::io::Error::other(e).into()))?
            .map_err(|e| storage_err(e.into()))?;
        if !existed {
            return Err(no_such_upload());
        }
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(crate) async fn do_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let info = self
            .read_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let engine = self.engine();
        let numbers = engine
            .list_upload_parts(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(|e| match e {
                StorageError::NoSuchUpload => no_such_upload(),
                e => storage_err(e),
            })?;
        let marker = input
            .part_number_marker
            .map(|m| m.max(0) as u32)
            .unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let mut parts = Vec::new();
        let mut truncated = false;
        for n in numbers.into_iter().filter(|n| *n > marker) {
            if parts.len() == max {
                truncated = true;
                break;
            }
            let m = match engine
                .part_meta(&input.bucket, &input.key, &input.upload_id, n)
                .await
            {
                Ok(m) => m,
                // Gone since it was listed (the upload completed or was aborted).
                Err(StorageError::NoSuchKey | StorageError::NoSuchUpload) => continue,
                Err(e) => return Err(storage_err(e)),
            };
            parts.push(Part {
                part_number: Some(n as i32),
                size: Some(m.size as i64),
                e_tag: Some(etag(&m.etag)),
                last_modified: Some(timestamp(m.modified_ms)),
                checksum_crc32: m.checksums.get("CRC32").cloned(),
                checksum_crc32c: m.checksums.get("CRC32C").cloned(),
                checksum_crc64nvme: m.checksums.get("CRC64NVME").cloned(),
                checksum_sha1: m.checksums.get("SHA1").cloned(),
                checksum_sha256: m.checksums.get("SHA256").cloned(),
            });
        }
        let next = parts.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            part_number_marker: Some(marker as i32),
            next_part_number_marker: next,
            parts: Some(parts),
            checksum_algorithm: info.checksum.map(|c| c.algorithm.dto()),
            checksum_type: info.checksum.map(|c| checksum::kind_dto(c.kind)),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut all = Vec::new();
        let uploads = self
            .engine()
            .list_uploads(&input.bucket)
            .await
            .map_err(storage_err)?;
        for (id, data) in uploads {
            let Ok(info) = serde_json::from_slice::<UploadInfo>(&data) else {
                continue;
            };
            if info.key.starts_with(&prefix) {
                all.push((info.key, id, info.created_ms));
            }
        }
        all.sort();
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let mut uploads = Vec::new();
        let mut truncated = false;
        for (k, id, created) in all {
            if !key_marker.is_empty()
                && (k.as_str() < key_marker.as_str()
                    || (k == key_marker
                        && (id_marker.is_empty() || id.as_str() <= id_marker.as_str())))
            {
                continue;
            }
            if uploads.len() == max {
                truncated = true;
                break;
            }
            uploads.push(MultipartUpload {
                key: Some(k),
                upload_id: Some(id),
                initiated: Some(timestamp(created)),
                ..Default::default()
            });
        }
        let (nk, nu) = match uploads.last() {
            Some(u) if truncated => (u.key.clone(), u.upload_id.clone()),
            _ => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(prefix),
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: nk,
            next_upload_id_marker: nu,
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
