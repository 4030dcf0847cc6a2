//! `acoupi config get|set|import|example`: read and change the program configuration one
//! dotted field at a time, install a whole file, print the commented example.
//!
//! Every change is validated as a whole configuration before anything is written, written
//! atomically with the previous file kept, and a running recorder is told to reload. The
//! field navigation and coercion live in `config::tree`; this file only wires them to
//! the command line.

use std::path::PathBuf;

use anyhow::Context;

use crate::config::{self, render, tree, FieldError};
use crate::messaging::config::{mask_secrets, MASK, SECRET_FIELDS};
use crate::system::layout::Layout;
use crate::system::storage;
use crate::tasks::management::retention;

/// `acoupi config …`
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// What to do with the configuration.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print a field, a section or the whole configuration.
    Get(GetArgs),
    /// Change one field; the whole configuration is validated before it is written.
    Set(SetArgs),
    /// Validate a configuration file and install it (previous kept as .last-good).
    Import(ImportArgs),
    /// Print the commented example configuration with every field explained.
    Example,
    /// Check a configuration file without installing it (exit 0 when it is valid).
    Validate(ValidateArgs),
    /// Report on a file for scripts: valid, deployment, secrets, program (exit 2 if invalid).
    Inspect(super::inspect::InspectArgs),
}

/// `acoupi config validate FILE`
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The file to check, e.g. a site configuration before it is baked into an image.
    pub file: PathBuf,
}

/// `acoupi config get [FIELD] [--json]`
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Dotted field, e.g. `microphone.samplerate` or `recording.schedule.0.start`;
    /// omit it for the whole configuration.
    pub field: Option<String>,
    /// Print JSON instead of RON.
    #[arg(long)]
    pub json: bool,
    /// Print passwords and tokens as they are (masked as ******** otherwise).
    #[arg(long)]
    pub show_secrets: bool,
}

/// `acoupi config set FIELD VALUE`
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Dotted field, e.g. `microphone.device_name`, `recording.schedule.0.end`.
    pub field: String,
    /// The new value: a number, `true`/`false`, text (`06:00`, `sunset-30m`), `none` to
    /// unset an optional field, or RON/JSON for a section or list.
    #[arg(allow_hyphen_values = true)]
    pub value: String,
}

/// `acoupi config import FILE [--to PATH]`
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file to install, e.g. the boot partition's `acoupi.ron`.
    pub file: PathBuf,
    /// Where to install it (default: this installation's configuration file).
    #[arg(long)]
    pub to: Option<PathBuf>,
}

/// Runs `acoupi config …`.
pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let layout = Layout::detect();
    match args.command {
        ConfigCommand::Get(a) => get(&layout, a),
        ConfigCommand::Set(a) => set(&layout, a),
        ConfigCommand::Import(a) => import(&layout, a),
        ConfigCommand::Example => {
            print!("{}", config::example_ron());
            Ok(())
        }
        ConfigCommand::Inspect(a) => super::inspect::run(a),
        ConfigCommand::Validate(a) => {
            config::load(&a.file)?;
            println!("{} is a valid configuration", a.file.display());
            Ok(())
        }
    }
}

fn get(layout: &Layout, args: GetArgs) -> anyhow::Result<()> {
    let current = config::read(&layout.config_file)?;
    let field = args.field.as_deref().unwrap_or("");
    let mut value = tree::get(&current, field)?;
    if !args.show_secrets {
        mask(&mut value, field);
    }
    if args.json {
        println!("{}", render::json_text(&value, field));
    } else if field.trim_matches('.').is_empty() {
        // The whole configuration exactly as the file format writes it (secrets masked
        // unless asked for: the masked tree reads back as a configuration).
        let shown: config::Config =
            serde_json::from_value(value).context("rendering the configuration")?;
        println!("{}", config::to_ron_body(&shown)?);
    } else {
        println!("{}", render::ron_text(&value, field));
    }
    Ok(())
}

/// Masks passwords and tokens in `value`, the value of `field` (itself a secret when its
/// last segment names one).
fn mask(value: &mut serde_json::Value, field: &str) {
    let segs = tree::segments(field).unwrap_or_default();
    let last = segs.last().copied().unwrap_or("");
    if SECRET_FIELDS.contains(&last) && !value.is_null() {
        *value = serde_json::Value::String(MASK.to_owned());
    } else {
        mask_secrets(value);
    }
}

fn set(layout: &Layout, args: SetArgs) -> anyhow::Result<()> {
    let path = &layout.config_file;
    // Held from reading the file to writing it back, so concurrent `config set` runs
    // each keep their change (the last writer no longer overwrites the others).
    let _lock = config::lock(path)?;
    let current = config::read(path)?;
    let changed = tree::set(&current, &args.field, &args.value)?;
    if let Err(errors) = validate_here(layout, &changed) {
        anyhow::bail!("{}; nothing was written", field_errors(&errors));
    }
    if changed == current {
        return Ok(());
    }
    // The one rule validation cannot judge without the disk: a free-space threshold
    // beyond half the recordings' file system would make retention delete for nothing.
    let recordings = layout.storage_paths(&changed.paths).recordings;
    if let Err(e) = retention::check_min_free(&recordings, changed.retention.min_free_space_mb) {
        anyhow::bail!("{e}; nothing was written");
    }
    config::save(&changed, path)?;
    storage::hand_over_config(layout)?;
    reload_running(layout)
}

/// [`config::validate`] plus what needs the layout: the storage paths as this
/// installation resolves them (defaults filled in) must not overlap.
pub(crate) fn validate_here(
    layout: &Layout,
    config: &config::Config,
) -> Result<(), Vec<FieldError>> {
    config::validate(config)?;
    let errors = storage_overlaps(layout, config);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Overlaps between the storage paths `layout` resolves for `config`.
pub(crate) fn storage_overlaps(layout: &Layout, config: &config::Config) -> Vec<FieldError> {
    let p = layout.storage_paths(&config.paths);
    config::validate_paths::overlap_errors(&p.tmp_audio, &p.recordings, &p.db_metadata)
}

fn import(layout: &Layout, args: ImportArgs) -> anyhow::Result<()> {
    if let Some(to) = &args.to {
        // `--to` installs a file: never over a device, directory, fifo or symbolic link,
        // and never into a directory that does not exist.
        config::file::check_new_in_existing_dir(to).context("--to")?;
    }
    let dst = args.to.unwrap_or_else(|| layout.config_file.clone());
    let outcome = config::import_with(&args.file, &dst, &|c| storage_overlaps(layout, c))?;
    println!("installed {} as {}", args.file.display(), dst.display());
    if let Some(previous) = &outcome.previous {
        println!("previous configuration kept as {}", previous.display());
    }
    if let Some(site) = &outcome.deployment {
        println!(
            "the file carries a deployment: {} ({}, {})",
            site.name, site.latitude, site.longitude
        );
    }
    if dst == layout.config_file {
        storage::hand_over_config(layout)?;
        reload_running(layout)?;
    }
    Ok(())
}

/// Several field errors, one per line; a single one on its own line.
pub(crate) fn field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sends SIGHUP to the running recorder and beat daemons so they reread the
/// configuration; says so for each one signalled. No pid file, or a stale one (a pid
/// now used by another program, or by acoupi in another role: `system::process`), means
/// that daemon is not running: nothing to do.
fn reload_running(layout: &Layout) -> anyhow::Result<()> {
    for (name, role, pid_file) in [
        ("recorder", "run", layout.pid_file()),
        ("beat", "beat", layout.beat_pid_file()),
    ] {
        if let Some(pid) = crate::system::process::pid_from_file(&pid_file, Some(role)) {
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
                .with_context(|| format!("asking the running {name} (pid {pid}) to reload"))?;
            println!("reloaded running {name}");
        }
    }
    Ok(())
}
