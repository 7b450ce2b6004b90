//! Which S3 service and bucket the gateway stores into, and with what credentials.
//!
//! `--backend URL` (or `COFFER_BACKEND`): `s3://HOST[:PORT]/BUCKET` (HTTPS; `s3+http://` for
//! plain HTTP, for a backend on loopback or inside the pod network only), or the endpoint's own
//! `https://HOST[:PORT]/BUCKET` / `http://…`. Requests are path-style
//! (`https://HOST/BUCKET/KEY`), which RGW, MinIO and AWS all accept.
//!
//! The rest comes from the environment, each also as `NAME_FILE` (a bare name under
//! `/run/secrets/`, as [`crate::config::env_or_file`] reads every secret):
//! - `COFFER_BACKEND_ACCESS_KEY`, `COFFER_BACKEND_SECRET_KEY` (else `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, as `minio gateway s3` took them);
//! - `COFFER_BACKEND_REGION` (default `us-east-1`, what RGW and MinIO accept by default);
//! - `COFFER_BACKEND_CA_FILE`: PEM CA certificates to trust (default: the system's roots).
use std::fmt;
use std::path::PathBuf;

use crate::config::{ConfigError, Env, Secret, env_or_file};

/// A backend bucket and how to reach it.
#[derive(Clone)]
pub struct BackendConfig {
    /// `http(s)://HOST[:PORT]`.
    pub endpoint: url::Url,
    /// The backend bucket (created beforehand, by whoever runs the backend).
    pub bucket: String,
    /// SigV4 region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: Secret,
    /// CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret key stays out of every log line.
        f.debug_struct("BackendConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl BackendConfig {
    /// `url` (the flag, else `COFFER_BACKEND`) with the environment's credentials; `None`
    /// when neither names a backend (the local directory is the engine).
    pub fn from_env(url: Option<&str>, env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        let Some(url) = url.map(str::to_owned).or_else(|| env.get("COFFER_BACKEND")) else {
            return Ok(None);
        };
        let (endpoint, bucket) = parse_url(&url)?;
        let secret = |primary: &str, fallback: &str| -> Result<Secret, ConfigError> {
            env_or_file(env, primary)?
                .or(env_or_file(env, fallback)?)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!("the S3 backend needs {primary} (or {fallback})"))
                })
        };
        let access_key = secret("COFFER_BACKEND_ACCESS_KEY", "AWS_ACCESS_KEY_ID")?
            .expose()
            .to_owned();
        let secret_key = secret("COFFER_BACKEND_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")?;
        Ok(Some(BackendConfig {
            endpoint,
            bucket,
            region: env
                .get("COFFER_BACKEND_REGION")
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key,
            secret_key,
            ca_file: env.get("COFFER_BACKEND_CA_FILE").map(PathBuf::from),
        }))
    }
}

/// Splits a backend URL into the endpoint and the bucket.
pub fn parse_url(url: &str) -> Result<(url::Url, String), ConfigError> {
    let bad = |why: &str| ConfigError::Invalid(format!("backend URL {url:?}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected s3://HOST/BUCKET"))?;
    let scheme = match scheme {
        "s3" | "https" => "https",
        "s3+http" | "http" => "http",
        _ => return Err(bad("the scheme is not s3, s3+http, https or http")),
    };
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("no bucket after the host"))?;
    let bucket = path.trim_end_matches('/');
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(bad("the bucket is not a valid S3 bucket name"));
    }
    if host.is_empty() || host.contains('@') {
        return Err(bad(
            "no host (credentials go in the environment, not the URL)",
        ));
    }
    let endpoint =
        url::Url::parse(&format!("{scheme}://{host}")).map_err(|e| bad(&e.to_string()))?;
    Ok((endpoint, bucket.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (e, b) = parse_url("s3://rgw.example:8443/tenant-a").unwrap();
        assert_eq!(
            (e.as_str(), b.as_str()),
            ("https://rgw.example:8443/", "tenant-a")
        );
        let (e, b) = parse_url("s3+http://127.0.0.1:9000/bkt/").unwrap();
        assert_eq!((e.as_str(), b.as_str()), ("http://127.0.0.1:9000/", "bkt"));
        for bad in [
            "ftp://h/b",
            "s3://h",
            "s3://h/",
            "s3://h/Upper",
            "s3://user:pw@h/bucket",
            "s3:///bucket",
            "s3://h/a/b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_key_is_never_printed() {
        struct E;
        impl Env for E {
            fn get(&self, name: &str) -> Option<String> {
                match name {
                    "COFFER_BACKEND_ACCESS_KEY" => Some("AKID".into()),
                    "AWS_SECRET_ACCESS_KEY" => Some("very-secret-value".into()),
                    _ => None,
                }
            }
        }
        let c = BackendConfig::from_env(Some("s3+http://h:1/bucket"), &E)
            .unwrap()
            .unwrap();
        assert_eq!(c.secret_key.expose(), "very-secret-value");
        assert!(!format!("{c:?}").contains("very-secret"));
        assert!(BackendConfig::from_env(None, &E).unwrap().is_none());
    }
}
