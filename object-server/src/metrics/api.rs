//! The `api` label: which S3 operation a request was.
//!
//! s3s decides the operation only inside its service, after routing and authentication; it
//! hands it to our access hook ([`crate::iam::access`]) and nowhere else. The hook writes the
//! operation's index into a task-local slot that the connection's request future opened
//! ([`scope`]), so the outer service reads it when the response is ready. A task-local costs
//! nothing per request (no allocation, no lock); s3s runs the hook inside the same future
//! (it never spawns), which is what makes the slot visible to it.
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::LazyLock;

/// Every operation s3s 0.14 routes, by its AWS name. Requests s3s refuses before it knows the
/// operation (a bad signature, a malformed request) count as [`OTHER`].
const OPERATIONS: &[&str] = &[
    "AbortMultipartUpload",
    "CompleteMultipartUpload",
    "CopyObject",
    "CreateBucket",
    "CreateBucketMetadataTableConfiguration",
    "CreateMultipartUpload",
    "CreateSession",
    "DeleteBucket",
    "DeleteBucketAnalyticsConfiguration",
    "DeleteBucketCors",
    "DeleteBucketEncryption",
    "DeleteBucketIntelligentTieringConfiguration",
    "DeleteBucketInventoryConfiguration",
    "DeleteBucketLifecycle",
    "DeleteBucketMetadataTableConfiguration",
    "DeleteBucketMetricsConfiguration",
    "DeleteBucketOwnershipControls",
    "DeleteBucketPolicy",
    "DeleteBucketReplication",
    "DeleteBucketTagging",
    "DeleteBucketWebsite",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjects",
    "DeletePublicAccessBlock",
    "GetBucketAccelerateConfiguration",
    "GetBucketAcl",
    "GetBucketAnalyticsConfiguration",
    "GetBucketCors",
    "GetBucketEncryption",
    "GetBucketIntelligentTieringConfiguration",
    "GetBucketInventoryConfiguration",
    "GetBucketLifecycleConfiguration",
    "GetBucketLocation",
    "GetBucketLogging",
    "GetBucketMetadataTableConfiguration",
    "GetBucketMetricsConfiguration",
    "GetBucketNotificationConfiguration",
    "GetBucketOwnershipControls",
    "GetBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketReplication",
    "GetBucketRequestPayment",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetBucketWebsite",
    "GetObject",
    "GetObjectAcl",
    "GetObjectAttributes",
    "GetObjectLegalHold",
    "GetObjectLockConfiguration",
    "GetObjectRetention",
    "GetObjectTagging",
    "GetObjectTorrent",
    "GetPublicAccessBlock",
    "HeadBucket",
    "HeadObject",
    "ListBucketAnalyticsConfigurations",
    "ListBucketIntelligentTieringConfigurations",
    "ListBucketInventoryConfigurations",
    "ListBucketMetricsConfigurations",
    "ListBuckets",
    "ListDirectoryBuckets",
    "ListMultipartUploads",
    "ListObjectVersions",
    "ListObjects",
    "ListObjectsV2",
    "ListParts",
    "PostObject",
    "PutBucketAccelerateConfiguration",
    "PutBucketAcl",
    "PutBucketAnalyticsConfiguration",
    "PutBucketCors",
    "PutBucketEncryption",
    "PutBucketIntelligentTieringConfiguration",
    "PutBucketInventoryConfiguration",
    "PutBucketLifecycleConfiguration",
    "PutBucketLogging",
    "PutBucketMetricsConfiguration",
    "PutBucketNotificationConfiguration",
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketReplication",
    "PutBucketRequestPayment",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutBucketWebsite",
    "PutObject",
    "PutObjectAcl",
    "PutObjectLegalHold",
    "PutObjectLockConfiguration",
    "PutObjectRetention",
    "PutObjectTagging",
    "PutPublicAccessBlock",
    "RestoreObject",
    "SelectObjectContent",
    "UploadPart",
    "UploadPartCopy",
    "WriteGetObjectResponse",
];

/// The slot of requests whose operation is not known.
pub const OTHER: usize = OPERATIONS.len();
/// How many slots a per-API table needs.
pub const COUNT: usize = OPERATIONS.len() + 1;

/// MinIO names a few operations after its handlers, not after AWS; its dashboards and alert
/// rules use these names, so the label follows MinIO there.
fn minio_name(aws: &str) -> &str {
    match aws {
        "CreateBucket" => "PutBucket",
        "DeleteObjects" => "DeleteMultipleObjects",
        "CreateMultipartUpload" => "NewMultipartUpload",
        "ListObjects" => "ListObjectsV1",
        "UploadPartCopy" => "CopyObjectPart",
        "GetBucketLifecycleConfiguration" => "GetBucketLifecycle",
        "PutBucketLifecycleConfiguration" => "PutBucketLifecycle",
        "GetBucketNotificationConfiguration" => "GetBucketNotification",
        "PutBucketNotificationConfiguration" => "PutBucketNotification",
        other => other,
    }
}

static INDEX: LazyLock<HashMap<&'static str, usize>> = LazyLock::new(|| {
    OPERATIONS
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, i))
        .collect()
});

static LABELS: LazyLock<Vec<String>> = LazyLock::new(|| {
    OPERATIONS
        .iter()
        .map(|n| minio_name(n).to_ascii_lowercase())
        .chain(["other".to_owned()])
        .collect()
});

/// The `api` label of slot `index`: MinIO's handler name, lower-cased as its v2 endpoints print it.
pub fn label(index: usize) -> &'static str {
    LABELS.get(index).map_or("other", String::as_str)
}

tokio::task_local! {
    static CURRENT: Cell<usize>;
}

/// Runs `fut` with an empty operation slot that [`record`] fills and [`current`] reads.
pub async fn scope<F: Future>(fut: F) -> F::Output {
    CURRENT.scope(Cell::new(OTHER), fut).await
}

/// Records that the request being served is the s3s operation `name` (called by the access
/// hook; outside a [`scope`] it does nothing).
pub fn record(name: &str) {
    let index = index_of(name);
    let _ = CURRENT.try_with(|c| c.set(index));
}

/// The slot of operation `name` ([`OTHER`] if unknown).
pub fn index_of(name: &str) -> usize {
    INDEX.get(name).copied().unwrap_or(OTHER)
}

/// The operation recorded in this task's scope, [`OTHER`] if none.
pub fn current() -> usize {
    CURRENT.try_with(Cell::get).unwrap_or(OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_minio_lower_cased() {
        let slot = |n: &str| INDEX[n];
        assert_eq!(label(slot("PutObject")), "putobject");
        assert_eq!(label(slot("ListObjectsV2")), "listobjectsv2");
        assert_eq!(label(slot("CreateBucket")), "putbucket");
        assert_eq!(label(slot("DeleteObjects")), "deletemultipleobjects");
        assert_eq!(label(OTHER), "other");
    }

    #[tokio::test]
    async fn the_slot_is_per_scope() {
        assert_eq!(current(), OTHER);
        record("GetObject");
        assert_eq!(current(), OTHER, "outside a scope nothing is recorded");
        let seen = scope(async {
            record("GetObject");
            current()
        })
        .await;
        assert_eq!(label(seen), "getobject");
        let seen = scope(async {
            record("NoSuchOperation");
            current()
        })
        .await;
        assert_eq!(seen, OTHER);
    }
}
