//! What the buckets hold: objects, versions, delete markers, bytes, size distribution.
//!
//! Counting needs a walk of every key's versions, so it is never done per scrape: a scrape
//! reuses the last count while it is younger than the cache's maximum age (MinIO's own bucket
//! usage is a minute old at best: it comes from its scanner), and a stale cache is refreshed
//! by one walk that concurrent scrapes wait for instead of starting their own. The admin API's
//! `datausageinfo` and `info` (and so the console's bucket usage) read the same cache. The S3
//! request path never touches this module.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::storage::{StorageError, Store};

/// How old a count may be before a scrape refreshes it, unless
/// `COFFER_METRICS_USAGE_MAX_AGE` (seconds) says otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);

/// MinIO's exported object size ranges (`ObjectsHistogramIntervalsV1`): label and the
/// largest size in it.
pub const SIZE_RANGES: [(&str, u64); 7] = [
    ("LESS_THAN_1024_B", 1024 - 1),
    ("BETWEEN_1024B_AND_1_MB", (1 << 20) - 1),
    ("BETWEEN_1_MB_AND_10_MB", 10 * (1 << 20) - 1),
    ("BETWEEN_10_MB_AND_64_MB", 64 * (1 << 20) - 1),
    ("BETWEEN_64_MB_AND_128_MB", 128 * (1 << 20) - 1),
    ("BETWEEN_128_MB_AND_512_MB", 512 * (1 << 20) - 1),
    ("GREATER_THAN_512_MB", u64::MAX),
];

/// The range index of an object of `size` bytes.
pub fn size_range(size: u64) -> usize {
    SIZE_RANGES
        .iter()
        .position(|(_, max)| size <= *max)
        .unwrap_or(SIZE_RANGES.len() - 1)
}

/// One bucket's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketUsage {
    pub name: String,
    /// Keys whose latest version is an object (not a delete marker).
    pub objects: u64,
    /// Versions that are objects, current or not.
    pub versions: u64,
    pub delete_markers: u64,
    /// Plaintext bytes of every version.
    pub bytes: u64,
    /// Latest versions by [`SIZE_RANGES`].
    pub sizes: [u64; SIZE_RANGES.len()],
}

/// A count of every bucket, and when it was made.
#[derive(Debug, Clone)]
pub struct Usage {
    pub buckets: Vec<BucketUsage>,
    pub counted_at: SystemTime,
}

impl Usage {
    /// Every bucket's counts added up (with an empty name).
    pub fn total(&self) -> BucketUsage {
        let mut t = BucketUsage::default();
        for b in &self.buckets {
            t.objects += b.objects;
            t.versions += b.versions;
            t.delete_markers += b.delete_markers;
            t.bytes += b.bytes;
            for (sum, n) in t.sizes.iter_mut().zip(b.sizes) {
                *sum += n;
            }
        }
        t
    }
}

/// The cache: at most one walk at a time, at most one per `max_age`.
pub struct UsageCache {
    max_age: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Arc<Usage>)>>,
}

impl UsageCache {
    /// A cache whose counts live `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The count, refreshed first when older than the maximum age. A failed walk keeps the
    /// previous count (and logs why).
    pub async fn get(&self, store: &Store) -> Option<Arc<Usage>> {
        let mut last = self.last.lock().await;
        if let Some((at, usage)) = last.as_ref()
            && at.elapsed() < self.max_age
        {
            return Some(usage.clone());
        }
        match count(store).await {
            Ok(u) => {
                let u = Arc::new(u);
                *last = Some((Instant::now(), u.clone()));
                Some(u)
            }
            Err(e) => {
                tracing::warn!(error = %e, "counting bucket usage for metrics failed");
                last.as_ref().map(|(_, u)| u.clone())
            }
        }
    }
}

/// Walks every bucket once.
pub async fn count(store: &Store) -> Result<Usage, StorageError> {
    let mut buckets = Vec::new();
    for (name, _) in store.list_buckets().await? {
        let mut b = BucketUsage {
            name,
            ..Default::default()
        };
        let keys = match store.list_version_keys(&b.name, "", false).await {
            Ok(k) => k,
            // Deleted while we walked.
            Err(StorageError::NoSuchBucket) => continue,
            Err(e) => return Err(e),
        };
        for key in keys {
            let versions = match store.key_versions(&b.name, &key).await {
                Ok(v) => v,
                Err(StorageError::NoSuchBucket | StorageError::NoSuchKey) => continue,
                Err(e) => return Err(e),
            };
            for v in versions {
                if v.meta.delete_marker {
                    b.delete_markers += 1;
                    continue;
                }
                b.versions += 1;
                b.bytes += v.meta.size;
                if v.is_latest {
                    b.objects += 1;
                    b.sizes[size_range(v.meta.size)] += 1;
                }
            }
        }
        buckets.push(b);
    }
    Ok(Usage {
        buckets,
        counted_at: SystemTime::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_in_minios_ranges() {
        assert_eq!(size_range(0), 0);
        assert_eq!(size_range(1023), 0);
        assert_eq!(size_range(1024), 1);
        assert_eq!(size_range((1 << 20) - 1), 1);
        assert_eq!(size_range(1 << 20), 2);
        assert_eq!(size_range(600 << 20), 6);
    }
}
