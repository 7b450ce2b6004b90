//! A version's plaintext written into a Coffer temp file, as Coffer stores it: a single-part
//! body through the same ingestion as PutObject (hashes, Coffer's packages under a fresh object
//! key), a multipart body as Coffer's multipart objects (each part its own package stream, under
//! a key derived from the object key and a salt drawn for that part). Then the version is
//! committed with its metadata ([`Incoming`]). The same steps serve the offline import (bodies
//! read from MinIO's drives) and the online migration (`crate::migrate`, bodies read over S3).
use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::Importer;
use super::metadata::apply_user_metadata;
use super::source::Chunk;
use crate::sse::SseRequest;
use crate::sse::headers::WriteHeaders;
use crate::storage::{EncryptionMeta, ObjectMeta, PartMeta, Versioning};

/// A part of a multipart version: its number, and the ETag the source gave it (`None`: the
/// MD5 of its plaintext, computed while it is written).
pub(crate) type PartSpec = (u32, Option<String>);

/// A version whose body has been written, about to be committed.
pub(crate) struct Incoming<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// Null version or not (see [`Importer::commit_mode`]).
    pub commit: Versioning,
    /// The ETag the source answered with (kept).
    pub etag: String,
    /// Whether `etag` is the MD5 of the plaintext: then the written bytes must have it.
    pub etag_is_md5: bool,
    /// The plaintext length the source recorded.
    pub size: u64,
    pub modified_ms: i64,
    /// The version id's time (keeps the order of versions).
    pub id_micros: u64,
    /// Content headers, `x-amz-meta-*`, `x-amz-tagging`, object lock, as MinIO keeps them.
    pub user: &'a BTreeMap<String, String>,
}

/// A body written to a temp file.
pub(crate) struct Written {
    pub writer: crate::storage::ObjectWriter,
    /// Plaintext bytes.
    pub size: u64,
    /// The plaintext's MD5 (single-part bodies).
    pub md5_hex: Option<String>,
    pub checksums: BTreeMap<String, String>,
    pub parts: Vec<PartMeta>,
    /// The MD5 of each part whose ETag was computed (multipart bodies).
    pub part_md5s: Vec<[u8; 16]>,
}

impl Importer {
    /// A fresh Coffer object key for a version: under `request` (the source's SSE mode kept) or,
    /// without one, as a PUT without SSE headers gets (the bucket default, auto-encryption).
    pub(crate) async fn version_key(
        &self,
        request: Option<SseRequest>,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(crate::sse::ObjectKey, EncryptionMeta)>, String> {
        let (request, bucket_key) = match request {
            Some(r) => (r, false),
            None => self
                .s3
                .write_mode(bucket, &WriteHeaders::default())
                .await
                .map_err(|e| format!("Coffer's encryption for the bucket: {e}"))?,
        };
        self.s3
            .new_object_key(&request, bucket_key, bucket, key)
            .await
            .map_err(|e| format!("a Coffer object key: {e}"))
    }

    /// Checks a written body against what the source recorded and commits it with its
    /// metadata; counts it in the report.
    pub(crate) async fn commit_written(
        &mut self,
        written: Written,
        encryption: Option<EncryptionMeta>,
        v: Incoming<'_>,
    ) -> Result<Option<String>, String> {
        let Written {
            writer,
            size,
            md5_hex,
            checksums,
            parts,
            ..
        } = written;
        if size != v.size {
            return Err("the plaintext is not as long as MinIO recorded".to_owned());
        }
        // End to end: where MinIO's ETag is the MD5 of the plaintext, the bytes about to be
        // committed must have it.
        if v.etag_is_md5 && v.etag.len() == 32 && md5_hex.as_deref().is_some_and(|m| m != v.etag) {
            return Err(
                "the imported bytes do not match MinIO's ETag (their MD5): not imported".to_owned(),
            );
        }
        let mut meta = ObjectMeta {
            size,
            etag: v.etag,
            modified_ms: v.modified_ms,
            checksums,
            encryption,
            parts,
            ..Default::default()
        };
        apply_user_metadata(&mut meta, v.user)?;
        let id = self
            .store
            .commit_imported_version(writer, &mut meta, v.bucket, v.key, v.commit, v.id_micros)
            .await
            .map_err(|e| format!("writing the version: {e}"))?;
        self.report.versions += 1;
        self.report.bytes += size;
        Ok(id)
    }

    /// A single-part body: written as a PUT writes it (hashes, Coffer's packages).
    pub(crate) async fn write_single(
        &self,
        rx: mpsc::Receiver<Chunk>,
        key: Option<&crate::sse::ObjectKey>,
    ) -> Result<Written, String> {
        let body = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await? {
                    Chunk::Data(b) => return Some((Ok::<Bytes, std::io::Error>(b), rx)),
                    Chunk::PartEnd(_) => continue,
                }
            }
        })
        .boxed();
        let algos = crate::s3::checksum::or_default(Vec::new());
        let ing = crate::s3::put::ingest(&self.store, body, key, &algos, true)
            .await
            .map_err(|e| format!("writing: {}", e.message().unwrap_or("failed")))?;
        Ok(Written {
            writer: ing.writer,
            size: ing.size,
            md5_hex: Some(ing.md5_hex),
            checksums: ing.checksums,
            parts: Vec::new(),
            part_md5s: Vec::new(),
        })
    }

    /// A multipart body: each part its own package stream under its own key, as Coffer's
    /// multipart objects are (the parts in the object file, one after the other).
    pub(crate) async fn write_parts(
        &self,
        mut rx: mpsc::Receiver<Chunk>,
        key: Option<&crate::sse::ObjectKey>,
        spec: &[PartSpec],
    ) -> Result<Written, String> {
        use crate::sse::PartSalt;
        use crate::sse::package::Encryptor;
        let io = |e: std::io::Error| format!("writing: {e}");
        let mut writer = self.store.writer().await.map_err(io)?;
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut part_md5s = Vec::new();
        type Current = (
            Option<Encryptor>,
            Option<PartSalt>,
            u64,
            Option<crate::md5::Md5>,
        );
        let mut current: Option<Current> = None;
        while let Some(chunk) = rx.recv().await {
            if current.is_none() {
                // A part starts: its key is derived from a salt drawn for it.
                let (n, etag) = spec
                    .get(parts.len())
                    .ok_or("more parts than MinIO recorded")?;
                let salt = key.map(|_| PartSalt::generate());
                let enc = key
                    .zip(salt.as_ref())
                    .map(|(k, s)| Encryptor::new(&k.part_key(*n, s)));
                let md5 = etag.is_none().then(crate::md5::Md5::new);
                current = Some((enc, salt, 0, md5));
            }
            match chunk {
                Chunk::Data(b) => {
                    let (enc, _, len, md5) = current.as_mut().expect("a part in progress");
                    *len += b.len() as u64;
                    if let Some(m) = md5 {
                        m.update(&b);
                    }
                    match enc {
                        Some(e) => e.update(&b, &mut buf),
                        None => buf.extend_from_slice(&b),
                    }
                    if buf.len() >= 1 << 20 {
                        buf = writer.write_owned(buf).await.map_err(io)?;
                    }
                }
                Chunk::PartEnd(n) => {
                    let (enc, salt, len, md5) = current.take().expect("a part in progress");
                    if let Some(e) = enc {
                        e.finish(&mut buf);
                    }
                    size += len;
                    let (_, given) = spec
                        .get(parts.len())
                        .filter(|(number, _)| *number == n)
                        .ok_or("parts out of order")?;
                    let etag = match (given, md5) {
                        (Some(e), _) => e.clone(),
                        (None, Some(m)) => {
                            let d = m.finalize();
                            part_md5s.push(d);
                            hex::encode(d)
                        }
                        (None, None) => String::new(),
                    };
                    parts.push(PartMeta {
                        number: n,
                        size: len,
                        etag,
                        key_salt: salt,
                        checksums: BTreeMap::new(),
                    });
                }
            }
        }
        writer.write_owned(buf).await.map_err(io)?;
        Ok(Written {
            writer,
            size,
            md5_hex: None,
            checksums: BTreeMap::new(),
            parts,
            part_md5s,
        })
    }
}
