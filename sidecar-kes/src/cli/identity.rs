//! `kes identity new|of` (also `kes tool identity ...`).

use crate::auth::{ApiKey, Identity};
use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

#[derive(Subcommand)]
pub enum IdentityCmd {
    /// Create a new identity: an API key, or with --key/--cert a private key and certificate.
    New {
        /// Subject (common name) of the certificate.
        subject: Option<String>,
        /// Write the private key to this file.
        #[arg(long)]
        key: Option<String>,
        /// Write the certificate to this file.
        #[arg(long)]
        cert: Option<String>,
        /// Validity of the certificate (Go duration, e.g. 8760h).
        #[arg(long, alias = "time", default_value = "720h")]
        expiry: String,
        /// IP addresses to add as subject alternative names.
        #[arg(long)]
        ip: Vec<String>,
        /// DNS names to add as subject alternative names.
        #[arg(long)]
        dns: Vec<String>,
        /// Overwrite existing files.
        #[arg(short, long)]
        force: bool,
    },
    /// Print the identity of a certificate file or an API key.
    Of {
        /// A PEM certificate file, or an API key `kes:v1:...`.
        input: String,
    },
}

fn write_file(path: &str, data: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(mode);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create '{path}' (use --force to overwrite)"))?;
    f.write_all(data)?;
    Ok(())
}

pub fn run(cmd: IdentityCmd) -> anyhow::Result<()> {
    match cmd {
        IdentityCmd::Of { input } => {
            let id = if input.starts_with("kes:v1:") {
                ApiKey::parse(&input)?.identity()
            } else {
                let pem =
                    std::fs::read(&input).with_context(|| format!("cannot read '{input}'"))?;
                Identity::from_cert_pem(&pem)?
            };
            println!("{id}");
            Ok(())
        }
        IdentityCmd::New {
            subject,
            key,
            cert,
            expiry,
            ip,
            dns,
            force,
        } => {
            let (key_path, cert_path) = match (key, cert) {
                (None, None) => {
                    let k = ApiKey::generate();
                    println!("Your API key:\n\n   {}\n", k.to_secret_string().as_str());
                    println!("This is the only time it is shown. Keep it secret and secure!\n");
                    println!("Your Identity:\n\n   {}", k.identity());
                    return Ok(());
                }
                (Some(k), Some(c)) => (k, c),
                _ => bail!("--key and --cert must be given together"),
            };
            let validity = crate::config::duration::parse(&expiry).map_err(anyhow::Error::msg)?;
            let kp = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(dns.clone())?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, subject.unwrap_or_default());
            for a in &ip {
                params.subject_alt_names.push(rcgen::SanType::IpAddress(
                    a.parse().with_context(|| format!("invalid --ip '{a}'"))?,
                ));
            }
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::minutes(1);
            params.not_after = now + validity;
            params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            if !ip.is_empty() || !dns.is_empty() {
                params
                    .extended_key_usages
                    .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
            }
            let c = params.self_signed(&kp)?;
            write_file(&key_path, kp.serialize_pem().as_bytes(), 0o600, force)?;
            write_file(&cert_path, c.pem().as_bytes(), 0o644, force)?;
            println!("Your Identity:\n\n   {}", Identity::from_cert_der(c.der())?);
            Ok(())
        }
    }
}
