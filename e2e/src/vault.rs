//! OpenBao (the `vault` command) as a dev server, or production-like: raft storage, TLS,
//! `operator init` with 5 shares and unseal with 3, as the MinIO KMS guide does it by hand.

use crate::pki::TestCa;
use crate::process::{Process, peer_bin, run, start_on_free_ports, wait_until};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running Vault/OpenBao server.
pub struct Vault {
    /// `http://127.0.0.1:PORT` (dev) or `https://127.0.0.1:PORT` (production-like).
    pub addr: String,
    /// A root token.
    pub token: String,
    /// The CA that signed the server certificate (production-like only).
    pub ca_cert: Option<PathBuf>,
    /// The unseal key shares (production-like only).
    pub unseal_keys: Vec<String>,
    /// The file audit device's log (every request and response, one JSON object a line,
    /// secrets HMAC'ed), for a server started with [`Vault::dev_audited`] or
    /// [`Vault::production_audited`].
    pub audit_log: Option<PathBuf>,
    process: Process,
    config: Option<PathBuf>,
    dir: TempDir,
}

/// The credentials of an AppRole, as `vault read auth/approle/role/<r>/role-id` and
/// `vault write -f auth/approle/role/<r>/secret-id` print them.
#[derive(Clone, Debug)]
pub struct AppRole {
    pub role_id: String,
    pub secret_id: String,
}

impl Vault {
    /// Starts `vault server -dev` with root token `root`.
    pub fn dev() -> Vault {
        Self::dev_with(false)
    }

    /// [`Vault::dev`] with a file audit device, declared in a config file (OpenBao refuses to
    /// enable audit devices through its API): see [`Vault::audit_log`].
    pub fn dev_audited() -> Vault {
        Self::dev_with(true)
    }

    fn dev_with(audited: bool) -> Vault {
        let dir = tempfile::tempdir().expect("temp dir");
        let audit_log = audited.then(|| {
            let log = dir.path().join("audit.log");
            let config = dir.path().join("audit.hcl");
            std::fs::write(
                &config,
                format!(
                    "audit \"file\" \"file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                    log.display()
                ),
            )
            .expect("write audit config");
            (log, config)
        });
        let (process, ports, ()) = start_on_free_ports(
            "vault (dev)",
            1,
            Duration::from_secs(60),
            |ports| {
                let mut command = Command::new(peer_bin("vault"));
                command.args([
                    "server",
                    "-dev",
                    "-dev-root-token-id=root",
                    &format!("-dev-listen-address=127.0.0.1:{}", ports[0]),
                ]);
                if let Some((_, config)) = &audit_log {
                    command.arg(format!("-config={}", config.display()));
                }
                // A dev server writes its root token to `$HOME/.vault-token` through one fixed
                // temporary name: two tests starting one at the same time raced on that rename
                // and the loser exited ("rename /root/.vault-token.tmp: no such file").
                command
                    .env_remove("VAULT_ADDR")
                    .env_remove("VAULT_TOKEN")
                    .env("HOME", dir.path());
                Process::spawn("vault (dev)", command, &dir.path().join("vault.log"))
            },
            |_, _| Some(()),
        );
        let mut vault = Vault {
            addr: format!("http://127.0.0.1:{}", ports[0]),
            token: "root".into(),
            ca_cert: None,
            unseal_keys: Vec::new(),
            audit_log: audit_log.map(|(log, _)| log),
            process,
            config: None,
            dir,
        };
        vault.wait_unsealed();
        vault
    }

    /// Starts a production-like server (raft storage, TLS from a test CA), initializes it with
    /// 5 key shares and threshold 3, and unseals it.
    pub fn production() -> Vault {
        Self::production_with(false)
    }

    /// [`Vault::production`] with a file audit device (see [`Vault::audit_log`]).
    pub fn production_audited() -> Vault {
        Self::production_with(true)
    }

    fn production_with(audited: bool) -> Vault {
        let mut vault = Self::production_uninitialized_with(audited);
        let init = run(
            "vault operator init",
            vault.cli().args([
                "operator",
                "init",
                "-key-shares=5",
                "-key-threshold=3",
                "-format=json",
            ]),
        );
        let init: serde_json::Value = serde_json::from_str(&init).expect("init output is JSON");
        vault.token = init["root_token"].as_str().expect("root_token").to_string();
        vault.unseal_keys = init["unseal_keys_b64"]
            .as_array()
            .expect("unseal_keys_b64")
            .iter()
            .map(|k| k.as_str().expect("unseal key").to_string())
            .collect();
        vault.unseal();
        vault
    }

    /// Starts a production-like server that nobody has initialized yet (sealed, no token), for
    /// tests of tools that run `operator init` themselves.
    pub fn production_uninitialized() -> Vault {
        Self::production_uninitialized_with(false)
    }

    fn production_uninitialized_with(audited: bool) -> Vault {
        let dir = tempfile::tempdir().expect("temp dir");
        let audit_log = audited.then(|| dir.path().join("audit.log"));
        let audit = match &audit_log {
            Some(log) => format!(
                "audit \"file\" \"file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                log.display()
            ),
            None => String::new(),
        };
        let ca = TestCa::new(&dir.path().join("tls"), "vault-test-ca");
        let tls = ca.server("vault", &[]);
        let config = dir.path().join("vault.hcl");
        // The cluster port is bound only once the node is active: only the API port's start is
        // checked (and retried on a port taken meanwhile).
        let (process, ports, ()) = start_on_free_ports(
            "vault",
            2,
            Duration::from_secs(60),
            |ports| {
                let (port, cluster_port) = (ports[0], ports[1]);
                // A fresh raft directory for each try: nothing of an attempt that failed stays.
                let _ = std::fs::remove_dir_all(dir.path().join("raft"));
                std::fs::create_dir_all(dir.path().join("raft")).expect("raft dir");
                std::fs::write(
                    &config,
                    format!(
                        r#"storage "raft" {{
  path    = "{raft}"
  node_id = "node1"
}}
listener "tcp" {{
  address       = "127.0.0.1:{port}"
  tls_cert_file = "{cert}"
  tls_key_file  = "{key}"
}}
api_addr      = "https://127.0.0.1:{port}"
cluster_addr  = "https://127.0.0.1:{cluster_port}"
disable_mlock = true
ui            = false
{audit}"#,
                        raft = dir.path().join("raft").display(),
                        cert = tls.cert.display(),
                        key = tls.key.display(),
                    ),
                )
                .expect("write vault config");
                Self::spawn_server(&config, &dir)
            },
            |_, _| Some(()),
        );
        let port = ports[0];
        let vault = Vault {
            addr: format!("https://127.0.0.1:{port}"),
            token: String::new(),
            ca_cert: Some(ca.cert.clone()),
            unseal_keys: Vec::new(),
            audit_log,
            process,
            config: Some(config),
            dir,
        };
        wait_until(
            "vault to listen",
            Duration::from_secs(90),
            || vault.status_code().filter(|c| *c == 2),
            || vault.process.log_tail(),
        );
        vault
    }

    fn spawn_server(config: &std::path::Path, dir: &TempDir) -> Process {
        let mut command = Command::new(peer_bin("vault"));
        command
            .arg("server")
            .arg(format!("-config={}", config.display()));
        command.env_remove("VAULT_ADDR").env_remove("VAULT_TOKEN");
        let log = dir.path().join(format!("vault-{}.log", crate::free_port()));
        Process::spawn("vault", command, &log)
    }

    /// A `vault` command with `VAULT_ADDR`, `VAULT_TOKEN` (and `VAULT_CACERT`) set.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(peer_bin("vault"));
        command
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token);
        command.env_remove("VAULT_NAMESPACE");
        match &self.ca_cert {
            Some(ca) => command.env("VAULT_CACERT", ca),
            None => command.env_remove("VAULT_CACERT"),
        };
        command
    }

    /// Runs `vault ARGS…` and returns its stdout; panics with the output on failure.
    pub fn run(&self, args: &[&str]) -> String {
        run(&format!("vault {}", args.join(" ")), self.cli().args(args))
    }

    /// `vault status` exit code: 0 unsealed, 2 sealed, 1 error (None: no answer).
    fn status_code(&self) -> Option<i32> {
        let out = self.cli().arg("status").output().ok()?;
        out.status.code().filter(|c| *c == 0 || *c == 2)
    }

    fn wait_unsealed(&mut self) {
        wait_until(
            "vault to be unsealed",
            Duration::from_secs(90),
            || self.status_code().filter(|c| *c == 0),
            || self.process.log_tail(),
        );
        if self.config.is_some() {
            // An unsealed raft node still has to elect itself leader before it serves requests.
            wait_until(
                "vault to become active",
                Duration::from_secs(90),
                || self.is_active().then_some(()),
                || self.process.log_tail(),
            );
        }
    }

    fn is_active(&self) -> bool {
        self.cli()
            .args(["read", "-format=json", "sys/leader"])
            .output()
            .is_ok_and(|o| {
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout).contains("\"is_self\": true")
            })
    }

    /// Seals the server (`vault operator seal`).
    pub fn seal(&self) {
        self.run(&["operator", "seal"]);
    }

    /// Unseals with 3 of the 5 shares, as the guide does, and waits until it serves again.
    pub fn unseal(&mut self) {
        for key in self.unseal_keys.iter().take(3) {
            run(
                "vault operator unseal",
                self.cli().args(["operator", "unseal", key]),
            );
        }
        self.wait_unsealed();
    }

    /// Stops the server process (its storage stays).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts a stopped production-like server again on the same address; it comes back sealed.
    pub fn restart(&mut self) {
        let config = self
            .config
            .clone()
            .expect("only a production-like Vault can be restarted");
        self.process.kill();
        self.process = Self::spawn_server(&config, &self.dir);
        wait_until(
            "vault to listen again",
            Duration::from_secs(90),
            || self.status_code(),
            || self.process.log_tail(),
        );
    }

    /// Enables K/V (`kv`, version `kv_version`) at `kv_path` and AppRole, writes a policy that
    /// lets the role use `kv_path/*`, and returns the role's credentials: the guide's steps.
    pub fn kv_with_approle(&self, kv_path: &str, kv_version: u8, role: &str) -> AppRole {
        self.run(&[
            "secrets",
            "enable",
            &format!("-path={kv_path}"),
            &format!("-version={kv_version}"),
            "kv",
        ]);
        self.approle_with_policy(
            role,
            &format!("path \"{kv_path}/*\" {{\n  capabilities = [ \"create\", \"read\", \"update\", \"delete\", \"list\" ]\n}}\n"),
        )
    }

    /// Enables Transit at `mount` and AppRole, writes the documented Transit policy of `kes`
    /// (`manifests/vault/kes-transit-policy.hcl`, its `transit/` paths moved to `mount`) as
    /// policy `role`, and returns the role's credentials.
    pub fn transit_with_approle(&self, mount: &str, role: &str) -> AppRole {
        self.run(&["secrets", "enable", &format!("-path={mount}"), "transit"]);
        let policy_text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../manifests/vault/kes-transit-policy.hcl"),
        )
        .expect("read manifests/vault/kes-transit-policy.hcl");
        self.approle_with_policy(
            role,
            &policy_text.replace("\"transit/", &format!("\"{mount}/")),
        )
    }

    /// Enables AppRole (once), writes `policy_text` as policy `role` and a role of that name
    /// with it, and returns the role's credentials.
    fn approle_with_policy(&self, role: &str, policy_text: &str) -> AppRole {
        if !self
            .run(&["auth", "list", "-format=json"])
            .contains("\"approle/\"")
        {
            self.run(&["auth", "enable", "approle"]);
        }
        let policy = self.dir.path().join(format!("{role}-policy.hcl"));
        std::fs::write(&policy, policy_text).expect("write policy");
        self.run(&["policy", "write", role, &policy.display().to_string()]);
        self.run(&[
            "write",
            &format!("auth/approle/role/{role}"),
            "token_num_uses=0",
            "secret_id_num_uses=0",
            "period=5m",
            &format!("policies={role}"),
        ]);
        let role_id = self.run(&[
            "read",
            "-field=role_id",
            &format!("auth/approle/role/{role}/role-id"),
        ]);
        let secret_id = self.run(&[
            "write",
            "-f",
            "-field=secret_id",
            &format!("auth/approle/role/{role}/secret-id"),
        ]);
        AppRole {
            role_id: role_id.trim().to_string(),
            secret_id: secret_id.trim().to_string(),
        }
    }

    /// From the audit log ([`Vault::dev_audited`]): the path of every request made with a token
    /// that has policy `policy`, and of every login (a login has no token yet), in order.
    pub fn audited_requests(&self, policy: &str) -> Vec<String> {
        let log = self
            .audit_log
            .as_ref()
            .expect("a Vault started with Vault::dev_audited or Vault::production_audited");
        let text = std::fs::read_to_string(log).expect("read the audit log");
        text.lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("audit entry"))
            .filter(|entry| entry["type"] == "request")
            .filter_map(|entry| {
                let path = entry["request"]["path"].as_str()?.to_string();
                let policies = entry["auth"]["policies"].as_array().cloned();
                let with_policy = policies.is_some_and(|p| p.iter().any(|p| p == policy));
                let login = path.starts_with("auth/") && path.ends_with("/login");
                (with_policy || login).then_some(path)
            })
            .collect()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}
