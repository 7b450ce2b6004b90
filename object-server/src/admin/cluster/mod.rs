//! The admin routes of `mc admin cluster bucket export|import` and `mc admin cluster iam
//! export|import`, so one `mc` moves bucket settings and IAM from MinIO to Coffer (and from
//! Coffer to Coffer). Both import the way the offline import and the online migration do
//! (`crate::import`): one implementation of what a MinIO bucket setting or user becomes.
//!
//! - [`archive`]: the zip archives, read with caps on size, entry count and names.
//! - [`buckets`]: `export-bucket-metadata`, `import-bucket-metadata`.
//! - [`iam`]: `export-iam`, `import-iam`, `import-iam-v2`.
use s3s::{Body, S3Response, S3Result};

use super::{AdminRoute, Call};

pub(crate) mod archive;
mod buckets;
pub(crate) mod iam;

/// The largest archive an import reads (MinIO's exports of thousands of buckets or users stay
/// far below it).
pub(crate) const MAX_IMPORT_BODY: usize = 16 << 20;

/// Whether `route` (after `/minio/admin/v3`) takes an archive.
pub(crate) fn is_import(route: &str) -> bool {
    matches!(
        route.trim_end_matches('/'),
        "/import-bucket-metadata" | "/import-iam" | "/import-iam-v2"
    )
}

/// Serves the routes above (the caller has checked the route's action).
pub(super) async fn handle(a: &AdminRoute, c: &Call) -> S3Result<S3Response<Body>> {
    match c.route.as_str() {
        "/export-iam" => iam::export(a).await,
        "/import-iam" => iam::import(a, c, false).await,
        "/import-iam-v2" => iam::import(a, c, true).await,
        _ if a.gateway => Err(super::not_implemented(
            "bucket metadata export and import are not served in gateway mode",
        )),
        "/export-bucket-metadata" => buckets::export(a, c).await,
        "/import-bucket-metadata" => buckets::import(a, c).await,
        other => Err(super::not_implemented(&format!(
            "{other} is not implemented"
        ))),
    }
}
