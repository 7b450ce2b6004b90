//! The Coffer object server: an S3 server on local disk that encrypts every object with its own
//! key, that key sealed by a KMS (MinIO's KES over mTLS, or a static key).
//!
//! - [`config`]: MinIO's flags and `MINIO_*` environment.
//! - [`s3`]: the S3 API (s3s's `S3` trait), one file per family of operations.
//! - [`storage`]: the data directory, atomic object files with their metadata.
//! - [`sse`]: object keys, sealing, the authenticated package stream, SSE header rules.
//! - [`kms`]: the KMS trait, the static key, the KES client.
//! - [`server`]: HTTP(S), health, metrics, shutdown.
#![forbid(unsafe_code)]

pub mod config;
pub mod kms;
pub mod s3;
pub mod server;
pub mod sse;
pub mod storage;
