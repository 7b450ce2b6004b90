//! `object-server migrate --from URL|ALIAS DATA_DIR`: copies a running MinIO (or any S3 server)
//! into a Coffer data directory through the S3 API, losing nothing S3 lets a client read:
//!
//! - every bucket with its versioning, object lock, policy, lifecycle, default encryption and
//!   tagging (each configuration's GET), given to the same Coffer code as the offline import's
//!   (`crate::import::bucket`);
//! - every version of every key in MinIO's order (ListObjectVersions), delete markers included,
//!   with its content headers, user metadata, tags, retention and legal hold, and its
//!   modification time (Coffer keeps it as the version's time and orders its new version ids by
//!   it; S3 has no call to set it);
//! - each body re-encrypted under a fresh Coffer object key: SSE-S3 and SSE-KMS objects in the
//!   same mode (SSE-KMS with the same key name), the others as a PUT without SSE headers would
//!   be (the bucket default, auto-encryption). SSE-C objects cannot be read without their
//!   owner's key: they are reported, not copied.
//!
//! The body streams from MinIO into Coffer's writer; before a version is committed it is
//! checked: the MD5 of the written plaintext against MinIO's ETag where that is the MD5
//! (single-part plaintext and SSE-S3 objects), the MD5 of each part's MD5s where the ETag is a
//! plaintext multipart ETag, and otherwise (SSE-KMS and encrypted multipart objects, whose
//! ETags are not digests of the plaintext) the SHA-256 of what was written against the SHA-256
//! of a second read. A multipart object is read part by part (`partNumber`) and stored as
//! Coffer's multipart objects are, so its ETag and parts stay.
//!
//! Every committed version is recorded in a progress file ([`progress`]): a second run skips
//! what is done and copies what is new (resumable). Versions are committed with the same
//! [`crate::storage::Store::commit_imported_version`] as the offline import's, so the report is
//! the same ([`crate::import::Report`]), a dry run included (listing and HEADs only).
//!
//! Users, groups and policies are not read here (MinIO's admin API answers them encrypted,
//! madmin's format, and without the users' secret keys): `import-minio` reads them from the
//! drives, or `mc admin` commands recreate them (docs/migrating-from-minio.md).
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::import::source::Chunk;
use crate::import::write::{Incoming, PartSpec};
use crate::import::{Importer, Report, report::VersionIdMap};
use crate::sse::SseRequest;
use crate::storage::Versioning;

pub mod credentials;
pub mod progress;
pub mod source;

use progress::{Done, Progress};
use source::{Entry, Source};

/// Keys copied at the same time (each on its own key, so their commits never meet).
const IN_FLIGHT: usize = 8;
/// The progress file under Coffer's system directory of the data directory.
const PROGRESS_FILE: &str = "migrate-progress.jsonl";

/// The `migrate` command's options.
pub struct Options {
    /// A URL (`https://host:port`) or an `mc` alias.
    pub from: String,
    pub keys: credentials::KeySources,
    /// The source's region (signing).
    pub region: String,
    /// A CA (PEM) the source's certificate is checked against, besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
    pub dry_run: bool,
    pub data_dir: std::path::PathBuf,
    /// Versions per listing page (S3's maximum is 1000).
    pub list_page_size: u32,
}

/// What the copy of one key shares with the others.
struct Shared {
    source: Arc<Source>,
    progress: Arc<Progress>,
    dry_run: bool,
    page_size: u32,
}

/// `object-server migrate`: copies the source into `data_dir` and reports.
pub async fn cli(o: Options) -> anyhow::Result<Report> {
    let access = credentials::resolve(&o.from, &o.keys, &|k| std::env::var(k).ok())?;
    let creds = rusty_s3::Credentials::new(access.access_key, access.secret_key.to_string());
    let source = Source::new(access.endpoint, o.region, creds, o.ca_file.as_deref())?;
    let progress_path = o
        .data_dir
        .join(crate::storage::layout::SYSTEM_DIR)
        .join(PROGRESS_FILE);
    // The source answers before anything is written: wrong keys or address change nothing.
    let buckets = source
        .list_buckets()
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", source.endpoint()))?;
    let (importer, _scratch) = crate::import::destination(o.data_dir, o.dry_run).await?;
    let progress = Progress::open(&progress_path, !o.dry_run)
        .map_err(|e| anyhow::anyhow!("the progress file {}: {e}", progress_path.display()))?;
    let shared = Shared {
        source: Arc::new(source),
        progress: Arc::new(progress),
        dry_run: o.dry_run,
        page_size: o.list_page_size.clamp(1, 1000),
    };
    Ok(run(importer, &shared, buckets).await)
}

async fn run(mut importer: Importer, shared: &Shared, buckets: Vec<String>) -> Report {
    let started = Instant::now();
    importer.report_mut().dry_run = shared.dry_run;
    let mut meter = Meter::new();
    for bucket in buckets {
        if !s3s::path::check_bucket_name(&bucket) {
            importer
                .report_mut()
                .skip(&bucket, None, None, "not a valid S3 bucket name");
            continue;
        }
        eprintln!("migrate: bucket {bucket}");
        let settings = match shared.source.bucket_settings(&bucket).await {
            Ok(s) => s,
            Err(e) => {
                importer
                    .report_mut()
                    .skip(&bucket, None, None, format!("bucket settings: {e}"));
                continue;
            }
        };
        if !importer.import_bucket_settings(&bucket, &settings).await {
            continue;
        }
        copy_bucket(
            &mut importer,
            shared,
            &bucket,
            settings.versioning(),
            &mut meter,
        )
        .await;
    }
    meter.print(importer.report_mut(), true);
    let mut report = importer.into_report();
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Progress lines on standard error, at most every two seconds.
struct Meter {
    started: Instant,
    last: Instant,
}

impl Meter {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
        }
    }

    fn print(&mut self, r: &mut Report, last: bool) {
        if !last && self.last.elapsed().as_secs_f64() < 2.0 {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mib = r.bytes as f64 / (1024.0 * 1024.0);
        eprintln!(
            "migrate: {} versions, {} delete markers, {mib:.1} MiB ({:.1} MiB/s), {} left out, {} done before",
            r.versions,
            r.delete_markers,
            mib / secs,
            r.skipped.len(),
            r.resumed
        );
    }
}

/// Every version of the bucket, page by page; a key's versions are copied together, so a
/// key whose versions continue on the next page waits for it.
async fn copy_bucket(
    importer: &mut Importer,
    shared: &Shared,
    bucket: &str,
    mode: Versioning,
    meter: &mut Meter,
) {
    let mut marker: Option<(String, String)> = None;
    let mut carry: Vec<Entry> = Vec::new();
    loop {
        let page = match shared
            .source
            .list_versions(bucket, marker.as_ref(), shared.page_size)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                importer.report_mut().skip(bucket, None, None, e);
                return;
            }
        };
        let mut entries = std::mem::take(&mut carry);
        entries.extend(page.entries);
        if page.next.is_some()
            && let Some(last) = entries.last().map(|e| e.key.clone())
        {
            let cut = entries
                .iter()
                .rposition(|e| e.key != last)
                .map_or(0, |i| i + 1);
            carry = entries.split_off(cut);
        }
        let mut keys: Vec<(String, Vec<Entry>)> = Vec::new();
        for e in entries {
            match keys.last_mut() {
                Some((k, v)) if *k == e.key => v.push(e),
                _ => keys.push((e.key.clone(), vec![e])),
            }
        }
        let factory = importer.worker();
        let mut done = futures::stream::iter(keys)
            .map(|(key, versions)| {
                let worker = factory.worker();
                async move { copy_key(worker, shared, bucket, &key, versions, mode).await }
            })
            .buffered(IN_FLIGHT);
        while let Some(r) = done.next().await {
            importer.report_mut().merge(r);
            meter.print(importer.report_mut(), false);
        }
        drop(done);
        match page.next {
            Some(next) => marker = Some(next),
            None => return,
        }
    }
}

/// A key's versions (listed newest first), copied oldest first so each is newer than those
/// before it, as in MinIO.
async fn copy_key(
    mut worker: Importer,
    shared: &Shared,
    bucket: &str,
    key: &str,
    versions: Vec<Entry>,
    mode: Versioning,
) -> Report {
    let mut imported = false;
    let mut previous = 0u64;
    for e in versions.iter().rev() {
        // Ids from the modification time (milliseconds over S3), strictly increasing.
        let micros = ((e.modified_ms.max(0) as u64) * 1000).max(previous + 1);
        previous = micros;
        let done = Done {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: e.version_id.clone(),
            modified_ms: e.modified_ms,
        };
        if shared.progress.is_done(&done) {
            worker.report_mut().resumed += 1;
            continue;
        }
        let minio_id = (e.version_id != "null").then_some(e.version_id.as_str());
        let result = match &e.object {
            None => {
                worker
                    .commit_delete_marker(bucket, key, minio_id, mode, e.modified_ms, micros)
                    .await
            }
            Some((etag, size)) => {
                copy_version(
                    &mut worker,
                    shared,
                    bucket,
                    key,
                    e,
                    etag,
                    *size,
                    mode,
                    micros,
                )
                .await
            }
        };
        match result {
            Ok(coffer_id) => {
                imported = true;
                if !shared.dry_run
                    && let Err(err) = shared.progress.record(&done)
                {
                    worker.report_mut().skip(
                        bucket,
                        Some(key),
                        minio_id,
                        format!("copied, but not recorded in the progress file: {err}"),
                    );
                }
                if let (Some(m), Some(c)) = (minio_id, coffer_id) {
                    worker.report_mut().version_ids.push(VersionIdMap {
                        bucket: bucket.to_owned(),
                        object: key.to_owned(),
                        minio: m.to_owned(),
                        coffer: c,
                    });
                }
            }
            Err(reason) => worker
                .report_mut()
                .skip(bucket, Some(key), minio_id, reason),
        }
    }
    if imported {
        worker.report_mut().objects += 1;
    }
    worker.into_report()
}

/// How a version was encrypted in MinIO, from its GET/HEAD answer.
enum SourceSse {
    None,
    S3,
    Kms(SseRequest),
}

fn sse_of(h: &reqwest::header::HeaderMap) -> Result<SourceSse, String> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    match get("x-amz-server-side-encryption") {
        None => Ok(SourceSse::None),
        Some("AES256") => Ok(SourceSse::S3),
        Some("aws:kms") => {
            let key_id = get("x-amz-server-side-encryption-aws-kms-key-id")
                .map(|k| k.strip_prefix("arn:aws:kms:").unwrap_or(k).to_owned());
            let context = match get("x-amz-server-side-encryption-context") {
                None => Default::default(),
                Some(b64) => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .ok()
                        .and_then(|j| serde_json::from_slice(&j).ok())
                        .ok_or("an unreadable SSE-KMS context")?
                }
            };
            Ok(SourceSse::Kms(SseRequest::Kms { key_id, context }))
        }
        Some(other) => Err(format!("unknown server-side encryption {other:?}")),
    }
}

/// Why reading a body stopped.
enum ReadError {
    /// The writer went away (its error is the cause).
    Closed,
    Failed(String),
}

/// Streams a version's body (each part of a multipart object in turn) into `tx`; the SHA-256
/// of all of it.
async fn read_body(
    source: Arc<Source>,
    at: (String, String, String),
    first: reqwest::Response,
    parts: Option<u32>,
    tx: mpsc::Sender<Chunk>,
) -> Result<[u8; 32], ReadError> {
    let (bucket, key, vid) = at;
    let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut resp = first;
    let mut n = 1u32;
    loop {
        let mut body = resp.bytes_stream();
        while let Some(b) = body.next().await {
            let b =
                b.map_err(|e| ReadError::Failed(format!("reading the body: {}", e.without_url())))?;
            if b.is_empty() {
                continue;
            }
            sha.update(&b);
            tx.send(Chunk::Data(b))
                .await
                .map_err(|_| ReadError::Closed)?;
        }
        let Some(total) = parts else { break };
        tx.send(Chunk::PartEnd(n))
            .await
            .map_err(|_| ReadError::Closed)?;
        if n >= total {
            break;
        }
        n += 1;
        resp = source
            .open(&bucket, &key, &vid, Some(n), false)
            .await
            .map_err(|e| ReadError::Failed(e.to_string()))?
            .response
            .expect("a GET has a body");
    }
    let digest = sha.finish();
    Ok(digest.as_ref().try_into().expect("32 bytes"))
}

/// The SHA-256 of a second, whole read of the version.
async fn sha256_again(
    source: &Source,
    bucket: &str,
    key: &str,
    vid: &str,
) -> Result<[u8; 32], String> {
    let resp = source
        .open(bucket, key, vid, None, false)
        .await
        .map_err(|e| format!("reading again to verify: {e}"))?
        .response
        .expect("a GET has a body");
    let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut body = resp.bytes_stream();
    while let Some(b) = body.next().await {
        sha.update(&b.map_err(|e| format!("reading again to verify: {}", e.without_url()))?);
    }
    Ok(sha.finish().as_ref().try_into().expect("32 bytes"))
}

/// Copies one version; its Coffer id (`None`: a null version, or a dry run).
#[allow(clippy::too_many_arguments)]
async fn copy_version(
    worker: &mut Importer,
    shared: &Shared,
    bucket: &str,
    key: &str,
    e: &Entry,
    listed_etag: &str,
    size: u64,
    mode: Versioning,
    micros: u64,
) -> Result<Option<String>, String> {
    let source = &shared.source;
    let listed_parts = listed_etag
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u32>().ok());
    let opened = match source
        .open(
            bucket,
            key,
            &e.version_id,
            listed_parts.map(|_| 1),
            shared.dry_run,
        )
        .await
    {
        Ok(o) => o,
        // MinIO refuses to read an SSE-C object without its key (400; a HEAD has no body
        // to say why, and no other version MinIO can read is refused with 400).
        Err(err) if err.status == Some(reqwest::StatusCode::BAD_REQUEST) => {
            *worker
                .report_mut()
                .encrypted
                .entry("SSE-C".to_owned())
                .or_default() += 1;
            return Err(format!(
                "SSE-C: encrypted with the customer's key, which only its owner has; not copied ({err})"
            ));
        }
        Err(err) => return Err(err.to_string()),
    };
    let h = &opened.headers;
    let sse = sse_of(h)?;
    let mode_name = match &sse {
        SourceSse::None => None,
        SourceSse::S3 => Some("SSE-S3"),
        SourceSse::Kms(_) => Some("SSE-KMS"),
    };
    if let Some(m) = mode_name {
        *worker
            .report_mut()
            .encrypted
            .entry(m.to_owned())
            .or_default() += 1;
    }
    if shared.dry_run {
        worker.report_mut().versions += 1;
        worker.report_mut().bytes += size;
        return Ok(None);
    }
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let etag = header("etag")
        .map(|e| e.trim_matches('"').to_owned())
        .unwrap_or_else(|| listed_etag.to_owned());
    let parts = listed_parts.map(|n| {
        header("x-amz-mp-parts-count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(n)
    });
    let mut user = source::user_map(h);
    if header("x-amz-tagging-count").is_some_and(|c| c != "0") {
        let tags = source
            .tags(bucket, key, &e.version_id)
            .await
            .map_err(|e| e.to_string())?;
        user.insert("x-amz-tagging".to_owned(), tags);
    }
    let request = match &sse {
        SourceSse::None => None,
        SourceSse::S3 => Some(SseRequest::S3),
        SourceSse::Kms(r) => Some(r.clone()),
    };
    let enc = worker.version_key(request, bucket, key).await?;
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let reader = tokio::spawn(read_body(
        source.clone(),
        (bucket.to_owned(), key.to_owned(), e.version_id.clone()),
        opened.response.expect("a GET has a body"),
        parts,
        tx,
    ));
    let written = match parts {
        Some(n) => {
            let spec: Vec<PartSpec> = (1..=n).map(|i| (i, None)).collect();
            worker
                .write_parts(rx, enc.as_ref().map(|(k, _)| k), &spec)
                .await
        }
        None => worker.write_single(rx, enc.as_ref().map(|(k, _)| k)).await,
    };
    let read = reader.await.map_err(|e| format!("reader: {e}"))?;
    let (sha, written) = match (read, written) {
        (Err(ReadError::Closed), Err(w)) => return Err(w),
        (Err(ReadError::Closed), Ok(_)) => return Err("the body ended early".to_owned()),
        (Err(ReadError::Failed(r)), _) => return Err(r),
        (Ok(sha), w) => (sha, w?),
    };
    let etag_is_md5 = parts.is_none()
        && matches!(sse, SourceSse::None | SourceSse::S3)
        && etag.len() == 32
        && etag.bytes().all(|b| b.is_ascii_hexdigit());
    // Otherwise the ETag is no digest of the plaintext: a second read must give the same bytes.
    if parts.is_some() && matches!(sse, SourceSse::None) {
        // A plaintext multipart ETag: the MD5 of the parts' MD5s, and their number.
        let mut all = Vec::with_capacity(written.part_md5s.len() * 16);
        for d in &written.part_md5s {
            all.extend_from_slice(d);
        }
        let want = format!(
            "{}-{}",
            hex::encode(crate::md5::Md5::digest(&all)),
            written.part_md5s.len()
        );
        if want != etag {
            return Err(
                "the copied parts do not match MinIO's multipart ETag: not copied".to_owned(),
            );
        }
    } else if !etag_is_md5 && sha256_again(source, bucket, key, &e.version_id).await? != sha {
        return Err("a second read of the version differs from the first: not copied".to_owned());
    }
    let incoming = Incoming {
        bucket,
        key,
        commit: Importer::commit_mode(mode, (e.version_id != "null").then_some(&e.version_id)),
        etag,
        etag_is_md5,
        size,
        modified_ms: e.modified_ms,
        id_micros: micros,
        user: &user,
    };
    worker
        .commit_written(written, enc.map(|(_, m)| m), incoming)
        .await
}
