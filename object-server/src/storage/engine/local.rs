//! The local directory as a [`Storage`] engine: each method is the [`Store`] method the
//! handlers call today, so the on-disk format and every guarantee of [`super::super`] stay as
//! they are (no byte of a data directory depends on which path a request took).
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BodySource, Capabilities, ListPage, ListQuery, Storage, StoredObject};
use crate::storage::parts::part_file_name;
use crate::storage::{
    ObjectMeta, ObjectWriter, OpenObject, StorageError, Store, UploadParts, WriteCondition,
    blocking, layout,
};

/// An opened object's body: its own file, or the part files of a multipart object, in order.
struct LocalBody {
    /// `(file, body bytes in it)`.
    segments: Vec<(Arc<std::fs::File>, u64)>,
}

impl LocalBody {
    fn of(o: OpenObject) -> (ObjectMeta, u64, Self) {
        let segments = if o.parts.is_empty() {
            vec![(o.file, o.body_len)]
        } else {
            o.parts.into_iter().map(|p| (p.file, p.body_len)).collect()
        };
        let body_len = segments.iter().map(|s| s.1).sum();
        (o.meta, body_len, LocalBody { segments })
    }
}

#[async_trait]
impl BodySource for LocalBody {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        let segments = self.segments.clone();
        blocking(move || {
            let mut out = vec![0u8; len as usize];
            let (mut at, mut filled) = (offset, 0usize);
            for (file, seg_len) in &segments {
                if filled == out.len() {
                    break;
                }
                if at >= *seg_len {
                    at -= seg_len;
                    continue;
                }
                let n = ((seg_len - at) as usize).min(out.len() - filled);
                file.read_exact_at(&mut out[filled..filled + n], at)?;
                filled += n;
                at = 0;
            }
            if filled != out.len() {
                return Err(StorageError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the body",
                )));
            }
            Ok(Bytes::from(out))
        })
        .await
    }
}

#[async_trait]
impl Storage for Store {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            versioning: true,
            object_lock: true,
        }
    }

    async fn keeps_versions(&self) -> Result<bool, StorageError> {
        Ok(true)
    }

    async fn create_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        Store::create_bucket(self, bucket).await
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        Store::delete_bucket(self, bucket).await
    }

    async fn list_buckets(&self) -> Result<Vec<(String, SystemTime)>, StorageError> {
        Store::list_buckets(self).await
    }

    async fn head_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        self.require_bucket(bucket)
    }

    async fn read_bucket_config(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        Store::read_bucket_config(self, bucket, name).await
    }

    async fn write_bucket_config(
        &self,
        bucket: &str,
        name: &str,
        data: Option<Vec<u8>>,
    ) -> Result<(), StorageError> {
        Store::write_bucket_config(self, bucket, name, data).await
    }

    async fn writer(&self) -> io::Result<ObjectWriter> {
        Store::writer(self).await
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: ObjectWriter,
        meta: &ObjectMeta,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError> {
        let mode = self.versioning(bucket).await?;
        let mut meta = meta.clone();
        self.commit_object_if(bucket, key, body, &mut meta, mode, None, condition)
            .await
    }

    async fn open_object(&self, bucket: &str, key: &str) -> Result<StoredObject, StorageError> {
        let o = self.open_latest(bucket, key).await?;
        if o.meta.delete_marker {
            return Err(StorageError::NoSuchKey);
        }
        let o = self.open_parts(o).await?.ok_or(StorageError::Changed)?;
        let (meta, body_len, body) = LocalBody::of(o);
        Ok(StoredObject {
            meta,
            body_len,
            body: Arc::new(body),
        })
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        Store::delete_object(self, bucket, key).await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        query: &ListQuery<'_>,
    ) -> Result<ListPage, StorageError> {
        let keys = self
            .list_keys(bucket, query.prefix, query.delimiter == Some("/"))
            .await?;
        let (entries, truncated) =
            crate::s3::list::paginate(&keys, query.prefix, query.delimiter, query.after, query.max);
        Ok(ListPage { entries, truncated })
    }

    async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        state: &[u8],
    ) -> Result<String, StorageError> {
        self.require_bucket(bucket)?;
        layout::key_dir(key)?;
        let id = crate::storage::random_name();
        let mut w = Store::writer(self).await?;
        w.write(state).await?;
        w.commit_plain(self.upload_dir(bucket, &id).join(layout::UPLOAD_FILE))
            .await?;
        Ok(id)
    }

    async fn upload_state(
        &self,
        bucket: &str,
        _key: &str,
        upload: &str,
    ) -> Result<Vec<u8>, StorageError> {
        let id = valid_upload_id(upload)?;
        let p = self.upload_dir(bucket, id).join(layout::UPLOAD_FILE);
        match tokio::fs::read(p).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StorageError::NoSuchUpload),
            Err(e) => Err(e.into()),
        }
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
        self.upload_state(bucket, key, upload).await?;
        let dir = self.upload_dir(bucket, valid_upload_id(upload)?);
        body.commit(meta, dir.join(part_file_name(n))).await?;
        Ok(())
    }

    async fn part_meta(
        &self,
        bucket: &str,
        _key: &str,
        upload: &str,
        n: u32,
    ) -> Result<ObjectMeta, StorageError> {
        let dir = self.upload_dir(bucket, valid_upload_id(upload)?);
        Ok(self.open_path(dir.join(part_file_name(n))).await?.meta)
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        meta: &ObjectMeta,
        condition: &WriteCondition,
    ) -> Result<Option<String>, StorageError> {
        let id = valid_upload_id(upload)?;
        let dir = self.upload_dir(bucket, id);
        let mut parts = UploadParts::new(dir.clone(), id);
        for p in &meta.parts {
            let part = match self.open_path(dir.join(part_file_name(p.number))).await {
                Err(StorageError::NoSuchKey) => return Err(StorageError::Refused),
                other => other?,
            };
            parts.add(p.number, &part.file)?;
        }
        let mode = self.versioning(bucket).await?;
        let mut meta = meta.clone();
        let empty = Store::writer(self).await?;
        self.commit_object_if(bucket, key, empty, &mut meta, mode, Some(parts), condition)
            .await
    }

    async fn abort_upload(
        &self,
        bucket: &str,
        _key: &str,
        upload: &str,
    ) -> Result<(), StorageError> {
        let dir = self.upload_dir(bucket, valid_upload_id(upload)?);
        if blocking({
            let s = self.clone();
            move || s.remove_upload_dir(&dir)
        })
        .await?
        {
            Ok(())
        } else {
            Err(StorageError::NoSuchUpload)
        }
    }

    async fn list_uploads(&self, bucket: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.require_bucket(bucket)?;
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(self.uploads_dir(bucket)).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        while let Some(e) = rd.next_entry().await? {
            let Some(id) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if valid_upload_id(&id).is_err() {
                continue;
            }
            // Completed or aborted since it was listed: not in progress.
            if let Ok(state) = tokio::fs::read(e.path().join(layout::UPLOAD_FILE)).await {
                out.push((id, state));
            }
        }
        Ok(out)
    }

    async fn list_upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<Vec<u32>, StorageError> {
        self.upload_state(bucket, key, upload).await?;
        let dir = self.upload_dir(bucket, valid_upload_id(upload)?);
        let mut numbers = Vec::new();
        let mut rd = tokio::fs::read_dir(&dir).await?;
        while let Some(e) = rd.next_entry().await? {
            if let Some(n) = e
                .file_name()
                .to_str()
                .and_then(|s| s.strip_prefix("part."))
                .and_then(|s| s.parse::<u32>().ok())
            {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }
}

/// An upload id this store makes (32 hex digits), so no id names a path outside the uploads.
fn valid_upload_id(id: &str) -> Result<&str, StorageError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(StorageError::NoSuchUpload)
    }
}
