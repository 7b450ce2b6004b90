//! Configuration: MinIO's flags and MinIO's `MINIO_*` environment, so MinIO's KMS guide works
//! unchanged. Every variable also has a `_FILE` form naming a file that holds the value (a bare
//! name is looked up under `/run/secrets/`, as Docker and Kubernetes mount secrets).
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// A secret from the environment: wiped on drop, never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(v: String) -> Self {
        Self(Zeroizing::new(v))
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret value (same as [`Secret::expose`]).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The configuration is unusable. Messages name the variable, never its secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--address` did not parse.
    #[error("invalid --address '{0}': expected HOST:PORT or :PORT")]
    Address(String),
    /// More than one data directory.
    #[error("exactly one data directory is supported (got {0})")]
    DataDirs(usize),
    /// A `_FILE` variable names a file that cannot be read.
    #[error("{var}: cannot read {path}: {source}")]
    SecretFile {
        /// The variable.
        var: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A variable has a value we do not accept.
    #[error("{0}")]
    Invalid(String),
}

/// The KES client settings (`MINIO_KMS_KES_*`).
#[derive(Debug, Clone)]
pub struct KesConfig {
    /// `MINIO_KMS_KES_ENDPOINT`, comma-separated.
    pub endpoints: Vec<String>,
    /// `MINIO_KMS_KES_CERT_FILE`: the client certificate.
    pub cert_file: Option<PathBuf>,
    /// `MINIO_KMS_KES_KEY_FILE`: the client private key.
    pub key_file: Option<PathBuf>,
    /// `MINIO_KMS_KES_API_KEY`: an API key instead of a certificate.
    pub api_key: Option<Secret>,
    /// `MINIO_KMS_KES_CAPATH` / `MINIO_KMS_KES_CA_PATH`: CA certificate file or directory.
    pub ca_path: Option<PathBuf>,
    /// `MINIO_KMS_KES_KEY_NAME`: the default key.
    pub key_name: String,
}

/// Where object keys come from.
#[derive(Debug, Clone)]
pub enum KmsConfig {
    /// A KES server.
    Kes(KesConfig),
    /// `MINIO_KMS_SECRET_KEY` (`name:base64`).
    SecretKey(Secret),
    /// Legacy `MINIO_KMS_MASTER_KEY` (`name:hex`).
    MasterKey(Secret),
    /// Nothing configured: a key generated once and kept in the data directory (for trying out).
    Embedded,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub address: SocketAddr,
    /// `public.crt`, `private.key`, `CAs/`.
    pub certs_dir: Option<PathBuf>,
    /// The data directory (with `backend`: the state directory; empty when none was given,
    /// which only the gateway accepts: see `server::run`).
    pub data_dir: PathBuf,
    /// Root access key.
    pub root_user: String,
    /// Root secret key.
    pub root_password: Secret,
    /// Whether the credentials are MinIO's defaults (a warning is printed).
    pub default_credentials: bool,
    /// The KMS.
    pub kms: KmsConfig,
    /// Encrypt objects sent without SSE headers.
    pub auto_encryption: bool,
    /// `COFFER_USERS_FILE`: users provisioned from a file (see `iam::users_file`).
    pub users_file: Option<PathBuf>,
    /// `COFFER_USERS_RELOAD_SECONDS` (default 5): how often the users file is checked.
    pub users_reload: std::time::Duration,
    /// `COFFER_LOCK_WAIT_SECONDS` (default [`crate::storage::DEFAULT_LOCK_WAIT`], above 0): how
    /// long a request waits for a lock of the data directory before it fails with `503
    /// SlowDown` (see `storage::locks`).
    pub lock_wait: std::time::Duration,
    /// `MINIO_DOMAIN`: the domains of virtual-host-style requests (`bucket.DOMAIN`), if any.
    pub domains: Option<crate::vhost::Domains>,
    /// `MINIO_API_CORS_ALLOW_ORIGIN`: origins allowed on buckets without CORS rules (`s3::cors`).
    pub cors_allow_origin: Option<Vec<String>>,
    /// How long an HTTP/1 connection may wait for the next request head, counted from when it
    /// can take one (the connection open, or the previous response sent), so that it bounds an
    /// idle keep-alive connection too: the larger of `MINIO_READ_HEADER_TIMEOUT` and
    /// `MINIO_IDLE_TIMEOUT` (both 30 s by default, as MinIO's; hyper has one timer for both
    /// waits). `None` when both are `0`.
    pub read_header_timeout: Option<std::time::Duration>,
    /// `MINIO_IDLE_TIMEOUT` (default 30 s; `0` turns it off): how long a request body may
    /// stall before the request fails ([`crate::stall_guard`]).
    pub idle_timeout: Option<std::time::Duration>,
    /// `MINIO_PROMETHEUS_AUTH_TYPE` (`jwt`, the default, or `public`): who may scrape the
    /// metrics ([`crate::metrics_auth`]).
    pub prometheus_auth: crate::metrics_auth::AuthType,
    /// `COFFER_METRICS_USAGE_MAX_AGE` (seconds, default 60; `0` counts on every scrape): how
    /// old the bucket usage a scrape shows may be ([`crate::metrics::usage`]).
    pub usage_max_age: std::time::Duration,
    /// `COFFER_REWRAP_RATE` (default [`crate::rewrap::DEFAULT_RATE`]; `0`: unpaced): KMS
    /// re-wraps a second and process of the re-wrap job ([`crate::rewrap`]).
    pub rewrap_rate: u32,
    /// `COFFER_REWRAP_PARALLELISM` (default [`crate::rewrap::DEFAULT_PARALLELISM`], at least 1):
    /// keys of a bucket the re-wrap job works on at once.
    pub rewrap_parallelism: usize,
    /// `--backend URL` / `COFFER_BACKEND`: the S3 service whose bucket holds every bucket and
    /// object (the gateway, see [`crate::storage::engine::s3`]); `None`: the data directory does.
    pub backend: Option<crate::storage::engine::s3::BackendConfig>,
    /// The web console (`--console-address`, default `:9001`); `None` with `MINIO_BROWSER=off`.
    pub console: Option<crate::console::ConsoleConfig>,
}

/// Reads environment variables; tests pass a map instead of the process environment.
pub trait Env {
    /// The value of `name`, if set and not empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// The path a `_FILE` variable names: a bare name is under `/run/secrets/`.
pub fn secret_path(value: &str) -> PathBuf {
    if value.contains('/') {
        PathBuf::from(value)
    } else {
        Path::new("/run/secrets").join(value)
    }
}

/// `name` from the environment, else the contents of the file `name_FILE` names (trimmed).
pub fn env_or_file(env: &dyn Env, name: &str) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = env.get(name) {
        return Ok(Some(Secret::new(v)));
    }
    let var = format!("{name}_FILE");
    let Some(p) = env.get(&var) else {
        return Ok(None);
    };
    let path = secret_path(&p);
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
        var,
        path,
        source,
    })?;
    let text = Zeroizing::new(text);
    Ok(Some(Secret::new(text.trim().to_owned())))
}

/// Parses MinIO's address forms: `:9000`, `HOST:9000`, `[::1]:9000`.
pub fn parse_address(a: &str) -> Result<SocketAddr, ConfigError> {
    let full = if a.starts_with(':') {
        format!("0.0.0.0{a}")
    } else {
        a.to_owned()
    };
    full.to_socket_addrs()
        .ok()
        .and_then(|mut i| i.next())
        .ok_or_else(|| ConfigError::Address(a.to_owned()))
}

fn on_off(env: &dyn Env, name: &str) -> Result<Option<bool>, ConfigError> {
    match env.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "on" || v == "true" || v == "1" || v == "yes" => Ok(Some(true)),
        Some(v) if v == "off" || v == "false" || v == "0" || v == "no" => Ok(Some(false)),
        Some(_) => Err(ConfigError::Invalid(format!(
            "{name} must be 'on' or 'off'"
        ))),
    }
}

impl Config {
    /// Builds the configuration from the command line and the environment.
    pub fn from_parts(
        address: &str,
        certs_dir: Option<PathBuf>,
        dirs: &[PathBuf],
        env: &dyn Env,
    ) -> Result<Self, ConfigError> {
        let address = parse_address(address)?;
        // None: only the gateway runs without one (checked when it starts, server.rs).
        if dirs.len() > 1 {
            return Err(ConfigError::DataDirs(dirs.len()));
        }
        let user = env_or_file(env, "MINIO_ROOT_USER")?.or(env_or_file(env, "MINIO_ACCESS_KEY")?);
        let password =
            env_or_file(env, "MINIO_ROOT_PASSWORD")?.or(env_or_file(env, "MINIO_SECRET_KEY")?);
        let (root_user, root_password, default_credentials) = match (user, password) {
            (Some(u), Some(p)) => (u.expose().to_owned(), p, false),
            (None, None) => (
                "minioadmin".to_owned(),
                Secret::new("minioadmin".to_owned()),
                true,
            ),
            _ => {
                return Err(ConfigError::Invalid(
                    "set both MINIO_ROOT_USER and MINIO_ROOT_PASSWORD, or neither".into(),
                ));
            }
        };
        if root_user.len() < 3 || root_password.expose().len() < 8 {
            return Err(ConfigError::Invalid(
                "MINIO_ROOT_USER must have at least 3 characters and MINIO_ROOT_PASSWORD at least 8".into(),
            ));
        }
        let kms = if let Some(ep) = env_or_file(env, "MINIO_KMS_KES_ENDPOINT")? {
            let endpoints: Vec<String> = ep
                .expose()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            let path = |n: &str| -> Result<Option<PathBuf>, ConfigError> {
                Ok(env_or_file(env, n)?.map(|v| PathBuf::from(v.as_str())))
            };
            let kes = KesConfig {
                endpoints,
                cert_file: path("MINIO_KMS_KES_CERT_FILE")?,
                key_file: path("MINIO_KMS_KES_KEY_FILE")?,
                api_key: env_or_file(env, "MINIO_KMS_KES_API_KEY")?,
                ca_path: match path("MINIO_KMS_KES_CAPATH")? {
                    Some(p) => Some(p),
                    None => path("MINIO_KMS_KES_CA_PATH")?,
                },
                key_name: env_or_file(env, "MINIO_KMS_KES_KEY_NAME")?.map(|k| k.expose().to_owned()).ok_or_else(|| {
                    ConfigError::Invalid("MINIO_KMS_KES_KEY_NAME must name the default key when MINIO_KMS_KES_ENDPOINT is set".into())
                })?,
            };
            if kes.api_key.is_none() && (kes.cert_file.is_none() || kes.key_file.is_none()) {
                return Err(ConfigError::Invalid(
                    "KES needs a client identity: set MINIO_KMS_KES_CERT_FILE and MINIO_KMS_KES_KEY_FILE, or MINIO_KMS_KES_API_KEY".into(),
                ));
            }
            KmsConfig::Kes(kes)
        } else if let Some(k) = env_or_file(env, "MINIO_KMS_SECRET_KEY")? {
            KmsConfig::SecretKey(k)
        } else if let Some(k) = env_or_file(env, "MINIO_KMS_MASTER_KEY")? {
            KmsConfig::MasterKey(k)
        } else {
            KmsConfig::Embedded
        };
        let auto = on_off(env, "MINIO_KMS_AUTO_ENCRYPTION")?;
        let auto_encryption = match (&kms, auto) {
            (KmsConfig::Embedded, Some(true)) => {
                return Err(ConfigError::Invalid(
                    "MINIO_KMS_AUTO_ENCRYPTION=on needs a KMS: set MINIO_KMS_KES_ENDPOINT (with MINIO_KMS_KES_KEY_NAME and a client identity) or MINIO_KMS_SECRET_KEY".into(),
                ));
            }
            (KmsConfig::Embedded, None) => true,
            (_, a) => a.unwrap_or(false),
        };
        let users_reload = match env.get("COFFER_USERS_RELOAD_SECONDS") {
            None => 5,
            Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError::Invalid(
                    "COFFER_USERS_RELOAD_SECONDS must be a whole number of seconds above 0".into(),
                )
            })?,
        };
        let lock_wait = match env.get("COFFER_LOCK_WAIT_SECONDS") {
            None => crate::storage::DEFAULT_LOCK_WAIT,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "COFFER_LOCK_WAIT_SECONDS must be a whole number of seconds above 0".into(),
                    )
                })?,
        };
        let usage_max_age = match env.get("COFFER_METRICS_USAGE_MAX_AGE") {
            None => crate::metrics::usage::DEFAULT_MAX_AGE,
            Some(v) => std::time::Duration::from_secs(v.parse::<u64>().map_err(|_| {
                ConfigError::Invalid(
                    "COFFER_METRICS_USAGE_MAX_AGE must be a whole number of seconds".into(),
                )
            })?),
        };
        let rewrap_rate = match env.get("COFFER_REWRAP_RATE") {
            None => crate::rewrap::DEFAULT_RATE,
            Some(v) => v.parse::<u32>().map_err(|_| {
                ConfigError::Invalid(
                    "COFFER_REWRAP_RATE must be a whole number of re-wraps a second".into(),
                )
            })?,
        };
        let rewrap_parallelism = match env.get("COFFER_REWRAP_PARALLELISM") {
            None => crate::rewrap::DEFAULT_PARALLELISM,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "COFFER_REWRAP_PARALLELISM must be a whole number from 1 to 256".into(),
                    )
                })?,
        };
        let domains = match env.get("MINIO_DOMAIN") {
            None => None,
            Some(list) => Some(crate::vhost::Domains::parse(&list).map_err(ConfigError::Invalid)?),
        };
        let timeout = |name: &str| -> Result<Option<std::time::Duration>, ConfigError> {
            let Some(v) = env.get(name) else {
                return Ok(Some(std::time::Duration::from_secs(30)));
            };
            let d = sidecar_kes::config::duration::parse(&v).map_err(|_| {
                ConfigError::Invalid(format!(
                    "{name} must be a duration such as 30s or 1m, not '{v}'"
                ))
            })?;
            Ok((!d.is_zero()).then_some(d))
        };
        let idle_timeout = timeout("MINIO_IDLE_TIMEOUT")?;
        let read_header_timeout = timeout("MINIO_READ_HEADER_TIMEOUT")?.max(idle_timeout);
        let prometheus_auth =
            crate::metrics_auth::AuthType::parse(env.get(crate::metrics_auth::ENV).as_deref())
                .map_err(ConfigError::Invalid)?;
        // Not a secret, but read as every variable is documented to be: also from `_FILE`.
        let cors_allow_origin = match env_or_file(env, crate::s3::cors::GLOBAL_ORIGINS_VAR)? {
            None => None,
            Some(list) => crate::s3::cors::parse_global_origins(list.expose())
                .map_err(ConfigError::Invalid)?,
        };
        let backend = crate::storage::engine::s3::BackendConfig::from_env(None, env)?;
        let console = crate::console::ConsoleConfig::from_env(env)?;
        Ok(Config {
            backend,
            console,
            prometheus_auth,
            usage_max_age,
            rewrap_rate,
            rewrap_parallelism,
            domains,
            cors_allow_origin,
            read_header_timeout,
            idle_timeout,
            users_file: env.get("COFFER_USERS_FILE").map(PathBuf::from),
            users_reload: std::time::Duration::from_secs(users_reload),
            lock_wait,
            address,
            certs_dir,
            data_dir: dirs.first().cloned().unwrap_or_default(),
            root_user,
            root_password,
            default_credentials,
            kms,
            auto_encryption,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Vec<PathBuf> {
        vec![PathBuf::from("./data")]
    }

    #[test]
    fn minio_domain() {
        let c = Config::from_parts(":9000", None, &dirs(), &[("X", "")]).unwrap();
        assert!(c.domains.is_none());
        let c = Config::from_parts(
            ":9000",
            None,
            &dirs(),
            &[("MINIO_DOMAIN", "s3.example.com,minio.local")],
        )
        .unwrap();
        assert_eq!(
            c.domains.unwrap().names(),
            ["s3.example.com", "minio.local"]
        );
        let e = Config::from_parts(
            ":9000",
            None,
            &dirs(),
            &[("MINIO_DOMAIN", "https://s3.example.com")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("MINIO_DOMAIN"), "{e}");
    }

    #[test]
    fn cors_allow_origin() {
        let c = Config::from_parts(":9000", None, &dirs(), &[("X", "")]).unwrap();
        assert_eq!(c.cors_allow_origin, None);
        let env = [(
            "MINIO_API_CORS_ALLOW_ORIGIN",
            "https://a.com, https://*.b.com",
        )];
        let c = Config::from_parts(":9000", None, &dirs(), &env).unwrap();
        assert_eq!(
            c.cors_allow_origin.unwrap(),
            ["https://a.com", "https://*.b.com"]
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("origins");
        std::fs::write(&file, "https://c.com\n").unwrap();
        let file = file.display().to_string();
        let env = [("MINIO_API_CORS_ALLOW_ORIGIN_FILE", file.as_str())];
        let c = Config::from_parts(":9000", None, &dirs(), &env).unwrap();
        assert_eq!(c.cors_allow_origin.unwrap(), ["https://c.com"]);
        let env = [("MINIO_API_CORS_ALLOW_ORIGIN", "https://*.*.b.com")];
        let e = Config::from_parts(":9000", None, &dirs(), &env).unwrap_err();
        assert!(e.to_string().contains("MINIO_API_CORS_ALLOW_ORIGIN"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = Config::from_parts(":9000", None, &dirs(), &[("X", "")]).unwrap();
        assert_eq!(c.address.port(), 9000);
        assert_eq!(c.root_user, "minioadmin");
        assert!(c.default_credentials);
        assert!(matches!(c.kms, KmsConfig::Embedded));
        assert!(c.auto_encryption);
        assert!(c.users_file.is_none());
        assert_eq!(c.users_reload.as_secs(), 5);
        let u = Config::from_parts(
            ":9000",
            None,
            &dirs(),
            &[
                ("COFFER_USERS_FILE", "/etc/users.json"),
                ("COFFER_USERS_RELOAD_SECONDS", "2"),
            ],
        )
        .unwrap();
        assert_eq!(u.users_file.unwrap(), PathBuf::from("/etc/users.json"));
        assert_eq!(u.users_reload.as_secs(), 2);
        assert!(
            Config::from_parts(
                ":9000",
                None,
                &dirs(),
                &[("COFFER_USERS_RELOAD_SECONDS", "0")]
            )
            .is_err()
        );
        assert_eq!(c.lock_wait, crate::storage::DEFAULT_LOCK_WAIT);
        let w = Config::from_parts(":9000", None, &dirs(), &[("COFFER_LOCK_WAIT_SECONDS", "3")]);
        assert_eq!(w.unwrap().lock_wait.as_secs(), 3);
        for bad in ["0", "-1", "2.5", "soon"] {
            let e =
                Config::from_parts(":9000", None, &dirs(), &[("COFFER_LOCK_WAIT_SECONDS", bad)])
                    .unwrap_err();
            assert!(e.to_string().contains("COFFER_LOCK_WAIT_SECONDS"), "{e}");
        }
    }

    #[test]
    fn go_durations() {
        // The Go duration parser the KES config already has.
        let d = |t| {
            sidecar_kes::config::duration::parse(t)
                .ok()
                .map(|d| d.as_millis())
        };
        assert_eq!(d("30s"), Some(30_000));
        assert_eq!(d("1m30s"), Some(90_000));
        assert_eq!(d("1.5h"), Some(5_400_000));
        assert_eq!(d("250ms"), Some(250));
        assert_eq!(d("0"), Some(0));
        for bad in ["30", "s", "1x", "-1s", "1..5s", "1 s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
        let secs = std::time::Duration::from_secs;
        let cfg = |header, idle| {
            Config::from_parts(
                ":9000",
                None,
                &["/d".into()],
                &[
                    ("MINIO_READ_HEADER_TIMEOUT", header),
                    ("MINIO_IDLE_TIMEOUT", idle),
                ],
            )
        };
        let c = cfg("2s", "1s").unwrap();
        assert_eq!(
            (c.read_header_timeout, c.idle_timeout),
            (Some(secs(2)), Some(secs(1)))
        );
        // An idle keep-alive connection waits for a head too: the longer of the two bounds it.
        assert_eq!(
            cfg("2s", "2m").unwrap().read_header_timeout,
            Some(secs(120))
        );
        let c = cfg("0", "0s").unwrap();
        assert_eq!((c.read_header_timeout, c.idle_timeout), (None, None));
        let c = Config::from_parts(":9000", None, &["/d".into()], &[("UNRELATED", "x")]).unwrap();
        assert_eq!(
            (c.read_header_timeout, c.idle_timeout),
            (Some(secs(30)), Some(secs(30)))
        );
        for (h, i, bad) in [
            ("soon", "1s", "MINIO_READ_HEADER_TIMEOUT"),
            ("1s", "-1s", "MINIO_IDLE_TIMEOUT"),
        ] {
            let e = cfg(h, i).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("30s"), "{e}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("127.0.0.1:9001").unwrap().port(), 9001);
        assert!(parse_address("[::1]:9002").unwrap().is_ipv6());
        assert!(parse_address("nonsense").is_err());
    }

    #[test]
    fn kes_and_static() {
        let env = [
            ("MINIO_KMS_KES_ENDPOINT", "https://a:7373, https://b:7373"),
            ("MINIO_KMS_KES_CERT_FILE", "/c.crt"),
            ("MINIO_KMS_KES_KEY_FILE", "/c.key"),
            ("MINIO_KMS_KES_CA_PATH", "/ca.crt"),
            ("MINIO_KMS_KES_KEY_NAME", "k1"),
            ("MINIO_KMS_AUTO_ENCRYPTION", "on"),
        ];
        let c = Config::from_parts(":9000", None, &dirs(), &env).unwrap();
        let KmsConfig::Kes(k) = c.kms else { panic!() };
        assert_eq!(k.endpoints, vec!["https://a:7373", "https://b:7373"]);
        assert_eq!(k.ca_path.unwrap(), PathBuf::from("/ca.crt"));
        assert!(c.auto_encryption);
        let missing = [
            ("MINIO_KMS_KES_ENDPOINT", "https://a"),
            ("MINIO_KMS_KES_KEY_NAME", "k"),
        ];
        assert!(Config::from_parts(":9000", None, &dirs(), &missing).is_err());
        let s = Config::from_parts(":9000", None, &dirs(), &[("MINIO_KMS_SECRET_KEY", "k:abc")])
            .unwrap();
        assert!(matches!(s.kms, KmsConfig::SecretKey(_)));
        assert!(!s.auto_encryption);
    }

    #[test]
    fn auto_encryption_without_kms_is_an_error() {
        let e = Config::from_parts(
            ":9000",
            None,
            &dirs(),
            &[("MINIO_KMS_AUTO_ENCRYPTION", "on")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("MINIO_KMS_KES_ENDPOINT"));
    }

    #[test]
    fn file_forms() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        std::fs::write(&f, "secret-password\n").unwrap();
        let fp = f.to_str().unwrap().to_owned();
        let env = [
            ("MINIO_ROOT_USER", "admin"),
            ("MINIO_ROOT_PASSWORD_FILE", fp.as_str()),
        ];
        let c = Config::from_parts(":9000", None, &dirs(), &env).unwrap();
        assert_eq!(c.root_password.as_str(), "secret-password");
        assert_eq!(secret_path("name"), PathBuf::from("/run/secrets/name"));
        let bad = [
            ("MINIO_ROOT_USER", "admin"),
            ("MINIO_ROOT_PASSWORD_FILE", "/nonexistent/x"),
        ];
        let e = Config::from_parts(":9000", None, &dirs(), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("MINIO_ROOT_PASSWORD_FILE"));
    }
}
