//! The `acoupi` binary: parse the command line, dispatch, print any error once.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = acoupi::cli::parse();
    match acoupi::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
