//! `acoupi deployment start|stop|status`: the lifecycle of one deployment at one site.
//!
//! The deployment row in metadata.db is the single record of a deployment (upstream kept
//! a second one in a JSON file, and the two drifted apart). `start` records it and brings
//! up both services; any failure after that rolls back to "not deployed", keeping every
//! earlier deployment. `stop` stops the services first, so the recorder finishes its file
//! and runs a last management pass, then ends the row, then disables the units.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use jiff::Timestamp;

use super::check::{self, Severity};
use super::{broken, out, status, style, Refused};
use crate::config::validate::{validate_latitude, validate_longitude};
use crate::store::metadata::MetadataStore;
use crate::store::StoreError;
use crate::system::layout::{Layout, Mode};
use crate::system::storage;
use crate::system::systemd::{Systemctl, UnitState, Wait, SYSTEM_UNITS, UNITS};

/// `acoupi deployment …`
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Start a deployment: record the site, enable and start both services.
    Start(StartArgs),
    /// Stop the deployment: finish the current file, stop and disable the services.
    Stop,
    /// Show services, workers, program and deployment state.
    Status(StatusArgs),
}

/// Options of `deployment start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Deployment name (prompted for when missing).
    #[arg(long)]
    pub name: Option<String>,
    /// Site latitude in degrees, -90..90 (prompted for when missing).
    #[arg(long, allow_hyphen_values = true)]
    pub latitude: Option<String>,
    /// Site longitude in degrees, -180..180 (prompted for when missing).
    #[arg(long, allow_hyphen_values = true)]
    pub longitude: Option<String>,
    /// Skip the health check.
    #[arg(long)]
    pub no_check: bool,
    /// Never prompt: missing values are an error (also when stdin is not a terminal).
    #[arg(long)]
    pub no_prompt: bool,
    /// Queue the service start and return at once (for use from a boot-time unit).
    #[arg(long)]
    pub no_block: bool,
    /// Seconds to wait for both services to report ready (at most 3600).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_S))]
    pub timeout: u64,
}

/// The longest `--timeout` for `deployment start`: the services report ready within
/// seconds, and a bounded wait cannot overflow a deadline (`u64::MAX` seconds did).
pub const MAX_TIMEOUT_S: u64 = 3600;

/// Options of `deployment status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `deployment` command.
pub fn run(layout: &Layout, cmd: DeploymentCommand) -> anyhow::Result<()> {
    match cmd {
        DeploymentCommand::Start(args) => start(layout, args),
        DeploymentCommand::Stop => stop(layout),
        DeploymentCommand::Status(args) => {
            let status = status::collect_status(layout);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status::render_status(&status));
            }
            Ok(())
        }
    }
}

/// A site as the operator gave it.
struct SiteInput {
    name: String,
    latitude: f64,
    longitude: f64,
}

fn start(layout: &Layout, args: StartArgs) -> anyhow::Result<()> {
    // Before anything is created or opened: a refused name changes nothing on disk.
    if let Some(name) = &args.name {
        check_name(name)?;
    }
    let config = check::config_findings(layout).map_err(|findings| {
        check::print_findings(&findings);
        anyhow::anyhow!(
            "the configuration at {} is not usable",
            layout.config_file.display()
        )
    })?;
    let paths = layout.storage_paths(&config.paths);
    let owner = storage::storage_owner(layout)?;
    storage::ensure_storages(&paths, owner)?;
    let mut store = MetadataStore::open(&paths.db_metadata)?;
    if let Some(active) = store.active_deployment()? {
        return Err(Refused(format!(
            "a deployment is already active: {:?} since {} UTC; stop it first with `acoupi deployment stop`",
            active.name,
            active.started_on.strftime("%Y-%m-%d %H:%M")
        ))
        .into());
    }
    let interactive = !args.no_prompt && std::io::stdin().is_terminal();
    let site = site_from(&args, config.deployment.as_ref(), interactive)?;
    if !args.no_check {
        let findings = check::run_checks(layout);
        check::print_findings(&findings);
        if findings.iter().any(|f| f.severity == Severity::Error) {
            return Err(Refused(
                "health checks failed: fix the errors above or start with --no-check".into(),
            )
            .into());
        }
    }
    let systemctl = Systemctl::new(layout.mode);
    let deployment = store.start_deployment(
        &site.name,
        Some(site.latitude),
        Some(site.longitude),
        Timestamp::now(),
    )?;
    // From here on every failure rolls back to "not deployed": the row exists, and
    // units may be enabled or started. Progress lines are notes, so a closed stdout
    // cannot stop a start half way.
    let brought_up = (|| {
        out::note(format_args!("Starting deployment {:?}...", deployment.name));
        // Run as root (sudo, or the boot-time import), this may have just created the
        // database: the services run as the acoupi user and must be able to write it.
        storage::hand_over_db(&paths.db_metadata, owner)?;
        bring_up(layout, &systemctl, &args)
    })();
    if let Err(e) = brought_up {
        roll_back(&systemctl, &mut store);
        return Err(
            e.context("starting the deployment failed; it was rolled back (nothing is deployed)")
        );
    }
    out::note(format_args!("{}", style::green("Deployment started.")));
    if !args.no_block {
        // The deployment is up: a lost status display is no reason to exit non-zero.
        let _ = out::write(format_args!(
            "{}",
            status::render_status(&status::collect_status(layout))
        ));
    }
    Ok(())
}

/// Installs (user mode), enables and starts both services, then waits for READY.
fn bring_up(layout: &Layout, systemctl: &Systemctl, args: &StartArgs) -> anyhow::Result<()> {
    match layout.mode {
        Mode::User => {
            systemctl.install_user_units(layout, &SYSTEM_UNITS)?;
        }
        Mode::System => {
            if !crate::system::systemd::units_installed(layout) {
                bail!("acoupi.service and acoupi-beat.service are not installed: reinstall the acoupi image or package");
            }
        }
    }
    systemctl.enable(&UNITS)?;
    if args.no_block {
        systemctl.start(&UNITS, Wait::NoBlock)?;
        return Ok(());
    }
    systemctl.start(&UNITS, Wait::Block)?;
    // `checked_add`: an `Instant` overflow panics; the parser bounds the timeout, and a
    // deadline past the clock's end simply never comes.
    let deadline = Instant::now().checked_add(Duration::from_secs(args.timeout));
    loop {
        let states: Vec<UnitState> = UNITS
            .iter()
            .map(|u| systemctl.is_active(u))
            .collect::<Result<_, _>>()?;
        if states.iter().all(|s| *s == UnitState::Active) {
            return Ok(());
        }
        if let Some((unit, state)) = UNITS
            .iter()
            .zip(&states)
            .find(|(_, s)| **s == UnitState::Failed)
        {
            bail!("{unit} is {}: see `journalctl -u {unit}`", state.as_str());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bail!(
                "the services did not report ready within {} s ({}): see `journalctl -u acoupi`",
                args.timeout,
                UNITS
                    .iter()
                    .zip(&states)
                    .map(|(u, s)| format!("{u} {}", s.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Undoes a failed start: services stopped and disabled, the new deployment ended.
/// Earlier deployments are untouched.
fn roll_back(systemctl: &Systemctl, store: &mut MetadataStore) {
    if let Err(e) = systemctl.stop(&UNITS) {
        tracing::warn!(error = %e, "rollback: stopping the services failed");
    }
    if let Err(e) = systemctl.disable(&UNITS) {
        tracing::warn!(error = %e, "rollback: disabling the services failed");
    }
    if let Err(e) = store.end_active_deployment(Timestamp::now()) {
        tracing::warn!(error = %e, "rollback: ending the deployment failed");
    }
}

fn stop(layout: &Layout) -> anyhow::Result<()> {
    // A configuration broken on disk must not make a running deployment unstoppable:
    // its row is found at the last known storages (see `broken`).
    let config = match crate::config::load(&layout.config_file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "{} the configuration does not load ({}); stopping the deployment recorded at the last known storages. To repair the configuration: {}",
                style::yellow("warning:"),
                crate::error::chain(&e),
                broken::restore_hint(layout)
            );
            broken::last_known_config(layout)
        }
    };
    let paths = layout.storage_paths(&config.paths);
    let not_deployed = || {
        Refused(
            "acoupi is not deployed: there is nothing to stop (start one with `acoupi deployment start`)".into(),
        )
    };
    let mut store = match MetadataStore::open(&paths.db_metadata) {
        Ok(store) => store,
        // No storages yet: nothing was ever deployed.
        Err(StoreError::ParentMissing { .. }) => return Err(not_deployed().into()),
        Err(e) => return Err(e.into()),
    };
    let Some(active) = store.active_deployment()? else {
        return Err(not_deployed().into());
    };
    println!(
        "Stopping deployment {:?}: finishing the current file...",
        active.name
    );
    let systemctl = Systemctl::new(layout.mode);
    // Stopping first lets the recorder finish its file and run a last management pass
    // under the deployment it recorded for.
    systemctl.stop(&UNITS).context("stopping the services")?;
    let ended = store.end_active_deployment(Timestamp::now())?;
    if let Err(e) = systemctl.disable(&UNITS) {
        eprintln!(
            "{} the deployment is ended but disabling the services failed ({e}); they will not record without a deployment",
            style::yellow("warning:")
        );
    }
    let summary = store.recording_summary(ended.id)?;
    drop(store);
    storage::hand_over_db_to_service(layout, &paths.db_metadata)?;
    println!(
        "{} {} recordings, {:.1} minutes in total.",
        style::green("Deployment stopped."),
        summary.count,
        summary.total_duration_s / 60.0
    );
    Ok(())
}

fn site_from(
    args: &StartArgs,
    configured: Option<&crate::config::schema::Site>,
    interactive: bool,
) -> anyhow::Result<SiteInput> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut output = std::io::stdout();
    let mut ask = |flag: &str,
                   label: &str,
                   given: Option<String>,
                   default: Option<String>,
                   check: &dyn Fn(&str) -> Result<(), String>|
     -> anyhow::Result<String> {
        if let Some(v) = given {
            check(&v).map_err(|m| anyhow::anyhow!("--{flag} {v:?}: {m}"))?;
            return Ok(v);
        }
        if let Some(v) = default {
            return Ok(v);
        }
        if !interactive {
            bail!("--{flag} is required (no terminal to ask on): pass --{flag} <{label}>");
        }
        prompt_until_valid(&mut input, &mut output, label, check)
    };
    let name = ask(
        "name",
        "name",
        args.name.clone(),
        configured.map(|s| s.name.clone()),
        &|v| crate::config::validate_deployment_name(v).map_err(|m| format!("the name {m}")),
    )?;
    let latitude = ask(
        "latitude",
        "latitude",
        args.latitude.clone(),
        configured.map(|s| s.latitude.to_string()),
        &|v| parse_coordinate(v, validate_latitude).map(|_| ()),
    )?;
    let longitude = ask(
        "longitude",
        "longitude",
        args.longitude.clone(),
        configured.map(|s| s.longitude.to_string()),
        &|v| parse_coordinate(v, validate_longitude).map(|_| ()),
    )?;
    Ok(SiteInput {
        name: name.trim().to_string(),
        latitude: parse_coordinate(&latitude, validate_latitude).map_err(anyhow::Error::msg)?,
        longitude: parse_coordinate(&longitude, validate_longitude).map_err(anyhow::Error::msg)?,
    })
}

/// The `--name` check of [`site_from`], for use before anything is touched.
fn check_name(name: &str) -> anyhow::Result<()> {
    crate::config::validate_deployment_name(name)
        .map_err(|m| anyhow::anyhow!("--name {name:?}: the name {m}"))
}

fn parse_coordinate(text: &str, check: fn(f64) -> Result<(), String>) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number in degrees"))?;
    check(v)?;
    Ok(v)
}

/// Asks on `output` until `input` gives a value `check` accepts (re-prompting with the
/// reason); end of input is an error.
fn prompt_until_valid(
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    label: &str,
    check: &dyn Fn(&str) -> Result<(), String>,
) -> anyhow::Result<String> {
    loop {
        write!(output, "Enter the {label} of the deployment: ")?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            bail!("no {label} given (end of input)");
        }
        let value = line.trim().to_string();
        match check(&value) {
            Ok(()) => return Ok(value),
            Err(m) => writeln!(output, "Invalid {label}: {m}. Try again.")?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_coordinates_are_reprompted_with_the_reason() {
        let mut input = std::io::Cursor::new(b"abc\n91\n45.5\n".to_vec());
        let mut output = Vec::new();
        let v = prompt_until_valid(&mut input, &mut output, "latitude", &|v| {
            parse_coordinate(v, validate_latitude).map(|_| ())
        })
        .unwrap();
        assert_eq!(v, "45.5");
        let text = String::from_utf8(output).unwrap();
        assert_eq!(text.matches("Enter the latitude").count(), 3, "{text}");
        assert!(text.contains("\"abc\" is not a number"), "{text}");
        assert!(text.contains("Invalid latitude"), "{text}");
    }

    #[test]
    fn end_of_input_while_prompting_is_an_error_not_a_loop() {
        let mut input = std::io::Cursor::new(Vec::new());
        let mut output = Vec::new();
        let e = prompt_until_valid(&mut input, &mut output, "name", &|_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("no name given"));
    }
}
