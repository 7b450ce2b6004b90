//! A version's plaintext written into a Coffer temp file, as Coffer stores it: a single-part
//! body through the same ingestion as PutObject (hashes, Coffer's packages under a fresh object
//! key), a multipart body as Coffer's multipart objects (each part its own package stream, under
//! a key derived from the object key and a salt drawn for that part).
use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::Importer;
use super::source::Chunk;
use super::xl_meta::ObjectVersion;
use crate::storage::PartMeta;

/// A body written to a temp file.
pub(super) struct Written {
    pub writer: crate::storage::ObjectWriter,
    /// Plaintext bytes.
    pub size: u64,
    /// The plaintext's MD5 (single-part bodies).
    pub md5_hex: Option<String>,
    pub checksums: BTreeMap<String, String>,
    pub parts: Vec<PartMeta>,
}
impl Importer {
    /// A single-part body: written as a PUT writes it (hashes, Coffer's packages).
    pub(super) async fn write_single(
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
        })
    }

    /// A multipart body: each part its own package stream under its own key, as Coffer's
    /// multipart objects are (the parts in the object file, one after the other).
    pub(super) async fn write_parts(
        &self,
        mut rx: mpsc::Receiver<Chunk>,
        key: Option<&crate::sse::ObjectKey>,
        v: &ObjectVersion,
    ) -> Result<Written, String> {
        use crate::sse::PartSalt;
        use crate::sse::package::Encryptor;
        let io = |e: std::io::Error| format!("writing: {e}");
        let mut writer = self.store.writer().await.map_err(io)?;
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut current: Option<(Option<Encryptor>, Option<PartSalt>, u64)> = None;
        while let Some(chunk) = rx.recv().await {
            if current.is_none() {
                // A part starts: its key is derived from a salt drawn for it.
                let n = v
                    .parts
                    .get(parts.len())
                    .map(|p| p.number)
                    .ok_or("more parts than MinIO recorded")?;
                let salt = key.map(|_| PartSalt::generate());
                let enc = key
                    .zip(salt.as_ref())
                    .map(|(k, s)| Encryptor::new(&k.part_key(n, s)));
                current = Some((enc, salt, 0));
            }
            match chunk {
                Chunk::Data(b) => {
                    let (enc, _, len) = current.as_mut().expect("a part in progress");
                    *len += b.len() as u64;
                    match enc {
                        Some(e) => e.update(&b, &mut buf),
                        None => buf.extend_from_slice(&b),
                    }
                    if buf.len() >= 1 << 20 {
                        buf = writer.write_owned(buf).await.map_err(io)?;
                    }
                }
                Chunk::PartEnd(n) => {
                    let (enc, salt, len) = current.take().expect("a part in progress");
                    if let Some(e) = enc {
                        e.finish(&mut buf);
                    }
                    size += len;
                    let etag = v
                        .parts
                        .get(parts.len())
                        .filter(|p| p.number == n)
                        .ok_or("parts out of order")?
                        .etag
                        .clone()
                        .unwrap_or_default();
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
        })
    }
}
