//! `acoupi check`: the health check run before a deployment starts.
//!
//! Each check yields findings: errors (the deployment would not work) and warnings (it
//! would, but something deserves attention). Every finding says what to do. The same
//! checks serve `deployment start`; `deployment status` uses only the cheap ones (it
//! never opens the microphone).

use std::time::Duration;

use crate::audio::test_capture;
use crate::config::schema::{Config, Program};
use crate::daemon::control::{self, WorkerHealth};
use crate::messaging::http::check_http;
use crate::messaging::mqtt::check_mqtt_blocking;
use crate::system::layout::{Layout, StoragePaths};
use crate::system::sysroot::SysRoot;
use crate::system::systemd::units_installed;
use crate::system::{clock, device_id, storage};
use crate::tasks::management::retention;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The deployment would not work.
    Error,
    /// Worth attention; does not block a deployment.
    Warning,
}

/// One problem found, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong and what to do.
    pub message: String,
}

impl Finding {
    fn error(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            message: message.into(),
        }
    }
    fn warning(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

/// Loads and validates the configuration; `Err` holds the findings that stop every
/// further check (nothing else can be checked without a valid configuration).
/// A file that does not load gets, after its causes, how to get a working one back.
pub fn config_findings(layout: &Layout) -> Result<Config, Vec<Finding>> {
    let in_file = |errors: Vec<crate::config::FieldError>, path: &std::path::Path| {
        errors
            .into_iter()
            .map(|f| Finding::error(format!("{}: {f}", path.display())))
            .collect::<Vec<_>>()
    };
    let config = crate::config::load(&layout.config_file).map_err(|e| {
        let missing = matches!(e, crate::config::ConfigError::NotFound { .. });
        let mut findings = match e {
            crate::config::ConfigError::Invalid { path, errors } => in_file(errors, &path),
            other => vec![Finding::error(crate::error::chain(&other))],
        };
        if !missing || !super::broken::backups(layout).is_empty() {
            findings.push(Finding::warning(format!(
                "to repair the configuration: {}",
                super::broken::restore_hint(layout)
            )));
        }
        findings
    })?;
    // The storage paths as this installation resolves them must not overlap either.
    let overlaps = super::config::storage_overlaps(layout, &config);
    if overlaps.is_empty() {
        Ok(config)
    } else {
        Err(in_file(overlaps, &layout.config_file))
    }
}

/// Every check, in the order a user would fix them.
pub fn run_checks(layout: &Layout) -> Vec<Finding> {
    let config = match config_findings(layout) {
        Ok(c) => c,
        Err(findings) => return findings,
    };
    let mut findings = Vec::new();
    let paths = layout.storage_paths(&config.paths);
    match storage::storage_owner(layout).and_then(|owner| storage::ensure_storages(&paths, owner)) {
        Err(e) => findings.push(Finding::error(crate::error::chain(&e))),
        Ok(()) => {
            for dir in [&paths.recordings, &paths.tmp_audio] {
                if let Err(e) = storage::check_writable(dir) {
                    findings.push(Finding::error(crate::error::chain(&e)));
                }
            }
            if let Err(e) =
                retention::check_min_free(&paths.recordings, config.retention.min_free_space_mb)
            {
                findings.push(Finding::error(e.to_string()));
            } else if let Err(e) =
                storage::free_space_ok(&paths.recordings, config.retention.min_free_space_mb)
            {
                findings.push(Finding::error(crate::error::chain(&e)));
            }
            let metadata = metadata_findings(&paths.db_metadata);
            if metadata.is_empty() {
                findings.extend(audit_findings(layout, &config));
            }
            findings.extend(metadata);
            if let Err(e) = storage::hand_over_db_to_service(layout, &paths.db_metadata) {
                findings.push(Finding::error(crate::error::chain(&e)));
            }
        }
    }
    findings.extend(microphone_findings(layout, &config));
    findings.extend(messaging_findings(layout, &config, &paths));
    findings.extend(detection_findings(&config));
    match clock::clock_sync() {
        Ok(c) if c.synchronised => {}
        Ok(_) => findings.push(Finding::warning(
            "the system clock is not synchronised: file times may be wrong until it is (connect to a network with NTP, or add an RTC module)",
        )),
        Err(e) => findings.push(Finding::warning(format!("cannot tell whether the clock is synchronised: {}", crate::error::chain(&e)))),
    }
    if !units_installed(layout) {
        let fix = match layout.mode {
            crate::system::layout::Mode::System => "reinstall the acoupi image or package",
            crate::system::layout::Mode::User => "`acoupi deployment start` installs them",
        };
        findings.push(Finding::warning(format!(
            "the systemd units acoupi.service and acoupi-beat.service are not installed: {fix}"
        )));
    }
    findings
}

/// How many of the newest recordings `check` audits at most: each costs a `stat` and,
/// when its file is there, a read of its header, so the audit stays well inside the
/// 50 ms a check may take (issue 14) whatever the schedule; two days of 10 s files would
/// be 17,280.
const CHECK_AUDIT_ROWS: usize = 1000;

/// `acoupi audit`'s findings, one line per kind with the first path and the fix. A row
/// whose file is gone is an error (a recording is lost and nobody has said so yet);
/// the rest are warnings: the recorder registers files without a row when it starts, and
/// a damaged file does not stop a deployment. The integrity check is left out: the
/// recorder's last one is reported with metadata.db's findings.
fn audit_findings(layout: &Layout, config: &Config) -> Vec<Finding> {
    use crate::store::audit::FindingKind;
    let mut opts = super::audit::options(layout, config);
    // The last two days, and of those at most the newest CHECK_AUDIT_ROWS recordings:
    // what a check can afford at any archive size and any schedule (two days of 10 s
    // files are 17,280). `acoupi audit` and the recorder's start-up cover the rest, and
    // the integrity check.
    opts.integrity = false;
    let two_days = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    let newest = crate::store::metadata::MetadataStore::open_for_reading(&opts.metadata_db)
        .and_then(|store| store.start_of_newest(CHECK_AUDIT_ROWS));
    opts.since = Some(match newest {
        Ok(Some(start)) => start.max(two_days),
        // Fewer recordings, or no database (the metadata findings say why).
        _ => two_days,
    });
    let report = match crate::store::run_audit(&opts) {
        Ok(report) => report,
        Err(e) => {
            return vec![Finding::error(format!(
                "auditing the recordings: {}",
                crate::error::chain(&e)
            ))]
        }
    };
    let mut findings = Vec::new();
    for kind in FindingKind::ALL {
        let mut of_kind = report.of_kind(kind);
        let Some(first) = of_kind.next() else {
            continue;
        };
        let more = of_kind.count();
        let others = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let fix = if kind.repairable() {
            kind.fix().to_string()
        } else {
            format!("{}; `acoupi audit` lists them all", kind.fix())
        };
        let message = format!(
            "{} {}: {}{others}; {fix}",
            more + 1,
            kind.describe(),
            first.path.display()
        );
        findings.push(match kind {
            FindingKind::MissingFile | FindingKind::DamagedDatabase => Finding::error(message),
            _ => Finding::warning(message),
        });
    }
    findings
}

/// metadata.db opens and is ours (a foreign database is refused untouched). An empty
/// (0-byte) file is left as it is and reported: the recorder would start a new, empty
/// store in it, which the user should hear about before it happens.
fn metadata_findings(db: &std::path::Path) -> Vec<Finding> {
    if std::fs::metadata(db).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return vec![Finding::warning(format!(
            "{} is an empty file (0 bytes): the recorder will start a new, empty store in it; if it held deployments and recordings, restore it from a backup first (the recordings on disk are untouched)",
            db.display()
        ))];
    }
    // Nothing recorded yet: the recorder creates it.
    if !db.exists() {
        return Vec::new();
    }
    // Read only, at a cost independent of its size: it opens, is ours and answers. The
    // integrity check over every page belongs to the recorder (start-up and daily) and
    // `acoupi audit`; its last result is reported here.
    match crate::store::metadata::MetadataStore::open_for_reading(db)
        .and_then(|store| store.active_deployment().and(store.last_integrity()))
    {
        Ok(Some(last)) if !last.ok() => {
            let status = super::status::IntegrityStatus::from(last);
            vec![Finding::error(format!(
                "{}; {}",
                super::status::integrity_failure(&status),
                crate::store::audit::FindingKind::DamagedDatabase.fix()
            ))]
        }
        Ok(_) => Vec::new(),
        Err(e) => vec![Finding::error(crate::error::chain(&e))],
    }
}

/// The microphone check: the running recorder's live state when it holds the device,
/// else a 0.1 s test capture with the configured rate, channels and format.
fn microphone_findings(layout: &Layout, config: &Config) -> Vec<Finding> {
    let mic = &config.microphone;
    if let Ok(status) = control::query(&layout.control_socket(), Duration::from_secs(2)) {
        return match status.recording.health {
            WorkerHealth::Ok => Vec::new(),
            WorkerHealth::Notok => vec![Finding::error(format!(
                "the running recorder reports a problem with {:?}: {}",
                mic.device_name, status.recording.detail
            ))],
        };
    }
    match test_capture(
        &mic.device_name,
        mic.samplerate,
        mic.audio_channels,
        mic.sample_format,
        0.1,
    ) {
        Ok(_) => Vec::new(),
        Err(e) => vec![Finding::error(format!(
            "microphone {:?}: {}; run `acoupi devices` to see what is connected",
            mic.device_name,
            crate::error::chain(&e)
        ))],
    }
}

/// The connected program's checks: the outbox opens, and each configured messenger
/// connects and authenticates within its timeout (the failure text says which step failed).
fn messaging_findings(layout: &Layout, config: &Config, paths: &StoragePaths) -> Vec<Finding> {
    let Some(messaging) = config
        .messaging
        .as_ref()
        .filter(|_| config.program == Program::Connected)
    else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    match crate::daemon::messaging::open_outbox(layout, paths, messaging) {
        Err(e) => findings.push(Finding::error(format!("{e:#}"))),
        Ok(outbox) => match storage::hand_over_db_to_service(layout, outbox.path())
            .map_err(|e| crate::error::chain(&e))
            .and_then(|()| outbox.stats().map_err(|e| crate::error::chain(&e)))
        {
            Ok(stats) if stats.failed_permanent > 0 => findings.push(Finding::warning(format!(
                "{} message(s) in {} were rejected for good by a receiver: see `journalctl -u acoupi` for the reason",
                stats.failed_permanent,
                outbox.path().display()
            ))),
            Ok(_) => {}
            Err(e) => findings.push(Finding::error(e)),
        },
    }
    // The messengers' errors name the failed step and its fix themselves (their causes,
    // resolver texts among them, vary by system and would follow the fix).
    if let Some(mqtt) = &messaging.mqtt {
        let device =
            device_id::device_id(&SysRoot::default()).map_or_else(|_| "acoupi".into(), |d| d.id);
        let timeout = Duration::from_secs(u64::from(mqtt.timeout.max(1)));
        if let Err(e) = check_mqtt_blocking(mqtt, &device, timeout) {
            findings.push(Finding::error(format!("mqtt: {e}")));
        }
    }
    if let Some(http) = &messaging.http {
        let timeout = Duration::from_secs(u64::from(http.timeout.max(1)));
        if let Err(e) = check_http(http, timeout) {
            findings.push(Finding::error(format!("http: {e}")));
        }
    }
    findings
}

/// The detection model, when configured, loads and runs on a second of silence: a model
/// that cannot would fail on the first recording of the deployment instead.
fn detection_findings(config: &Config) -> Vec<Finding> {
    let Some(section) = &config.detection else {
        return Vec::new();
    };
    match crate::detection::Model::load(section)
        .and_then(|model| crate::detection::detect_silence(&model, 1.0))
    {
        Ok(_) => Vec::new(),
        Err(e) => vec![Finding::error(crate::error::chain(&e))],
    }
}

/// `acoupi check`: prints each finding with its fix, or "Health checks passed".
/// Returns `Err` (exit code 1) when any error was found.
pub fn run(layout: &Layout) -> anyhow::Result<()> {
    let findings = run_checks(layout);
    print_findings(&findings);
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(super::Refused("health checks failed".into()).into());
    }
    println!("{}", super::style::green("Health checks passed"));
    Ok(())
}

/// Prints findings, errors in red and warnings in yellow.
pub fn print_findings(findings: &[Finding]) {
    for f in findings {
        match f.severity {
            Severity::Error => eprintln!("{} {}", super::style::red("error:"), f.message),
            Severity::Warning => eprintln!("{} {}", super::style::yellow("warning:"), f.message),
        }
    }
}
