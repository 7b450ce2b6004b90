//! The server's own state in the backend bucket ([`StateDocs`]): `.coffer/system/<name>`, each
//! document one backend object, changed only by conditional PUTs — `If-None-Match: *` to create,
//! `If-Match` on the ETag that was read to replace — so two gateways changing one document at
//! once never lose a change: the loser's PUT is refused (`412`) and it reads and applies again.
//!
//! No client key reaches these objects: object keys are stored under `<bucket>/<id>/` and bucket
//! names never start with `.` (see the layout in [`super`]), and no listing of a Coffer bucket
//! looks outside its own prefix.
//!
//! Conditional PUTs are what makes this safe, so a backend that ignores them is refused at start
//! ([`S3Store::conditional_writes_hold`]) rather than trusted: MinIO (since 2024) and RGW (Squid)
//! honour both headers; an older backend would silently let the last writer win.
use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;

use super::client::Body;
use super::{S3Store, unexpected, write_if_match};
use crate::storage::StorageError;
use crate::storage::engine::state::{Doc, DocRead, StateDocs};

/// The backend key of state document `name`.
fn doc_key(name: &str) -> String {
    format!(".coffer/system/{name}")
}

/// Where [`S3Store::conditional_writes_hold`] writes.
const PROBE: &str = "conditional-write-probe";

impl S3Store {
    /// Whether the backend refuses a PUT whose `If-None-Match: *` or `If-Match` does not hold
    /// (`Ok(false)`: it wrote anyway, and its state documents would lose concurrent changes).
    pub async fn conditional_writes_hold(&self) -> Result<bool, StorageError> {
        let k = doc_key(PROBE);
        // Several processes starting at once may each create it first: only the second PUT
        // below decides.
        self.put(
            &k,
            &[("if-none-match", "*".to_owned())],
            Body::Bytes(Bytes::from_static(b"probe")),
        )
        .await?;
        let absent_refused = !self
            .put(
                &k,
                &[("if-none-match", "*".to_owned())],
                Body::Bytes(Bytes::from_static(b"probe")),
            )
            .await?;
        let stale_refused = !self
            .put(
                &k,
                &[("if-match", "0123456789abcdef0123456789abcdef".to_owned())],
                Body::Bytes(Bytes::from_static(b"probe")),
            )
            .await?;
        Ok(absent_refused && stale_refused)
    }
}

#[async_trait]
impl StateDocs for S3Store {
    async fn read_doc(&self, name: &str, known: Option<&str>) -> Result<DocRead, StorageError> {
        let k = doc_key(name);
        let headers: Vec<(&str, String)> = known
            .map(|v| ("if-none-match", v.to_owned()))
            .into_iter()
            .collect();
        let a = self.get(&k, &headers).await?;
        match a.status {
            StatusCode::NOT_MODIFIED => Ok(DocRead::Unchanged),
            StatusCode::NOT_FOUND => Ok(DocRead::Absent),
            StatusCode::OK => match a.etag.clone() {
                Some(version) if known == Some(version.as_str()) => Ok(DocRead::Unchanged),
                Some(version) => Ok(DocRead::Present(Doc {
                    data: a.body,
                    version,
                })),
                None => Err(unexpected(&k, &a)),
            },
            _ => Err(unexpected(&k, &a)),
        }
    }

    async fn write_doc(
        &self,
        name: &str,
        data: Bytes,
        expected: Option<&str>,
    ) -> Result<bool, StorageError> {
        let condition = match expected {
            Some(v) => ("if-match", write_if_match(v)),
            None => ("if-none-match", "*".to_owned()),
        };
        self.put(&doc_key(name), &[condition], Body::Bytes(data))
            .await
    }
}
