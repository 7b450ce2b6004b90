//! `kes key ...`, `kes policy ...` and `kes status`.

use super::client::ConnArgs;
use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Create a new master key (or import one if KEY is given).
    Create {
        /// Key name.
        name: String,
        /// Base64 of a 32-byte key to import instead.
        key: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Import a 32-byte key (base64).
    Import {
        /// Key name.
        name: String,
        /// Base64 of the 32-byte key.
        key: String,
        /// AES256 or ChaCha20.
        #[arg(long, default_value = "AES256")]
        cipher: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Describe a master key: its versions and their creation times too (from a Coffer kes).
    #[command(alias = "describe")]
    Info {
        /// Key name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Add a version to a master key (Coffer's kes only): new data keys use it, older versions
    /// still decrypt until the minimum version is raised past them.
    Rotate {
        /// Key name.
        name: String,
        /// Then make this the oldest version that still decrypts (1 up to the newest).
        #[arg(long)]
        min_version: Option<u32>,
        /// Only set --min-version, add no version.
        #[arg(long, requires = "min_version")]
        no_new_version: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List master keys.
    #[command(alias = "list")]
    Ls {
        /// Name prefix (a trailing `*` is allowed).
        #[arg(default_value = "")]
        pattern: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete master keys: deliberate and irreversible (crypto-shredding). Every object whose
    /// data key a deleted key sealed becomes unreadable for good: on the KES that deletes at
    /// once, on every other KES over the same keystore when its cache entry expires
    /// (`cache.expiry.any`, or `unused` when idle). Over Vault K/V every version of a rotated
    /// key goes, and every escrowed copy; over Transit the key itself. There is no undo.
    /// Needs --force, and every name again with --confirm.
    #[command(alias = "delete")]
    Rm {
        /// Key names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Delete although it cannot be undone.
        #[arg(long)]
        force: bool,
        /// Each key name once more (repeat for several keys), as the confirmation.
        #[arg(long = "confirm", value_name = "NAME")]
        confirm: Vec<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Generate a data encryption key.
    Dek {
        /// Key name.
        name: String,
        /// Context (associated data), as text.
        context: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Encrypt a small message.
    Encrypt {
        /// Key name.
        name: String,
        /// Plaintext, as text.
        message: String,
        /// Context, as text.
        context: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Decrypt a ciphertext (base64).
    Decrypt {
        /// Key name.
        name: String,
        /// Ciphertext, base64.
        ciphertext: String,
        /// Context, as text.
        context: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// List policies.
    Ls {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show a policy.
    #[command(alias = "show")]
    Info {
        /// Policy name.
        name: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn b64(s: &str) -> anyhow::Result<Vec<u8>> {
    STANDARD
        .decode(s.trim())
        .map_err(|_| anyhow::anyhow!("invalid base64"))
}

pub fn run(cmd: KeyCmd) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            KeyCmd::Create {
                name,
                key: None,
                conn,
            } => conn.client()?.create_key(&name).await?,
            KeyCmd::Create {
                name,
                key: Some(key),
                conn,
            } => {
                conn.client()?
                    .import_key(&name, &b64(&key)?, "AES256")
                    .await?
            }
            KeyCmd::Import {
                name,
                key,
                cipher,
                conn,
            } => {
                conn.client()?
                    .import_key(&name, &b64(&key)?, &cipher)
                    .await?
            }
            KeyCmd::Info { name, json, conn } => {
                let c = conn.client()?;
                let info = c.describe_key(&name).await?;
                // A KES without Coffer's versions (404 page not found) has version 1 only.
                let versions = match c.key_versions(&name).await {
                    Ok(v) => Some(v),
                    Err(crate::client::ClientError::Api { status: 404, .. }) => None,
                    Err(e) => return Err(e.into()),
                };
                if json {
                    let mut v = serde_json::to_value(&info)?;
                    if let Some(versions) = &versions {
                        v["versions"] = serde_json::to_value(versions)?;
                    }
                    println!("{v}");
                } else {
                    println!("Name      : {}", info.name);
                    println!("Algorithm : {}", info.algorithm);
                    if let Some(t) = info.created_at {
                        println!(
                            "Date      : {}",
                            t.format(&time::format_description::well_known::Rfc3339)?
                        );
                    }
                    println!("Owner     : {}", info.created_by);
                    if let Some(v) = versions {
                        print_versions(&v)?;
                    }
                }
            }
            KeyCmd::Rotate {
                name,
                min_version,
                no_new_version,
                json,
                conn,
            } => {
                let v = conn
                    .client()?
                    .rotate_key(&name, !no_new_version, min_version)
                    .await?;
                if json {
                    println!("{}", serde_json::to_string(&v)?);
                } else {
                    print_versions(&v)?;
                }
            }
            KeyCmd::Ls {
                pattern,
                json,
                conn,
            } => {
                let names = conn
                    .client()?
                    .list_keys(pattern.trim_end_matches('*'))
                    .await?;
                if json {
                    println!("{}", serde_json::to_string(&names)?);
                } else {
                    for n in names {
                        println!("{n}");
                    }
                }
            }
            KeyCmd::Rm {
                names,
                force,
                confirm,
                conn,
            } => {
                confirm_deletion(&names, force, &confirm)?;
                let c = conn.client()?;
                for n in names {
                    c.delete_key(&n).await?;
                }
            }
            KeyCmd::Dek {
                name,
                context,
                json,
                conn,
            } => {
                let dek = conn
                    .client()?
                    .generate_key(&name, context.unwrap_or_default().as_bytes())
                    .await?;
                let (pt, ct) = (
                    STANDARD.encode(&dek.plaintext[..]),
                    STANDARD.encode(&dek.ciphertext),
                );
                // Like MinIO's CLI: JSON when the output is not a terminal.
                if json || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    println!(
                        "{}",
                        serde_json::json!({ "plaintext": pt, "ciphertext": ct })
                    );
                } else {
                    println!("{{\n  plaintext : {pt}\n  ciphertext: {ct}\n}}");
                }
            }
            KeyCmd::Encrypt {
                name,
                message,
                context,
                conn,
            } => {
                let ct = conn
                    .client()?
                    .encrypt(
                        &name,
                        message.as_bytes(),
                        context.unwrap_or_default().as_bytes(),
                    )
                    .await?;
                println!("{}", STANDARD.encode(ct));
            }
            KeyCmd::Decrypt {
                name,
                ciphertext,
                context,
                conn,
            } => {
                let pt = conn
                    .client()?
                    .decrypt_key(
                        &name,
                        &b64(&ciphertext)?,
                        context.unwrap_or_default().as_bytes(),
                    )
                    .await?;
                println!("{}", STANDARD.encode(&pt[..]));
            }
        }
        Ok(())
    })
}

/// The guard of `kes key rm`: nothing is sent unless `--force` is given and `--confirm` names
/// exactly the keys to delete.
fn confirm_deletion(names: &[String], force: bool, confirm: &[String]) -> anyhow::Result<()> {
    let listed = names.join(", ");
    if !force {
        anyhow::bail!(
            "refusing to delete {listed}: deleting a master key makes every object it encrypted unreadable, for good; \
             run again with --force and --confirm NAME for each key"
        );
    }
    let wanted: std::collections::BTreeSet<_> = names.iter().collect();
    let confirmed: std::collections::BTreeSet<_> = confirm.iter().collect();
    if wanted != confirmed {
        anyhow::bail!(
            "refusing to delete {listed}: --confirm must name exactly the keys to delete (each once), got [{}]",
            confirm.join(", ")
        );
    }
    Ok(())
}

fn print_versions(v: &crate::keys::KeyVersions) -> anyhow::Result<()> {
    println!("Newest    : {}", v.newest);
    println!("Minimum   : {}", v.min_version);
    for ver in &v.versions {
        let state = if ver.version < v.min_version {
            " (retired)"
        } else {
            ""
        };
        println!(
            "Version {:<3}: {}{state}",
            ver.version,
            ver.created_at
                .format(&time::format_description::well_known::Rfc3339)?
        );
    }
    Ok(())
}

pub fn run_policy(cmd: PolicyCmd) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let (conn, path) = match &cmd {
            PolicyCmd::Ls { conn } => (conn, vec!["v1", "policy", "list", "*"]),
            PolicyCmd::Info { name, conn } => (conn, vec!["v1", "policy", "read", name.as_str()]),
        };
        let v = conn.client()?.get_json(&path).await?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        Ok(())
    })
}

pub fn status(conn: ConnArgs, json: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let c = conn.client()?;
        let s = c.status().await?;
        if json {
            println!("{s}");
        } else {
            for ep in c.endpoints() {
                println!("Endpoint : {ep}");
            }
            println!("Version  : {}", s["version"].as_str().unwrap_or_default());
            println!("Uptime   : {}s", s["uptime"]);
            if s["keystore_unreachable"].as_bool().unwrap_or(false) {
                println!("Keystore : unreachable");
            } else {
                println!("Keystore : {}ms", s["keystore_latency"]);
            }
        }
        Ok(())
    })
}
