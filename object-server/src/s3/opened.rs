//! An object opened for reading by a handler, from whichever engine holds it: a local
//! [`OpenObject`] (its files, read by [`BodyReader`]) or a gateway backend's [`StoredObject`]
//! (ranged reads, [`RemoteReader`]). GET, CopyObject and UploadPartCopy read both the same way.
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use super::body::{BodyReader, ReadError};
use super::remote_body::RemoteReader;
use crate::sse::ObjectKey;
use crate::storage::engine::StoredObject;
use crate::storage::{ObjectMeta, OpenObject};

/// A plaintext range of a body, chunk by chunk.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, ReadError>> + Send + Sync>>;

/// An opened object.
pub(crate) enum Opened {
    /// From the local directory.
    Local(OpenObject),
    /// From a gateway backend.
    Remote(StoredObject),
}

impl Opened {
    /// Its metadata.
    pub(crate) fn meta(&self) -> &ObjectMeta {
        match self {
            Opened::Local(o) => &o.meta,
            Opened::Remote(o) => &o.meta,
        }
    }

    /// `[start, end)` of its plaintext; `key` is the opened object key of an encrypted object.
    pub(crate) fn reader(
        &self,
        key: Option<&ObjectKey>,
        start: u64,
        end: u64,
    ) -> Result<BodyStream, ReadError> {
        Ok(match self {
            Opened::Local(o) => Box::pin(BodyReader::new(o, key, start, end)?.into_stream()),
            Opened::Remote(o) => Box::pin(
                RemoteReader::new(&o.meta, o.body_len, o.body.clone(), key, start, end)?
                    .into_stream(),
            ),
        })
    }
}
