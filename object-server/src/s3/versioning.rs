//! Versioning: Put/GetBucketVersioning, ListObjectVersions, and what every write, read and
//! delete asks of it — which version a request names, how a new object is committed (a new
//! version, the null version, or the plain unversioned file), what a DELETE does.
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::list::url_encode;
use super::opened::Opened;
use super::{CofferS3, etag, storage_err, timestamp};
use crate::storage::engine::s3 as gateway;
use crate::storage::engine::{Storage, StoredObject};
use crate::storage::{
    DeleteOutcome, ObjectMeta, ObjectWriter, OpenObject, StorageError, UploadParts, VersionInfo,
    Versioning, WriteCondition,
};

/// The error of a GET or HEAD whose key's latest version is a delete marker: 404 with
/// `x-amz-delete-marker: true` and the marker's version id, as AWS answers.
fn delete_marker_error(version_id: Option<&str>, named: bool) -> S3Error {
    let mut e = if named {
        s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        )
    } else {
        s3_error!(NoSuchKey, "The specified key does not exist.")
    };
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Some(v) = version_id.and_then(|v| http::HeaderValue::from_str(v).ok()) {
        h.insert("x-amz-version-id", v);
    }
    e.set_headers(h);
    e
}

/// PutBucketVersioning on a gateway: Enabled is passed through to the backend's versions (see
/// `storage::engine::s3`); refused with `409 InvalidBucketState` (AWS's answer to a request the
/// bucket's state does not allow) when the backend bucket keeps no versions, which the operator
/// can change; Suspended is `501` (not passed through yet).
async fn gateway_set_versioning(g: &dyn Storage, bucket: &str, status: &str) -> S3Result<()> {
    if !g.keeps_versions().await.map_err(storage_err)? {
        return Err(s3_error!(
            InvalidBucketState,
            "Versioning needs the S3 backend's bucket to be versioned, and it is not: enable versioning on the backend bucket first."
        ));
    }
    if status != BucketVersioningStatus::ENABLED {
        return Err(super::gateway_refuses("Suspending versioning"));
    }
    g.write_bucket_config(bucket, gateway::VERSIONING_DOC, Some(b"Enabled".to_vec()))
        .await
        .map_err(storage_err)
}

/// Checks the form of a `versionId` on a gateway: `null` or one of the backend's ids, which
/// are opaque (MinIO's are UUIDs, RGW's 32 characters) but never more than these characters.
/// It is only ever sent as the `versionId` of a request on the backend key the request names.
fn check_gateway_version_id(id: &str) -> S3Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(s3_error!(InvalidArgument, "Invalid version id specified"))
    }
}

/// Maps a version-level storage error.
pub(crate) fn version_err(e: StorageError) -> S3Error {
    match e {
        StorageError::NoSuchVersion => {
            s3_error!(NoSuchVersion, "The specified version does not exist.")
        }
        StorageError::MethodNotAllowed => s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        ),
        e => storage_err(e),
    }
}

/// Checks the form of a `versionId` parameter (AWS answers 400 for one it never made).
pub(crate) fn check_version_id(id: &str) -> S3Result<()> {
    if crate::storage::versions::valid_version_id(id) {
        Ok(())
    } else {
        Err(s3_error!(InvalidArgument, "Invalid version id specified"))
    }
}

impl CofferS3 {
    /// The bucket's versioning state (read from disk: every process sees a change at once).
    pub(crate) async fn versioning(&self, bucket: &str) -> S3Result<Versioning> {
        if let Some(g) = &self.gateway {
            // Enabled is the only state a gateway bucket can be given (see
            // `gateway_set_versioning`).
            let doc = g
                .read_bucket_config(bucket, gateway::VERSIONING_DOC)
                .await
                .map_err(storage_err)?;
            return Ok(match doc.as_deref() {
                Some(b"Enabled") => Versioning::Enabled,
                _ => Versioning::Unversioned,
            });
        }
        self.store.versioning(bucket).await.map_err(storage_err)
    }

    /// Turns versioning on (`Enabled`) or suspends it.
    pub(crate) async fn set_versioning(&self, bucket: &str, status: &str) -> S3Result<()> {
        self.store
            .set_versioning(bucket, status == BucketVersioningStatus::ENABLED)
            .await
            .map_err(storage_err)
    }

    /// Commits a newly written object as the bucket's versioning state (read when the request
    /// began) asks, if `condition` holds then (decided under the key's lock); returns the
    /// version id to answer with (none for unversioned buckets).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        writer: ObjectWriter,
        meta: &mut ObjectMeta,
        versioning: Versioning,
        upload: Option<UploadParts>,
        condition: &WriteCondition,
    ) -> S3Result<Option<String>> {
        if let Some(g) = &self.gateway {
            debug_assert!(upload.is_none());
            meta.version_id =
                (versioning == Versioning::Enabled).then(|| gateway::BACKEND_VERSION.to_owned());
            return g
                .put_object(bucket, key, writer, meta, condition)
                .await
                .map_err(storage_err);
        }
        self.store
            .commit_object_if(bucket, key, writer, meta, versioning, upload, condition)
            .await
            .map_err(storage_err)
    }

    /// [`Self::open_named`] with the part files of a multipart object opened too, to read its
    /// body: what an open reader reads never changes, whatever happens to the key meanwhile.
    pub(crate) async fn open_named_body(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<Opened> {
        if let Some(g) = &self.gateway {
            return self
                .open_gateway(g.as_ref(), bucket, key, version_id)
                .await
                .map(Opened::Remote);
        }
        // A part gone between the two opens means the object was replaced: open the new one.
        for _ in 0..5 {
            let obj = self.open_named(bucket, key, version_id).await?;
            if let Some(o) = self.store.open_parts(obj).await.map_err(storage_err)? {
                return Ok(Opened::Local(o));
            }
        }
        Err(s3_error!(
            SlowDown,
            "The object changed on every attempt to open it; please retry."
        ))
    }

    /// Opens what a GET/HEAD/copy source names: the latest version, or the given one. A delete
    /// marker is answered as AWS does (404 for the latest, 405 when named).
    pub(crate) async fn open_named(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<OpenObject> {
        if self.gateway.is_some() {
            return Err(super::gateway_refuses("Reading object metadata this way"));
        }
        let obj = match version_id {
            None => self
                .store
                .open_latest(bucket, key)
                .await
                .map_err(storage_err)?,
            Some(v) => {
                check_version_id(v)?;
                self.store
                    .open_version(bucket, key, v)
                    .await
                    .map_err(version_err)?
            }
        };
        if obj.meta.delete_marker {
            return Err(delete_marker_error(
                obj.meta.version_id.as_deref(),
                version_id.is_some(),
            ));
        }
        let mut obj = obj;
        // An object without an id (written before versioning, or while it was never enabled)
        // is the null version: AWS names it `null` once the bucket has a versioning state, or
        // when asked for it by that id.
        if obj.meta.version_id.is_none()
            && (version_id == Some(crate::storage::layout::NULL_VERSION)
                || self.versioning(bucket).await? != Versioning::Unversioned)
        {
            obj.meta.version_id = Some(crate::storage::layout::NULL_VERSION.to_owned());
        }
        Ok(obj)
    }

    /// Opens `bucket/key` on the gateway backend: in a bucket that never kept versions the only
    /// version a request may name is `null`, the one every object is; in a versioned one, the
    /// backend's version (see `storage::engine::s3`).
    async fn open_gateway(
        &self,
        g: &dyn Storage,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<StoredObject> {
        if let Some(v) = version_id {
            check_gateway_version_id(v)?;
        }
        if self.versioning(bucket).await? == Versioning::Unversioned {
            if version_id.is_some_and(|v| v != crate::storage::layout::NULL_VERSION) {
                return Err(version_err(StorageError::NoSuchVersion));
            }
            return g.open_object(bucket, key).await.map_err(storage_err);
        }
        let mut obj = g
            .open_version(bucket, key, version_id)
            .await
            .map_err(version_err)?;
        if obj.meta.delete_marker {
            return Err(delete_marker_error(
                obj.meta.version_id.as_deref(),
                version_id.is_some(),
            ));
        }
        if obj.meta.version_id.is_none() {
            obj.meta.version_id = Some(crate::storage::layout::NULL_VERSION.to_owned());
        }
        Ok(obj)
    }

    /// The metadata of the version a HEAD (or a write's condition) names.
    pub(crate) async fn open_named_meta(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<ObjectMeta> {
        match &self.gateway {
            Some(g) => Ok(self
                .open_gateway(g.as_ref(), bucket, key, version_id)
                .await?
                .meta),
            None => Ok(self.open_named(bucket, key, version_id).await?.meta),
        }
    }

    /// DELETE of a key (a delete marker in a versioned bucket) or of one version (for good).
    /// `bypass_governance` is whether the caller may remove GOVERNANCE-locked versions.
    /// `condition` (`If-Match`) is decided against the key's latest version: under the key's
    /// lock for a DELETE of the key (a PUT racing with it is never deleted nor hidden), before
    /// it for a DELETE of one version (a PUT racing with it makes a new version, which that
    /// DELETE does not touch).
    pub(crate) async fn delete_named(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
        condition: &WriteCondition,
    ) -> S3Result<DeleteOutcome> {
        if let Some(g) = &self.gateway {
            // The condition is decided on what is there just before the delete; the backend
            // has no conditional DELETE, so a PUT racing with it may be deleted.
            let versioned = self.versioning(bucket).await? != Versioning::Unversioned;
            if let Some(v) = version_id {
                check_gateway_version_id(v)?;
                if !versioned && v != crate::storage::layout::NULL_VERSION {
                    return Err(version_err(StorageError::NoSuchVersion));
                }
            }
            crate::storage::layout::key_dir(key).map_err(|e| storage_err(e.into()))?;
            super::put::check_write_conditions(self, bucket, key, condition).await?;
            if versioned {
                return g
                    .delete_version(bucket, key, version_id)
                    .await
                    .map_err(version_err);
            }
            g.delete_object(bucket, key).await.map_err(storage_err)?;
            return Ok(DeleteOutcome {
                version_id: version_id.map(str::to_owned),
                delete_marker: false,
            });
        }
        self.store.require_bucket(bucket).map_err(storage_err)?;
        match version_id {
            Some(v) => {
                check_version_id(v)?;
                super::put::check_write_conditions(self, bucket, key, condition).await?;
                let now = super::now_ms();
                let removed = self
                    .store
                    .delete_version(bucket, key, v, move |m| {
                        super::lock::deletion_allowed(m, bypass_governance, now)
                    })
                    .await
                    .map_err(|e| match e {
                        StorageError::Refused => super::lock::worm_protected(),
                        e => version_err(e),
                    })?;
                Ok(DeleteOutcome {
                    version_id: Some(v.to_owned()),
                    delete_marker: removed.is_some_and(|m| m.delete_marker),
                })
            }
            None => {
                let mode = self.versioning(bucket).await?;
                let marker = self
                    .store
                    .delete_latest_if(bucket, key, mode, super::now_ms(), condition)
                    .await
                    .map_err(storage_err)?;
                Ok(DeleteOutcome {
                    delete_marker: marker.is_some(),
                    version_id: marker,
                })
            }
        }
    }

    pub(crate) async fn do_get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.engine()
            .head_bucket(&req.input.bucket)
            .await
            .map_err(storage_err)?;
        let status = match self.versioning(&req.input.bucket).await? {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    pub(crate) async fn do_put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        let bucket = input.bucket.as_str();
        self.engine()
            .head_bucket(bucket)
            .await
            .map_err(storage_err)?;
        if input.versioning_configuration.mfa_delete.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "MFA delete is not supported by this server."
            ));
        }
        let status = match input
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(s @ (BucketVersioningStatus::ENABLED | BucketVersioningStatus::SUSPENDED)) => s,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema."
                ));
            }
        };
        if let Some(g) = &self.gateway {
            return gateway_set_versioning(g.as_ref(), bucket, status)
                .await
                .map(|()| S3Response::new(PutBucketVersioningOutput::default()));
        }
        if status == BucketVersioningStatus::SUSPENDED && self.object_lock_enabled(bucket).await? {
            return Err(s3_error!(
                InvalidBucketState,
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
            ));
        }
        self.set_versioning(bucket, status).await?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    pub(crate) async fn do_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let bucket = input.bucket.as_str();
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
        let vid_marker = input.version_id_marker.clone().filter(|m| !m.is_empty());
        if vid_marker.is_some() && key_marker.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        if let Some(v) = &vid_marker {
            match &self.gateway {
                Some(_) => check_gateway_version_id(v)?,
                None => check_version_id(v)?,
            }
        }
        let keys = match &self.gateway {
            Some(g) => g.version_keys(bucket, &prefix).await,
            None => {
                self.store
                    .list_version_keys(bucket, &prefix, delimiter.as_deref() == Some("/"))
                    .await
            }
        }
        .map_err(storage_err)?;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };

        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut count = 0usize;
        let mut truncated = false;
        // The last entry on the page: (key or common prefix, version id).
        let mut last: Option<(String, Option<String>)> = None;
        'keys: for k in &keys {
            if !k.starts_with(&prefix) {
                continue;
            }
            let group = delimiter.as_deref().and_then(|d| {
                k[prefix.len()..]
                    .find(d)
                    .map(|i| k[..prefix.len() + i + d.len()].to_owned())
            });
            if let Some(p) = group {
                // A common prefix at or before the marker was on an earlier page.
                if key_marker.as_deref().is_some_and(|m| p.as_str() <= m) {
                    continue;
                }
                if prefixes.last() == Some(&p) {
                    continue;
                }
                if count == max {
                    truncated = true;
                    break;
                }
                count += 1;
                last = Some((p.clone(), None));
                prefixes.push(p);
                continue;
            }
            if let Some(m) = key_marker.as_deref()
                && (k.as_str() < m || (k.as_str() == m && vid_marker.is_none()))
            {
                continue;
            }
            let list = match &self.gateway {
                Some(g) => g.key_versions(bucket, k).await,
                None => self.store.key_versions(bucket, k).await,
            };
            let list: Vec<VersionInfo> = match list {
                Ok(v) => v,
                Err(StorageError::NoSuchKey) => continue,
                Err(e) => return Err(storage_err(e)),
            };
            let mut skipping = key_marker.as_deref() == Some(k.as_str());
            for v in list {
                if skipping {
                    if Some(&v.version_id) == vid_marker.as_ref() {
                        skipping = false;
                    }
                    continue;
                }
                if count == max {
                    truncated = true;
                    break 'keys;
                }
                count += 1;
                last = Some((k.clone(), Some(v.version_id.clone())));
                if v.meta.delete_marker {
                    markers.push(DeleteMarkerEntry {
                        is_latest: Some(v.is_latest),
                        key: Some(enc(k)),
                        last_modified: Some(timestamp(v.meta.modified_ms)),
                        owner: Some(owner()),
                        version_id: Some(v.version_id),
                    });
                } else {
                    versions.push(ObjectVersion {
                        e_tag: Some(etag(&v.meta.etag)),
                        is_latest: Some(v.is_latest),
                        key: Some(enc(k)),
                        last_modified: Some(timestamp(v.meta.modified_ms)),
                        owner: Some(owner()),
                        size: Some(v.meta.size as i64),
                        storage_class: Some(ObjectVersionStorageClass::from_static(
                            ObjectVersionStorageClass::STANDARD,
                        )),
                        version_id: Some(v.version_id),
                        checksum_algorithm: super::checksum::algorithms_of(&v.meta.checksums),
                        checksum_type: (!v.meta.checksums.is_empty())
                            .then(|| super::checksum::kind_dto(v.meta.checksum_kind)),
                        ..Default::default()
                    });
                }
            }
        }
        let (next_key, next_vid) = match (truncated, last) {
            (true, Some((k, v))) => (Some(enc(&k)), v),
            _ => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(enc(&prefix)),
            delimiter: input.delimiter.as_deref().map(enc),
            key_marker: Some(input.key_marker.as_deref().map(enc).unwrap_or_default()),
            version_id_marker: Some(input.version_id_marker.clone().unwrap_or_default()),
            max_keys: Some(input.max_keys.unwrap_or(1000)),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_version_id_marker: next_vid,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(&p)),
                    })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

fn owner() -> Owner {
    Owner {
        display_name: Some("coffer".to_owned()),
        id: Some("coffer".to_owned()),
    }
}
