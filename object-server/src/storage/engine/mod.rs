//! Where objects live: the storage engine behind the S3 handlers, a local directory ([`Store`],
//! see [`local`]) or a bucket of another S3 service ([`s3::S3Store`], the gateway).
//!
//! # The boundary
//!
//! Everything that is Coffer — SigV4, policies, SSE, the package stream, checksums, ETags,
//! conditions as the client states them — happens above this trait, the same for every engine.
//! An engine stores **object files**: `body ‖ trailer`, exactly the bytes the local store
//! writes ([`super::meta`]): the body is the package stream of [`crate::sse::package`] (or the
//! plaintext of an unencrypted object), the trailer the metadata JSON with the sealed key, the
//! plaintext size and ETag. So an engine never sees a plaintext byte of an encrypted object nor
//! a key, and what the client is told (size, ETag, checksums) is whatever the trailer says, never
//! the engine's own numbers.
//!
//! A write is staged first, on the local disk of the process, in an [`ObjectWriter`] (the
//! handlers' ingest fills it as today), and then committed by the engine in one step:
//! [`Storage::put_object`]. A read opens the object ([`Storage::open_object`]: its metadata and a
//! [`BodySource`] bound to that one stored version) and reads ranges of the body from it, so a
//! ranged GET asks the engine only for the packages it decrypts.
//!
//! # What each engine guarantees
//!
//! | | local directory | S3 backend |
//! |---|---|---|
//! | commit | temp file, fsync, `rename` (see [`super`]) | one `PutObject` of the staged file, or `CompleteMultipartUpload` |
//! | torn write | impossible: `rename` replaces whole files | impossible: S3 makes an object visible whole or not at all; body and trailer are one object |
//! | reader vs. overwrite | the open file keeps the old bytes | every body read is a ranged GET with `If-Match` on the backend ETag seen at open: a changed object fails the read ([`StorageError::Changed`]), never mixes two versions |
//! | `If-Match` / `If-None-Match` | decided under the key's lock | the plaintext ETag is compared, then the PUT carries `If-Match` on the backend ETag it was compared on (or `If-None-Match: *` for "absent"): the backend decides the race, and a lost race is checked again |
//! | several processes | one directory, `flock`s | one backend bucket; no state in the process but staged temp files |
//! | engine unreachable | I/O error | [`StorageError::Unavailable`]: `503 SlowDown`, nothing committed |
//! | versioning | yes | Enabled, as the backend's versions (its bucket must be versioned), see [`s3`]; Suspended `501` |
//! | object lock | yes | not yet: [`Capabilities`] says so and the handlers refuse with `NotImplemented` |
//!
//! # No key and nonce are ever used twice
//!
//! An engine encrypts nothing and never asks for a key: it stores, moves and returns the bytes
//! the package layer made, whose key rules are in [`crate::sse::package`]. A retried PUT sends
//! the same ciphertext again (same key, same plaintext, same nonces: the same bytes, nothing
//! new). Multipart parts are encrypted each under the key derived with the salt drawn for that
//! upload request, which travels with the part's metadata; the engine's own part numbers never
//! enter a key derivation.
//!
//! # Status
//!
//! Both engines keep this contract against real services (`tests/gateway.rs`: the local
//! directory; MinIO and Ceph's RGW as backends, two gateway engines over one backend bucket).
//! `object-server server --backend URL` ([`s3::config`]) serves S3 from the backend: the object,
//! listing, multipart and bucket handlers reach it through this trait (`CofferS3::engine`); the
//! operations it does not pass through yet (suspended versioning, object lock, tags, bucket
//! settings other than default encryption and versioning) are refused with `501`
//! (`crate::s3::GATEWAY_OPERATIONS`). Over the local directory the handlers still call most
//! [`Store`] methods directly (versions, locks).
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    DeleteOutcome, ObjectMeta, ObjectWriter, StorageError, Store, VersionInfo, WriteCondition,
};

/// What the version methods of an engine that does not keep versions itself answer.
fn no_versions() -> StorageError {
    StorageError::Io(io::Error::new(
        io::ErrorKind::Unsupported,
        "this engine keeps no versions of its own",
    ))
}

pub mod local;
pub mod s3;
pub mod state;

/// What an engine can do beyond plain objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Versioned buckets (ListObjectVersions, version ids, delete markers).
    pub versioning: bool,
    /// Object lock (retention, legal hold).
    pub object_lock: bool,
}

/// The bytes of one stored version of an object, read by range.
#[async_trait]
pub trait BodySource: Send + Sync {
    /// `len` body bytes from `offset` (within the body: the trailer is never returned). Fails
    /// with [`StorageError::Changed`] when the object was replaced since it was opened.
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, StorageError>;
}

/// An object opened for reading.
pub struct StoredObject {
    /// Its metadata (the trailer).
    pub meta: ObjectMeta,
    /// Stored body bytes (the ciphertext length of an encrypted object).
    pub body_len: u64,
    /// The body of this version.
    pub body: Arc<dyn BodySource>,
}

/// One page of a listing: keys and common prefixes (`true`), sorted, after the marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// `(key or common prefix, is a common prefix)`.
    pub entries: Vec<(String, bool)>,
    /// Whether more follow the last entry.
    pub truncated: bool,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Group keys by the part up to this after the prefix (S3's delimiter).
    pub delimiter: Option<&'a str>,
    /// Only entries after this key or common prefix (S3's marker / start-after).
    pub after: Option<&'a str>,
    /// At most this many entries (S3 caps it at 1000).
    pub max: usize,
}

/// A storage engine. The S3 handlers speak to this, not to a directory or a remote service.
///
/// Names: buckets are S3 bucket names (never starting with `.`), keys any S3 key that
/// [`super::layout::key_dir`] accepts (so both engines accept the same keys).
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// What it can do.
    fn capabilities(&self) -> Capabilities;
    /// Whether what it stores can have versions now: a local directory always; an S3 backend
    /// when its bucket is versioned (the backend's setting, which the operator may change).
    async fn keeps_versions(&self) -> Result<bool, StorageError>;

    /// Creates a bucket ([`StorageError::BucketExists`] if it exists).
    async fn create_bucket(&self, bucket: &str) -> Result<(), StorageError>;
    /// Deletes an empty bucket and its configuration.
    async fn delete_bucket(&self, bucket: &str) -> Result<(), StorageError>;
    /// Every bucket with its creation time, sorted by name.
    async fn list_buckets(&self) -> Result<Vec<(String, SystemTime)>, StorageError>;
    /// [`StorageError::NoSuchBucket`] unless the bucket exists.
    async fn head_bucket(&self, bucket: &str) -> Result<(), StorageError>;
    /// A bucket configuration document (`encryption`, `policy`, …), `None` if absent.
    async fn read_bucket_config(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replaces (or with `None` removes) a bucket configuration document, atomically.
    async fn write_bucket_config(
        &self,
        bucket: &str,
        name: &str,
        data: Option<Vec<u8>>,
    ) -> Result<(), StorageError>;

    /// A temp file on local disk to stage an object's (or a part's) body in.
    async fn writer(&self) -> io::Result<ObjectWriter>;
    /// Commits the staged body with `meta` as `bucket/key` if `condition` holds for the object
    /// there at the commit (plaintext ETags; else [`StorageError::PreconditionFailed`] or
    /// [`StorageError::NoSuchKey`]); all or nothing. The version id it made, when the bucket
    /// keeps versions.
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: ObjectWriter,
        meta: &ObjectMeta,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError>;
    /// Opens `bucket/key` ([`StorageError::NoSuchKey`] if absent).
    async fn open_object(&self, bucket: &str, key: &str) -> Result<StoredObject, StorageError>;
    /// Deletes `bucket/key` (absent is fine).
    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StorageError>;
    /// A page of the keys of `bucket`.
    async fn list_objects(
        &self,
        bucket: &str,
        query: &ListQuery<'_>,
    ) -> Result<ListPage, StorageError>;

    /// Starts a multipart upload of `bucket/key` whose state (the handlers' `upload.json`,
    /// sealed key included) is `state`; its id.
    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        state: &[u8],
    ) -> Result<String, StorageError>;
    /// The state an upload was created with ([`StorageError::NoSuchUpload`] if it is gone).
    async fn upload_state(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<Vec<u8>, StorageError>;
    /// Stores part `n` of an upload (staged body, its metadata: size, ETag, salt), replacing
    /// any earlier part `n`.
    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        n: u32,
        body: ObjectWriter,
        meta: &ObjectMeta,
    ) -> Result<(), StorageError>;
    /// The metadata of part `n` ([`StorageError::NoSuchKey`] if it was never uploaded).
    async fn part_meta(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        n: u32,
    ) -> Result<ObjectMeta, StorageError>;
    /// Completes an upload as `bucket/key` with the parts `meta.parts` lists (in order; the
    /// caller checked them against [`Storage::part_meta`]); the upload is gone afterwards. The
    /// version id it made, when the bucket keeps versions.
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        meta: &ObjectMeta,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError>;

    /// Opens version `version` of `bucket/key` (`None`: the latest). `meta.version_id` is the
    /// engine's id of it (`None`: written while the bucket kept no versions, the null version);
    /// a delete marker comes back with `meta.delete_marker` set and no body. Only for engines
    /// that keep versions themselves (the gateway: see [`s3`]); over a local directory the
    /// handlers use [`Store`]'s versions.
    async fn open_version(
        &self,
        _bucket: &str,
        _key: &str,
        _version: Option<&str>,
    ) -> Result<StoredObject, StorageError> {
        Err(no_versions())
    }
    /// Deletes version `version` of `bucket/key` for good, or (`None`) writes a delete marker.
    async fn delete_version(
        &self,
        _bucket: &str,
        _key: &str,
        _version: Option<&str>,
    ) -> Result<DeleteOutcome, StorageError> {
        Err(no_versions())
    }
    /// Every version and delete marker of `bucket/key`, newest first.
    async fn key_versions(
        &self,
        _bucket: &str,
        _key: &str,
    ) -> Result<Vec<VersionInfo>, StorageError> {
        Err(no_versions())
    }
    /// The keys under `prefix` that have a version or a delete marker, sorted.
    async fn version_keys(
        &self,
        _bucket: &str,
        _prefix: &str,
    ) -> Result<Vec<String>, StorageError> {
        Err(no_versions())
    }
    /// Aborts an upload ([`StorageError::NoSuchUpload`] if it is gone).
    async fn abort_upload(&self, bucket: &str, key: &str, upload: &str)
    -> Result<(), StorageError>;
    /// The uploads in progress in `bucket`: `(upload id, state)`, in no particular order.
    async fn list_uploads(&self, bucket: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError>;
    /// The numbers of the parts uploaded so far, ascending
    /// ([`StorageError::NoSuchUpload`] if the upload is gone).
    async fn list_upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<Vec<u32>, StorageError>;
}

/// The engine `object-server server` was told to use.
pub fn open_engine(
    backend: Option<&s3::BackendConfig>,
    dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn Storage>> {
    Ok(match backend {
        None => Arc::new(Store::open(dir)?),
        Some(cfg) => Arc::new(s3::S3Store::new(cfg.clone(), dir)?),
    })
}
