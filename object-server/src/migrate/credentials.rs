//! Where the source's address and keys come from. Never from the command line (it is visible
//! to every user of the machine in the process list) and never printed:
//!
//! - `--from https://host:port` with the keys in two environment variables
//!   (`MIGRATE_ACCESS_KEY`/`MIGRATE_SECRET_KEY`, or the names given with
//!   `--from-access-key-env`/`--from-secret-key-env`), or in a JSON file
//!   (`--from-credentials-file`, `{"accessKey": …, "secretKey": …}` as an `mc` alias has them);
//! - `--from ALIAS`, an `mc` alias: `MC_HOST_<ALIAS>` (`https://KEY:SECRET@host:port`, as `mc`
//!   reads it) or the `aliases` of `mc`'s `config.json` (`$MC_CONFIG_DIR`, else `~/.mc`).
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

/// The default names of the key variables.
pub const ACCESS_KEY_ENV: &str = "MIGRATE_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "MIGRATE_SECRET_KEY";

/// How to find the source's keys.
#[derive(Debug, Clone, Default)]
pub struct KeySources {
    pub access_key_env: Option<String>,
    pub secret_key_env: Option<String>,
    pub credentials_file: Option<PathBuf>,
    pub mc_config_dir: Option<PathBuf>,
}

/// The source's address and keys.
pub struct SourceAccess {
    pub endpoint: Url,
    pub access_key: String,
    pub secret_key: Zeroizing<String>,
}

impl std::fmt::Debug for SourceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceAccess")
            .field("endpoint", &self.endpoint.as_str())
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct McAlias {
    url: String,
    #[serde(rename = "accessKey")]
    access_key: String,
    #[serde(rename = "secretKey")]
    secret_key: Zeroizing<String>,
}

#[derive(Deserialize)]
struct McConfig {
    #[serde(default)]
    aliases: std::collections::BTreeMap<String, McAlias>,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "accessKey")]
    access_key: String,
    #[serde(rename = "secretKey")]
    secret_key: Zeroizing<String>,
}

/// Resolves `from` (a URL or an `mc` alias) with `env` as the environment.
pub fn resolve(
    from: &str,
    keys: &KeySources,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<SourceAccess> {
    if from.starts_with("http://") || from.starts_with("https://") {
        let endpoint = Url::parse(from).context("--from is not a valid URL")?;
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            bail!(
                "--from must not carry keys (the command line is visible to every user): \
                 use the environment, a credentials file or an mc alias"
            );
        }
        if let Some(file) = &keys.credentials_file {
            let raw = Zeroizing::new(
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
            );
            let k: KeyFile = serde_json::from_slice(&raw).map_err(|_| {
                anyhow::anyhow!(
                    "{}: not a JSON object with accessKey and secretKey",
                    file.display()
                )
            })?;
            return Ok(SourceAccess {
                endpoint,
                access_key: k.access_key,
                secret_key: k.secret_key,
            });
        }
        let ak_name = keys.access_key_env.as_deref().unwrap_or(ACCESS_KEY_ENV);
        let sk_name = keys.secret_key_env.as_deref().unwrap_or(SECRET_KEY_ENV);
        let access_key = env(ak_name).filter(|v| !v.is_empty());
        let secret_key = env(sk_name).filter(|v| !v.is_empty()).map(Zeroizing::new);
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            bail!(
                "the source's keys: set {ak_name} and {sk_name}, or give --from-credentials-file"
            );
        };
        return Ok(SourceAccess {
            endpoint,
            access_key,
            secret_key,
        });
    }
    let alias = from.trim_end_matches('/');
    if alias.is_empty() || alias.contains('/') {
        bail!("--from must be an http(s) URL or an mc alias");
    }
    if let Some(host) = env(&format!("MC_HOST_{alias}")) {
        let url =
            Url::parse(&host).map_err(|_| anyhow::anyhow!("MC_HOST_{alias} is not a valid URL"))?;
        let decode = |s: &str| {
            percent_encoding_decode(s)
                .ok_or_else(|| anyhow::anyhow!("MC_HOST_{alias}: its keys are not valid UTF-8"))
        };
        let access_key = decode(url.username())?;
        let secret_key = Zeroizing::new(decode(url.password().unwrap_or(""))?);
        if access_key.is_empty() || secret_key.is_empty() {
            bail!("MC_HOST_{alias} has no keys (https://KEY:SECRET@host:port)");
        }
        let mut endpoint = url.clone();
        let _ = endpoint.set_username("");
        let _ = endpoint.set_password(None);
        return Ok(SourceAccess {
            endpoint,
            access_key,
            secret_key,
        });
    }
    let dir = match (&keys.mc_config_dir, env("MC_CONFIG_DIR"), env("HOME")) {
        (Some(d), _, _) => d.clone(),
        (None, Some(d), _) => PathBuf::from(d),
        (None, None, Some(home)) => Path::new(&home).join(".mc"),
        (None, None, None) => bail!("no mc config directory for alias {alias} (HOME is not set)"),
    };
    let path = dir.join("config.json");
    let raw = Zeroizing::new(
        std::fs::read(&path)
            .with_context(|| format!("alias {alias}: reading mc's {}", path.display()))?,
    );
    let mut cfg: McConfig = serde_json::from_slice(&raw)
        .map_err(|_| anyhow::anyhow!("{} is not an mc config", path.display()))?;
    let Some(a) = cfg.aliases.remove(alias) else {
        bail!("no alias {alias} in {}", path.display());
    };
    Ok(SourceAccess {
        endpoint: Url::parse(&a.url)
            .map_err(|_| anyhow::anyhow!("alias {alias}: its url is not valid"))?,
        access_key: a.access_key,
        secret_key: a.secret_key,
    })
}

fn percent_encoding_decode(s: &str) -> Option<String> {
    let decoded: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_url_takes_its_keys_from_the_environment_never_from_itself() {
        let env = env_of(&[("MIGRATE_ACCESS_KEY", "ak"), ("S", "s%ecret")]);
        let keys = KeySources {
            secret_key_env: Some("S".into()),
            ..Default::default()
        };
        let a = resolve("https://127.0.0.1:9000", &keys, &env).unwrap();
        assert_eq!(
            (a.access_key.as_str(), a.secret_key.as_str()),
            ("ak", "s%ecret")
        );
        let e = resolve("https://ak:sk@127.0.0.1:9000", &keys, &env).unwrap_err();
        assert!(e.to_string().contains("must not carry keys"), "{e}");
        assert!(!format!("{e:#}").contains("sk@"));
        let e = resolve("https://h:1", &KeySources::default(), &env).unwrap_err();
        assert!(e.to_string().contains("MIGRATE_SECRET_KEY"), "{e}");
        assert!(!format!("{:?}", a).contains("s%ecret"));
    }

    #[test]
    fn an_mc_alias_from_mc_host_or_the_config_file() {
        let env = env_of(&[("MC_HOST_old", "https://ak:s%2Fk@minio.example:9000")]);
        let a = resolve("old", &KeySources::default(), &env).unwrap();
        assert_eq!(a.endpoint.as_str(), "https://minio.example:9000/");
        assert_eq!(
            (a.access_key.as_str(), a.secret_key.as_str()),
            ("ak", "s/k")
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"version":"10","aliases":{"m":{"url":"https://h:9000","accessKey":"a","secretKey":"b","api":"s3v4","path":"auto"}}}"#,
        )
        .unwrap();
        let keys = KeySources {
            mc_config_dir: Some(dir.path().to_owned()),
            ..Default::default()
        };
        let a = resolve("m", &keys, &env_of(&[])).unwrap();
        assert_eq!(
            (a.endpoint.as_str(), a.access_key.as_str()),
            ("https://h:9000/", "a")
        );
        assert!(resolve("nope", &keys, &env_of(&[])).is_err());
    }
}
