//! The server's own state kept beside the objects: a few small documents (the IAM users and
//! policies, the metadata key's KMS ciphertext) that every process serving the same engine reads
//! and changes by compare-and-swap, so processes need no shared directory.
//!
//! Only an engine whose processes share nothing else needs it (the S3 backend, see
//! [`super::s3`]'s `state.rs`); the local directory keeps these documents as files under
//! `DIR/.coffer/` with `flock`s ([`crate::iam::store::Dir`], [`crate::sse::metadata_key`]).
//! What is stored is what the local files hold: secret keys sealed under KMS data keys, the
//! metadata key as KMS ciphertext — never a plaintext key.
use async_trait::async_trait;
use bytes::Bytes;

use crate::storage::StorageError;

/// A state document as read: its bytes and the version tag a write compares against.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The document.
    pub data: Bytes,
    /// Its version (the backend's ETag): changes with every write.
    pub version: String,
}

/// What [`StateDocs::read_doc`] found.
#[derive(Debug, Clone)]
pub enum DocRead {
    /// The document is still the version the caller named.
    Unchanged,
    /// There is no such document.
    Absent,
    /// The document (a version other than the caller's).
    Present(Doc),
}

/// Small documents of the server's own state, changed by compare-and-swap.
///
/// Names are fixed by the server (`iam/users.json`, `metadata.key`), never taken from a request.
#[async_trait]
pub trait StateDocs: Send + Sync + std::fmt::Debug {
    /// Reads document `name`; `known`: the version the caller holds (answered
    /// [`DocRead::Unchanged`] when it is still current, without the bytes).
    async fn read_doc(&self, name: &str, known: Option<&str>) -> Result<DocRead, StorageError>;
    /// Writes document `name` if it is still at version `expected` (`None`: if it does not exist
    /// yet); `false`, having changed nothing, when another writer got there first.
    async fn write_doc(
        &self,
        name: &str,
        data: Bytes,
        expected: Option<&str>,
    ) -> Result<bool, StorageError>;
}
