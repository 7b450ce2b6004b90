//! The running MinIO, read through its S3 API: rusty-s3 signs each request (SigV4, as a
//! presigned URL with every header we send signed), reqwest sends it, s3s's XML types read the
//! answers. Only GET and HEAD requests are ever sent: the source is never written.
//!
//! The secret key stays in [`rusty_s3::Credentials`]; a signed URL carries a signature valid for
//! [`SIGNED_FOR`], so request errors are reported without their URL.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use rusty_s3::Credentials;
use url::Url;

use crate::import::bucket_meta::{self, BucketSettings};

/// How long a signed request stays valid (a request starts well within it).
const SIGNED_FOR: Duration = Duration::from_secs(900);

/// A request the source refused or could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct SourceError {
    what: String,
    detail: String,
    /// The HTTP status, when the source answered.
    pub status: Option<StatusCode>,
    /// The S3 error code of the answer (empty when none).
    pub code: String,
}

/// The source endpoint and its credentials.
pub struct Source {
    endpoint: Url,
    region: String,
    creds: Credentials,
    http: reqwest::Client,
}

/// One entry of a ListObjectVersions page.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// MinIO's version id (`null` for the null version).
    pub version_id: String,
    pub modified_ms: i64,
    /// `None`: a delete marker; else the version's ETag (quotes removed) and size.
    pub object: Option<(String, u64)>,
}

/// A listing page and where the next one starts.
pub struct Page {
    pub entries: Vec<Entry>,
    /// `(key-marker, version-id-marker)` of the next page.
    pub next: Option<(String, String)>,
}

/// A version as a GET (or HEAD) answered it.
pub struct Opened {
    pub response: Option<reqwest::Response>,
    pub headers: reqwest::header::HeaderMap,
}

impl Source {
    /// A client of `endpoint` (`https://host:port`), trusting `ca_file`'s certificates besides
    /// the system's.
    pub fn new(
        endpoint: Url,
        region: String,
        creds: Credentials,
        ca_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        use sidecar_kes::client::tls;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            anyhow::bail!("the source must be an http(s) URL");
        }
        let ca_pem = match ca_file {
            Some(ca) => Some(
                std::fs::read(ca)
                    .map_err(|e| anyhow::anyhow!("reading the CA file {}: {e}", ca.display()))?,
            ),
            None => None,
        };
        let config = tls::server_trust_config(ca_pem.as_deref())?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .tls_backend_preconfigured(config)
            .build()?;
        Ok(Self {
            endpoint,
            region,
            creds,
            http,
        })
    }

    /// The source's address, for messages.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    fn url(&self, method: rusty_s3::Method, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        let mut p = base;
        for seg in path {
            p.push('/');
            p.push_str(&percent_encode_path(seg));
        }
        if p.is_empty() {
            p.push('/');
        }
        url.set_path(&p);
        url.set_query(None);
        // rusty-s3 merges its own parameters with these as two sorted lists.
        let mut query = query.to_vec();
        query.sort_unstable();
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            self.creds.key(),
            self.creds.secret(),
            self.creds.token(),
            &self.region,
            SIGNED_FOR.as_secs(),
            query.into_iter(),
            std::iter::empty(),
        )
    }

    /// Sends a GET or HEAD; an error status becomes [`SourceError`] with the S3 code.
    async fn send(
        &self,
        method: Method,
        what: &str,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, SourceError> {
        let signing = if method == Method::HEAD {
            rusty_s3::Method::Head
        } else {
            rusty_s3::Method::Get
        };
        let url = self.url(signing, path, query);
        let fail = |detail: String, status, code: String| SourceError {
            what: what.to_owned(),
            detail,
            status,
            code,
        };
        let resp = self.http.request(method, url).send().await.map_err(|e| {
            fail(
                sidecar_kes::client::error_chain(&e.without_url()),
                None,
                String::new(),
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let (code, message) = error_of(&body);
        let detail = match message.is_empty() {
            true => format!("{status} {code}"),
            false => format!("{status} {code}: {message}"),
        };
        Err(fail(detail, Some(status), code))
    }

    async fn get_bytes(
        &self,
        what: &str,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Bytes, SourceError> {
        let resp = self.send(Method::GET, what, path, query).await?;
        resp.bytes().await.map_err(|e| SourceError {
            what: what.to_owned(),
            detail: sidecar_kes::client::error_chain(&e.without_url()),
            status: None,
            code: String::new(),
        })
    }

    /// A bucket configuration, `None` where the bucket has none (404).
    async fn config(&self, bucket: &str, name: &str) -> Result<Option<Bytes>, SourceError> {
        match self
            .get_bytes(&format!("bucket {name}"), &[bucket], &[(name, "")])
            .await
        {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every bucket's name.
    pub async fn list_buckets(&self) -> Result<Vec<String>, SourceError> {
        let body = self.get_bytes("listing the buckets", &[], &[]).await?;
        let out: s3s::dto::ListBucketsOutput =
            bucket_meta::xml(&body, "bucket list").map_err(|detail| SourceError {
                what: "listing the buckets".to_owned(),
                detail,
                status: None,
                code: String::new(),
            })?;
        Ok(out
            .buckets
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| b.name)
            .collect())
    }

    /// A bucket's settings as its GET calls answer them, in the form the offline import reads
    /// them from MinIO's drives (so the same Coffer code applies them).
    pub async fn bucket_settings(&self, bucket: &str) -> Result<BucketSettings, String> {
        let e = |e: SourceError| e.to_string();
        let mut s = BucketSettings::default();
        if let Some(raw) = self.config(bucket, "versioning").await.map_err(e)? {
            let c: s3s::dto::VersioningConfiguration = bucket_meta::xml(&raw, "versioning")?;
            s.versioning = c.status.map(|s| s.as_str().to_owned());
        }
        if let Some(raw) = self.config(bucket, "object-lock").await.map_err(e)? {
            let c: s3s::dto::ObjectLockConfiguration = bucket_meta::xml(&raw, "object lock")?;
            if c.object_lock_enabled.is_some() {
                s.object_lock = Some(
                    crate::s3::lock::validate_lock_configuration(Some(c))
                        .map_err(|_| "invalid object lock configuration".to_owned())?,
                );
            }
        }
        s.policy = self
            .config(bucket, "policy")
            .await
            .map_err(e)?
            .map(|p| String::from_utf8_lossy(&p).into_owned());
        s.lifecycle = self
            .config(bucket, "lifecycle")
            .await
            .map_err(e)?
            .map(|b| b.to_vec());
        s.encryption = self
            .config(bucket, "encryption")
            .await
            .map_err(e)?
            .map(|b| b.to_vec());
        s.tagging = self
            .config(bucket, "tagging")
            .await
            .map_err(e)?
            .map(|b| b.to_vec());
        // Not imported yet: reported when present.
        if self
            .config(bucket, "replication")
            .await
            .is_ok_and(|r| r.is_some())
        {
            s.not_imported.push("replication");
        }
        Ok(s)
    }

    /// One page of at most `max_keys` of the bucket's versions, from `marker`
    /// (`(key, version id)`).
    pub async fn list_versions(
        &self,
        bucket: &str,
        marker: Option<&(String, String)>,
        max_keys: u32,
    ) -> Result<Page, SourceError> {
        let max_keys = max_keys.to_string();
        let mut q = vec![("versions", ""), ("max-keys", max_keys.as_str())];
        if let Some((k, v)) = marker {
            q.push(("key-marker", k));
            q.push(("version-id-marker", v));
        }
        let body = self
            .get_bytes("listing the versions", &[bucket], &q)
            .await?;
        parse_page(&body).map_err(|detail| SourceError {
            what: "listing the versions".to_owned(),
            detail,
            status: None,
            code: String::new(),
        })
    }

    /// A version (its part `part` of a multipart object): a GET, or a HEAD without a body.
    pub async fn open(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        part: Option<u32>,
        head: bool,
    ) -> Result<Opened, SourceError> {
        let n = part.map(|n| n.to_string());
        let mut q = vec![("versionId", version_id)];
        if let Some(n) = &n {
            q.push(("partNumber", n));
        }
        let method = if head { Method::HEAD } else { Method::GET };
        let resp = self
            .send(method, "reading the version", &[bucket, key], &q)
            .await?;
        let headers = resp.headers().clone();
        Ok(Opened {
            response: (!head).then_some(resp),
            headers,
        })
    }

    /// A version's tags, form-encoded as MinIO keeps them (`a=1&b=2`).
    pub async fn tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<String, SourceError> {
        let body = self
            .get_bytes(
                "reading the tags",
                &[bucket, key],
                &[("tagging", ""), ("versionId", version_id)],
            )
            .await?;
        let t: s3s::dto::Tagging =
            bucket_meta::xml(&body, "tagging").map_err(|detail| SourceError {
                what: "reading the tags".to_owned(),
                detail,
                status: None,
                code: String::new(),
            })?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for tag in t.tag_set {
            form.append_pair(
                tag.key.as_deref().unwrap_or(""),
                tag.value.as_deref().unwrap_or(""),
            );
        }
        Ok(form.finish())
    }
}

/// Reads a `ListVersionsResult` with s3s's types for its versions and delete markers.
pub fn parse_page(xml: &[u8]) -> Result<Page, String> {
    use s3s::xml::{DeError, Deserializer};
    let mut entries = Vec::new();
    let (mut truncated, mut next_key, mut next_version) = (false, None, None);
    let ms = |t: Option<s3s::dto::Timestamp>| {
        t.map(|t| (time::OffsetDateTime::from(t).unix_timestamp_nanos() / 1_000_000) as i64)
            .ok_or(DeError::MissingField)
    };
    let mut d = Deserializer::new(xml);
    d.named_element("ListVersionsResult", |d| {
        d.for_each_element(|d, name| {
            match name {
                // MinIO's delete markers carry a version's fields too (an empty ETag, a size),
                // which s3s's `DeleteMarkerEntry` refuses: both are read as `ObjectVersion`.
                b"Version" | b"DeleteMarker" => {
                    let v: s3s::dto::ObjectVersion = d.content()?;
                    let marker = name == b"DeleteMarker";
                    entries.push(Entry {
                        key: v.key.ok_or(DeError::MissingField)?,
                        version_id: v.version_id.unwrap_or_else(|| "null".to_owned()),
                        modified_ms: ms(v.last_modified)?,
                        object: (!marker).then(|| {
                            (
                                v.e_tag.map(|e| e.value().to_owned()).unwrap_or_default(),
                                v.size.unwrap_or(0).max(0) as u64,
                            )
                        }),
                    });
                }
                b"IsTruncated" => truncated = d.content()?,
                b"NextKeyMarker" => next_key = Some(d.content::<String>()?),
                b"NextVersionIdMarker" => next_version = Some(d.content::<String>()?),
                // Name, Prefix, KeyMarker, VersionIdMarker, MaxKeys, Delimiter, EncodingType.
                _ => d.text(|_| Ok(()))?,
            }
            Ok(())
        })
    })
    .map_err(|e| format!("unreadable version listing: {e:?}"))?;
    let next = match (truncated, next_key) {
        (false, _) => None,
        (true, Some(k)) => Some((k, next_version.unwrap_or_default())),
        (true, None) => return Err("a truncated listing without a next marker".to_owned()),
    };
    Ok(Page { entries, next })
}

/// The `<Code>` and `<Message>` of an S3 error document.
fn error_of(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let field = |name: &str| {
        text.split_once(&format!("<{name}>"))
            .and_then(|(_, r)| r.split_once(&format!("</{name}>")))
            .map(|(c, _)| c.to_owned())
            .unwrap_or_default()
    };
    (field("Code"), field("Message"))
}

/// A path segment (a bucket or a key, its `/` kept) percent-encoded as S3 signs it.
fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The headers of a version that Coffer keeps, as MinIO keeps them in its user map (the form
/// [`crate::import::metadata::apply_user_metadata`] reads): content headers, `x-amz-meta-*`,
/// object lock.
pub fn user_map(headers: &reqwest::header::HeaderMap) -> BTreeMap<String, String> {
    const KEPT: [&str; 8] = [
        "content-type",
        "content-encoding",
        "content-disposition",
        "content-language",
        "cache-control",
        "x-amz-object-lock-mode",
        "x-amz-object-lock-retain-until-date",
        "x-amz-object-lock-legal-hold",
    ];
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if !(KEPT.contains(&n) || n.starts_with("x-amz-meta-")) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            out.insert(n.to_owned(), v.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_minios_version_listing() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>ver</Name><Prefix></Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker><NextKeyMarker>k</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><Version><Key>k</Key><LastModified>2026-12-07T13:00:00.123Z</LastModified><ETag>&#34;5d41402abc4b2a76b9719d911017c592&#34;</ETag><Size>5</Size><Owner><ID>02d6176db174dc93cb1b899f7c6078f08654445fe8cf1b6ce98d8855f66bdbf4</ID><DisplayName>minio</DisplayName></Owner><StorageClass>STANDARD</StorageClass><IsLatest>true</IsLatest><VersionId>8e2d6a8f-1b7d-4a36-9f5b-0c0c2b0d4c11</VersionId></Version><DeleteMarker><Key>k</Key><LastModified>2026-12-07T12:59:59.001Z</LastModified><ETag></ETag><Size>0</Size><Owner><ID>x</ID><DisplayName>minio</DisplayName></Owner><StorageClass>STANDARD</StorageClass><IsLatest>false</IsLatest><VersionId>null</VersionId></DeleteMarker></ListVersionsResult>"#;
        let page = parse_page(xml).expect("parses");
        assert_eq!(page.next, Some(("k".to_owned(), "null".to_owned())));
        assert_eq!(page.entries.len(), 2);
        let v = &page.entries[0];
        assert_eq!(v.version_id, "8e2d6a8f-1b7d-4a36-9f5b-0c0c2b0d4c11");
        assert_eq!(
            v.object,
            Some(("5d41402abc4b2a76b9719d911017c592".to_owned(), 5))
        );
        assert_eq!(v.modified_ms % 1000, 123);
        assert!(page.entries[1].object.is_none());
        assert_eq!(page.entries[1].version_id, "null");
    }

    #[test]
    fn an_error_answer_is_not_a_listing() {
        assert!(parse_page(b"<Error><Code>AccessDenied</Code></Error>").is_err());
        assert_eq!(
            error_of(b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"),
            ("NoSuchKey".to_owned(), "gone".to_owned())
        );
    }
}
