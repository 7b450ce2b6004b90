//! The console's S3 requests, served in-process by the S3 port's own service.
//!
//! Each request is presigned (SigV4 query authentication, `UNSIGNED-PAYLOAD`) with the
//! signed-in user's keys by rusty-s3 and handed to [`s3s::service::S3Service::call`] with the
//! browser's address as [`ClientAddr`] (for `aws:SourceIp`). s3s checks the signature against
//! the IAM's keys and [`crate::iam::access::Access`] decides the operation, exactly as for a
//! request on the S3 port; nothing here decides access. The signed URL never leaves the
//! process.
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use rusty_s3::{Bucket, UrlStyle};
use s3s::service::S3Service;
use zeroize::Zeroizing;

use crate::iam::access::ClientAddr;

/// The region the console signs for (the server accepts any).
const REGION: &str = "us-east-1";

/// How long a signed request is valid: it is checked at once, in-process.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// A user's access key and secret key; the secret is zeroed when dropped and never printed.
pub struct Creds {
    access_key: String,
    secret_key: Zeroizing<String>,
}

impl Creds {
    /// The keys a user signed in with.
    pub fn new(access_key: String, secret_key: String) -> Self {
        Creds {
            access_key,
            secret_key: Zeroizing::new(secret_key),
        }
    }

    /// The access key.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key: it signs, and opens the admin API's encrypted answers.
    pub(crate) fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// One S3 request: the target, its query and headers (all signed), its body.
pub struct Call {
    method: Method,
    /// A path outside the bucket namespace (the admin API's).
    raw_path: Option<String>,
    bucket: Option<String>,
    key: Option<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: s3s::Body,
    content_length: Option<u64>,
}

impl Call {
    /// A request on the service (ListBuckets).
    pub fn service(method: Method) -> Self {
        Call {
            method,
            raw_path: None,
            bucket: None,
            key: None,
            query: Vec::new(),
            headers: Vec::new(),
            body: s3s::Body::empty(),
            content_length: None,
        }
    }

    /// A request to a path of the server's own APIs (`/minio/admin/v3/...`), which the S3
    /// service routes and authorizes as for any client.
    pub fn admin(method: Method, path: &str) -> Self {
        Call {
            raw_path: Some(path.to_owned()),
            ..Call::service(method)
        }
    }

    /// A request on a bucket.
    pub fn bucket(method: Method, bucket: &str) -> Self {
        Call {
            bucket: Some(bucket.to_owned()),
            ..Call::service(method)
        }
    }

    /// A request on an object.
    pub fn object(method: Method, bucket: &str, key: &str) -> Self {
        Call {
            key: Some(key.to_owned()),
            ..Call::bucket(method, bucket)
        }
    }

    /// Adds a query parameter (`""` for a bare one such as `versions`).
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a query parameter when there is a value.
    pub fn query_opt(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    /// Adds a (signed) header; `name` in lower case.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A body of known length.
    pub fn body(mut self, body: Bytes) -> Self {
        self.content_length = Some(body.len() as u64);
        self.body = s3s::Body::from(body);
        self
    }

    /// A streamed body of `len` bytes.
    pub fn stream(mut self, body: s3s::Body, len: u64) -> Self {
        self.content_length = Some(len);
        self.body = body;
        self
    }
}

/// The S3 service of this server, called in-process.
#[derive(Clone)]
pub struct S3Caller {
    service: S3Service,
    /// The host the requests name (the S3 listener's address): s3s reads a bucket from the
    /// path for it, as for a client of the S3 port.
    endpoint: url::Url,
}

/// An answer: status, headers, body.
pub type Answer = http::Response<s3s::Body>;

impl S3Caller {
    /// Calls `service` as if sent to `s3_address`.
    pub fn new(service: S3Service, s3_address: SocketAddr) -> Self {
        let host = match s3_address {
            SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
            SocketAddr::V6(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
            a => a.to_string(),
        };
        let endpoint = format!("http://{host}/").parse().expect("a valid URL");
        S3Caller { service, endpoint }
    }

    /// Signs `call` with `creds` and serves it. An error is the service failing, not an S3
    /// refusal (those are answers with their status).
    pub async fn send(
        &self,
        creds: &Creds,
        client: SocketAddr,
        call: Call,
    ) -> anyhow::Result<Answer> {
        let url = match (&call.raw_path, &call.bucket) {
            (Some(p), _) => self.endpoint.join(p)?,
            (None, None) => self.endpoint.clone(),
            (None, Some(b)) => {
                let bucket = Bucket::new(self.endpoint.clone(), UrlStyle::Path, b.clone(), REGION)
                    .map_err(|e| anyhow::anyhow!("bucket name: {e}"))?;
                match &call.key {
                    Some(k) => bucket.object_url(k),
                    None => bucket.base_url().clone(),
                }
            }
        };
        let method = match call.method {
            Method::GET => rusty_s3::Method::Get,
            Method::HEAD => rusty_s3::Method::Head,
            Method::PUT => rusty_s3::Method::Put,
            Method::POST => rusty_s3::Method::Post,
            Method::DELETE => rusty_s3::Method::Delete,
            ref m => anyhow::bail!("method {m} is not an S3 method"),
        };
        // rusty-s3 merges these with its own parameters and headers as sorted lists.
        let mut query = call.query;
        query.sort();
        let mut signed_headers = call.headers.clone();
        signed_headers.sort();
        let signed = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            &creds.access_key,
            &creds.secret_key,
            None,
            REGION,
            SIGNED_FOR.as_secs(),
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signed_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let path_and_query = match signed.query() {
            Some(q) => format!("{}?{q}", signed.path()),
            None => signed.path().to_owned(),
        };
        let mut req = http::Request::builder()
            .method(call.method)
            .uri(path_and_query)
            .header(http::header::HOST, self.endpoint.authority());
        for (k, v) in &call.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(len) = call.content_length {
            req = req.header(http::header::CONTENT_LENGTH, len);
        }
        let mut req = req.body(call.body)?;
        req.extensions_mut().insert(ClientAddr(client));
        self.service
            .call(req)
            .await
            .map_err(|e| anyhow::anyhow!("S3 service: {e:?}"))
    }
}

/// Reads a whole (small) answer body: XML documents, at most `limit` bytes.
pub async fn read_body(answer: Answer, limit: usize) -> anyhow::Result<(http::StatusCode, Bytes)> {
    let status = answer.status();
    let mut body = answer.into_body();
    let bytes = body
        .store_all_limited(limit)
        .await
        .map_err(|e| anyhow::anyhow!("reading the S3 answer: {e}"))?;
    Ok((status, bytes))
}
