//! The command line: clap definitions close to the raw flags, one file per command group.
//!
//! Every command is a function returning `anyhow::Result`; only `main` prints the error
//! and chooses the exit code.

pub mod devices;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// acoupi: a field recorder for bioacoustic monitoring.
#[derive(Debug, Parser)]
#[command(
    name = "acoupi",
    about = "Field recorder for bioacoustic monitoring",
    long_about = "Field recorder for bioacoustic monitoring.\n\nRecords on schedule from an ALSA microphone into gapless, crash-safe WAV files with a SQLite metadata store, supervised by systemd."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List capture devices, their rates, channels and formats.
    Devices(devices::DevicesArgs),
}

/// `--version` text: what this binary is, for a field report months later.
pub fn version_text() -> String {
    format!(
        "{}\ngit revision: {}\ntarget: {}\nalsa-lib: {}\nsqlite: {}",
        env!("CARGO_PKG_VERSION"),
        env!("ACOUPI_GIT_REV"),
        env!("ACOUPI_TARGET"),
        crate::audio::alsa_lib_version(),
        rusqlite::version(),
    )
}

/// Parses the process arguments (exits with clap's usage message on bad input).
pub fn parse() -> Cli {
    let version = version_text();
    let matches = Cli::command()
        .version(version.clone())
        .long_version(version)
        .get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Devices(args)) => devices::run(args),
        None => {
            Cli::command().print_help()?;
            Ok(())
        }
    }
}
