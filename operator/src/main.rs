//! `operator`: run the controller, print the CRDs, or render what a Tenant becomes.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Reconciles Tenant and KMS resources (coffer.dev/v1alpha1) into encrypted object storage.
#[derive(Parser)]
#[command(name = "operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (kubeconfig discovery as kubectl does it: $KUBECONFIG,
    /// ~/.kube/config, or the in-cluster service account).
    Run(operator::run::RunArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print the objects the operator would create for a Tenant (no cluster needed).
    Render {
        /// YAML files holding the Tenant and its KMS (repeat -f, or use --kms).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// The KMS file (same as another -f).
        #[arg(long)]
        kms: Option<PathBuf>,
        /// Print Secret values instead of a placeholder.
        #[arg(long)]
        show_secrets: bool,
        /// The image of a Tenant without `spec.image` (as `operator run --default-image`).
        #[arg(long, env = operator::run::DEFAULT_IMAGE_ENV, default_value = operator::crd::tenant::DEFAULT_IMAGE)]
        default_image: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out_dir: None } => print!("{}", operator::crd::crds_yaml()),
        Command::Crds { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for crd in operator::crd::crds() {
                std::fs::write(
                    dir.join(operator::crd::crd_file_name(&crd)),
                    operator::crd::crd_yaml(&crd),
                )?;
            }
        }
        Command::Render {
            mut files,
            kms,
            show_secrets,
            default_image,
        } => {
            files.extend(kms);
            let docs = files
                .iter()
                .map(|f| {
                    std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (tenant, kms) = operator::render::parse(&docs)?;
            print!(
                "{}",
                operator::render::render(tenant, &kms, show_secrets, default_image.trim(),)?
            );
        }
        Command::Run(args) => {
            tokio::runtime::Runtime::new()?.block_on(operator::run::run(args))?;
        }
    }
    Ok(())
}
