//! `acoupi boot-import`: the first-boot step that takes the configuration a user put on
//! the FAT boot partition from any computer.
//!
//! Runs from `acoupi-firstboot.service` before the recorder starts. A valid file is
//! installed as the program configuration (the previous one kept as `.last-good`) and
//! renamed on the boot partition to `acoupi-imported.ron`, so a later `acoupi config set`
//! is not overwritten at the next boot. An invalid file is left where it is and the reason
//! is written next to it in `acoupi-error.txt`, where the user sees it on any computer.
//! A `deployment` section starts the deployment with no terminal.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::deployment::{self, DeploymentCommand, StartArgs};
use crate::system::layout::Layout;

/// Options of `boot-import`.
#[derive(Debug, Args)]
pub struct BootImportArgs {
    /// The configuration file on the boot partition.
    #[arg(long, default_value = "/boot/firmware/acoupi.ron")]
    pub source: PathBuf,
    /// Where the reason for a rejected file is written.
    #[arg(long, default_value = "/boot/firmware/acoupi-error.txt")]
    pub error_file: PathBuf,
}

/// Imports the boot-partition configuration, if there is one.
pub fn run(layout: &Layout, args: BootImportArgs) -> anyhow::Result<()> {
    if !args.source.exists() {
        tracing::info!(source = %args.source.display(), "no configuration on the boot partition");
        return Ok(());
    }
    let overlaps = |c: &crate::config::Config| super::config::storage_overlaps(layout, c);
    match crate::config::import_with(&args.source, &layout.config_file, &overlaps) {
        Err(e) => {
            let text = format!(
                "acoupi could not use {} ({}):\n\n{e}\n\nFix the file and boot again; the recorder keeps its previous configuration.\n",
                args.source.display(),
                jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
            );
            std::fs::write(&args.error_file, text)
                .with_context(|| format!("writing {}", args.error_file.display()))?;
            Err(anyhow::Error::new(e).context(format!(
                "rejected {}; the reason is in {}",
                args.source.display(),
                args.error_file.display()
            )))
        }
        Ok(outcome) => {
            crate::system::storage::hand_over_config(layout)?;
            let _ = std::fs::remove_file(&args.error_file);
            let done = args.source.with_file_name("acoupi-imported.ron");
            std::fs::rename(&args.source, &done).with_context(|| {
                format!("renaming {} to {}", args.source.display(), done.display())
            })?;
            tracing::info!(config = %layout.config_file.display(), "installed the boot-partition configuration");
            if outcome.deployment.is_some() {
                start_configured_deployment(layout)?;
            }
            Ok(())
        }
    }
}

/// Starts the deployment described in the configuration, unless one is active already.
fn start_configured_deployment(layout: &Layout) -> anyhow::Result<()> {
    let args = StartArgs {
        name: None,
        latitude: None,
        longitude: None,
        no_check: true,
        no_prompt: true,
        no_block: true,
        timeout: 0,
    };
    match deployment::run(layout, DeploymentCommand::Start(args)) {
        Err(e) if e.downcast_ref::<super::Refused>().is_some() => {
            tracing::info!(reason = %e, "deployment not started from the boot configuration");
            Ok(())
        }
        other => other,
    }
}
