//! A bucket's objects: one page at a time (ListObjectsV2 with a continuation token, so a bucket
//! of 100,000 objects costs a page's worth per view), prefixes shown as folders; and the
//! versions of a prefix (ListObjectVersions with key and version markers), delete markers
//! included.
use askama::Template;
use http::{Method, StatusCode};

use super::object::{Encryption, encryption_of};
use super::{Frame, ok_xml, render};
use crate::console::http_util::{Response, query_escape};
use crate::console::router::{Console, Req, Signed};
use crate::console::s3call::Call;
use crate::console::xml::{ListObjects, ListVersions, Versioning};

/// Objects per page unless `max` asks for fewer (S3's own limit is 1000).
const PAGE: u32 = 100;

/// A folder (common prefix) row.
struct Folder {
    name: String,
    href: String,
}

/// An object row.
struct Row {
    name: String,
    size: String,
    modified: String,
    encryption: Encryption,
    details: String,
    download: String,
    key: String,
}

#[derive(Template)]
#[template(path = "console/objects.html")]
struct ObjectsPage {
    frame: Frame,
    bucket: String,
    prefix: String,
    /// Each level of the prefix, for the breadcrumb: (name, link).
    crumbs: Vec<(String, String)>,
    folders: Vec<Folder>,
    rows: Vec<Row>,
    next: Option<String>,
    versioning: String,
    versions_href: String,
}

fn page_size(req: &Req) -> u32 {
    req.param("max")
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|m| (1..=1000).contains(m))
        .unwrap_or(PAGE)
}

/// The bucket's versioning status, as GetBucketVersioning says it ("" when never set).
async fn versioning(console: &Console, signed: &Signed, req: &Req, bucket: &str) -> String {
    let call = Call::bucket(Method::GET, bucket).query("versioning", "");
    match ok_xml::<Versioning>(console, signed, req.peer, "read versioning", call).await {
        Ok(v) => v.status.unwrap_or_else(|| "Off".to_owned()),
        Err(_) => "unknown".to_owned(),
    }
}

fn crumbs(bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let mut out = vec![(bucket.to_owned(), format!("/b/{bucket}"))];
    let mut acc = String::new();
    for part in prefix.split_terminator('/') {
        acc.push_str(part);
        acc.push('/');
        out.push((
            part.to_owned(),
            format!("/b/{bucket}?prefix={}", query_escape(&acc)),
        ));
    }
    out
}

/// `GET /b/{bucket}?prefix=&token=&max=`.
pub async fn browse(console: &Console, signed: &Signed, req: &Req, bucket: &str) -> Response {
    let prefix = req.param("prefix").unwrap_or("").to_owned();
    let max = page_size(req);
    let mut frame = Frame::new(signed);
    if let Some(k) = req.param("deleted") {
        frame.notice = Some(format!("Deleted {k}."));
    } else if let Some(k) = req.param("uploaded") {
        frame.notice = Some(format!("Uploaded {k}."));
    }
    let call = Call::bucket(Method::GET, bucket)
        .query("list-type", "2")
        .query("delimiter", "/")
        .query("prefix", prefix.clone())
        .query("max-keys", max.to_string())
        .query_opt("continuation-token", req.param("token"));
    let doing = format!("list bucket {bucket}");
    let (list, status) = match ok_xml::<ListObjects>(console, signed, req.peer, &doing, call).await
    {
        Ok(l) => (l, StatusCode::OK),
        Err(r) => {
            frame.error = Some(r.message);
            (
                ListObjects {
                    contents: vec![],
                    common_prefixes: vec![],
                    is_truncated: false,
                    next_continuation_token: None,
                },
                r.status,
            )
        }
    };
    let folders = list
        .common_prefixes
        .iter()
        .map(|p| Folder {
            name: p
                .prefix
                .strip_prefix(&prefix)
                .unwrap_or(&p.prefix)
                .to_owned(),
            href: format!("/b/{bucket}?prefix={}", query_escape(&p.prefix)),
        })
        .collect();
    // Each object's encryption, read as a HEAD would (8 at a time).
    let mut encs: Vec<Encryption> = Vec::with_capacity(list.contents.len());
    for chunk in list.contents.chunks(8) {
        let heads = chunk
            .iter()
            .map(|o| encryption_of(console, signed, req.peer, bucket, &o.key, None));
        encs.extend(futures::future::join_all(heads).await);
    }
    let rows = list
        .contents
        .into_iter()
        .zip(encs)
        .map(|(o, encryption)| {
            let q = format!("key={}", query_escape(&o.key));
            Row {
                name: o.key.strip_prefix(&prefix).unwrap_or(&o.key).to_owned(),
                size: super::human_size(o.size),
                modified: o.last_modified,
                encryption,
                details: format!("/object/{bucket}?{q}"),
                download: format!("/download/{bucket}?{q}"),
                key: o.key,
            }
        })
        .collect();
    let next = list
        .next_continuation_token
        .filter(|_| list.is_truncated)
        .map(|t| {
            format!(
                "/b/{bucket}?prefix={}&token={}&max={max}",
                query_escape(&prefix),
                query_escape(&t)
            )
        });
    let page = ObjectsPage {
        versioning: versioning(console, signed, req, bucket).await,
        versions_href: format!("/versions/{bucket}?prefix={}", query_escape(&prefix)),
        crumbs: crumbs(bucket, &prefix),
        frame,
        bucket: bucket.to_owned(),
        prefix,
        folders,
        rows,
        next,
    };
    render(status, &page)
}

/// A row of the versions page.
struct VersionRow {
    key: String,
    version_id: String,
    latest: bool,
    delete_marker: bool,
    size: String,
    modified: String,
    details: String,
    download: String,
}

#[derive(Template)]
#[template(path = "console/versions.html")]
struct VersionsPage {
    frame: Frame,
    bucket: String,
    prefix: String,
    rows: Vec<VersionRow>,
    next: Option<String>,
    objects_href: String,
}

/// `GET /versions/{bucket}?prefix=&key-marker=&version-marker=`.
pub async fn versions(console: &Console, signed: &Signed, req: &Req, bucket: &str) -> Response {
    let prefix = req.param("prefix").unwrap_or("").to_owned();
    let max = page_size(req);
    let mut frame = Frame::new(signed);
    let call = Call::bucket(Method::GET, bucket)
        .query("versions", "")
        .query("prefix", prefix.clone())
        .query("max-keys", max.to_string())
        .query_opt("key-marker", req.param("key-marker"))
        .query_opt("version-id-marker", req.param("version-marker"));
    let doing = format!("list the versions in {bucket}");
    let (list, status) = match ok_xml::<ListVersions>(console, signed, req.peer, &doing, call).await
    {
        Ok(l) => (Some(l), StatusCode::OK),
        Err(r) => {
            frame.error = Some(r.message);
            (None, r.status)
        }
    };
    let mut rows = Vec::new();
    let mut next = None;
    if let Some(list) = list {
        let entries = list
            .version
            .into_iter()
            .map(|v| (v, false))
            .chain(list.delete_marker.into_iter().map(|m| (m, true)));
        for (v, delete_marker) in entries {
            let q = format!(
                "key={}&version={}",
                query_escape(&v.key),
                query_escape(&v.version_id)
            );
            rows.push(VersionRow {
                details: format!("/object/{bucket}?{q}"),
                download: format!("/download/{bucket}?{q}"),
                key: v.key,
                version_id: v.version_id,
                latest: v.is_latest,
                delete_marker,
                size: super::human_size(v.size),
                modified: v.last_modified,
            });
        }
        // S3 lists a key's versions newest first; the two element kinds come apart in parsing.
        rows.sort_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then(b.modified.cmp(&a.modified))
                .then(b.latest.cmp(&a.latest))
        });
        if list.is_truncated {
            next = Some(format!(
                "/versions/{bucket}?prefix={}&key-marker={}&version-marker={}&max={max}",
                query_escape(&prefix),
                query_escape(list.next_key_marker.as_deref().unwrap_or("")),
                query_escape(list.next_version_id_marker.as_deref().unwrap_or("")),
            ));
        }
    }
    let page = VersionsPage {
        objects_href: format!("/b/{bucket}?prefix={}", query_escape(&prefix)),
        frame,
        bucket: bucket.to_owned(),
        prefix,
        rows,
        next,
    };
    render(status, &page)
}
