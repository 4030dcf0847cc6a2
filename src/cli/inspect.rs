//! `acoupi config inspect FILE [--json]`: what a configuration file is, for scripts.
//!
//! The image bake runs it on the build machine (a host build of this binary) to learn
//! whether a site configuration is valid, carries a deployment (enable the recorder) and
//! holds a secret (install it mode 0600 for the service user), instead of grepping RON.
//! It needs no installation and no `ACOUPI_HOME`: it reads only FILE. Exit 0 when the
//! file is valid, 2 when it is not, after printing the report either way.

use std::path::PathBuf;

use crate::config::{inspect, schema::Program, Inspection};

/// `acoupi config inspect FILE [--json]`
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The configuration file, e.g. a site configuration before it is baked into an image.
    pub file: PathBuf,
    /// Print one JSON object: valid, error, has_deployment, deployment_name,
    /// holds_secrets, program.
    #[arg(long)]
    pub json: bool,
}

/// Prints the report on FILE; an invalid file is an error (exit 2) after the report.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let report = inspect(&args.file);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&args.file.display().to_string(), &report));
    }
    match report.error {
        None => Ok(()),
        Some(error) => Err(anyhow::anyhow!(error)),
    }
}

/// The report as lines for a person.
fn render(file: &str, report: &Inspection) -> String {
    let program = match report.program {
        Some(Program::Default) => "default",
        Some(Program::Connected) => "connected",
        None => "unknown (the file does not parse)",
    };
    let deployment = report
        .deployment_name
        .as_deref()
        .map(|n| format!("{n:?} (starts with no terminal)"))
        .unwrap_or_else(|| "none".into());
    let secrets = if report.holds_secrets {
        "yes (installed mode 0600, owned by the service user)"
    } else {
        "no"
    };
    format!(
        "{file}: {}\nprogram: {program}\ndeployment: {deployment}\nsecrets: {secrets}\n",
        if report.valid { "valid" } else { "invalid" }
    )
}
