//! The command line: clap definitions close to the raw flags, one file per command group.
//!
//! Every command is a function returning `anyhow::Result`; only `main` prints the error
//! and chooses the exit code: 0 success, 1 refused or a check failed ([`Refused`]),
//! 2 a usage, configuration or system error.
//!
//! Inside `cli/`, `println!` and `print!` are the macros defined here (see [`out`]): they
//! return a write error with `?` instead of panicking on a closed or full stdout.

/// `println!` for the CLI: writes through [`out::write`] and returns its error with `?`.
macro_rules! println {
    () => {
        $crate::cli::out::write(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` for the CLI: writes through [`out::write`] and returns its error with `?`.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))?
    };
}

pub mod out;

pub mod audit;
pub mod boot_import;
pub mod broken;
pub mod check;
pub mod config;
pub mod deployment;
pub mod detect;
pub mod devices;
pub mod inspect;
pub mod setup;
pub mod status;
pub mod style;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::system::layout::Layout;

/// acoupi: a field recorder for bioacoustic monitoring.
#[derive(Debug, Parser)]
#[command(
    name = "acoupi",
    about = "Field recorder for bioacoustic monitoring",
    long_about = "Field recorder for bioacoustic monitoring.\n\nRecords on schedule from an ALSA microphone into gapless, crash-safe WAV files with a SQLite metadata store, supervised by systemd.\nGet started with `acoupi setup`, then `acoupi check` and `acoupi deployment start`."
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the program configuration (interactive on a terminal).
    Setup(setup::SetupArgs),
    /// Read or change the program configuration.
    Config(config::ConfigArgs),
    /// Run the health checks (configuration, storages, microphone, clock, units).
    Check,
    /// Find recordings whose file is gone, files without a row, damaged WAV files and
    /// databases; `--repair` registers and marks (never deletes).
    Audit(audit::AuditArgs),
    /// List capture devices with the rates, channels and formats they support.
    Devices(devices::DevicesArgs),
    /// Run the configured detection model over a WAV file and print what it finds.
    Detect(detect::DetectArgs),
    /// Start, stop or inspect the deployment.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// The recording daemon (ExecStart of acoupi.service).
    Run,
    /// The health and heartbeat daemon (ExecStart of acoupi-beat.service).
    Beat,
    /// Import the configuration from the boot partition (run at boot).
    BootImport(boot_import::BootImportArgs),
}

/// A command refused to act or a check failed: exit code 1, not 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

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

/// True for the daemons, which log at `info` by default; the CLI logs only warnings.
pub fn is_daemon(cli: &Cli) -> bool {
    matches!(
        cli.command,
        Command::Run | Command::Beat | Command::BootImport(_)
    )
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let layout = Layout::detect();
    match cli.command {
        Command::Setup(args) => setup::run(args),
        Command::Config(args) => config::run(args),
        Command::Check => check::run(&layout),
        Command::Audit(args) => audit::run(&layout, args),
        Command::Devices(args) => devices::run(args),
        Command::Detect(args) => detect::run(&layout, args),
        Command::Deployment(cmd) => deployment::run(&layout, cmd),
        Command::Run => crate::daemon::run::run(layout),
        Command::Beat => crate::daemon::beat::run(layout),
        Command::BootImport(args) => boot_import::run(&layout, args),
    }
}
