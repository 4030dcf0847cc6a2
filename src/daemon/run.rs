//! `acoupi run`: the recording worker and the default worker in one process, under
//! systemd (`acoupi.service`, `Type=notify`).
//!
//! Start-up: load the configuration, open the storages, find the active deployment,
//! repair leftovers of a crash in the temporary directory, start the capture thread, then
//! `READY=1`. The default worker is a current-thread tokio runtime: it stores finished
//! files in metadata.db, runs the management task, answers the control socket, judges
//! progress for the watchdog and updates `STATUS=`. SIGHUP reloads the configuration
//! (an invalid one is logged and the old one kept); SIGTERM finishes the current file,
//! runs a last management pass and exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use uuid::Uuid;

use crate::audio::{repair_tmp_dir, spawn_recorder, FinishedFile, RepairOutcome};
use crate::audio::{RecorderConfig, RecorderEvent, RecorderHandle, RecorderState};
use crate::config::schema::Config;
use crate::daemon::control::{
    self, DaemonStatus, DefaultWorker, RecordingWorker, WorkerHealth, PROTOCOL,
};
use crate::daemon::errors::{ErrorKind, ErrorTally};
use crate::daemon::messaging::{self, MessagingService};
use crate::daemon::notify;
use crate::daemon::watchdog::{self, RecorderObservation};
use crate::schedule::plan::{Plan, Planner};
use crate::schedule::{parse_time_zone, Location, SavingFilters, Schedule};
use crate::store::metadata::{Deployment, Gap, MetadataStore, NewRecording};
use crate::system::layout::{Layout, StoragePaths};
use crate::system::{clock, device_id, storage, sysroot::SysRoot};
use crate::tasks::management::{KeepRule, Management, PassReport};

/// How often the management task runs.
const MANAGEMENT_INTERVAL: Duration = Duration::from_secs(10);
/// How long a disk-full pause lasts before the recorder tries again.
const DISK_FULL_RETRY: Duration = Duration::from_secs(30);

/// Runs the daemon until SIGTERM/SIGINT. Errors are start-up failures (bad configuration,
/// unusable storages, no deployment); once running, problems are states, not exits.
pub fn run(layout: Layout) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(Daemon::start(layout)?.serve())
}

/// The schedule with a switch the management task throws when the disk is full.
struct Gate {
    schedule: Schedule,
    paused: AtomicBool,
}

impl Planner for Gate {
    fn plan_at(&self, t: Timestamp) -> Plan {
        if self.paused.load(Ordering::Relaxed) {
            let until = t.checked_add(DISK_FULL_RETRY).ok();
            return Plan::Idle { until };
        }
        self.schedule.plan_at(t)
    }
}

/// Everything derived from one version of the configuration.
struct Program {
    config: Config,
    paths: StoragePaths,
    gate: Arc<Gate>,
    management: Management,
}

impl Program {
    fn new(config: Config, layout: &Layout, deployment: &Deployment) -> anyhow::Result<Program> {
        let paths = layout.storage_paths(&config.paths);
        let tz = parse_time_zone(&config.timezone)?;
        let location = match (deployment.latitude, deployment.longitude) {
            (Some(latitude), Some(longitude)) => Some(Location {
                latitude,
                longitude,
            }),
            _ => None,
        };
        let schedule = Schedule::new(&config.recording, tz.clone(), location)?;
        let keep: Option<KeepRule> = match &config.recording_saving {
            None => None,
            Some(saving) => {
                let filters = SavingFilters::new(Some(saving), tz, location)?;
                Some(Box::new(move |t| filters.keeps(t)))
            }
        };
        let management = Management {
            keep,
            recordings_root: paths.recordings.clone(),
            min_free_bytes: config.retention.min_free_space_mb * 1024 * 1024,
            max_age: config
                .retention
                .max_age_days
                .map(|d| jiff::SignedDuration::from_hours(i64::from(d) * 24)),
        };
        Ok(Program {
            config,
            paths,
            gate: Arc::new(Gate {
                schedule,
                paused: AtomicBool::new(false),
            }),
            management,
        })
    }

    fn recorder_config(&self, deployment: &Deployment, serial: &str) -> RecorderConfig {
        let mic = &self.config.microphone;
        RecorderConfig {
            device_name: mic.device_name.clone(),
            samplerate: mic.samplerate,
            channels: mic.audio_channels,
            format: mic.sample_format,
            bit_depth: mic.bit_depth,
            time_expansion: mic.time_expansion,
            tmp_dir: self.paths.tmp_audio.clone(),
            deployment_name: Some(deployment.name.clone()),
            position: deployment.latitude.zip(deployment.longitude),
            serial: Some(serial.to_string()),
        }
    }
}

/// A running capture thread and the flag that stops it.
struct Capture {
    handle: RecorderHandle,
    shutdown: Arc<AtomicBool>,
    started: Timestamp,
}

struct Daemon {
    layout: Layout,
    store: MetadataStore,
    deployment: Deployment,
    serial: String,
    program: Program,
    capture: Option<Capture>,
    events: UnboundedReceiver<RecorderEvent>,
    events_tx: tokio::sync::mpsc::UnboundedSender<RecorderEvent>,
    started_at: Timestamp,
    files: u64,
    last_pass: Option<std::time::Instant>,
    last_error: Option<String>,
    schedule_ended: bool,
    stall_after: Duration,
    messaging: Option<MessagingService>,
    /// Every error met, by kind, for the connected program's summaries.
    errors: Arc<ErrorTally>,
}

impl Daemon {
    fn start(layout: Layout) -> anyhow::Result<Daemon> {
        let config = crate::config::load(&layout.config_file)?;
        let paths = layout.storage_paths(&config.paths);
        storage::ensure_storages(&paths, storage::storage_owner(&layout)?)?;
        let mut store = MetadataStore::open(&paths.db_metadata)?;
        let deployment = match store.active_deployment()? {
            Some(d) => d,
            None => match &config.deployment {
                // A deployment section in the configuration (the boot-partition file)
                // starts the deployment with no terminal.
                Some(site) => {
                    tracing::info!(name = %site.name, "starting the deployment from the configuration");
                    store.start_deployment(
                        &site.name,
                        Some(site.latitude),
                        Some(site.longitude),
                        Timestamp::now(),
                    )?
                }
                None => bail!(
                    "no active deployment in {}: run `acoupi deployment start`",
                    paths.db_metadata.display()
                ),
            },
        };
        let serial = device_id::device_id(&SysRoot::default())
            .map(|d| d.id)
            .unwrap_or_else(|_| "unknown".into());
        let program = Program::new(config, &layout, &deployment)?;
        let errors = Arc::new(ErrorTally::default());
        let messaging =
            MessagingService::start(&layout, &program.config, &program.paths, &serial, &errors)?;
        let (events_tx, events) = unbounded_channel();
        let mut daemon = Daemon {
            layout,
            store,
            deployment,
            serial,
            program,
            capture: None,
            events,
            events_tx,
            started_at: Timestamp::now(),
            files: 0,
            last_pass: None,
            last_error: None,
            schedule_ended: false,
            stall_after: watchdog::stall_after(notify::watchdog_timeout()),
            messaging,
            errors,
        };
        daemon.recover_tmp_dir()?;
        daemon.start_capture()?;
        Ok(daemon)
    }

    /// Registers what a crash left in the temporary directory: repaired `.part` files and
    /// finished `.wav` files whose row was never written.
    fn recover_tmp_dir(&mut self) -> anyhow::Result<()> {
        let mic = &self.program.config.microphone;
        // Shorter than one period (0.1 s) is noise from a crash, not a recording.
        let min_frames = u64::from(mic.samplerate / 10);
        for outcome in repair_tmp_dir(&self.program.paths.tmp_audio, min_frames) {
            match outcome {
                RepairOutcome::Recovered(file) => {
                    tracing::warn!(path = %file.path.display(), frames = file.frames, "recovered an interrupted recording");
                    self.register(&file)?;
                }
                RepairOutcome::Deleted { path, frames } => {
                    tracing::warn!(path = %path.display(), frames, "discarded an interrupted recording shorter than one period");
                }
                RepairOutcome::Failed { path, error } => {
                    tracing::error!(path = %path.display(), %error, "could not repair an interrupted recording; left in place");
                    self.errors.record(ErrorKind::RepairFailed);
                }
            }
        }
        // Finished files without a row: a crash between the rename and the insert (in
        // tmp/), or during a move or a retention delete (in recordings/). Nothing is
        // deleted here: each is registered again and the management task decides.
        let recordings = self.program.paths.recordings.clone();
        let audit = crate::store::audit(&self.store, &recordings, &self.program.paths.tmp_audio)?;
        for path in audit.files_without_row {
            let file = match crate::audio::repair::read_finished(&path) {
                Ok(f) => f,
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "unreadable recording without a row; left in place");
                    self.errors.record(ErrorKind::RepairFailed);
                    continue;
                }
            };
            tracing::warn!(path = %path.display(), "registering a finished recording that had no row");
            let id = self.register(&file)?;
            if path.starts_with(&recordings) {
                self.store.mark_kept(id, &path)?;
            }
        }
        Ok(())
    }

    fn start_capture(&mut self) -> anyhow::Result<()> {
        let cfg = self.program.recorder_config(&self.deployment, &self.serial);
        let shutdown = Arc::new(AtomicBool::new(false));
        let planner: Arc<dyn Planner> = self.program.gate.clone();
        let handle = spawn_recorder(cfg, planner, self.events_tx.clone(), shutdown.clone())?;
        self.capture = Some(Capture {
            handle,
            shutdown,
            started: Timestamp::now(),
        });
        self.schedule_ended = false;
        Ok(())
    }

    /// Stops the capture thread; it finishes the file in progress first.
    async fn stop_capture(&mut self) {
        if let Some(c) = self.capture.take() {
            c.shutdown.store(true, Ordering::Relaxed);
            let joined = tokio::task::spawn_blocking(move || c.handle.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the recording thread ended abnormally");
            }
        }
        while let Ok(event) = self.events.try_recv() {
            self.handle_event(event);
        }
    }

    /// Stores a finished file as a recording of the active deployment; returns its id.
    fn register(&mut self, file: &FinishedFile) -> anyhow::Result<Uuid> {
        let synced = clock::clock_sync().map(|c| c.synchronised).unwrap_or(false);
        let id = Uuid::new_v4();
        self.store.insert_recording(&NewRecording {
            id,
            path: file.path.clone(),
            datetime: file.start,
            duration_s: file.frames as f64 / f64::from(file.samplerate),
            samplerate_hz: file.samplerate,
            audio_channels: file.channels,
            deployment_id: self.deployment.id,
            clock_synced: synced,
            time_expansion: file.time_expansion,
            bit_depth: file.bit_depth,
            frames: file.frames,
        })?;
        Ok(id)
    }

    fn handle_event(&mut self, event: RecorderEvent) {
        let result = match event {
            RecorderEvent::FileFinished(file) => {
                self.files += 1;
                self.register(&file).map(|_| ())
            }
            RecorderEvent::Gap { start, end, reason } => {
                tracing::warn!(%start, %end, ?reason, "audio gap");
                self.store
                    .insert_gap(&Gap {
                        deployment_id: self.deployment.id,
                        started_on: start,
                        ended_on: end,
                        reason: reason.as_str().to_string(),
                    })
                    .map_err(Into::into)
            }
            RecorderEvent::Xrun { count, .. } => {
                tracing::warn!(count, "capture overrun recovered");
                Ok(())
            }
            RecorderEvent::DeviceLost { device, error } => {
                tracing::error!(%device, %error, "microphone lost; retrying");
                self.errors.record(ErrorKind::DeviceLost);
                Ok(())
            }
            RecorderEvent::DeviceBack { pcm } => {
                tracing::info!(%pcm, "microphone back");
                Ok(())
            }
            RecorderEvent::DiskFull { error } => {
                tracing::error!(%error, "disk full: file cut short");
                self.errors.record(ErrorKind::DiskFull);
                Ok(())
            }
            RecorderEvent::WriteFailed { error } => {
                tracing::error!(%error, "writing a recording failed");
                self.errors.record(ErrorKind::WriteFailed);
                Ok(())
            }
            RecorderEvent::ScheduleEnded => {
                tracing::info!("the schedule has ended (past end_date): no more recordings");
                self.schedule_ended = true;
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "storing a recorder event failed");
            self.failed(ErrorKind::StoreFailed, format!("{e:#}"));
        }
    }

    /// Counts an error for the summaries and keeps its text for `deployment status`.
    fn failed(&mut self, kind: ErrorKind, message: String) {
        self.errors.record(kind);
        self.last_error = Some(message);
    }

    fn management_pass(&mut self) {
        match self
            .program
            .management
            .pass(&mut self.store, Timestamp::now())
        {
            Ok(report) => {
                self.apply_disk_state(&report);
                if report != PassReport::default() {
                    tracing::info!(?report, "management pass");
                }
                self.last_pass = Some(std::time::Instant::now());
                self.last_error = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "management pass failed");
                self.failed(ErrorKind::ManagementFailed, e.to_string());
            }
        }
    }

    fn apply_disk_state(&self, report: &PassReport) {
        let was = self
            .program
            .gate
            .paused
            .swap(report.disk_full, Ordering::Relaxed);
        match (was, report.disk_full) {
            (false, true) => tracing::error!(
                root = %self.program.paths.recordings.display(),
                "disk full and nothing left to delete: recording paused until space returns"
            ),
            (true, false) => tracing::info!("free space is back: recording resumes"),
            _ => {}
        }
    }

    fn observation(&self) -> RecorderObservation {
        match &self.capture {
            Some(c) => RecorderObservation {
                state: c.handle.progress.state(),
                last_read: c.handle.progress.last_read(),
                started: c.started,
                stall_after: self.stall_after,
            },
            None => RecorderObservation {
                state: RecorderState::Stopped,
                last_read: None,
                started: self.started_at,
                stall_after: self.stall_after,
            },
        }
    }

    fn status(&self) -> DaemonStatus {
        let now = Timestamp::now();
        let obs = self.observation();
        let progress = self.capture.as_ref().map(|c| &c.handle.progress);
        let last_pass_age = self.last_pass.map(|t| t.elapsed());
        let recording_health = if self.program.gate.paused.load(Ordering::Relaxed) {
            WorkerHealth::Notok
        } else {
            watchdog::recording_health(&obs, now)
        };
        DaemonStatus {
            protocol: PROTOCOL,
            pid: std::process::id(),
            started_at: self.started_at.to_string(),
            recording: RecordingWorker {
                health: recording_health,
                state: state_name(obs.state, watchdog::is_stalled(&obs, now)).into(),
                detail: self.detail(&obs, now),
                device: self.program.config.microphone.device_name.clone(),
                frames: progress.map_or(0, |p| p.frames()),
                xruns: progress.map_or(0, |p| p.xruns()),
                files: self.files,
            },
            default: DefaultWorker {
                health: watchdog::default_health(last_pass_age, MANAGEMENT_INTERVAL),
                last_pass_age_s: last_pass_age.map(|d| d.as_secs()),
                last_error: self.last_error.clone(),
            },
        }
    }

    /// The `STATUS=` line and the status detail: what the recorder is doing right now.
    fn detail(&self, obs: &RecorderObservation, now: Timestamp) -> String {
        let tz = self.program.gate.schedule.time_zone();
        let local = |t: Timestamp| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        };
        if self.program.gate.paused.load(Ordering::Relaxed) {
            return "disk full: recording paused until space returns".into();
        }
        if watchdog::is_stalled(obs, now) {
            return "capture stalled: no audio from the microphone".into();
        }
        match obs.state {
            RecorderState::Recording => format!("recording ({} files so far)", self.files),
            RecorderState::Listening => match self.program.gate.schedule.plan_at(now) {
                Plan::Listen { until } => format!("listening; next file at {}", local(until)),
                _ => "listening".into(),
            },
            RecorderState::Idle => match self.program.gate.schedule.next_window(now) {
                // Inside a window the capture thread is about to open the microphone.
                Some((start, _)) if start <= now => "opening the microphone".into(),
                Some((start, _)) => format!("idle until {}", local(start)),
                None => "idle: the schedule has ended".into(),
            },
            RecorderState::DeviceMissing => format!(
                "microphone {:?} missing; retrying",
                self.program.config.microphone.device_name
            ),
            RecorderState::DiskFull => "disk full: the last file was cut short".into(),
            RecorderState::Stopped if self.schedule_ended => "the schedule has ended".into(),
            RecorderState::Stopped => "the recording thread has stopped".into(),
        }
    }

    async fn reload(&mut self) {
        notify::reloading();
        let result = crate::config::load(&self.layout.config_file)
            .map_err(anyhow::Error::from)
            .and_then(|c| Program::new(c, &self.layout, &self.deployment));
        match result {
            Ok(program) => {
                self.stop_capture().await;
                self.program = program;
                let capture = self.start_capture();
                // Messaging only after capture runs again: stopping the old service
                // waits for its last delivery and MQTT close, seconds when its server
                // has stopped answering, and the microphone must not wait for that.
                let (l, c, s) = (&self.layout, &self.program.config, &self.program.paths);
                let (id, errors) = (&self.serial, &self.errors);
                self.messaging =
                    messaging::reload(self.messaging.take(), l, c, s, id, errors).await;
                if let Err(e) = capture {
                    tracing::error!(error = %format!("{e:#}"), "restarting capture after reload failed");
                    self.failed(ErrorKind::ReloadFailed, format!("{e:#}"));
                } else {
                    tracing::info!(config = %self.layout.config_file.display(), "configuration reloaded");
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reload refused: keeping the running configuration");
                self.failed(ErrorKind::ReloadFailed, format!("reload refused: {e:#}"));
            }
        }
        notify::ready();
    }

    async fn serve(mut self) -> anyhow::Result<()> {
        let socket = self.layout.control_socket();
        let listener = control::bind(&socket)?;
        let pid_file = self.layout.pid_file();
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", pid_file.display()))?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut manage = tokio::time::interval(MANAGEMENT_INTERVAL);
        // A third of WatchdogSec between pings, and STATUS= at least every 5 s.
        let ping_every = notify::watchdog_timeout().map_or(Duration::from_secs(5), |t| t / 3);
        let mut tick = tokio::time::interval(ping_every.min(Duration::from_secs(5)));
        self.management_pass();
        notify::ready();
        tracing::info!(
            deployment = %self.deployment.name,
            device = %self.program.config.microphone.device_name,
            "recorder ready"
        );
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => self.reload().await,
                Some(event) = self.events.recv() => self.handle_event(event),
                _ = manage.tick() => self.management_pass(),
                _ = tick.tick() => self.tick(),
                conn = listener.accept() => {
                    if let Ok((stream, _)) = conn {
                        let answer = serde_json::to_string(&self.status()).unwrap_or_default();
                        tokio::spawn(control::answer(stream, answer));
                    }
                }
            }
        }
        notify::stopping();
        tracing::info!("stopping: finishing the current file");
        self.stop_capture().await;
        self.management_pass();
        if let Some(m) = self.messaging.take() {
            m.shutdown().await;
        }
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(&pid_file);
        tracing::info!("stopped");
        Ok(())
    }

    /// Watchdog and `STATUS=`: one place decides whether progress is being made.
    fn tick(&mut self) {
        let now = Timestamp::now();
        let obs = self.observation();
        let status = self.status();
        notify::status(&status.recording.detail);
        if watchdog::may_ping(&obs, status.default.health, self.schedule_ended, now) {
            notify::watchdog();
        } else {
            tracing::warn!(detail = %status.recording.detail, "withholding the watchdog ping");
        }
    }
}

fn state_name(state: RecorderState, stalled: bool) -> &'static str {
    match state {
        _ if stalled => "stalled",
        RecorderState::Idle => "idle",
        RecorderState::Listening => "listening",
        RecorderState::Recording => "recording",
        RecorderState::DeviceMissing => "device-missing",
        RecorderState::DiskFull => "disk-full",
        RecorderState::Stopped => "stopped",
    }
}
