//! The Coffer object server: an S3 server on local disk that encrypts every object with its own
//! key, that key sealed by a KMS (MinIO's KES over mTLS, or a static key).
//!
//! - [`config`]: MinIO's flags and `MINIO_*` environment.
//! - [`s3`]: the S3 API (s3s's `S3` trait), one file per family of operations.
//! - [`storage`]: the data directory, atomic object files with their metadata.
//! - [`sse`]: object keys, sealing, the authenticated package stream, SSE header rules.
//! - [`kms`]: the KMS trait, the static key, the KES client.
//! - [`md5`]: MD5 of bodies through aws-lc's assembly (the crate's only `unsafe`).
//! - [`lifecycle`]: lifecycle rules' clock and the background scanner that applies them.
//! - [`server`]: HTTP(S), health, metrics, shutdown.
//! - [`metrics`]: Prometheus metrics under MinIO's names.
//! - [`metrics_auth`]: who may scrape the metrics (`MINIO_PROMETHEUS_AUTH_TYPE`).
//! - [`stall_guard`]: request bodies that fail when their client stops sending.
//! - [`iam`]: users, policies, bucket policies, the access decision.
//! - [`admin`]: the MinIO admin API subset `mc admin` uses.
//! - [`sigv2`]: what SigV2 requests need beyond s3s's check (time stamps, a bucket's resource).
//!
//! ## ETags
//! - Plaintext and SSE-S3 single-part objects: the MD5 of the plaintext, as MinIO does (so
//!   `aws s3 cp` and `mc` checks work).
//! - SSE-KMS single-part objects: also the plaintext MD5 (documented choice; AWS sends an opaque
//!   value).
//! - SSE-C objects (and their parts): a random value, so the ETag says nothing about the
//!   plaintext (AWS also sends a non-MD5 value for SSE-C).
//! - Multipart objects: `hex(MD5(part ETag bytes …))-N`, as AWS does.
//! - Copies are written as one part: their ETag follows the single-part rules.
//!
//! ## What is on disk
//! One file per object (`DIR/<bucket>/_seg/_seg/obj`): the body (a package stream of
//! AES-256-GCM packages for encrypted objects) followed by JSON metadata that holds the sealed
//! object key, the KMS key name and the KMS ciphertext of the data key, never a plaintext key.
// `deny`, not `forbid`: the one FFI wrapper (`md5`, aws-lc's assembly MD5) opts out explicitly.
#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod console;
pub mod iam;
pub mod import;
pub mod kms;
pub mod lifecycle;
pub mod md5;
pub mod metrics;
pub mod metrics_auth;
pub mod migrate;
pub mod rewrap;
pub mod s3;
pub mod server;
pub mod sigv2;
pub mod sse;
pub mod stall_guard;
pub mod storage;
pub mod vhost;
