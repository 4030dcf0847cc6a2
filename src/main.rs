//! The `acoupi` binary: parse the command line, set up logging, dispatch, and print any
//! error once with its chain of causes.

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = acoupi::cli::parse();
    // Logs go to stderr: journald picks them up under systemd. ACOUPI_LOG (or RUST_LOG)
    // overrides the level, e.g. ACOUPI_LOG=debug.
    let default = if acoupi::cli::is_daemon(&cli) {
        "info"
    } else {
        "warn"
    };
    let filter = std::env::var("ACOUPI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match acoupi::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`… | head`): nothing is wrong, as for ripgrep.
        Err(e) if acoupi::cli::out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<acoupi::cli::Refused>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
