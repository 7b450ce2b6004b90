//! Multipart uploads on the backend's multipart uploads.
//!
//! The client's upload is a backend upload of the object's backend key, with the same id. Part
//! `n`'s ciphertext is the backend's part `n`; its Coffer metadata (size, ETag, key salt,
//! checksums) and the backend ETag of the bytes it describes are a small record beside the
//! upload. CompleteMultipartUpload lists each part with the backend ETag its record names, so a
//! part uploaded again between the record's read and the completion makes the backend refuse
//! the completion: salt and bytes always stay together.
//!
//! The completed object must end in its trailer, which is known only at completion: it is
//! uploaded then as one more part after the last (the last part may be small). The client's last
//! part is usually smaller than the 5 MiB S3 asks of every part but the last, so a part that
//! small is kept as an object of its own beside the upload instead, and at completion it is
//! uploaded again, followed by the trailer, as the final backend part. The completed object is
//! the concatenation of the parts' package streams and the trailer: the local store's format of a
//! multipart object whose parts are in its own file.
use bytes::Bytes;
use reqwest::StatusCode;
use rusty_s3::actions::CreateMultipartUpload;
use serde::{Deserialize, Serialize};

use super::client::Body;
use super::{S3Store, unexpected, write_if_match};
use crate::storage::{ObjectMeta, ObjectWriter, StorageError, WriteCondition, layout};

/// S3's least size of a part that is not the last.
const MIN_PART: u64 = 5 << 20;
/// S3's greatest part number.
const MAX_PART: u32 = 10_000;

/// What is kept of an uploaded part.
#[derive(Serialize, Deserialize)]
pub(super) struct PartRecord {
    /// The part's Coffer metadata.
    pub meta: ObjectMeta,
    /// Where its ciphertext is.
    stored: StoredPart,
}

/// Where a part's ciphertext is, with the backend ETag of exactly the bytes [`PartRecord::meta`]
/// describes (the completion asks for those bytes by it, so a part uploaded again meanwhile
/// refuses the completion instead of pairing one upload's salt with another's bytes).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredPart {
    /// Part `n` of the backend upload.
    BackendPart { etag: String },
    /// The object `body.<n>` beside the upload: too small to be a backend part that is not
    /// the last.
    Beside { etag: String },
}

impl S3Store {
    /// The uploads of `bucket` in progress, each with its state.
    pub(super) async fn mp_list(
        &self,
        bucket: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let id = self.bucket_id(bucket).await?;
        let base = format!(".coffer/uploads/{bucket}/{id}/");
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (_, prefixes, next) = self
                .list_raw(&base, Some("/"), None, token.as_deref(), 1000)
                .await?;
            for p in prefixes {
                let Some(upload) = p
                    .strip_prefix(&base)
                    .and_then(|h| h.strip_suffix('/'))
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                else {
                    continue;
                };
                // Completed or aborted since it was listed: not in progress.
                if let Some(state) = self.get_doc(&format!("{p}state")).await? {
                    out.push((upload, state.to_vec()));
                }
            }
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The numbers of the parts of an upload that have a record, ascending.
    pub(super) async fn mp_part_numbers(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<Vec<u32>, StorageError> {
        self.mp_state(bucket, key, upload).await?;
        let prefix = self.upload_prefix(bucket, upload).await?;
        let mut numbers: Vec<u32> = self
            .list_all(&prefix)
            .await?
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix)?.strip_prefix("part.")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// `.coffer/uploads/<bucket>/<id>/<hex upload id>/`.
    async fn upload_prefix(&self, bucket: &str, upload: &str) -> Result<String, StorageError> {
        let id = self.bucket_id(bucket).await?;
        Ok(format!(
            ".coffer/uploads/{bucket}/{id}/{}/",
            hex::encode(upload)
        ))
    }

    async fn backend_key(&self, bucket: &str, key: &str) -> Result<String, StorageError> {
        layout::key_dir(key)?;
        let id = self.bucket_id(bucket).await?;
        Ok(Self::object_key(bucket, &id, key))
    }

    pub(super) async fn mp_create(
        &self,
        bucket: &str,
        key: &str,
        state: &[u8],
    ) -> Result<String, StorageError> {
        let k = self.backend_key(bucket, key).await?;
        let c = &self.client;
        let a = c
            .send(
                c.bucket.create_multipart_upload(Some(&c.creds), &k),
                &[],
                Body::Empty,
            )
            .await?;
        if a.status != StatusCode::OK {
            return Err(unexpected(&k, &a));
        }
        let text = super::xml_text(&a).ok_or_else(|| unexpected(&k, &a))?;
        let upload = CreateMultipartUpload::parse_response(&text)
            .map_err(|_| unexpected(&k, &a))?
            .upload_id()
            .to_owned();
        let prefix = self.upload_prefix(bucket, &upload).await?;
        self.put(
            &format!("{prefix}state"),
            &[],
            Body::Bytes(Bytes::copy_from_slice(state)),
        )
        .await?;
        Ok(upload)
    }

    pub(super) async fn mp_state(
        &self,
        bucket: &str,
        _key: &str,
        upload: &str,
    ) -> Result<Vec<u8>, StorageError> {
        let prefix = self.upload_prefix(bucket, upload).await?;
        Ok(self
            .get_doc(&format!("{prefix}state"))
            .await?
            .ok_or(StorageError::NoSuchUpload)?
            .to_vec())
    }

    pub(super) async fn mp_put_part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        n: u32,
        body: ObjectWriter,
        meta: &ObjectMeta,
    ) -> Result<(), StorageError> {
        if !(1..=MAX_PART).contains(&n) {
            return Err(StorageError::Refused);
        }
        self.mp_state(bucket, key, upload).await?;
        let prefix = self.upload_prefix(bucket, upload).await?;
        let k = self.backend_key(bucket, key).await?;
        let staged = body.into_staged(None).await?;
        let file = Body::File {
            staged: &staged,
            offset: 0,
            len: staged.len,
        };
        let stored = if staged.len >= MIN_PART {
            let c = &self.client;
            let a = c
                .send(
                    c.bucket.upload_part(Some(&c.creds), &k, n as u16, upload),
                    &[],
                    file,
                )
                .await?;
            match a.status {
                StatusCode::OK => StoredPart::BackendPart {
                    etag: a.etag.clone().ok_or_else(|| unexpected(&k, &a))?,
                },
                StatusCode::NOT_FOUND => return Err(StorageError::NoSuchUpload),
                _ => return Err(unexpected(&k, &a)),
            }
        } else {
            let beside = format!("{prefix}body.{n}");
            let c = &self.client;
            let a = c
                .send(c.bucket.put_object(Some(&c.creds), &beside), &[], file)
                .await?;
            match a.status {
                StatusCode::OK => StoredPart::Beside {
                    etag: a.etag.clone().ok_or_else(|| unexpected(&beside, &a))?,
                },
                _ => return Err(unexpected(&beside, &a)),
            }
        };
        let record = PartRecord {
            meta: meta.clone(),
            stored,
        };
        let doc = Bytes::from(serde_json::to_vec(&record).expect("serializes"));
        self.put(&format!("{prefix}part.{n}"), &[], Body::Bytes(doc))
            .await?;
        Ok(())
    }

    pub(super) async fn mp_part(
        &self,
        bucket: &str,
        _key: &str,
        upload: &str,
        n: u32,
    ) -> Result<PartRecord, StorageError> {
        let prefix = self.upload_prefix(bucket, upload).await?;
        let doc = self
            .get_doc(&format!("{prefix}part.{n}"))
            .await?
            .ok_or(StorageError::NoSuchKey)?;
        serde_json::from_slice(&doc).map_err(|_| StorageError::Damaged)
    }

    pub(super) async fn mp_complete(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        meta: &ObjectMeta,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError> {
        self.mp_state(bucket, key, upload).await?;
        let prefix = self.upload_prefix(bucket, upload).await?;
        let k = self.backend_key(bucket, key).await?;
        let keep = self
            .keeps_versions_of(bucket, &self.bucket_id(bucket).await?)
            .await?;
        let (last, rest) = meta.parts.split_last().ok_or(StorageError::Refused)?;
        let mut listed: Vec<(u32, String)> = Vec::with_capacity(meta.parts.len() + 1);
        for p in rest {
            let r = self.mp_part(bucket, key, upload, p.number).await?;
            match r.stored {
                // Uploaded again since the handler checked it: the client retries.
                _ if r.meta.etag != p.etag => return Err(StorageError::Refused),
                StoredPart::BackendPart { etag } => listed.push((p.number, etag)),
                StoredPart::Beside { .. } => return Err(StorageError::Refused),
            }
        }
        let r = self.mp_part(bucket, key, upload, last.number).await?;
        if r.meta.etag != last.etag {
            return Err(StorageError::Refused);
        }
        let trailer = meta.to_trailer()?;
        let c = &self.client;
        let (final_number, final_bytes) = match r.stored {
            StoredPart::BackendPart { etag: e } => {
                if last.number == MAX_PART {
                    return Err(StorageError::NotSupported(
                        "a last part numbered 10000 of 5 MiB or more",
                    ));
                }
                listed.push((last.number, e));
                (last.number + 1, Bytes::from(trailer))
            }
            StoredPart::Beside { etag } => {
                let beside = format!("{prefix}body.{}", last.number);
                let a = self.get(&beside, &[("if-match", etag)]).await?;
                let mut body = match a.status {
                    StatusCode::OK => a.body.to_vec(),
                    // Uploaded again meanwhile: the client retries.
                    StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => {
                        return Err(StorageError::Refused);
                    }
                    _ => return Err(unexpected(&beside, &a)),
                };
                body.extend_from_slice(&trailer);
                (last.number, Bytes::from(body))
            }
        };
        let a = c
            .send(
                c.bucket
                    .upload_part(Some(&c.creds), &k, final_number as u16, upload),
                &[],
                Body::Bytes(final_bytes),
            )
            .await?;
        match a.status {
            StatusCode::OK => listed.push((
                final_number,
                a.etag.clone().ok_or_else(|| unexpected(&k, &a))?,
            )),
            StatusCode::NOT_FOUND => return Err(StorageError::NoSuchUpload),
            _ => return Err(unexpected(&k, &a)),
        }
        let xml = complete_body(&listed);
        for _ in 0..super::CONDITION_ROUNDS {
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
            let action =
                c.bucket
                    .complete_multipart_upload(Some(&c.creds), &k, upload, std::iter::empty());
            let a = c
                .send(action, &headers, Body::Bytes(Bytes::from(xml.clone())))
                .await?;
            // S3 may answer 200 and put the error in the body.
            let code = client_code(&a.body);
            match (a.status, code.as_str()) {
                (StatusCode::OK, "") => {
                    if !keep {
                        self.purge_older(&k, a.version_id.as_deref()).await;
                    }
                    for doc in self.list_all(&prefix).await? {
                        self.delete(&doc).await?;
                    }
                    return Ok(if keep { a.version_id } else { None });
                }
                (_, "PreconditionFailed") | (StatusCode::PRECONDITION_FAILED, _)
                    if !headers.is_empty() =>
                {
                    continue;
                }
                (_, "NoSuchUpload") | (StatusCode::NOT_FOUND, _) => {
                    return Err(StorageError::NoSuchUpload);
                }
                (_, "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall") => {
                    return Err(StorageError::Refused);
                }
                _ => return Err(unexpected(&k, &a)),
            }
        }
        Err(StorageError::Unavailable(format!(
            "{bucket}/{key}: conditional completions kept losing races"
        )))
    }

    pub(super) async fn mp_abort(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<(), StorageError> {
        self.mp_state(bucket, key, upload).await?;
        let prefix = self.upload_prefix(bucket, upload).await?;
        let k = self.backend_key(bucket, key).await?;
        let c = &self.client;
        let a = c
            .send(
                c.bucket.abort_multipart_upload(Some(&c.creds), &k, upload),
                &[],
                Body::Empty,
            )
            .await?;
        if !(a.status.is_success() || a.status == StatusCode::NOT_FOUND) {
            return Err(unexpected(&k, &a));
        }
        for doc in self.list_all(&prefix).await? {
            self.delete(&doc).await?;
        }
        Ok(())
    }
}

fn client_code(body: &[u8]) -> String {
    super::client::error_code(body)
}

/// The CompleteMultipartUpload document for `(part number, backend ETag)`s, in order.
fn complete_body(parts: &[(u32, String)]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        // Backend ETags are quoted hex (with `-N` for multipart): only the quotes need escaping.
        let etag = etag
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;");
        s.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}
