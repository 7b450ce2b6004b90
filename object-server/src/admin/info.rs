//! `mc admin info`: madmin's `InfoMessage` for this one server and its one drive.
use s3s::{Body, S3Response, S3Result};
use serde_json::json;

use super::{AdminRoute, json as reply};

pub(super) async fn server_info(a: &AdminRoute) -> S3Result<S3Response<Body>> {
    let buckets = a.store.list_buckets().await.map(|b| b.len()).unwrap_or(0);
    // From the bucket-usage cache (a minute old at most by default, as MinIO's scanner's
    // counts are); zeros when the store could not be counted yet.
    let total = a
        .usage
        .get(&a.store)
        .await
        .map(|u| u.total())
        .unwrap_or_default();
    let kms_ok = tokio::time::timeout(std::time::Duration::from_secs(3), a.iam.kms().ready())
        .await
        .is_ok_and(|r| r.is_ok());
    let drive = a.store.root().display().to_string();
    reply(&json!({
        "mode": "online",
        "region": "us-east-1",
        "deploymentID": "",
        "buckets": {"count": buckets},
        "objects": {"count": total.objects},
        "usage": {"size": total.bytes},
        "services": {
            "kms": {"status": if kms_ok { "online" } else { "offline" }, "endpoint": a.iam.kms().describe()},
            "kmsStatus": [{"endpoint": a.iam.kms().describe(), "status": if kms_ok { "online" } else { "offline" }}],
        },
        "backend": {
            "backendType": "FS",
            "onlineDisks": 1,
            "offlineDisks": 0,
        },
        "servers": [{
            "state": "online",
            "endpoint": "local",
            "scheme": if a.tls { "https" } else { "http" },
            "uptime": a.started.elapsed().as_secs(),
            "version": concat!("coffer-object-server-", env!("CARGO_PKG_VERSION")),
            "commitID": "",
            "network": {"local": "online"},
            "drives": [{"endpoint": drive, "path": drive, "state": "ok"}],
            "mem_stats": {"Alloc": 0, "TotalAlloc": 0, "Mallocs": 0, "Frees": 0, "HeapAlloc": 0},
            "edition": "Coffer",
        }],
    }))
}
