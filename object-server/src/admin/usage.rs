//! `GET /minio/admin/v3/datausageinfo` (`admin:DataUsageInfo`): madmin's `DataUsageInfo`, what
//! `mc stat ALIAS/BUCKET` and consoles read for objects and bytes per bucket. The counts come
//! from the same cache the bucket metrics use ([`crate::metrics::usage::UsageCache`]), so they
//! are as old as that cache allows and no request walks the store more than once per age.
//! `mc admin info`'s objects and usage ([`super::info`]) read the same cache.
use std::collections::BTreeMap;

use s3s::{Body, S3Response, S3Result};
use serde_json::{Value, json};

use super::{AdminRoute, json as reply};
use crate::metrics::usage::{BucketUsage, SIZE_RANGES, Usage};

fn bucket_json(b: &BucketUsage) -> Value {
    let sizes: BTreeMap<&str, u64> = SIZE_RANGES
        .iter()
        .zip(b.sizes)
        .map(|((label, _), n)| (*label, n))
        .collect();
    json!({
        "size": b.bytes,
        "objectsCount": b.objects,
        "versionsCount": b.versions,
        "deleteMarkersCount": b.delete_markers,
        "objectsSizesHistogram": sizes,
        "objectsVersionsHistogram": {},
        "objectsPendingReplicationTotalSize": 0,
        "objectsFailedReplicationTotalSize": 0,
        "objectsReplicatedTotalSize": 0,
        "objectReplicaTotalSize": 0,
        "objectsPendingReplicationCount": 0,
        "objectsFailedReplicationCount": 0,
    })
}

/// madmin's `DataUsageInfo` of `u`; the drive's capacity when known (`capacity=true`).
fn data_usage_json(u: &Usage, drive: Option<crate::metrics::system::Drive>) -> Value {
    let total = u.total();
    let last_update = jiff::Timestamp::try_from(u.counted_at)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut v = json!({
        "lastUpdate": last_update,
        "objectsCount": total.objects,
        "versionsCount": total.versions,
        "deleteMarkersCount": total.delete_markers,
        "objectsTotalSize": total.bytes,
        "objectsPendingReplicationTotalSize": 0,
        "objectsFailedReplicationTotalSize": 0,
        "objectsReplicatedTotalSize": 0,
        "objectsReplicaTotalSize": 0,
        "objectsPendingReplicationCount": 0,
        "objectsFailedReplicationCount": 0,
        "bucketsCount": u.buckets.len(),
        "bucketsUsageInfo": u.buckets.iter().map(|b| (b.name.clone(), bucket_json(b))).collect::<serde_json::Map<_, _>>(),
        "bucketsSizes": u.buckets.iter().map(|b| (b.name.clone(), json!(b.bytes))).collect::<serde_json::Map<_, _>>(),
    });
    if let Some(d) = drive {
        v["capacity"] = json!(d.total_bytes);
        v["freeCapacity"] = json!(d.free_bytes);
        v["usedCapacity"] = json!(d.used_bytes);
    }
    v
}

/// The count, refreshed by the cache when stale; an error when there is none at all.
async fn current(a: &AdminRoute) -> S3Result<std::sync::Arc<Usage>> {
    a.usage.get(&a.store).await.ok_or_else(|| {
        let mut e = s3s::S3Error::with_message(
            s3s::S3ErrorCode::InternalError,
            "The buckets could not be counted; see the server's log.".to_owned(),
        );
        e.set_status_code(http::StatusCode::INTERNAL_SERVER_ERROR);
        e
    })
}

pub(super) async fn data_usage_info(a: &AdminRoute, capacity: bool) -> S3Result<S3Response<Body>> {
    let usage = current(a).await?;
    let drive = if capacity {
        let dir = a.store.root().to_owned();
        tokio::task::spawn_blocking(move || crate::metrics::system::drive(&dir))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    reply(&data_usage_json(&usage, drive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_has_madmins_field_names() {
        let mut photos = BucketUsage {
            name: "photos".into(),
            objects: 2,
            versions: 3,
            delete_markers: 1,
            bytes: 300,
            ..Default::default()
        };
        photos.sizes[0] = 2;
        let u = Usage {
            buckets: vec![
                photos,
                BucketUsage {
                    name: "empty".into(),
                    ..Default::default()
                },
            ],
            counted_at: std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(60),
        };
        let v = data_usage_json(&u, None);
        assert_eq!(v["objectsCount"], 2);
        assert_eq!(v["objectsTotalSize"], 300);
        assert_eq!(v["bucketsCount"], 2);
        assert_eq!(v["lastUpdate"], "1970-01-01T00:01:00Z");
        let b = &v["bucketsUsageInfo"]["photos"];
        assert_eq!(b["size"], 300);
        assert_eq!(b["objectsCount"], 2);
        assert_eq!(b["versionsCount"], 3);
        assert_eq!(b["deleteMarkersCount"], 1);
        assert_eq!(b["objectsSizesHistogram"]["LESS_THAN_1024_B"], 2);
        assert_eq!(v["bucketsSizes"]["empty"], 0);
        assert!(v.get("capacity").is_none());
    }
}
