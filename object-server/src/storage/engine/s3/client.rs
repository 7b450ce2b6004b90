//! Requests to the backend: rusty-s3 signs them (presigned URLs, SigV4 with every header we set
//! signed), reqwest sends them; answers map to [`StorageError`] — a backend that cannot be
//! reached, throttles, fails or refuses our credentials is [`StorageError::Unavailable`] (the
//! client gets `503 SlowDown`, and its request changed nothing).
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::config::BackendConfig;
use crate::storage::{StagedFile, StorageError};

/// How long a signed request stays valid: enough to send a large staged body.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// A signed connection to the backend bucket.
pub(crate) struct Client {
    pub(crate) bucket: Bucket,
    pub(crate) creds: Credentials,
    http: reqwest::Client,
    /// `endpoint/bucket`, for log lines.
    pub(crate) name: String,
}

/// A request body.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(Bytes),
    /// A staged file, from `offset` for `len` bytes.
    File {
        staged: &'a StagedFile,
        offset: u64,
        len: u64,
    },
}

/// The backend's answer: status, ETag (quotes kept, as the backend compares them) and body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub content_range_total: Option<u64>,
    /// `x-amz-version-id`: the version a write made, on a versioned backend bucket.
    pub version_id: Option<String>,
    /// `x-amz-delete-marker: true`: the version answered for is a delete marker.
    pub delete_marker: bool,
    pub body: Bytes,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("{what}: {e}"))
}

impl Client {
    pub(crate) fn new(cfg: &BackendConfig) -> anyhow::Result<Self> {
        let bucket = Bucket::new(
            cfg.endpoint.clone(),
            UrlStyle::Path,
            cfg.bucket.clone(),
            cfg.region.clone(),
        )?;
        let creds = Credentials::new(cfg.access_key.clone(), cfg.secret_key.expose().to_owned());
        let ca_pem = match &cfg.ca_file {
            Some(ca) => Some(
                std::fs::read(ca)
                    .map_err(|e| anyhow::anyhow!("COFFER_BACKEND_CA_FILE {}: {e}", ca.display()))?,
            ),
            None => None,
        };
        let tls = sidecar_kes::client::tls::server_trust_config(ca_pem.as_deref())?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A backend that stops answering mid-request is down, not slow: the client gets
            // 503 instead of a request that never ends.
            .read_timeout(Duration::from_secs(60))
            .no_proxy()
            .tls_backend_preconfigured(tls)
            .build()?;
        Ok(Client {
            name: format!("{}{}", cfg.endpoint, cfg.bucket),
            bucket,
            creds,
            http,
        })
    }

    /// Signs `action` with `headers` (every one of them signed) and sends it with `body`.
    pub(crate) async fn send<'a>(
        &self,
        mut action: impl S3Action<'a>,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Answer, StorageError> {
        for (k, v) in headers {
            action.headers_mut().insert(k.to_string(), v.clone());
        }
        let method = match action_method(&action) {
            rusty_s3::Method::Get => Method::GET,
            rusty_s3::Method::Head => Method::HEAD,
            rusty_s3::Method::Post => Method::POST,
            rusty_s3::Method::Put => Method::PUT,
            rusty_s3::Method::Delete => Method::DELETE,
        };
        let url = action.sign(SIGNED_FOR);
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req = match body {
            Body::Empty => req,
            Body::Bytes(b) => req.body(b),
            Body::File {
                staged,
                offset,
                len,
            } => {
                let file = staged.open().await.map_err(StorageError::Io)?;
                req.header(reqwest::header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::wrap_stream(file_stream(file, offset, len)))
            }
        };
        let resp = req.send().await.map_err(|e| {
            unavailable(
                &self.name,
                sidecar_kes::client::error_chain(&e.without_url()),
            )
        })?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_range_total = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, t)| t.parse().ok());
        let version_id = resp
            .headers()
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_owned);
        let delete_marker = resp
            .headers()
            .get("x-amz-delete-marker")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let body = resp.bytes().await.map_err(|e| {
            unavailable(
                &self.name,
                sidecar_kes::client::error_chain(&e.without_url()),
            )
        })?;
        // The backend bucket itself missing is a broken backend, never a missing Coffer object.
        let backend_bucket_gone =
            status == StatusCode::NOT_FOUND && error_code(&body) == "NoSuchBucket";
        if status.is_server_error()
            || backend_bucket_gone
            || status == StatusCode::FORBIDDEN
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            return Err(unavailable(
                &self.name,
                format_args!("{status} {}", error_code(&body)),
            ));
        }
        Ok(Answer {
            status,
            etag,
            content_range_total,
            version_id,
            delete_marker,
            body,
        })
    }
}

/// The `<Code>` of an S3 error document (no message: it may quote our request).
pub(crate) fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map(|(c, _)| c.to_owned())
        .unwrap_or_default()
}

fn action_method<'a, A: S3Action<'a>>(_: &A) -> rusty_s3::Method {
    A::METHOD
}

/// `len` bytes of `file` from `offset`, in 1 MiB reads.
fn file_stream(
    file: tokio::fs::File,
    offset: u64,
    len: u64,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    futures::stream::try_unfold(
        (file, offset, len, false),
        |(mut file, offset, left, sought)| async move {
            if left == 0 {
                return Ok(None);
            }
            if !sought {
                file.seek(std::io::SeekFrom::Start(offset)).await?;
            }
            let mut buf = vec![0u8; left.min(1 << 20) as usize];
            file.read_exact(&mut buf).await?;
            let n = buf.len() as u64;
            Ok(Some((Bytes::from(buf), (file, offset, left - n, true))))
        },
    )
}
