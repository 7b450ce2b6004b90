//! The KES client used by the object server: several endpoints (localhost first),
//! fail-over and retry on network errors and 5xx, mTLS or API key, typed errors.
//!
//! Routes documented as PUT are sent as POST, as MinIO's client does.

mod error;
pub mod tls;

pub use error::ClientError;

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use zeroize::Zeroizing;

/// Number of passes over all endpoints before giving up on retryable errors.
const ATTEMPTS: u32 = 3;
/// First back-off between passes (doubled each pass).
const BACKOFF: Duration = Duration::from_millis(100);
/// Largest response body read from a server.
const MAX_RESPONSE: usize = 1 << 20;

/// How a [`KesClient`] reaches and authenticates to KES.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://host:port` endpoints; loopback endpoints are tried first, then the rest in order.
    pub endpoints: Vec<String>,
    /// The client identity: a certificate or an API key.
    pub identity: ClientIdentity,
    /// PEM CA bundles that verify the server; with `ca_files` empty too, the system roots.
    pub ca_pems: Vec<Vec<u8>>,
    /// CA files (or directories of them) that verify the server, read again when they change
    /// (see [`crate::tls_files`]).
    pub ca_files: Vec<std::path::PathBuf>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
}

/// The credentials of a client.
#[derive(Clone)]
pub enum ClientIdentity {
    /// A PEM certificate (chain) and its PEM private key.
    Certificate {
        /// PEM certificate chain.
        cert_pem: Vec<u8>,
        /// PEM private key.
        key_pem: Vec<u8>,
    },
    /// A PEM certificate (chain) file and its PEM private key file, read again when they
    /// change (a renewed identity is used from the next connection on; see
    /// [`crate::tls_files`]).
    CertificateFiles {
        /// PEM certificate chain file.
        cert: std::path::PathBuf,
        /// PEM private key file.
        key: std::path::PathBuf,
    },
    /// A KES API key `kes:v1:...`; a self-signed Ed25519 client certificate is derived from it.
    ApiKey(String),
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientIdentity::Certificate { .. } => f.write_str("Certificate { .. }"),
            ClientIdentity::CertificateFiles { cert, key } => f
                .debug_struct("CertificateFiles")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            ClientIdentity::ApiKey(_) => f.write_str("ApiKey(..)"),
        }
    }
}

/// Metadata of a master key (`/v1/key/describe`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct KeyInfo {
    /// Key name.
    pub name: String,
    /// `AES256` or `ChaCha20` (empty if the server did not say).
    #[serde(default)]
    pub algorithm: String,
    /// Creation time, if known.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<time::OffsetDateTime>,
    /// Identity that created the key, if known.
    #[serde(default)]
    pub created_by: String,
}

/// A data encryption key: the plaintext (zeroized on drop) and its ciphertext under a master key.
#[derive(Clone)]
pub struct DataKey {
    /// The 32-byte plaintext key.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The plaintext encrypted under the master key (store this).
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// A KES client. Cheap to clone; clones share one keep-alive connection pool.
#[derive(Clone, Debug)]
pub struct KesClient {
    http: reqwest::Client,
    endpoints: std::sync::Arc<[Url]>,
}

/// Base64 (standard) for `Vec<u8>` JSON fields.
mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => STANDARD.decode(s).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Serialize)]
struct ContextRequest<'a> {
    #[serde(
        skip_serializing_if = "<[u8]>::is_empty",
        serialize_with = "b64::serialize"
    )]
    context: &'a [u8],
}

#[derive(Serialize)]
struct EncryptRequest<'a> {
    #[serde(serialize_with = "b64::serialize")]
    plaintext: &'a [u8],
    #[serde(
        skip_serializing_if = "<[u8]>::is_empty",
        serialize_with = "b64::serialize"
    )]
    context: &'a [u8],
}

#[derive(Serialize)]
struct DecryptRequest<'a> {
    #[serde(serialize_with = "b64::serialize")]
    ciphertext: &'a [u8],
    #[serde(
        skip_serializing_if = "<[u8]>::is_empty",
        serialize_with = "b64::serialize"
    )]
    context: &'a [u8],
}

#[derive(Deserialize)]
struct GenerateResponse {
    #[serde(with = "b64")]
    plaintext: Vec<u8>,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Deserialize)]
struct PlaintextResponse {
    #[serde(with = "b64")]
    plaintext: Vec<u8>,
}

#[derive(Deserialize)]
struct CiphertextResponse {
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    continue_at: String,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses endpoints (a missing scheme means `https://`) and puts loopback ones first.
pub fn parse_endpoints(endpoints: &[String]) -> Result<Vec<Url>, ClientError> {
    let mut urls = Vec::new();
    for e in endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let s = if e.contains("://") {
            e.to_string()
        } else {
            format!("https://{e}")
        };
        let url = Url::parse(&s)
            .map_err(|err| ClientError::Config(format!("invalid endpoint '{e}': {err}")))?;
        if url.cannot_be_a_base() || url.host().is_none() {
            return Err(ClientError::Config(format!("invalid endpoint '{e}'")));
        }
        // Data keys travel in these responses: KES speaks only TLS, and a plain-text endpoint
        // would hand them to whoever is on the path.
        if url.scheme() != "https" {
            return Err(ClientError::Config(format!(
                "invalid endpoint '{e}': KES is reached over https only"
            )));
        }
        urls.push(url);
    }
    if urls.is_empty() {
        return Err(ClientError::Config("no KES endpoint".into()));
    }
    urls.sort_by_key(|u| !is_loopback(u)); // stable: keeps the given order otherwise
    Ok(urls)
}

impl KesClient {
    /// Builds a client; fails on an invalid endpoint, certificate, key or CA.
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let endpoints = parse_endpoints(&cfg.endpoints)?;
        let tls = tls::rustls_config(&cfg)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(KesClient {
            http,
            endpoints: endpoints.into(),
        })
    }

    /// The endpoints in the order they are tried.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|u| u.to_string()).collect()
    }

    /// Sends one request with fail-over; returns the body of a 2xx answer.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, ClientError> {
        let mut last = ClientError::Network("no endpoint tried".into());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
            }
            for base in self.endpoints.iter() {
                match self
                    .send_once(base, method.clone(), segments, body.clone())
                    .await
                {
                    Ok(b) => return Ok(b),
                    Err(e) if e.is_retryable() => {
                        tracing::debug!(endpoint = %base, error = %e, "kes request failed, trying next endpoint");
                        last = e;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(last)
    }

    async fn send_once(
        &self,
        base: &Url,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, ClientError> {
        let mut url = base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| ClientError::Config(format!("invalid endpoint '{base}'")))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Network(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = read_limited(resp).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(ClientError::from_body(status, &body))
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let body = self.send(method, segments, body).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse(e.to_string()))
    }

    /// `GET /version`: the server's version string.
    pub async fn version(&self) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct V {
            version: String,
        }
        Ok(self
            .json::<V>(Method::GET, &["version"], None)
            .await?
            .version)
    }

    /// `GET /v1/ready`: Ok when the server (and its keystore) is ready.
    pub async fn ready(&self) -> Result<(), ClientError> {
        self.send(Method::GET, &["v1", "ready"], None)
            .await
            .map(drop)
    }

    /// `GET /v1/status`: the server status as JSON.
    pub async fn status(&self) -> Result<serde_json::Value, ClientError> {
        self.json(Method::GET, &["v1", "status"], None).await
    }

    /// `GET` any API path (given as segments) and return its JSON.
    pub async fn get_json(&self, segments: &[&str]) -> Result<serde_json::Value, ClientError> {
        self.json(Method::GET, segments, None).await
    }

    /// `GET /v1/identity/self/describe`: who the server thinks we are.
    pub async fn describe_self(&self) -> Result<serde_json::Value, ClientError> {
        self.json(Method::GET, &["v1", "identity", "self", "describe"], None)
            .await
    }

    /// Creates a master key; `Err(KeyExists)` if it exists.
    pub async fn create_key(&self, name: &str) -> Result<(), ClientError> {
        self.send(Method::POST, &["v1", "key", "create", name], None)
            .await
            .map(drop)
    }

    /// Imports a 32-byte key with the given cipher (`AES256` or `ChaCha20`).
    pub async fn import_key(
        &self,
        name: &str,
        key: &[u8],
        cipher: &str,
    ) -> Result<(), ClientError> {
        #[derive(Serialize)]
        struct Req<'a> {
            #[serde(serialize_with = "b64::serialize")]
            key: &'a [u8],
            cipher: &'a str,
        }
        let body = Zeroizing::new(
            serde_json::to_vec(&Req { key, cipher })
                .map_err(|e| ClientError::Config(e.to_string()))?,
        );
        self.send(
            Method::POST,
            &["v1", "key", "import", name],
            Some(body.to_vec()),
        )
        .await
        .map(drop)
    }

    /// Describes a master key; `Err(KeyNotFound)` if it does not exist.
    pub async fn describe_key(&self, name: &str) -> Result<KeyInfo, ClientError> {
        self.json(Method::GET, &["v1", "key", "describe", name], None)
            .await
    }

    /// Coffer's `/v1/coffer/key/rotate/<name>`: adds a version (if `add_version`) and then sets
    /// the minimum version (if given); the key's versions afterwards.
    pub async fn rotate_key(
        &self,
        name: &str,
        add_version: bool,
        min_version: Option<u32>,
    ) -> Result<crate::keys::KeyVersions, ClientError> {
        let mut body = serde_json::json!({ "add_version": add_version });
        if let Some(min) = min_version {
            body["min_version"] = min.into();
        }
        let body = serde_json::to_vec(&body).map_err(|e| ClientError::Config(e.to_string()))?;
        self.json(
            Method::POST,
            &["v1", "coffer", "key", "rotate", name],
            Some(body),
        )
        .await
    }

    /// Coffer's `/v1/coffer/key/info/<name>`: every version with its creation time.
    pub async fn key_versions(&self, name: &str) -> Result<crate::keys::KeyVersions, ClientError> {
        self.json(Method::GET, &["v1", "coffer", "key", "info", name], None)
            .await
    }

    /// Names of the master keys that start with `prefix` (all pages).
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, ClientError> {
        let mut names = Vec::new();
        // KES refuses patterns such as `minio-` (trailing dash): list everything then.
        let mut at = if crate::api::names::valid_pattern(prefix) {
            prefix.to_string()
        } else {
            String::new()
        };
        loop {
            let segs: Vec<&str> = if at.is_empty() {
                vec!["v1", "key", "list"]
            } else {
                vec!["v1", "key", "list", &at]
            };
            let page: ListResponse = self.json(Method::GET, &segs, None).await?;
            names.extend(page.names.into_iter().filter(|n| n.starts_with(prefix)));
            if page.continue_at.is_empty()
                || page.continue_at == at
                || !page.continue_at.starts_with(prefix)
            {
                break;
            }
            at = page.continue_at;
        }
        names.dedup();
        Ok(names)
    }

    /// Deletes a master key.
    pub async fn delete_key(&self, name: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &["v1", "key", "delete", name], None)
            .await
            .map(drop)
    }

    /// Generates a new data key under master key `name`, bound to `context`.
    pub async fn generate_key(&self, name: &str, context: &[u8]) -> Result<DataKey, ClientError> {
        let body = serde_json::to_vec(&ContextRequest { context })
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let r: GenerateResponse = self
            .json(Method::POST, &["v1", "key", "generate", name], Some(body))
            .await?;
        Ok(DataKey {
            plaintext: Zeroizing::new(r.plaintext),
            ciphertext: r.ciphertext,
        })
    }

    /// Decrypts a data key ciphertext produced by [`Self::generate_key`] or [`Self::encrypt`].
    pub async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let body = serde_json::to_vec(&DecryptRequest {
            ciphertext,
            context,
        })
        .map_err(|e| ClientError::Config(e.to_string()))?;
        let r: PlaintextResponse = self
            .json(Method::POST, &["v1", "key", "decrypt", name], Some(body))
            .await?;
        Ok(Zeroizing::new(r.plaintext))
    }

    /// Encrypts a small plaintext under master key `name`.
    pub async fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let body = Zeroizing::new(
            serde_json::to_vec(&EncryptRequest { plaintext, context })
                .map_err(|e| ClientError::Config(e.to_string()))?,
        );
        let r: CiphertextResponse = self
            .json(
                Method::POST,
                &["v1", "key", "encrypt", name],
                Some(body.to_vec()),
            )
            .await?;
        Ok(r.ciphertext)
    }

    /// HMAC-SHA256 of `message` under master key `name`.
    pub async fn hmac(&self, name: &str, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        #[derive(Serialize)]
        struct Req<'a> {
            #[serde(serialize_with = "b64::serialize")]
            message: &'a [u8],
        }
        #[derive(Deserialize)]
        struct Resp {
            #[serde(with = "b64")]
            hmac: Vec<u8>,
        }
        let body =
            serde_json::to_vec(&Req { message }).map_err(|e| ClientError::Config(e.to_string()))?;
        let r: Resp = self
            .json(Method::POST, &["v1", "key", "hmac", name], Some(body))
            .await?;
        Ok(r.hmac)
    }
}

/// An error and its causes, `: `-separated (reqwest hides the reason, e.g. a refused
/// certificate, in its sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

async fn read_limited(mut resp: reqwest::Response) -> Result<bytes::Bytes, ClientError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ClientError::Network(error_chain(&e)))?
    {
        if buf.len() + chunk.len() > MAX_RESPONSE {
            return Err(ClientError::InvalidResponse(
                "response body too large".into(),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_loopback_first_and_default_scheme() {
        let eps = parse_endpoints(&[
            "https://kes-1.example:7373".into(),
            "127.0.0.1:7373".into(),
            "https://kes-2.example:7373".into(),
            "https://localhost:7373".into(),
        ])
        .unwrap();
        let hosts: Vec<_> = eps
            .iter()
            .map(|u| u.host_str().unwrap().to_string())
            .collect();
        assert_eq!(
            hosts,
            ["127.0.0.1", "localhost", "kes-1.example", "kes-2.example"]
        );
        assert_eq!(eps[0].scheme(), "https");
    }

    #[test]
    fn rejects_plain_text_endpoints() {
        for e in ["http://127.0.0.1:7373", "HTTP://kes:7373", "ftp://kes:7373"] {
            let err = parse_endpoints(&[e.into()]).unwrap_err();
            assert!(err.to_string().contains("https only"), "{e}: {err}");
        }
    }

    #[test]
    fn rejects_empty_endpoints() {
        assert!(matches!(parse_endpoints(&[]), Err(ClientError::Config(_))));
        assert!(matches!(
            parse_endpoints(&["  ".into()]),
            Err(ClientError::Config(_))
        ));
    }

    #[test]
    fn new_rejects_bad_identity() {
        let cfg = ClientConfig {
            endpoints: vec!["https://127.0.0.1:1".into()],
            identity: ClientIdentity::ApiKey("kes:v1:nope".into()),
            ca_pems: vec![],
            ca_files: vec![],
            insecure_skip_verify: true,
        };
        assert!(matches!(KesClient::new(cfg), Err(ClientError::Config(_))));
    }

    #[test]
    fn debug_hides_secrets() {
        let id = ClientIdentity::ApiKey("kes:v1:secret".into());
        assert!(!format!("{id:?}").contains("secret"));
    }

    #[tokio::test]
    async fn network_error_after_trying_every_endpoint() {
        // Two ports nothing listens on.
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (p1, p2) = (
            l1.local_addr().unwrap().port(),
            l2.local_addr().unwrap().port(),
        );
        drop((l1, l2));
        let key = crate::auth::ApiKey::generate();
        let client = KesClient::new(ClientConfig {
            endpoints: vec![
                format!("https://127.0.0.1:{p1}"),
                format!("https://127.0.0.1:{p2}"),
            ],
            identity: ClientIdentity::ApiKey(key.to_secret_string().to_string()),
            ca_pems: vec![],
            ca_files: vec![],
            insecure_skip_verify: true,
        })
        .unwrap();
        assert!(matches!(
            client.version().await,
            Err(ClientError::Network(_))
        ));
    }
}
