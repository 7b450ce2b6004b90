//! The gateway engine: every Coffer bucket of a Tenant lives in **one bucket of another S3
//! service** (RGW, MinIO, AWS), so any number of `object-server` processes serve it with nothing
//! of their own but staged temp files.
//!
//! # Layout of the backend bucket
//!
//! ```text
//! .coffer/buckets/<bucket>                   {"created_ms", "id"}: the bucket exists; `id` is drawn
//!                                            at random when it is created
//! <bucket>/<id>/<key>\x01                    the object file of <bucket>/<key>: body ‖ trailer,
//!                                            byte for byte what the local store writes (the
//!                                            suffix: see [`KEY_END`])
//! .coffer/config/<bucket>/<id>/<name>.json   a bucket configuration document
//! .coffer/uploads/<bucket>/<id>/<hex upload id>/state      the handlers' upload state (sealed key)
//! .coffer/uploads/<bucket>/<id>/<hex upload id>/part.<n>   part n's metadata and backend ETag
//! .coffer/uploads/<bucket>/<id>/<hex upload id>/body.<n>   part n's ciphertext, when it is too
//!                                            small to be a backend part that is not the last
//! .coffer/system/iam/users.json              the users, secret keys sealed by the KMS
//! .coffer/system/iam/policies.json           the policies made with the admin API
//! .coffer/system/metadata.key                the metadata key's KMS ciphertext
//! ```
//! (`.coffer/system/`: the server's own state, see `state.rs`.)
//! Bucket names never start with `.`, so no object name meets `.coffer/`. The random `id` makes
//! a bucket deleted and created again a new namespace: an object whose PUT raced the delete
//! lands under the dead id and never shows in the new bucket.
//!
//! # Atomicity
//!
//! An object is one backend object (body and trailer together), written by one `PutObject` of
//! the staged file or one `CompleteMultipartUpload`: the backend shows it whole or not at all, so
//! no crash, dropped connection or backend failure leaves a torn object; a failed upload leaves
//! the previous object. Bucket creation is a `PutObject` with `If-None-Match: *` (one of many
//! concurrent creators wins). Reads are pinned to the backend ETag seen at open ([`S3Body`]).
//! Conditional writes: see [`S3Store::put_object`].
//!
//! # A versioned backend bucket
//!
//! The backend bucket may keep versions (an RGW or MinIO bucket with versioning enabled, the
//! only kind that can hold object lock). Every write and delete of the gateway then leaves a
//! noncurrent version or a delete marker behind, and an unversioned Coffer bucket must not leak
//! them (an overwritten object's old ciphertext, a deleted user's sealed secret). So the store
//! asks the backend once, at start, whether its bucket is versioned ([`S3Store::check`]), and
//! on a versioned one every write **purges**: after a PUT that the backend answered with version
//! `v`, the versions of that backend key listed after `v` (older ones: ListObjectVersions lists a
//! key's versions newest first) are deleted by version id, and a DELETE removes every version
//! and marker of the key by id instead of writing a marker. Only versions older than one's own
//! are ever purged, so two writers racing never delete each other's newer version. A purge that
//! fails (backend down) leaves an old version, never a missing current one; the next write of the
//! key purges it. A backend whose versioning is enabled after the gateway started is seen at the
//! next start.
//!
//! # Versioning passed through
//!
//! Every Coffer bucket shares the one backend bucket, so Coffer's per-bucket state cannot be the
//! backend's (which is per backend bucket):
//! - **State.** A Coffer bucket's versioning state is the bucket configuration document
//!   `.coffer/config/<bucket>/<id>/versioning.json` ([`VERSIONING_DOC`], content `Enabled`).
//!   PutBucketVersioning needs a versioned backend bucket; otherwise it is refused with `409
//!   InvalidBucketState` (AWS's code for a request the bucket's state does not allow, as for
//!   object lock without versioning). Only a Coffer bucket without the document purges (above).
//! - **Versions are the backend's.** A Coffer version of `<bucket>/<key>` is a backend version of
//!   its backend key `<bucket>/<id>/<key>\x01`, and its Coffer version id is the backend's. A
//!   client's id is checked for form (`[A-Za-z0-9._-]`, at most 1024 bytes: never a path, never a
//!   query) and only ever sent as the `versionId` of a request on the backend key the request
//!   names. A backend version id addresses versions of the key it is sent with only, so an id a
//!   client makes up or copies from another bucket's listing names a version of that key in that
//!   bucket, or nothing (`404 NoSuchVersion`); the bucket's random `id` in the backend key keeps a
//!   deleted and recreated bucket's versions out of the new one.
//! - **Null versions.** A version written into a versioned Coffer bucket carries
//!   `version_id: "backend"` ([`BACKEND_VERSION`]) in its trailer, replaced by the backend's id
//!   when it is opened; a trailer without one was written while the bucket kept no versions (an
//!   unversioned bucket keeps one version per key, see the purge above): it is the null version,
//!   listed and answered as `null`, found by `versionId=null` as the key's oldest version.
//! - **Delete markers** are the backend's: DELETE without a version id is a backend DELETE (a
//!   marker, whose id is answered); DELETE with one deletes that backend version; GET/HEAD of a
//!   key whose latest is a marker is `404` with `x-amz-delete-marker`, of a marker by id `405`.
//! - **ListObjectVersions**: the backend's listing under `<bucket>/<id>/` + prefix gives the keys;
//!   the handlers page, group by delimiter and apply the markers over them as over a local
//!   directory, with each key's versions (newest first across versions and markers) opened for
//!   their trailer's size, ETag and checksums.
//! - **GET/HEAD by version id** open the backend version (`versionId` on the tail GET and on every
//!   ranged body GET, which stay pinned by `If-Match` too).
//! - **Not yet:** Suspended (`501`): it needs null versions written into a versioned backend
//!   bucket, told apart by the times of the bucket's versioning history; listing cost (one GET
//!   per listed version, and every version under the prefix listed to find the keys).
//! - **Conditional writes in a versioned backend bucket.** The gateway's atomicity (conditional
//!   PUTs, bucket creation, the state documents) needs `If-None-Match: *` and `If-Match` to hold
//!   there too. Ceph RGW 16 (pacific, the pinned peer) ignores `If-None-Match: *` and refuses
//!   every `If-Match` in a versioned bucket (it honours both in an unversioned one), so the
//!   gateway refuses to start over a versioned RGW 16 bucket (`conditional_writes_hold`); MinIO
//!   honours both. Passing versions through to RGW needs a release that honours them there.
//!   The alternative that works over any backend, RGW 16 included: Coffer's own versions as
//!   distinct backend objects (`<bucket>/<id>/<key>\x01<version id>`, Coffer-made ids, the
//!   latest one named by a conditional write) in an unversioned backend bucket; it gives up only
//!   the backend's own enforcement of object lock.
//!
//! # Object lock passed through (design)
//! A retention or legal hold on a Coffer version is the backend's on that backend version
//! (`PutObjectRetention` / `PutObjectLegalHold` with its version id), so the backend itself
//! enforces WORM: not even a gateway with the backend's credentials can remove a COMPLIANCE
//! version early. It needs a backend bucket created with object lock; otherwise refused with
//! `409 InvalidBucketState`. A Coffer bucket's default retention stays a Coffer document applied
//! by the handlers on each PUT (the backend's default would apply to every Coffer bucket).
//!
//! # What it does not do yet
//! Suspended versioning and object lock as designed above ([`Capabilities`] says no object
//! lock; the handlers refuse it), server-side copy
//! of the stored bytes (a Coffer copy re-encrypts, so it is a GET and a PUT anyway), a cache of
//! bucket ids (every request reads the bucket record), and reclaiming objects orphaned by a
//! bucket deleted during their PUT.
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use rusty_s3::S3Action;
use serde::{Deserialize, Serialize};

use super::{BodySource, Capabilities, ListPage, ListQuery, Storage, StoredObject};
use crate::storage::meta::TRAILER;
use crate::storage::{
    ObjectMeta, ObjectWriter, StorageError, Store, WriteCondition, layout, random_name,
};
use client::{Body, Client};

mod client;
pub mod config;
mod multipart;
mod names;
mod state;
mod versions;

pub use config::BackendConfig;
pub use versions::{BACKEND_VERSION, VERSIONING_DOC};

/// How much of an object's end an open fetches, hoping the trailer is inside (it usually is:
/// a trailer is a few hundred bytes; a multipart object's grows with its parts).
const TAIL_GUESS: u64 = 64 * 1024;
/// Ends every object's backend key. MinIO keeps an object as a directory, so it cannot hold
/// object `a` beside object `a/x` (the second one is silently unlisted); with the suffix they are
/// `a\x01` and `a/x\x01`, which never collide. The order stays S3's: a key's suffix sorts before
/// every character a longer key can continue with (keys hold no NUL), and the delimiter's common
/// prefixes are unchanged because the suffix comes after the last `/`. Listings ask for
/// `encoding-type=url`, since XML cannot carry the character.
const KEY_END: char = '\u{1}';
/// Conditional writes that lose a race retry this often before the client gets `503`.
const CONDITION_ROUNDS: usize = 8;

/// A bucket of another S3 service as the storage engine.
pub struct S3Store {
    client: Arc<Client>,
    /// The local directory that stages bodies before they are uploaded (nothing else of it is used).
    staging: Store,
    /// Whether the backend bucket keeps versions (see [`S3Store::backend_versioned`]).
    versioned: tokio::sync::OnceCell<bool>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("backend", &self.client.name)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct BucketRecord {
    created_ms: i64,
    id: String,
}

fn record_key(bucket: &str) -> String {
    format!(".coffer/buckets/{bucket}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Any answer not foreseen: the backend misbehaves; the client gets `503`, nothing changed.
fn unexpected(what: &str, a: &client::Answer) -> StorageError {
    StorageError::Unavailable(format!(
        "{what}: unexpected {} {}",
        a.status,
        client::error_code(&a.body)
    ))
}

impl S3Store {
    /// The backend `cfg` names, staging bodies under `staging_dir`.
    pub fn new(cfg: BackendConfig, staging_dir: &Path) -> anyhow::Result<Self> {
        Ok(S3Store {
            client: Arc::new(Client::new(&cfg)?),
            staging: Store::open(staging_dir)?,
            versioned: tokio::sync::OnceCell::new(),
        })
    }

    /// Checks that the backend bucket answers with these credentials.
    pub async fn check(&self) -> Result<(), StorageError> {
        let c = &self.client;
        let a = c
            .send(c.bucket.head_bucket(Some(&c.creds)), &[], Body::Empty)
            .await?;
        match a.status {
            s if s.is_success() => {}
            _ => return Err(unexpected("the backend bucket", &a)),
        }
        let versioned = self.backend_versioned().await?;
        tracing::info!(versioned, "the S3 backend bucket answers");
        Ok(())
    }

    async fn get(
        &self,
        key: &str,
        headers: &[(&str, String)],
    ) -> Result<client::Answer, StorageError> {
        let c = &self.client;
        c.send(
            c.bucket.get_object(Some(&c.creds), key),
            headers,
            Body::Empty,
        )
        .await
    }

    /// A small document, `None` if absent.
    async fn get_doc(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let a = self.get(key, &[]).await?;
        match a.status {
            StatusCode::OK => Ok(Some(a.body)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected(key, &a)),
        }
    }

    /// Puts `body` at `key`, purging the versions it replaces (see the module doc); `false` if
    /// `headers`' condition failed (412).
    async fn put(
        &self,
        key: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<bool, StorageError> {
        match self.put_keeping(key, headers, body).await? {
            Some(version) => {
                self.purge_older(key, version.as_deref()).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Puts `body` at `key`, keeping older versions: the backend's version id of the write
    /// (inner `None` on an unversioned backend bucket), `None` if `headers`' condition failed.
    async fn put_keeping(
        &self,
        key: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Option<Option<String>>, StorageError> {
        let c = &self.client;
        let a = c
            .send(c.bucket.put_object(Some(&c.creds), key), headers, body)
            .await?;
        match a.status {
            s if s.is_success() => Ok(Some(a.version_id)),
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT if !headers.is_empty() => {
                Ok(None)
            }
            _ => Err(unexpected(key, &a)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        if self.backend_versioned().await? {
            return self.remove_all_versions(key).await;
        }
        let c = &self.client;
        let a = c
            .send(
                c.bucket.delete_object(Some(&c.creds), key),
                &[],
                Body::Empty,
            )
            .await?;
        match a.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(unexpected(key, &a)),
        }
    }

    /// One page of backend keys: `(keys, common prefixes, continuation token)`.
    async fn list_raw(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        token: Option<&str>,
        max: usize,
    ) -> Result<(Vec<String>, Vec<String>, Option<String>), StorageError> {
        let c = &self.client;
        let mut action = c.bucket.list_objects_v2(Some(&c.creds));
        action.with_prefix(prefix.to_owned());
        if let Some(d) = delimiter {
            action.with_delimiter(d.to_owned());
        }
        if let Some(s) = start_after {
            action.with_start_after(s.to_owned());
        }
        if let Some(t) = token {
            action.with_continuation_token(t.to_owned());
        }
        action.with_max_keys(max);
        action.query_mut().insert("encoding-type", "url");
        let a = c.send(action, &[], Body::Empty).await?;
        if a.status != StatusCode::OK {
            return Err(unexpected("list", &a));
        }
        let text = xml_text(&a).ok_or_else(|| unexpected("list", &a))?;
        let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
            .map_err(|e| StorageError::Unavailable(format!("list: unreadable answer: {e}")))?;
        // rusty-s3 decodes the keys itself when the answer says they are url-encoded (MinIO's
        // does); decoding them again would turn a key's own `%41` into `A`.
        let decoded = page.encoding_type.as_deref() == Some("url");
        let decode = |s: String| {
            if decoded {
                return Ok(s);
            }
            url_decode(&s)
                .ok_or_else(|| StorageError::Unavailable(format!("list: undecodable key {s:?}")))
        };
        Ok((
            page.contents
                .into_iter()
                .map(|c| decode(c.key))
                .collect::<Result<_, _>>()?,
            page.common_prefixes
                .into_iter()
                .map(|p| decode(p.prefix))
                .collect::<Result<_, _>>()?,
            page.next_continuation_token,
        ))
    }

    /// Every backend key under `prefix`.
    async fn list_all(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let (mut out, mut token) = (Vec::new(), None);
        loop {
            let (keys, _, next) = self
                .list_raw(prefix, None, None, token.as_deref(), 1000)
                .await?;
            out.extend(keys);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The random id of `bucket` ([`StorageError::NoSuchBucket`] if it does not exist).
    async fn bucket_id(&self, bucket: &str) -> Result<String, StorageError> {
        Ok(self.bucket_record(bucket).await?.id)
    }

    async fn bucket_record(&self, bucket: &str) -> Result<BucketRecord, StorageError> {
        if bucket.starts_with('.') || bucket.contains('/') || bucket.is_empty() {
            return Err(StorageError::NoSuchBucket);
        }
        let doc = self
            .get_doc(&record_key(bucket))
            .await?
            .ok_or(StorageError::NoSuchBucket)?;
        serde_json::from_slice(&doc).map_err(|_| StorageError::Damaged)
    }

    /// The backend key of `bucket/key`: the key followed by [`KEY_END`] (see there).
    fn object_key(bucket: &str, id: &str, key: &str) -> String {
        format!("{bucket}/{id}/{}{KEY_END}", names::encode(key))
    }

    fn config_key(bucket: &str, id: &str, name: &str) -> String {
        format!(".coffer/config/{bucket}/{id}/{name}.json")
    }

    /// Opens the object file at backend key `k`: its metadata, body length and backend ETag (a
    /// latest version that is a delete marker is [`StorageError::NoSuchKey`]).
    async fn open_at(&self, k: &str) -> Result<(ObjectMeta, u64, String), StorageError> {
        match self.open_version_at(k, None).await? {
            OpenedAt::Object {
                meta,
                body_len,
                etag,
                ..
            } => Ok((*meta, body_len, etag)),
            OpenedAt::DeleteMarker { .. } => Err(StorageError::NoSuchKey),
        }
    }

    /// Opens backend version `version` (else the latest) of the object file at backend key `k`.
    async fn open_version_at(
        &self,
        k: &str,
        version: Option<&str>,
    ) -> Result<OpenedAt, StorageError> {
        let a = self
            .get_version(k, version, &[("range", format!("bytes=-{TAIL_GUESS}"))])
            .await?;
        let total = match a.status {
            StatusCode::PARTIAL_CONTENT => a.content_range_total.ok_or(StorageError::Damaged)?,
            StatusCode::OK => a.body.len() as u64,
            StatusCode::NOT_FOUND if a.delete_marker => {
                return Ok(OpenedAt::DeleteMarker {
                    version: a.version_id,
                });
            }
            StatusCode::METHOD_NOT_ALLOWED if version.is_some() => {
                return Err(StorageError::MethodNotAllowed);
            }
            // A version id the backend never made (it checks their form).
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST if version.is_some() => {
                return Err(StorageError::NoSuchVersion);
            }
            StatusCode::NOT_FOUND => return Err(StorageError::NoSuchKey),
            // An empty backend object has no range to give: it is no object file.
            StatusCode::RANGE_NOT_SATISFIABLE => return Err(StorageError::Damaged),
            _ => return Err(unexpected(k, &a)),
        };
        let etag = a.etag.clone().ok_or(StorageError::Damaged)?;
        let backend_version = a.version_id.clone();
        let mut tail = a.body;
        let tail_len = tail.len() as u64;
        if tail_len < TRAILER as u64 {
            return Err(StorageError::Damaged);
        }
        let t = &tail[tail.len() - TRAILER..];
        let json_len = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as u64;
        let needed = (json_len + TRAILER as u64).min(total);
        if needed > tail_len {
            // A long trailer (many parts): fetch exactly it, from the same stored version.
            let a = self
                .get_version(
                    k,
                    version,
                    &[
                        ("range", format!("bytes=-{needed}")),
                        ("if-match", etag.clone()),
                    ],
                )
                .await?;
            match a.status {
                StatusCode::PARTIAL_CONTENT | StatusCode::OK => tail = a.body,
                StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => {
                    return Err(StorageError::Changed);
                }
                _ => return Err(unexpected(k, &a)),
            }
        }
        let start = total - tail.len() as u64;
        let (meta, body_len) = ObjectMeta::parse(total, |buf, at| {
            let i = at
                .checked_sub(start)
                .ok_or_else(|| io::Error::other("trailer outside the fetched tail"))?
                as usize;
            let src = tail
                .get(i..i + buf.len())
                .ok_or_else(|| io::Error::other("trailer outside the fetched tail"))?;
            buf.copy_from_slice(src);
            Ok(())
        })
        .map_err(|_| StorageError::Damaged)?;
        Ok(OpenedAt::Object {
            meta: Box::new(meta),
            body_len,
            etag,
            version: backend_version,
        })
    }

    async fn get_version(
        &self,
        key: &str,
        version: Option<&str>,
        headers: &[(&str, String)],
    ) -> Result<client::Answer, StorageError> {
        let c = &self.client;
        let mut action = c.bucket.get_object(Some(&c.creds), key);
        if let Some(v) = version {
            action.query_mut().insert("versionId", v.to_owned());
        }
        c.send(action, headers, Body::Empty).await
    }

    /// A reader of `k`'s body as opened.
    fn body_of(&self, k: String, etag: String, version: Option<String>, body_len: u64) -> S3Body {
        S3Body {
            client: self.client.clone(),
            key: k,
            etag,
            version,
            body_len,
        }
    }
}

/// What [`S3Store::open_version_at`] found.
enum OpenedAt {
    Object {
        /// Boxed: a delete marker has none.
        meta: Box<ObjectMeta>,
        body_len: u64,
        etag: String,
        /// The backend's version id (none on an unversioned backend bucket).
        version: Option<String>,
    },
    DeleteMarker {
        version: Option<String>,
    },
}

/// The `If-Match` value of a conditional write on the backend ETag `etag`: unquoted, because
/// RGW compares a write's `If-Match` with its stored (unquoted) ETag byte for byte (its reads
/// unquote it first); MinIO and AWS take either form.
fn write_if_match(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// The XML document of an answer. RGW url-encodes listed keys, but echoes our keys elsewhere
/// (`Key` of CreateMultipartUpload, a listing's continuation token and `StartAfter`) with
/// [`KEY_END`] as a character reference XML 1.0 forbids: it is replaced by its url-encoded form,
/// so the document parses (none of those elements is read as a key).
pub(crate) fn xml_text(a: &client::Answer) -> Option<String> {
    let text = std::str::from_utf8(&a.body).ok()?;
    Some(
        text.replace("&#x01;", "%01")
            .replace("&#x1;", "%01")
            .replace("&#1;", "%01")
            .replace("&#x02;", "%02")
            .replace("&#x2;", "%02")
            .replace("&#2;", "%02"),
    )
}

/// Decodes a key of a listing made with `encoding-type=url` (`+` is a space).
fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A stored version's body in the backend: ranged GETs with `If-Match` on the ETag seen at open,
/// so an overwrite meanwhile fails the read ([`StorageError::Changed`]) instead of mixing bytes.
struct S3Body {
    client: Arc<Client>,
    key: String,
    etag: String,
    /// The backend version opened, when the backend bucket keeps versions.
    version: Option<String>,
    body_len: u64,
}

#[async_trait]
impl BodySource for S3Body {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= self.body_len)
            .ok_or_else(|| {
                StorageError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the body",
                ))
            })?;
        let c = &self.client;
        let mut action = c.bucket.get_object(Some(&c.creds), &self.key);
        if let Some(v) = &self.version {
            action.query_mut().insert("versionId", v.clone());
        }
        let a = c
            .send(
                action,
                &[
                    ("range", format!("bytes={offset}-{}", end - 1)),
                    ("if-match", self.etag.clone()),
                ],
                Body::Empty,
            )
            .await?;
        match a.status {
            StatusCode::PARTIAL_CONTENT if a.body.len() as u64 == len => Ok(a.body),
            StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => Err(StorageError::Changed),
            _ => Err(unexpected(&self.key, &a)),
        }
    }
}

#[async_trait]
impl Storage for S3Store {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // When the backend bucket is versioned (`keeps_versions`); Enabled only.
            versioning: true,
            object_lock: false,
        }
    }

    async fn keeps_versions(&self) -> Result<bool, StorageError> {
        self.backend_versioned().await
    }

    async fn create_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        if bucket.starts_with('.') || bucket.contains('/') || bucket.is_empty() {
            return Err(StorageError::NoSuchBucket);
        }
        let record = BucketRecord {
            created_ms: now_ms(),
            id: random_name(),
        };
        let body = Bytes::from(serde_json::to_vec(&record).expect("serializes"));
        let created = self
            .put(
                &record_key(bucket),
                &[("if-none-match", "*".to_owned())],
                Body::Bytes(body),
            )
            .await?;
        if created {
            Ok(())
        } else {
            Err(StorageError::BucketExists)
        }
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        let id = self.bucket_id(bucket).await?;
        let (keys, prefixes, _) = self
            .list_raw(&format!("{bucket}/{id}/"), None, None, None, 1)
            .await?;
        if !keys.is_empty() || !prefixes.is_empty() {
            return Err(StorageError::BucketNotEmpty);
        }
        // A versioned bucket with only noncurrent versions or delete markers is not empty
        // either (an unversioned one never keeps any: see the purge).
        if self.backend_versioned().await?
            && self.any_version_under(&format!("{bucket}/{id}/")).await?
        {
            return Err(StorageError::BucketNotEmpty);
        }
        // The record goes first: from then on the bucket is gone for every process, and what
        // is left under its id (configuration, uploads) is unreachable.
        self.delete(&record_key(bucket)).await?;
        for prefix in [
            format!(".coffer/config/{bucket}/{id}/"),
            format!(".coffer/uploads/{bucket}/{id}/"),
        ] {
            for k in self.list_all(&prefix).await? {
                self.delete(&k).await?;
            }
        }
        Ok(())
    }

    async fn list_buckets(&self) -> Result<Vec<(String, SystemTime)>, StorageError> {
        let mut out = Vec::new();
        for k in self.list_all(".coffer/buckets/").await? {
            let name = k.trim_start_matches(".coffer/buckets/").to_owned();
            let record = match self.bucket_record(&name).await {
                Ok(r) => r,
                Err(StorageError::NoSuchBucket) => continue, // deleted meanwhile
                Err(e) => return Err(e),
            };
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(record.created_ms.max(0) as u64);
            out.push((name, t));
        }
        out.sort();
        Ok(out)
    }

    async fn head_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        self.bucket_id(bucket).await.map(drop)
    }

    async fn read_bucket_config(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let id = self.bucket_id(bucket).await?;
        Ok(self
            .get_doc(&Self::config_key(bucket, &id, name))
            .await?
            .map(|b| b.to_vec()))
    }

    async fn write_bucket_config(
        &self,
        bucket: &str,
        name: &str,
        data: Option<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let id = self.bucket_id(bucket).await?;
        let k = Self::config_key(bucket, &id, name);
        match data {
            None => self.delete(&k).await,
            Some(d) => self.put(&k, &[], Body::Bytes(d.into())).await.map(drop),
        }
    }

    async fn writer(&self) -> io::Result<ObjectWriter> {
        self.staging.writer().await
    }

    /// One PUT of the staged object file. With a condition: the object there now is opened, the
    /// condition decided on its plaintext ETag, and the PUT made conditional on the backend ETag
    /// of exactly that object (`If-None-Match: *` when there was none), so the backend refuses it
    /// if anything was written in between; then the condition is decided again on what won.
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: ObjectWriter,
        meta: &ObjectMeta,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError> {
        layout::key_dir(key)?;
        let id = self.bucket_id(bucket).await?;
        let k = Self::object_key(bucket, &id, key);
        let keep = self.keeps_versions_of(bucket, &id).await?;
        let staged = body.into_staged(Some(meta)).await?;
        for _ in 0..CONDITION_ROUNDS {
            let mut headers = Vec::new();
            if !condition.is_none() {
                match self.open_at(&k).await {
                    Ok((current, _, etag)) => {
                        condition.check(Some(&current.etag))?;
                        headers.push(("if-match", write_if_match(&etag)));
                    }
                    Err(StorageError::NoSuchKey) => {
                        condition.check(None)?;
                        headers.push(("if-none-match", "*".to_owned()));
                    }
                    Err(StorageError::Changed) => continue,
                    Err(e) => return Err(e),
                }
            }
            let file = Body::File {
                staged: &staged,
                offset: 0,
                len: staged.len,
            };
            if let Some(version) = self.put_keeping(&k, &headers, file).await? {
                if keep {
                    return Ok(version);
                }
                self.purge_older(&k, version.as_deref()).await;
                return Ok(None);
            }
        }
        Err(StorageError::Unavailable(format!(
            "{bucket}/{key}: {CONDITION_ROUNDS} conditional writes in a row lost a race"
        )))
    }

    async fn open_object(&self, bucket: &str, key: &str) -> Result<StoredObject, StorageError> {
        layout::key_dir(key)?;
        let id = self.bucket_id(bucket).await?;
        let k = Self::object_key(bucket, &id, key);
        let (meta, body_len, etag) = self.open_at(&k).await?;
        Ok(StoredObject {
            meta,
            body_len,
            body: Arc::new(self.body_of(k, etag, None, body_len)),
        })
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        layout::key_dir(key)?;
        let id = self.bucket_id(bucket).await?;
        self.delete(&Self::object_key(bucket, &id, key)).await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        query: &ListQuery<'_>,
    ) -> Result<ListPage, StorageError> {
        let id = self.bucket_id(bucket).await?;
        if query.max == 0 {
            return Ok(ListPage::default());
        }
        let base = format!("{bucket}/{id}/");
        let delimiter = query.delimiter.filter(|d| !d.is_empty());
        // A marker that is a common prefix stands for every key under it: start after them all
        // (U+10FFFF is the greatest character; no key continues a prefix with anything greater).
        // A key marker is sent without its `KEY_END` (RGW echoes `StartAfter` unencoded, and XML
        // cannot carry U+0001), so the marker itself may come back: one more is asked for, and
        // everything up to the marker dropped.
        let start_after = query.after.map(|m| match delimiter {
            Some(d) if m.ends_with(d) => format!("{base}{}\u{10FFFF}", names::encode(m)),
            _ => format!("{base}{}", names::encode(m)),
        });
        let (keys, prefixes, token) = self
            .list_raw(
                &format!("{base}{}", names::encode(query.prefix)),
                delimiter,
                start_after.as_deref(),
                None,
                (query.max + 1).min(1000),
            )
            .await?;
        let strip = |s: String, is_prefix: bool| {
            s.strip_prefix(&base).map(|k| (names::decode(k), is_prefix))
        };
        let mut entries: Vec<(String, bool)> = keys
            .into_iter()
            .filter_map(|k| k.strip_suffix(KEY_END).map(str::to_owned))
            .filter_map(|k| strip(k, false))
            .chain(prefixes.into_iter().filter_map(|p| strip(p, true)))
            .filter(|(k, _)| query.after.is_none_or(|m| k.as_str() > m))
            .collect();
        entries.sort();
        let truncated = token.is_some() || entries.len() > query.max;
        entries.truncate(query.max);
        Ok(ListPage { entries, truncated })
    }

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        state: &[u8],
    ) -> Result<String, StorageError> {
        self.mp_create(bucket, key, state).await
    }

    async fn upload_state(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<Vec<u8>, StorageError> {
        self.mp_state(bucket, key, upload).await
    }

    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        n: u32,
        body: ObjectWriter,
        meta: &ObjectMeta,
    ) -> Result<(), StorageError> {
        self.mp_put_part(bucket, key, upload, n, body, meta).await
    }

    async fn part_meta(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        n: u32,
    ) -> Result<ObjectMeta, StorageError> {
        Ok(self.mp_part(bucket, key, upload, n).await?.meta)
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        meta: &ObjectMeta,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError> {
        self.mp_complete(bucket, key, upload, meta, condition).await
    }

    async fn open_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<StoredObject, StorageError> {
        self.open_backend_version(bucket, key, version).await
    }

    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<crate::storage::DeleteOutcome, StorageError> {
        self.delete_backend_version(bucket, key, version).await
    }

    async fn key_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<crate::storage::VersionInfo>, StorageError> {
        self.backend_key_versions(bucket, key).await
    }

    async fn version_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.backend_version_keys(bucket, prefix).await
    }

    async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<(), StorageError> {
        self.mp_abort(bucket, key, upload).await
    }

    async fn list_uploads(&self, bucket: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.mp_list(bucket).await
    }

    async fn list_upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<Vec<u32>, StorageError> {
        self.mp_part_numbers(bucket, key, upload).await
    }
}
