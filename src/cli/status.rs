//! `acoupi deployment status`: the four sections of the deployment guide (system
//! services, workers, program, deployment), gathered without touching the microphone:
//! unit states from systemd, the workers from the recorder's control socket, the program
//! from the configuration, the deployment from metadata.db (read-only and without a check
//! of its own, so it costs the same on a large database: the recording summary, and the
//! last integrity check the recorder stored).

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

mod render;

pub use render::render_status;

use super::{broken, check};
use crate::config::schema::Program;
use crate::daemon::control::{self, WorkerHealth};
use crate::schedule::{parse_time_zone, Location, Schedule};
use crate::store::audit::FindingKind;
use crate::store::metadata::{Deployment, IntegrityRecord, MetadataStore};
use crate::store::outbox::Outbox;
use crate::store::StoreError;
use crate::system::layout::{Layout, StoragePaths};
use crate::system::metrics::disk_space;
use crate::system::storage;
use crate::system::systemd::{Systemctl, UnitState, UNITS};

/// Everything `deployment status` shows, also its `--json` form.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Unit states of `acoupi` and `beat`.
    pub services: Services,
    /// The workers, as the recorder reports them.
    pub workers: Workers,
    /// Whether the configuration is usable.
    pub program: ProgramStatus,
    /// The deployment.
    pub deployment: DeploymentStatus,
}

/// The two services.
#[derive(Debug, Clone, Serialize)]
pub struct Services {
    /// `acoupi.service`: `active`, `inactive`, `failed`, `activating`, … or `unknown`.
    pub acoupi: UnitState,
    /// `acoupi-beat.service`, the same way.
    pub beat: UnitState,
    /// How often systemd restarted `acoupi.service` on its own (crash, watchdog) since it
    /// was last started by hand; `None` when systemd did not say.
    pub acoupi_restarts: Option<u32>,
    /// The same for `acoupi-beat.service`.
    pub beat_restarts: Option<u32>,
    /// Why `acoupi.service` last failed (`watchdog`, `signal`, `exit-code`,
    /// `start-limit-hit`, …), when its last run did not end in success.
    pub acoupi_failure: Option<String>,
    /// The same for `acoupi-beat.service`.
    pub beat_failure: Option<String>,
}

/// One unit as `collect_status` reports it.
struct ServiceState {
    state: UnitState,
    restarts: Option<u32>,
    failure: Option<String>,
}

fn service_state(systemctl: &Systemctl, unit: &str) -> ServiceState {
    match systemctl.status(unit) {
        Ok(s) => ServiceState {
            state: s.state,
            restarts: s.restarts,
            failure: Some(s.result).filter(|r| !r.is_empty() && r != "success"),
        },
        Err(_) => ServiceState {
            state: UnitState::Unknown,
            restarts: None,
            failure: None,
        },
    }
}

word_enum! {
    /// Whether the recorder answers on its control socket.
    pub enum Availability {
        /// It answered.
        Available => "available",
        /// No answer (not running, or stuck).
        Unavailable => "unavailable",
    }
}

word_enum! {
    /// The program section's verdict.
    pub enum ProgramHealth {
        /// The configuration loads and metadata.db reads.
        Ok => "ok",
        /// Something stops the program (see `problem`).
        Unhealthy => "unhealthy",
    }
}

word_enum! {
    /// The verdict of the last integrity check of metadata.db.
    pub enum IntegrityVerdict {
        /// SQLite found nothing wrong.
        Ok => "ok",
        /// SQLite reported damage (see `problems`).
        Failed => "failed",
    }
}

word_enum! {
    /// Whether a deployment is running, as metadata.db says.
    pub enum DeploymentState {
        /// A deployment is started and not ended.
        Active => "active",
        /// None is (or nothing was ever deployed).
        Inactive => "inactive",
        /// metadata.db cannot be read.
        Unknown => "unknown",
    }
}

/// The workers section.
#[derive(Debug, Clone, Serialize)]
pub struct Workers {
    /// `available` when the recorder answers on its control socket, else `unavailable`.
    pub status: Availability,
    /// `ok` / `notok`, when available.
    pub recording: Option<WorkerHealth>,
    /// `ok` / `notok`, when available.
    pub default: Option<WorkerHealth>,
    /// What the recording worker is doing.
    pub detail: Option<String>,
}

/// The program section.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramStatus {
    /// `ok` or `unhealthy`.
    pub status: ProgramHealth,
    /// The first problem, when unhealthy, with its causes.
    pub problem: Option<String>,
    /// What to do about it, when there is something specific to say.
    pub fix: Option<String>,
    /// The connected program's outbox, once messages.db exists.
    pub messages: Option<MessagesStatus>,
}

/// What the outbox holds: is the station's news getting out?
#[derive(Debug, Clone, Serialize)]
pub struct MessagesStatus {
    /// Waiting for delivery (an outage shows as a growing number).
    pub queued: u64,
    /// Delivered to every target (and not yet pruned).
    pub sent: u64,
    /// Rejected for good by a receiver (the reason is in the journal).
    pub rejected: u64,
    /// When the last message was delivered, RFC 3339 UTC.
    pub last_sent: Option<String>,
}

/// The outbox figures when the connected program is configured and messages.db exists
/// (status never creates it). A database the CLI opened as root goes back to the
/// service user, as metadata.db does.
fn messages_status(
    layout: &Layout,
    config: &crate::config::schema::Config,
    paths: &StoragePaths,
) -> Option<MessagesStatus> {
    let messaging = config
        .messaging
        .as_ref()
        .filter(|_| config.program == Program::Connected)?;
    let path = layout.messages_db(paths, messaging.messages_db.as_deref());
    if !path.exists() {
        return None;
    }
    let stats = Outbox::open(&path).and_then(|o| o.stats()).ok();
    let _ = storage::hand_over_db_to_service(layout, &path);
    let stats = stats?;
    Some(MessagesStatus {
        queued: stats.queued,
        sent: stats.sent,
        rejected: stats.failed_permanent,
        last_sent: stats.last_sent.map(|t| t.to_string()),
    })
}

/// The deployment section.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentStatus {
    /// `active`, `inactive`, or `unknown` when metadata.db cannot be read.
    pub status: DeploymentState,
    /// Deployment name.
    pub name: Option<String>,
    /// Latitude in degrees.
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    pub longitude: Option<f64>,
    /// Start, RFC 3339 UTC.
    pub started_on: Option<String>,
    /// Recordings stored so far.
    pub recordings: Option<u64>,
    /// Start of the last recording, RFC 3339 UTC.
    pub last_recording: Option<String>,
    /// Free bytes on the recordings file system.
    pub free_space_bytes: Option<u64>,
    /// Next (or current) recording window, local time.
    pub next_window: Option<String>,
    /// The last integrity check of metadata.db (the recorder's, at start-up and daily).
    pub integrity: Option<IntegrityStatus>,
}

/// The last integrity check of metadata.db, as the recorder stored it.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrityStatus {
    /// `ok` or `failed`.
    pub status: IntegrityVerdict,
    /// `quick_check` (start-up) or `integrity_check` (the daily pass).
    pub check: String,
    /// When it ran, RFC 3339 UTC.
    pub checked_on: String,
    /// SQLite's report, when it failed.
    pub problems: Option<String>,
}

impl From<IntegrityRecord> for IntegrityStatus {
    fn from(r: IntegrityRecord) -> Self {
        IntegrityStatus {
            status: if r.ok() {
                IntegrityVerdict::Ok
            } else {
                IntegrityVerdict::Failed
            },
            check: r.check,
            checked_on: r.checked_on.to_string(),
            problems: r.problems,
        }
    }
}

/// A failed integrity check makes the program unhealthy: the recorder keeps writing to a
/// file SQLite calls damaged, and the operator must hear it from status, not the journal.
fn integrity_problem(program: ProgramStatus, deployment: &DeploymentStatus) -> ProgramStatus {
    let Some(failed) = deployment
        .integrity
        .as_ref()
        .filter(|i| i.problems.is_some())
    else {
        return program;
    };
    if program.problem.is_some() {
        return program;
    }
    ProgramStatus {
        status: ProgramHealth::Unhealthy,
        problem: Some(integrity_failure(failed)),
        fix: Some(FindingKind::DamagedDatabase.fix().into()),
        ..program
    }
}

/// `metadata.db failed SQLite's quick_check at …: …`, for status and check.
pub fn integrity_failure(i: &IntegrityStatus) -> String {
    format!(
        "metadata.db failed SQLite's {} at {} (UTC): {}",
        i.check,
        i.checked_on,
        i.problems.as_deref().unwrap_or("")
    )
}

/// Gathers the status without touching the microphone: unit states, the control socket,
/// the configuration and metadata.db.
pub fn collect_status(layout: &Layout) -> Status {
    let systemctl = Systemctl::new(layout.mode);
    let (acoupi, beat) = (
        service_state(&systemctl, UNITS[0]),
        service_state(&systemctl, UNITS[1]),
    );
    let services = Services {
        acoupi: acoupi.state,
        beat: beat.state,
        acoupi_restarts: acoupi.restarts,
        beat_restarts: beat.restarts,
        acoupi_failure: acoupi.failure,
        beat_failure: beat.failure,
    };
    let workers = match control::query(&layout.control_socket(), Duration::from_secs(2)) {
        Ok(s) => Workers {
            status: Availability::Available,
            recording: Some(s.recording.health),
            default: Some(s.default.health),
            detail: Some(s.recording.detail),
        },
        Err(_) => Workers {
            status: Availability::Unavailable,
            recording: None,
            default: None,
            detail: None,
        },
    };
    let (program, deployment) = match check::config_findings(layout) {
        // A broken file on disk does not stop a running deployment (the recorder keeps
        // what it loaded): show the deployment metadata.db holds, from the last known
        // storages, and say how to get the configuration back.
        Err(findings) => {
            let config = broken::last_known_config(layout);
            let paths = layout.storage_paths(&config.paths);
            let problem = findings.first().map_or_else(
                || "the configuration is broken".to_string(),
                |f| format!("the configuration is broken: {}", f.message),
            );
            let program = ProgramStatus {
                status: ProgramHealth::Unhealthy,
                problem: Some(problem),
                fix: Some(broken::restore_hint(layout)),
                messages: None,
            };
            let deployment = match deployment_section(layout, &config, &paths) {
                Ok(d) => d,
                Err(_) => DeploymentStatus {
                    status: DeploymentState::Unknown,
                    ..inactive()
                },
            };
            (program, deployment)
        }
        Ok(config) => {
            let paths = layout.storage_paths(&config.paths);
            match deployment_section(layout, &config, &paths) {
                Ok(deployment) => (
                    ProgramStatus {
                        status: ProgramHealth::Ok,
                        problem: None,
                        fix: None,
                        messages: messages_status(layout, &config, &paths),
                    },
                    deployment,
                ),
                // A damaged or unreadable metadata.db must not read as "not deployed".
                Err(problem) => (
                    ProgramStatus {
                        status: ProgramHealth::Unhealthy,
                        problem: Some(problem),
                        fix: None,
                        messages: None,
                    },
                    DeploymentStatus {
                        status: DeploymentState::Unknown,
                        ..inactive()
                    },
                ),
            }
        }
    };
    let program = integrity_problem(program, &deployment);
    Status {
        services,
        workers,
        program,
        deployment,
    }
}

/// The deployment section from metadata.db; `Err` says why the database cannot be read
/// (with its causes).
fn deployment_section(
    layout: &Layout,
    config: &crate::config::schema::Config,
    paths: &StoragePaths,
) -> Result<DeploymentStatus, String> {
    // Status never creates a database (opening a missing one would): none, no deployment.
    if !paths.db_metadata.exists() {
        return Ok(inactive());
    }
    // Read only: no check, no migration, no write lock, whatever the size of the file.
    let section = match MetadataStore::open_for_reading(&paths.db_metadata)
        .and_then(|s| s.active_deployment().map(|d| (s, d)))
    {
        Ok((store, Some(d))) => Ok(with_integrity(
            &store,
            active_status(&store, &d, config, &paths.recordings),
        )),
        Ok((store, None)) => Ok(with_integrity(&store, inactive())),
        // No storages yet: nothing was ever deployed.
        Err(StoreError::ParentMissing { .. }) => Ok(inactive()),
        Err(e) => Err(crate::error::chain(&e)),
    };
    // Opened as root, SQLite may have made `-wal`/`-shm` files the services could not
    // write: they go to the service user, as after `check`.
    let _ = storage::hand_over_db_to_service(layout, &paths.db_metadata);
    section
}

/// The section with the last integrity check the recorder stored, when there is one.
fn with_integrity(store: &MetadataStore, section: DeploymentStatus) -> DeploymentStatus {
    DeploymentStatus {
        integrity: store.last_integrity().ok().flatten().map(Into::into),
        ..section
    }
}

fn inactive() -> DeploymentStatus {
    DeploymentStatus {
        status: DeploymentState::Inactive,
        name: None,
        latitude: None,
        longitude: None,
        started_on: None,
        recordings: None,
        last_recording: None,
        free_space_bytes: None,
        next_window: None,
        integrity: None,
    }
}

fn active_status(
    store: &MetadataStore,
    d: &Deployment,
    config: &crate::config::schema::Config,
    recordings: &std::path::Path,
) -> DeploymentStatus {
    let summary = store.recording_summary(d.id).ok();
    let next_window = parse_time_zone(&config.timezone).ok().and_then(|tz| {
        let location = d
            .latitude
            .zip(d.longitude)
            .map(|(latitude, longitude)| Location {
                latitude,
                longitude,
            });
        let schedule = Schedule::new(&config.recording, tz.clone(), location).ok()?;
        let now = Timestamp::now();
        let (start, end) = schedule.next_window(now)?;
        let fmt = |t: Timestamp| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        };
        // Continuous schedules come back cut at the search horizon: say what they mean.
        if end.duration_since(start) > jiff::SignedDuration::from_hours(24 * 300) {
            return Some("around the clock".to_string());
        }
        Some(if start <= now {
            format!("open now, until {}", fmt(end))
        } else {
            format!("{} – {}", fmt(start), fmt(end))
        })
    });
    DeploymentStatus {
        status: DeploymentState::Active,
        name: Some(d.name.clone()),
        latitude: d.latitude,
        longitude: d.longitude,
        started_on: Some(d.started_on.to_string()),
        recordings: summary.as_ref().map(|s| s.count),
        last_recording: summary.and_then(|s| s.last).map(|r| r.datetime.to_string()),
        free_space_bytes: disk_space(recordings).ok().map(|d| d.free_bytes),
        next_window,
        integrity: None,
    }
}
