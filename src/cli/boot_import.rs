//! `acoupi boot-import`: the first-boot step that takes the configuration a user put on
//! the FAT boot partition from any computer.
//!
//! Runs from `acoupi-firstboot.service` before the recorder starts. A valid file is
//! installed as the program configuration (the previous one kept as `.last-good`) and
//! replaced on the boot partition by `acoupi-imported.ron`, so a later `acoupi config set`
//! is not overwritten at the next boot; passwords and tokens are redacted in that copy,
//! since anyone holding the card can read it. An invalid file is left where it is and the
//! reason, with what to change, is written next to it in `acoupi-error.txt`, where the
//! user sees it on any computer. A `deployment` section starts the deployment with no
//! terminal.
//!
//! The boot partition is written as root and is not ours: a file there is never opened
//! through a symbolic link (a temporary file created with `O_EXCL|O_NOFOLLOW`, then
//! renamed over the name, which replaces a link rather than writing through it).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::deployment::{self, DeploymentCommand, StartArgs};
use crate::config::{Config, ConfigError};
use crate::files::{self, DirSync, Mode};
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
    if std::fs::symlink_metadata(&args.source).is_err() {
        tracing::info!(source = %args.source.display(), "no configuration on the boot partition");
        return Ok(());
    }
    let overlaps = |c: &crate::config::Config| super::config::storage_overlaps(layout, c);
    match crate::config::import_with(&args.source, &layout.config_file, &overlaps) {
        Err(e) => {
            let text = error_text(&args.source, &e);
            write_to_card(&args.error_file, text.as_bytes())
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
            let copy = card_copy(&outcome.config, &args.source, &layout.config_file)?;
            write_to_card(&done, &copy).with_context(|| format!("writing {}", done.display()))?;
            std::fs::remove_file(&args.source)
                .with_context(|| format!("removing {}", args.source.display()))?;
            tracing::info!(config = %layout.config_file.display(), "installed the boot-partition configuration");
            if outcome.deployment.is_some() {
                start_configured_deployment(layout)?;
            }
            Ok(())
        }
    }
}

/// What `acoupi-error.txt` says: the file, when, every cause, and what to change, for a
/// user reading it on a laptop with the card in a reader.
fn error_text(source: &Path, e: &ConfigError) -> String {
    let name = source.file_name().map_or_else(
        || source.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let what_to_do = match e {
        ConfigError::Parse { line, column, .. } => format!(
            "What to do: open {name} on this card in a text editor, go to line {line}, column {column}, and correct what is described above. Save it as plain UTF-8 text."
        ),
        ConfigError::Invalid { errors, .. } => format!(
            "What to do: open {name} on this card in a text editor and change the field{} listed above as each line says. Save it as plain UTF-8 text.",
            if errors.len() == 1 { "" } else { "s" }
        ),
        _ => format!(
            "What to do: replace {name} on this card with a configuration file saved as plain UTF-8 text."
        ),
    };
    format!(
        "acoupi could not use {} ({}):\n\n{}\n\n{what_to_do}\nEvery field is explained in acoupi.ron.example on this card.\n\nFix the file and boot again; the recorder keeps its previous configuration.\n",
        source.display(),
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
        crate::error::chain(e),
    )
}

/// The copy left on the boot partition: the user's file as it was when it holds no
/// secret (comments kept), else the installed configuration with every password and
/// token replaced by a note saying where the real value is.
fn card_copy(config: &Config, source: &Path, installed: &Path) -> anyhow::Result<Vec<u8>> {
    if crate::config::file::mode_for(config) != 0o600 {
        return std::fs::read(source).with_context(|| format!("reading {}", source.display()));
    }
    let mut value = serde_json::to_value(config).context("redacting the configuration")?;
    let note = format!("<redacted: stored in {}>", installed.display());
    crate::messaging::config::replace_secrets(&mut value, &note);
    let redacted: Config = serde_json::from_value(value).context("redacting the configuration")?;
    Ok(format!(
        "// The configuration imported at boot, passwords and tokens redacted: the real\n// values are in {} on the device only.\n{}\n",
        installed.display(),
        crate::config::to_ron_body(&redacted)?
    )
    .into_bytes())
}

/// Replaces `path` on the boot partition with `contents` ([`files::replace`]: never
/// through a symbolic link). The mode is left to the umask and the mount (FAT refuses a
/// `chmod`), and FAT may refuse to sync a directory: the rename is done either way.
fn write_to_card(path: &Path, contents: &[u8]) -> Result<(), files::FsError> {
    files::replace(path, contents, Mode::Umask(0o644), DirSync::BestEffort)
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
