//! The end-to-end scenario shared with the kind suite: `e2e/scenario/scenario.env` says which
//! manifests are applied, what is waited for and what the client does; `e2e/scenario/client.sh`
//! is the client. The kind suite (`e2e/kind/run.sh`) reads the same two files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The repository root (this crate lives in `<root>/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// The parsed `scenario.env`.
#[derive(Clone, Debug)]
pub struct Scenario {
    values: BTreeMap<String, String>,
}

impl Scenario {
    /// Reads `e2e/scenario/scenario.env`.
    pub fn load() -> Scenario {
        let path = repo_root().join("e2e/scenario/scenario.env");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Scenario::parse(&text)
    }

    /// Parses `KEY=VALUE` lines; `#` comments and blank lines are skipped.
    pub fn parse(text: &str) -> Scenario {
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("scenario.env line {}: not KEY=VALUE: {line}", n + 1));
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        Scenario { values }
    }

    /// The value of `key`; panics when the file lacks it.
    pub fn get(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("scenario.env has no {key}"))
    }

    /// A value in seconds.
    pub fn seconds(&self, key: &str) -> Duration {
        Duration::from_secs(
            self.get(key)
                .parse()
                .unwrap_or_else(|_| panic!("scenario.env: {key} is not a number of seconds")),
        )
    }

    /// The manifests, as paths from the repository root, in order.
    pub fn manifests(&self) -> Vec<PathBuf> {
        self.get("MANIFESTS")
            .split_whitespace()
            .map(|p| repo_root().join(p))
            .collect()
    }

    /// Every value, for the client's environment.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// `client.sh STEP` against the client's endpoint with its credentials and CA file, its
    /// scratch files in its `work`, the command changed by `wrap` before it runs (e.g. given the
    /// cluster's DNS: [`crate::cluster::Node::with_cluster_dns`]). Returns its output; panics
    /// with it when the step fails.
    pub fn client_through(
        &self,
        step: &str,
        client: &Client,
        wrap: impl FnOnce(Command) -> Command,
    ) -> String {
        let (ok, text) = self.try_client_through(step, client, wrap);
        assert!(ok, "client.sh {step} failed:\n{text}");
        text
    }

    /// Runs `client.sh STEP` (through `wrap`) and says whether it succeeded, with its output.
    pub fn try_client_through(
        &self,
        step: &str,
        client: &Client,
        wrap: impl FnOnce(Command) -> Command,
    ) -> (bool, String) {
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join("e2e/scenario/client.sh"))
            .arg(step)
            .envs(&self.values)
            .env("S3_ENDPOINT", &client.endpoint)
            .env("AWS_ACCESS_KEY_ID", &client.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &client.secret_key)
            .env("AWS_CA_BUNDLE", &client.ca_file)
            .env("SCENARIO_WORK", &client.work)
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", client.work.join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                client.work.join("aws-credentials"),
            );
        let out = wrap(command).output().expect("run client.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ok = out.status.success() && text.contains(&format!("scenario {step}: ok"));
        (ok, format!("({}) {text}", out.status))
    }
}

/// Where and as whom `client.sh` talks S3.
#[derive(Clone, Debug)]
pub struct Client {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub ca_file: PathBuf,
    pub work: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_file_parses_and_names_existing_manifests() {
        let s = Scenario::load();
        for m in s.manifests() {
            assert!(m.is_file(), "{} does not exist", m.display());
        }
        assert!(s.seconds("TENANT_READY_TIMEOUT") > Duration::from_secs(0));
        assert_eq!(s.get("NAMESPACE"), "coffer-demo");
    }

    #[test]
    fn parse_skips_comments_and_keeps_spaces_inside_values() {
        let s = Scenario::parse("# c\n\nA=1\n B = x y \n");
        assert_eq!(s.get("A"), "1");
        assert_eq!(s.get("B"), "x y");
    }
}
