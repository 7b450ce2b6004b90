//! `object-server import-minio`: imports a stopped MinIO's drives into a Coffer data directory
//! by reading MinIO's on-disk format directly. The drives are only ever opened for reading.
//!
//! - [`xl_meta`]: an object's versions (`xl.meta`: MessagePack, checked with its xxHash).
//! - [`bitrot`]: shards checked against MinIO's HighwayHash-256 bitrot hashes.
//! - [`minio_sse`], [`dare`]: MinIO's SSE-S3/SSE-KMS object keys unsealed through the KMS, and
//!   its DARE 2.0 package streams decrypted.
//! - [`erasure`]: a version's stored bytes from the shards on the drives of its erasure set,
//!   rebuilt from parity where shards are missing or rotten.
//! - [`source`]: a version's plaintext, part by part.
//! - [`system`]: MinIO's own files under `.minio.sys/`, stored as objects.
//! - [`bucket_meta`]: `.minio.sys/buckets/<bucket>/.metadata.bin` (versioning, object lock,
//!   policy, lifecycle, encryption, tagging).
//! - [`minio_iam`], [`sealed_config`]: users, groups, policies and attachments from
//!   `.minio.sys/config/iam/`, opened through the KMS where MinIO sealed them.
//! - `metadata`, `write`, `bucket`, `iam`: the Coffer side, shared with the online migration
//!   (`crate::migrate`): (a version's metadata, its body, a
//!   bucket and its settings, users and policies).
//! - [`report`]: what was imported and what was not, with the reason.
//!
//! Everything is written through the object server's own storage and S3 code: each version is
//! committed with [`crate::storage::Store::commit_imported_version`] (the commit of every PUT,
//! its version id made from MinIO's modification time so the order of versions holds), its body
//! encrypted as a PUT without SSE headers would be (Coffer's bucket default, auto-encryption)
//! or, for objects MinIO had encrypted, in the same SSE mode (SSE-KMS with the same key name and
//! context), each under a fresh Coffer object key. SSE-C objects are listed, not imported.
//!
//! One bad object (a damaged xl.meta, a tampered package, a KMS that refuses a key) is reported
//! with its reason and the import goes on with the next one. A key that was imported before is
//! given its versions again (a second run adds versions; run it on an empty data directory).
//!
//! Drives: one (MinIO's single-drive mode) or every drive of the erasure sets, in any order;
//! each object's xl.meta is read from every drive that has it. Version ids: Coffer's ids are
//! not UUIDs, so every version gets a new one, in MinIO's order; the report maps the old ids to
//! the new. A dry run reads every xl.meta and unseals every object key and IAM file through the
//! KMS (so a KMS that refuses shows up), but reads no bodies and writes nothing.
//!
//! MinIO's users and policies are imported after the buckets ([`minio_iam`], `iam`); a user
//! keeps its access and secret key.
//!
//! Not imported yet: service accounts and STS credentials, groups as groups (their policies go to
//! their members), bucket notification, quota and replication settings (all reported), MinIO's compressed objects and objects of its pre-2021 formats (reported).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::iam::Iam;
use crate::kms::Kms;
use crate::s3::CofferS3;
use crate::sse::SseRequest;
use crate::storage::{Store, Versioning};

pub mod bitrot;
pub(crate) mod bucket;
pub mod bucket_meta;
pub mod dare;
pub mod erasure;
pub(crate) mod iam;
pub(crate) mod metadata;
pub mod minio_iam;
pub mod minio_sse;
pub mod report;
pub mod sealed_config;
pub mod source;
pub mod system;
pub(crate) mod write;
pub mod xl_meta;

use erasure::Copy;
use metadata::{meta_value, served_etag};
use minio_sse::{MinioSse, Mode};
pub use report::Report;
use source::{Chunk, PartKeys, SourceError};
use xl_meta::{ObjectVersion, Version, XlMeta};

/// MinIO's system directory on every drive.
const MINIO_SYS: &str = ".minio.sys";
/// MinIO's name suffix of a directory object (a key ending in `/`).
const DIR_SUFFIX: &str = "__XLDIR__";

/// What to import.
#[derive(Debug, Clone)]
pub struct Options {
    /// The MinIO drives: one, or every drive of the erasure sets (any order).
    pub drives: Vec<PathBuf>,
    /// Only read and report; write nothing.
    pub dry_run: bool,
}

/// Why an import could not start.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No drive.
    #[error("no MinIO drive given")]
    NoDrive,
    /// The directory is not a MinIO drive.
    #[error("{0} is not a MinIO drive (no .minio.sys/format.json)")]
    NotADrive(PathBuf),
    /// The drive could not be listed.
    #[error("reading {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The importer: Coffer's S3 layer over the destination store, and the KMS that unseals
/// MinIO's keys and seals Coffer's.
pub struct Importer {
    s3: CofferS3,
    store: Store,
    iam: Arc<Iam>,
    kms: Arc<dyn Kms>,
    dry_run: bool,
    report: Report,
}

/// Objects imported at the same time (each on its own key, so their commits never meet).
const IN_FLIGHT: usize = 8;

/// The largest xl.meta read: MinIO inlines only small objects (128 KiB at most each), so even
/// a key with thousands of versions stays far below it; a larger file is not read into memory.
const MAX_XL_META: u64 = 256 << 20;

/// Reads an xl.meta of a source drive (opened read only).
pub(crate) fn read_source(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p)?;
    let mut out = Vec::new();
    f.take(MAX_XL_META + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_XL_META {
        return Err(std::io::Error::other(format!(
            "xl.meta is larger than {} MiB",
            MAX_XL_META >> 20
        )));
    }
    Ok(out)
}

impl Importer {
    /// An importer writing into `store` and `iam` with `kms` (`auto_encryption` as the
    /// server's).
    pub fn new(
        store: Store,
        iam: Arc<Iam>,
        kms: Arc<dyn Kms>,
        auto_encryption: bool,
        dry_run: bool,
    ) -> Self {
        Self {
            s3: CofferS3::new(store.clone(), kms.clone(), auto_encryption, false),
            store,
            iam,
            kms,
            dry_run,
            report: Report {
                dry_run,
                ..Default::default()
            },
        }
    }

    /// Coffer's S3 operations over the destination.
    pub(crate) fn s3(&self) -> &CofferS3 {
        &self.s3
    }

    /// What was done so far (the online migration fills it as the import does).
    pub(crate) fn report_mut(&mut self) -> &mut Report {
        &mut self.report
    }

    /// The report, once done.
    pub(crate) fn into_report(self) -> Report {
        self.report
    }

    /// A fresh importer into the same destination (one per object in flight; their reports
    /// are merged).
    pub(crate) fn worker(&self) -> Importer {
        Importer::new(
            self.store.clone(),
            self.iam.clone(),
            self.kms.clone(),
            self.s3.auto_encryption,
            self.dry_run,
        )
    }

    /// Imports every bucket of the drives.
    pub async fn run(mut self, opts: &Options) -> Result<Report, ImportError> {
        let started = Instant::now();
        if opts.drives.is_empty() {
            return Err(ImportError::NoDrive);
        }
        for drive in &opts.drives {
            if !drive.join(MINIO_SYS).join("format.json").is_file() {
                return Err(ImportError::NotADrive(drive.clone()));
            }
        }
        let mut buckets = std::collections::BTreeSet::new();
        for drive in &opts.drives {
            for e in std::fs::read_dir(drive).map_err(|e| ImportError::Io(drive.clone(), e))? {
                let e = e.map_err(|e| ImportError::Io(drive.clone(), e))?;
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                buckets.insert(name);
            }
        }
        for bucket in buckets {
            if !s3s::path::check_bucket_name(&bucket) {
                self.report
                    .skip(&bucket, None, None, "not a valid S3 bucket name");
                continue;
            }
            self.import_bucket(&opts.drives, &bucket).await;
        }
        self.import_iam(&opts.drives).await;
        self.report.seconds = started.elapsed().as_secs_f64();
        Ok(self.report)
    }

    async fn import_bucket(&mut self, drives: &[PathBuf], bucket: &str) {
        let settings = match bucket_meta::read(drives, bucket) {
            Ok(s) => s,
            Err(e) => {
                self.report
                    .skip(bucket, None, None, format!("bucket metadata: {e}"));
                bucket_meta::BucketSettings::default()
            }
        };
        if !self.import_bucket_settings(bucket, &settings).await {
            return;
        }
        let mode = settings.versioning();
        // Every key any drive has, with its directory on each drive that has it.
        let mut objects: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for drive in drives {
            let dir = drive.join(bucket);
            if !dir.is_dir() {
                continue;
            }
            let mut found = Vec::new();
            if let Err(e) = find_objects(&dir, "", &mut found) {
                self.report.skip(
                    bucket,
                    None,
                    None,
                    format!("listing the bucket on {}: {e}", drive.display()),
                );
            }
            for (key, dir) in found {
                objects.entry(key).or_default().push(dir);
            }
        }
        // Several objects in flight: each commit waits on the disk (fsync) and each body on the
        // KMS; the reports come back in key order, so the report reads as a sequential run.
        use futures::StreamExt;
        let factory = self.worker();
        let mut done = futures::stream::iter(objects)
            .map(|(key, dirs)| {
                let mut worker = factory.worker();
                async move {
                    worker.import_object(bucket, &key, &dirs, mode).await;
                    worker.report
                }
            })
            .buffered(IN_FLIGHT);
        while let Some(r) = done.next().await {
            self.report.merge(r);
        }
    }

    async fn import_object(&mut self, bucket: &str, key: &str, dirs: &[PathBuf], mode: Versioning) {
        // Every drive's copy of xl.meta; a damaged one is outvoted by the others (its shards
        // are then missing, and rebuilt from parity), and only when none reads is the object lost.
        let mut copies = Vec::new();
        let mut first_error = None;
        for dir in dirs {
            match read_source(&dir.join("xl.meta"))
                .map_err(|e| e.to_string())
                .and_then(|b| XlMeta::parse(&b).map_err(|e| e.to_string()))
            {
                Ok(meta) => copies.push(Copy {
                    dir: dir.clone(),
                    meta,
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some(reference) = erasure::reference(&copies) else {
            let e = first_error.unwrap_or_else(|| "no xl.meta".to_owned());
            self.report.skip(bucket, Some(key), None, e);
            return;
        };
        let xl = reference.meta.clone();
        let mut imported = false;
        // Oldest first, so every version is newer than those before it, as it was in MinIO.
        for v in xl.versions.iter().rev() {
            let minio_id = v.version_id().map(str::to_owned);
            let result = match v {
                Version::Legacy => Err("a legacy (xl.json) object version".to_owned()),
                Version::DeleteMarker(d) => self.import_delete_marker(bucket, key, d, mode).await,
                Version::Object(o) => self.import_version(bucket, key, &copies, o, mode).await,
            };
            match result {
                Ok(coffer_id) => {
                    imported = true;
                    if let (Some(m), Some(c)) = (minio_id, coffer_id) {
                        self.report.version_ids.push(report::VersionIdMap {
                            bucket: bucket.to_owned(),
                            object: key.to_owned(),
                            minio: m,
                            coffer: c,
                        });
                    }
                }
                Err(reason) => self
                    .report
                    .skip(bucket, Some(key), minio_id.as_deref(), reason),
            }
        }
        if imported {
            self.report.objects += 1;
        }
    }

    /// The commit mode of one version: its id says null version or not; an unversioned
    /// bucket's objects stay unversioned.
    pub(crate) fn commit_mode(bucket_mode: Versioning, version_id: Option<&str>) -> Versioning {
        match (bucket_mode, version_id) {
            (Versioning::Unversioned, None) => Versioning::Unversioned,
            (_, None) => Versioning::Suspended,
            (_, Some(_)) => Versioning::Enabled,
        }
    }

    async fn import_delete_marker(
        &mut self,
        bucket: &str,
        key: &str,
        d: &xl_meta::DeleteMarker,
        mode: Versioning,
    ) -> Result<Option<String>, String> {
        let ms = d.mod_time_ns.div_euclid(1_000_000);
        let micros = (d.mod_time_ns.max(0) / 1000) as u64;
        self.commit_delete_marker(bucket, key, d.version_id.as_deref(), mode, ms, micros)
            .await
    }

    /// Commits a delete marker (`version_id` `None`: the null one) of a bucket in `mode`, its
    /// id from `id_micros`; counted (and, in a dry run, only counted).
    pub(crate) async fn commit_delete_marker(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        mode: Versioning,
        modified_ms: i64,
        id_micros: u64,
    ) -> Result<Option<String>, String> {
        let mode = Self::commit_mode(mode, version_id);
        if mode == Versioning::Unversioned {
            return Err("a delete marker in a bucket without versioning".to_owned());
        }
        self.report.delete_markers += 1;
        if self.dry_run {
            return Ok(None);
        }
        self.store
            .put_imported_delete_marker(bucket, key, mode, modified_ms, id_micros)
            .await
            .map(Some)
            .map_err(|e| format!("writing the delete marker: {e}"))
    }

    async fn import_version(
        &mut self,
        bucket: &str,
        key: &str,
        copies: &[Copy],
        v: &ObjectVersion,
        bucket_mode: Versioning,
    ) -> Result<Option<String>, String> {
        if v.erasure.checksum_algo != 1 {
            return Err(format!(
                "bitrot algorithm {} is not supported",
                v.erasure.checksum_algo
            ));
        }
        if meta_value(&v.meta_sys, &v.meta_user, "x-minio-internal-compression").is_some() {
            return Err("compressed objects are not imported yet".to_owned());
        }
        let sse = MinioSse::of(&v.meta_sys, &v.meta_user).map_err(|e| e.to_string())?;
        let mode_name = match &sse {
            MinioSse::None => None,
            MinioSse::Customer => Some("SSE-C"),
            MinioSse::Kms(k) if k.mode == Mode::S3 => Some("SSE-S3"),
            MinioSse::Kms(_) => Some("SSE-KMS"),
        };
        if let Some(m) = mode_name {
            *self.report.encrypted.entry(m.to_owned()).or_default() += 1;
        }
        let multipart = meta_value(
            &v.meta_sys,
            &v.meta_user,
            "x-minio-internal-encrypted-multipart",
        )
        .is_some()
            || v.parts.len() > 1;
        let (object_key, request) = match &sse {
            MinioSse::Customer => {
                return Err("SSE-C: encrypted with the customer's key, which only its owner has; not imported".to_owned());
            }
            MinioSse::None => (None, None),
            MinioSse::Kms(k) => {
                let object_key = k
                    .unseal(self.kms.as_ref(), bucket, key)
                    .await
                    .map_err(|e| e.to_string())?;
                let request = match k.mode {
                    Mode::S3 => SseRequest::S3,
                    Mode::Kms => SseRequest::Kms {
                        key_id: Some(k.key_id.clone()),
                        context: k.context.clone(),
                    },
                };
                (Some(object_key), Some(request))
            }
        };
        let plain_size: u64 = v.parts.iter().map(|p| p.actual_size.max(0) as u64).sum();
        let commit = Self::commit_mode(bucket_mode, v.version_id.as_deref());
        if self.dry_run {
            self.report.versions += 1;
            self.report.bytes += plain_size;
            return Ok(None);
        }
        let shards = erasure::shard_sources(copies, v).map_err(|e| e.to_string())?;
        let etag = served_etag(v, &sse, object_key.as_deref(), multipart);
        let keys = match object_key {
            None => PartKeys::None,
            Some(k) if multipart => PartKeys::PerPart(k),
            Some(k) => PartKeys::Object(k),
        };
        let enc = self.version_key(request, bucket, key).await?;
        let (tx, rx) = mpsc::channel::<Chunk>(4);
        let version = v.clone();
        let reader =
            tokio::task::spawn_blocking(move || source::read_version(&version, &shards, keys, tx));
        let written = if multipart {
            let spec: Vec<write::PartSpec> = v
                .parts
                .iter()
                .map(|p| (p.number, Some(p.etag.clone().unwrap_or_default())))
                .collect();
            self.write_parts(rx, enc.as_ref().map(|(k, _)| k), &spec)
                .await
        } else {
            self.write_single(rx, enc.as_ref().map(|(k, _)| k)).await
        };
        let read = reader.await.map_err(|e| format!("reader: {e}"))?;
        // When both failed, the one that stopped the other is the cause.
        let (stats, written) = match (read, written) {
            (Err(SourceError::Closed), Err(w)) => return Err(w),
            (Err(r), _) => return Err(r.to_string()),
            (Ok(stats), w) => (stats, w?),
        };
        self.report.healed_shards += stats.healed;
        // MinIO's ETag is the MD5 of the plaintext for plaintext and SSE-S3 single-part objects.
        let etag_is_md5 = !multipart
            && match &sse {
                MinioSse::None => true,
                MinioSse::Kms(k) => k.mode == Mode::S3,
                MinioSse::Customer => false,
            };
        let incoming = write::Incoming {
            bucket,
            key,
            commit,
            etag,
            etag_is_md5,
            size: plain_size,
            modified_ms: v.mod_time_ns.div_euclid(1_000_000),
            id_micros: (v.mod_time_ns.max(0) / 1000) as u64,
            user: &v.meta_user,
        };
        self.commit_written(written, enc.map(|(_, m)| m), incoming)
            .await
    }
}

/// Every object under the bucket directory `dir` (keys prefixed `prefix`), sorted by key: a
/// directory holding an `xl.meta` is an object (and may hold further keys below it).
pub(crate) fn find_objects(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if !e.file_type()?.is_dir() {
            continue;
        }
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = e.path();
        let key = match name.strip_suffix(DIR_SUFFIX) {
            Some(base) => format!("{prefix}{base}/"),
            None => format!("{prefix}{name}"),
        };
        if path.join("xl.meta").is_file() {
            out.push((key.clone(), path.clone()));
        }
        let below = if key.ends_with('/') {
            key.clone()
        } else {
            format!("{key}/")
        };
        find_objects(&path, &below, out)?;
    }
    Ok(())
}

/// A dry run's scratch directory, removed when dropped.
pub(crate) struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            let _ = std::fs::remove_dir_all(s);
        }
    }
}

/// An importer into `data_dir` with the KMS and the auto-encryption setting of the `MINIO_*`
/// environment (as `server` reads them). A dry run writes nothing into `data_dir`: its store is
/// a scratch directory, removed when the returned guard is dropped.
pub(crate) async fn destination(
    data_dir: PathBuf,
    dry_run: bool,
) -> anyhow::Result<(Importer, Scratch)> {
    use anyhow::Context;
    let scratch = Scratch(dry_run.then(|| {
        std::env::temp_dir().join(format!(
            "coffer-import-dry-run-{}",
            crate::storage::random_name()
        ))
    }));
    let dir = scratch.0.clone().unwrap_or(data_dir);
    let cfg = crate::config::Config::from_parts(
        "127.0.0.1:0",
        None,
        std::slice::from_ref(&dir),
        &crate::config::ProcessEnv,
    )?;
    let store = Store::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let kms = crate::server::build_kms(&cfg, &store, Vec::new(), Default::default()).await?;
    let iam = Iam::open(
        dir.clone(),
        &store.system_dir(),
        kms.clone(),
        cfg.root_user.clone(),
        cfg.root_password.clone(),
    )
    .await
    .context("Coffer's IAM state")?;
    let importer = Importer::new(store, iam, kms, cfg.auto_encryption, dry_run);
    Ok((importer, scratch))
}

/// `object-server import-minio`: the import into `data_dir` (see [`destination`]).
pub async fn cli(drives: Vec<PathBuf>, data_dir: PathBuf, dry_run: bool) -> anyhow::Result<Report> {
    let (importer, _scratch) = destination(data_dir, dry_run).await?;
    Ok(importer.run(&Options { drives, dry_run }).await?)
}
