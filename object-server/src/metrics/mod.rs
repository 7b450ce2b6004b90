//! Prometheus metrics under MinIO's names, so MinIO's dashboards and alert rules read Coffer.
//!
//! The endpoints are MinIO's v2 ones, each a view of this process's figures:
//! - `/minio/v2/metrics/cluster` (and the older `/metrics`): S3 requests, capacity, usage
//!   totals, KMS, and this node's process and drive figures (a one-node cluster);
//! - `/minio/v2/metrics/node`: S3 requests and this node's process and drive figures;
//! - `/minio/v2/metrics/bucket`: usage per bucket.
//!
//! One [`Metrics`] per process owns the prometheus-client registries of the three views; every
//! sample carries MinIO's `server` label. What the request path pays is [`s3`]'s: relaxed
//! atomic adds into a table allocated at start, no lock. Everything else (process figures,
//! disk space, KMS readiness, bucket usage) is read when a scrape asks, and bucket usage only
//! at most once per [`usage::UsageCache`]'s age (it walks the store).
//!
//! Names, types and labels follow MinIO's `cmd/metrics-v2.go`; a counter whose MinIO name does
//! not end in `_total` is exposed `untyped`, since the text encoder would otherwise append the
//! suffix. Families MinIO has and Coffer does not (replication, healing, erasure sets, Go
//! runtime, per-bucket request counters) are absent rather than zero.
pub mod api;
pub mod histogram;
pub mod s3;
pub mod system;
pub mod usage;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::kms::Kms;
use crate::kms::metered::KmsStats;
use crate::storage::Store;

/// The content type of the exposition (Prometheus text 0.0.4, as MinIO answers by default).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Which endpoint is scraped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Node,
    Bucket,
}

impl Scope {
    /// The scope an endpoint path serves, if it is one.
    pub fn of_path(path: &str) -> Option<Self> {
        match path {
            "/minio/v2/metrics/cluster" | "/metrics" => Some(Self::Cluster),
            "/minio/v2/metrics/node" => Some(Self::Node),
            "/minio/v2/metrics/bucket" => Some(Self::Bucket),
            _ => None,
        }
    }
}

/// Figures read for one scrape.
#[derive(Debug, Default)]
struct Snapshot {
    process: Option<system::Process>,
    drive: Option<system::Drive>,
    usage: Option<Arc<usage::Usage>>,
    /// Whether the KMS answered the readiness check, and its uptime then.
    kms_uptime: Option<Option<i64>>,
}

/// What the collectors read.
#[derive(Debug)]
struct Shared {
    s3: Arc<s3::S3Stats>,
    kms: Arc<KmsStats>,
    started: SystemTime,
    drive_path: String,
    /// When the TLS certificate served expires (Unix seconds), if TLS is on.
    cert_expiry: Option<i64>,
    snapshot: Mutex<Snapshot>,
}

/// The metrics of one object-server process.
pub struct Metrics {
    shared: Arc<Shared>,
    store: Store,
    kms: Arc<dyn Kms>,
    usage: Arc<usage::UsageCache>,
    cluster: Registry,
    node: Registry,
    bucket: Registry,
}

impl Metrics {
    /// The metrics of a server listening as `server` (MinIO's `server` label: host:port),
    /// storing into `store`, with `kms` (whose requests `kms_stats` counts), counting the
    /// buckets with `usage` (shared with the admin API).
    pub fn new(
        server: String,
        store: Store,
        kms: Arc<dyn Kms>,
        kms_stats: Arc<KmsStats>,
        s3: Arc<s3::S3Stats>,
        usage: Arc<usage::UsageCache>,
        cert_expiry: Option<i64>,
    ) -> Self {
        let shared = Arc::new(Shared {
            s3,
            kms: kms_stats,
            started: SystemTime::now(),
            drive_path: store.root().display().to_string(),
            cert_expiry,
            snapshot: Mutex::new(Snapshot::default()),
        });
        let registry = |parts: &'static [Part]| {
            let labels = [(Cow::Borrowed("server"), Cow::Owned(server.clone()))];
            let mut r = Registry::with_labels(labels.into_iter());
            r.register_collector(Box::new(Families {
                shared: shared.clone(),
                parts,
            }));
            r
        };
        Self {
            cluster: registry(&[Part::S3, Part::Cluster, Part::Node]),
            node: registry(&[Part::S3, Part::Node]),
            bucket: registry(&[Part::Bucket]),
            shared,
            store,
            kms,
            usage,
        }
    }

    /// Adds a collector to the cluster and node views (each gets one from `make`).
    pub fn register(&mut self, make: impl Fn() -> Box<dyn Collector>) {
        self.cluster.register_collector(make());
        self.node.register_collector(make());
    }

    /// The request statistics the S3 service records into.
    pub fn s3(&self) -> &s3::S3Stats {
        &self.shared.s3
    }

    /// Reads what `scope` shows and renders it.
    pub async fn scrape(&self, scope: Scope) -> String {
        let mut snap = Snapshot::default();
        if scope != Scope::Bucket {
            let (process, drive) = {
                let dir = self.store.root().to_owned();
                tokio::task::spawn_blocking(move || (system::process(), system::drive(&dir)))
                    .await
                    .unwrap_or_default()
            };
            snap.process = process;
            snap.drive = drive;
        }
        if scope != Scope::Node {
            snap.usage = self.usage.get(&self.store).await;
        }
        if scope == Scope::Cluster {
            let ok = tokio::time::timeout(Duration::from_secs(2), self.kms.ready())
                .await
                .is_ok_and(|r| r.is_ok());
            let now = unix_now();
            self.shared.kms.set_online(ok, now);
            snap.kms_uptime = Some(self.shared.kms.uptime(now));
        }
        let registry = match scope {
            Scope::Cluster => &self.cluster,
            Scope::Node => &self.node,
            Scope::Bucket => &self.bucket,
        };
        let mut out = String::new();
        // The snapshot lock is held while this scrape encodes: scrapes are rare and cheap to
        // serialise, and requests never take it.
        let mut held = self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *held = snap;
        drop(held);
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// The `notAfter` (Unix seconds) of the first certificate in the PEM file `path`.
pub fn certificate_expiry(path: &std::path::Path) -> Option<i64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A group of families a view shows.
#[derive(Debug, Clone, Copy)]
enum Part {
    S3,
    Cluster,
    Node,
    Bucket,
}

#[derive(Debug)]
struct Families {
    shared: Arc<Shared>,
    parts: &'static [Part],
}

type NoLabels = [(&'static str, &'static str); 0];

/// Writes one sample family of `kind` with one sample per label set.
pub(crate) fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> std::fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut f = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        let mut s = f.encode_family(&labels)?;
        match kind {
            MetricType::Counter => s.encode_counter::<NoLabels, _, f64>(&v, None)?,
            _ => s.encode_gauge(&v)?,
        }
    }
    Ok(())
}

/// A family with a single unlabelled sample.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    v: f64,
) -> std::fmt::Result {
    let none: NoLabels = [];
    family(encoder, name, help, kind, [(none, v)])
}

use MetricType::{Counter, Gauge, Unknown};

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let snap = self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for part in self.parts {
            match part {
                Part::S3 => self.shared.s3.encode(&mut encoder)?,
                Part::Cluster => self.cluster(&mut encoder, &snap)?,
                Part::Node => self.node(&mut encoder, &snap)?,
                Part::Bucket => bucket(&mut encoder, &snap)?,
            }
        }
        Ok(())
    }
}

impl Families {
    fn cluster(&self, e: &mut DescriptorEncoder, snap: &Snapshot) -> std::fmt::Result {
        if let Some(d) = snap.drive {
            // One drive, no erasure coding: raw and usable capacity are the same.
            for (name, help, v) in [
                (
                    "minio_cluster_capacity_raw_total_bytes",
                    "Total capacity online in the cluster",
                    d.total_bytes,
                ),
                (
                    "minio_cluster_capacity_raw_free_bytes",
                    "Total free capacity online in the cluster",
                    d.free_bytes,
                ),
                (
                    "minio_cluster_capacity_usable_total_bytes",
                    "Total usable capacity online in the cluster",
                    d.total_bytes,
                ),
                (
                    "minio_cluster_capacity_usable_free_bytes",
                    "Total free usable capacity online in the cluster",
                    d.free_bytes,
                ),
            ] {
                single(e, name, help, Gauge, v as f64)?;
            }
        }
        for (name, help, v) in [
            (
                "minio_cluster_drive_online_total",
                "Total drives online in the cluster",
                1.0,
            ),
            (
                "minio_cluster_drive_offline_total",
                "Total drives offline in the cluster",
                0.0,
            ),
            (
                "minio_cluster_drive_total",
                "Total drives in the cluster",
                1.0,
            ),
            (
                "minio_cluster_nodes_online_total",
                "Total number of MinIO nodes online",
                1.0,
            ),
            (
                "minio_cluster_nodes_offline_total",
                "Total number of MinIO nodes offline",
                0.0,
            ),
            (
                "minio_cluster_health_status",
                "Get current cluster health status",
                1.0,
            ),
        ] {
            single(e, name, help, Gauge, v)?;
        }
        if let Some(u) = &snap.usage {
            let sum =
                |f: fn(&usage::BucketUsage) -> u64| u.buckets.iter().map(f).sum::<u64>() as f64;
            single(
                e,
                "minio_cluster_usage_total_bytes",
                "Total cluster usage in bytes",
                Gauge,
                sum(|b| b.bytes),
            )?;
            single(
                e,
                "minio_cluster_usage_object_total",
                "Total number of objects in a cluster",
                Gauge,
                sum(|b| b.objects),
            )?;
            single(
                e,
                "minio_cluster_usage_version_total",
                "Total number of versions (includes delete marker) in a cluster",
                Gauge,
                sum(|b| b.versions + b.delete_markers),
            )?;
            single(
                e,
                "minio_cluster_usage_deletemarker_total",
                "Total number of delete markers in a cluster",
                Gauge,
                sum(|b| b.delete_markers),
            )?;
            single(
                e,
                "minio_cluster_bucket_total",
                "Total number of buckets in the cluster",
                Gauge,
                u.buckets.len() as f64,
            )?;
            family(
                e,
                "minio_cluster_objects_size_distribution",
                "Distribution of object sizes across a cluster",
                Gauge,
                usage::SIZE_RANGES
                    .iter()
                    .enumerate()
                    .map(|(i, (range, _))| {
                        (
                            [("range", *range)],
                            u.buckets.iter().map(|b| b.sizes[i]).sum::<u64>() as f64,
                        )
                    }),
            )?;
            single(
                e,
                "minio_usage_last_activity_nano_seconds",
                "Time elapsed (in nano seconds) since last scan activity.",
                Gauge,
                since_nanos(u.counted_at),
            )?;
        }
        if let Some(uptime) = snap.kms_uptime {
            let kms = &self.shared.kms;
            let load = |a: &std::sync::atomic::AtomicU64| {
                a.load(std::sync::atomic::Ordering::Relaxed) as f64
            };
            single(
                e,
                "minio_cluster_kms_online",
                "Reports whether the KMS is online (1) or offline (0)",
                Gauge,
                f64::from(u8::from(uptime.is_some())),
            )?;
            single(
                e,
                "minio_cluster_kms_request_success",
                "Number of KMS requests that succeeded",
                Unknown,
                load(&kms.success),
            )?;
            single(
                e,
                "minio_cluster_kms_request_error",
                "Number of KMS requests that failed due to some error. (HTTP 4xx status code)",
                Unknown,
                load(&kms.error),
            )?;
            single(
                e,
                "minio_cluster_kms_request_failure",
                "Number of KMS requests that failed due to some internal failure. (HTTP 5xx status code)",
                Unknown,
                load(&kms.failure),
            )?;
            single(
                e,
                "minio_cluster_kms_uptime",
                "The time the KMS has been up and running in seconds.",
                Unknown,
                uptime.unwrap_or(0) as f64,
            )?;
        }
        Ok(())
    }

    fn node(&self, e: &mut DescriptorEncoder, snap: &Snapshot) -> std::fmt::Result {
        let started = self
            .shared
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        single(
            e,
            "minio_node_process_starttime_seconds",
            "Start time for MinIO process per node, time in seconds since Unix epoc",
            Gauge,
            started,
        )?;
        single(
            e,
            "minio_node_process_uptime_seconds",
            "Uptime for MinIO process per node in seconds",
            Gauge,
            self.shared
                .started
                .elapsed()
                .map_or(0.0, |d| d.as_secs_f64()),
        )?;
        if let Some(p) = &snap.process {
            single(
                e,
                "minio_node_process_cpu_total_seconds",
                "Total user and system CPU time spent in seconds",
                Unknown,
                p.cpu_seconds,
            )?;
            single(
                e,
                "minio_node_process_resident_memory_bytes",
                "Resident memory size in bytes",
                Gauge,
                p.resident_bytes as f64,
            )?;
            single(
                e,
                "minio_node_process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Gauge,
                p.virtual_bytes as f64,
            )?;
            single(
                e,
                "minio_node_file_descriptor_open_total",
                "Total number of open file descriptors by the MinIO Server process",
                Gauge,
                p.open_fds as f64,
            )?;
            if let Some(limit) = p.fd_limit {
                single(
                    e,
                    "minio_node_file_descriptor_limit_total",
                    "Limit on total number of open file descriptors for the MinIO Server process",
                    Gauge,
                    limit as f64,
                )?;
            }
            single(
                e,
                "minio_node_io_rchar_bytes",
                "Total bytes read by the process from the underlying storage system including cache, /proc/[pid]/io rchar",
                Unknown,
                p.rchar as f64,
            )?;
            single(
                e,
                "minio_node_io_wchar_bytes",
                "Total bytes written by the process to the underlying storage system including page cache, /proc/[pid]/io wchar",
                Unknown,
                p.wchar as f64,
            )?;
            single(
                e,
                "minio_node_syscall_read",
                "Total read SysCalls to the kernel. /proc/[pid]/io syscr",
                Counter,
                p.syscr as f64,
            )?;
            single(
                e,
                "minio_node_syscall_write",
                "Total write SysCalls to the kernel. /proc/[pid]/io syscw",
                Counter,
                p.syscw as f64,
            )?;
        }
        if let Some(t) = self.shared.cert_expiry {
            // MinIO has no such metric; Coffer's own name, as the operator's per-Tenant one.
            single(
                e,
                "coffer_node_tls_certificate_expiry_timestamp_seconds",
                "When the TLS certificate this node serves expires, Unix seconds",
                Gauge,
                t as f64,
            )?;
        }
        for (name, help, v) in [
            ("minio_node_drive_total", "Total drives in this node", 1.0),
            (
                "minio_node_drive_online_total",
                "Total drives online in this node",
                1.0,
            ),
            (
                "minio_node_drive_offline_total",
                "Total drives offline in this node",
                0.0,
            ),
        ] {
            single(e, name, help, Gauge, v)?;
        }
        if let Some(d) = snap.drive {
            let drive = [("drive", self.shared.drive_path.as_str())];
            for (name, help, v) in [
                (
                    "minio_node_drive_total_bytes",
                    "Total storage on a drive",
                    d.total_bytes,
                ),
                (
                    "minio_node_drive_used_bytes",
                    "Total storage used on a drive",
                    d.used_bytes,
                ),
                (
                    "minio_node_drive_free_bytes",
                    "Total storage available on a drive",
                    d.free_bytes,
                ),
                (
                    "minio_node_drive_free_inodes",
                    "Free inodes on a drive",
                    d.free_inodes,
                ),
            ] {
                family(e, name, help, Gauge, [(drive, v as f64)])?;
            }
        }
        Ok(())
    }
}

fn since_nanos(t: SystemTime) -> f64 {
    t.elapsed().map_or(0.0, |d| d.as_nanos() as f64)
}

fn bucket(e: &mut DescriptorEncoder, snap: &Snapshot) -> std::fmt::Result {
    let Some(u) = &snap.usage else {
        return Ok(());
    };
    single(
        e,
        "minio_usage_last_activity_nano_seconds",
        "Time elapsed (in nano seconds) since last scan activity.",
        Gauge,
        since_nanos(u.counted_at),
    )?;
    let per_bucket =
        |e: &mut DescriptorEncoder, name: &str, help: &str, f: fn(&usage::BucketUsage) -> u64| {
            family(
                e,
                name,
                help,
                Gauge,
                u.buckets
                    .iter()
                    .map(|b| ([("bucket", b.name.as_str())], f(b) as f64)),
            )
        };
    per_bucket(
        e,
        "minio_bucket_usage_total_bytes",
        "Total bucket size in bytes",
        |b| b.bytes,
    )?;
    per_bucket(
        e,
        "minio_bucket_usage_object_total",
        "Total number of objects",
        |b| b.objects,
    )?;
    per_bucket(
        e,
        "minio_bucket_usage_version_total",
        "Total number of versions (includes delete marker)",
        |b| b.versions + b.delete_markers,
    )?;
    per_bucket(
        e,
        "minio_bucket_usage_deletemarker_total",
        "Total number of delete markers",
        |b| b.delete_markers,
    )?;
    family(
        e,
        "minio_bucket_objects_size_distribution",
        "Distribution of object sizes in the bucket, includes label for the bucket name",
        Gauge,
        u.buckets.iter().flat_map(|b| {
            usage::SIZE_RANGES
                .iter()
                .enumerate()
                .map(move |(i, (range, _))| {
                    (
                        [("bucket", b.name.as_str()), ("range", *range)],
                        b.sizes[i] as f64,
                    )
                })
        }),
    )
}
