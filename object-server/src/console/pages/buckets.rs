//! The bucket list with each bucket's usage, creating a bucket (with versioning, or object lock
//! which implies it) and deleting an empty one.
//!
//! Usage (objects and bytes per bucket, and the store's totals) is the admin API's
//! `datausageinfo`, called with the user's keys like every other request, so only a user
//! allowed `admin:DataUsageInfo` sees it; for others the page says why the column is empty.
use std::net::SocketAddr;

use askama::Template;
use bytes::Bytes;
use http::{Method, StatusCode};

use super::{Frame, Refusal, human_size, ok, ok_bytes, ok_xml, render};
use crate::console::http_util::{Response, field, query_escape, redirect};
use crate::console::router::{Console, Req, Signed};
use crate::console::s3call::Call;
use crate::console::xml::{BucketEntry, ListBuckets};

#[derive(Template)]
#[template(path = "console/buckets.html")]
struct BucketsPage {
    frame: Frame,
    buckets: Vec<BucketRow>,
    /// The store's totals and when they were counted, or why usage is not shown.
    usage: Result<UsageTotals, String>,
}

struct BucketRow {
    entry: BucketEntry,
    /// (objects, size for people, bytes), when usage is shown.
    usage: Option<(u64, String, u64)>,
}

struct UsageTotals {
    buckets: u64,
    objects: u64,
    size: String,
    bytes: u64,
    counted_at: String,
}

/// madmin's `DataUsageInfo`, the fields the page shows.
#[derive(serde::Deserialize)]
struct DataUsage {
    #[serde(rename = "lastUpdate", default)]
    last_update: String,
    #[serde(rename = "bucketsCount", default)]
    buckets: u64,
    #[serde(rename = "objectsCount", default)]
    objects: u64,
    #[serde(rename = "objectsTotalSize", default)]
    bytes: u64,
    #[serde(rename = "bucketsUsageInfo", default)]
    per_bucket: std::collections::HashMap<String, BucketUsage>,
}

#[derive(serde::Deserialize)]
struct BucketUsage {
    #[serde(default)]
    size: u64,
    #[serde(rename = "objectsCount", default)]
    objects: u64,
}

async fn data_usage(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
) -> Result<DataUsage, Refusal> {
    let call = Call::admin(Method::GET, "/minio/admin/v3/datausageinfo");
    let body = ok_bytes(console, signed, peer, "read the bucket usage", call).await?;
    serde_json::from_slice(&body).map_err(|e| Refusal::internal(e.into()))
}

async fn list_page(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    mut frame: Frame,
    status: StatusCode,
) -> Response {
    let buckets = match ok_xml::<ListBuckets>(
        console,
        signed,
        peer,
        "list the buckets",
        Call::service(Method::GET),
    )
    .await
    {
        Ok(l) => l.buckets.bucket,
        Err(r) => {
            frame.error.get_or_insert(r.message);
            Vec::new()
        }
    };
    let (usage, mut per_bucket) = match data_usage(console, signed, peer).await {
        Ok(u) => (
            Ok(UsageTotals {
                buckets: u.buckets,
                objects: u.objects,
                size: human_size(u.bytes),
                bytes: u.bytes,
                counted_at: u.last_update,
            }),
            u.per_bucket,
        ),
        Err(r) => (Err(r.message), Default::default()),
    };
    let buckets = buckets
        .into_iter()
        .map(|entry| BucketRow {
            usage: per_bucket
                .remove(&entry.name)
                .map(|b| (b.objects, human_size(b.size), b.size)),
            entry,
        })
        .collect();
    render(
        status,
        &BucketsPage {
            frame,
            buckets,
            usage,
        },
    )
}

/// `GET /buckets`.
pub async fn list(console: &Console, signed: &Signed, req: &Req, mut frame: Frame) -> Response {
    if let Some(b) = req.param("created") {
        frame.notice = Some(format!("Bucket {b} created."));
    } else if let Some(b) = req.param("deleted") {
        frame.notice = Some(format!("Bucket {b} deleted."));
    }
    list_page(console, signed, req.peer, frame, StatusCode::OK).await
}

async fn refused(console: &Console, signed: &Signed, peer: SocketAddr, r: Refusal) -> Response {
    let mut frame = Frame::new(signed);
    let status = r.status;
    frame.error = Some(r.message);
    list_page(console, signed, peer, frame, status).await
}

/// `POST /buckets`: `name`, `versioning`, `lock`.
pub async fn create(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
) -> Response {
    let name = field(form, "name").unwrap_or("").trim().to_owned();
    let lock = field(form, "lock").is_some();
    let versioning = lock || field(form, "versioning").is_some();
    let doing = format!("create bucket {name}");
    let mut call = Call::bucket(Method::PUT, &name);
    if lock {
        call = call.header("x-amz-bucket-object-lock-enabled", "true");
    }
    if name.is_empty() {
        return refused(
            console,
            signed,
            peer,
            Refusal::input("Could not create the bucket: enter a name."),
        )
        .await;
    }
    if let Err(r) = ok(console, signed, peer, &doing, call).await {
        return refused(console, signed, peer, r).await;
    }
    if versioning && !lock {
        let body = Bytes::from_static(
            b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        );
        let call = Call::bucket(Method::PUT, &name)
            .query("versioning", "")
            .body(body);
        if let Err(r) = ok(
            console,
            signed,
            peer,
            &format!("turn on versioning of {name}"),
            call,
        )
        .await
        {
            return refused(console, signed, peer, r).await;
        }
    }
    redirect(&format!("/buckets?created={}", query_escape(&name)))
}

/// `POST /buckets/delete`: `name`.
pub async fn delete(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
) -> Response {
    let name = field(form, "name").unwrap_or("").to_owned();
    match ok(
        console,
        signed,
        peer,
        &format!("delete bucket {name}"),
        Call::bucket(Method::DELETE, &name),
    )
    .await
    {
        Ok(_) => redirect(&format!("/buckets?deleted={}", query_escape(&name))),
        Err(r) => refused(console, signed, peer, r).await,
    }
}
