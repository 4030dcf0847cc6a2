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
//!
//! A full disk is a state: the first refused write (a file cut short, a row SQLite cannot
//! commit, a move with no room, retention with nothing left to delete) pauses recording;
//! rows that could not be written are kept and retried before every management pass; the
//! pass that finds room for a file again ends the pause and records it as a `disk_full`
//! gap. One pause counts as one error.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use uuid::Uuid;

use crate::audio::device::error_chain;
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
use crate::store::StoreError;
use crate::system::layout::{Layout, StoragePaths};
use crate::system::{clock, device_id, storage, sysroot::SysRoot};
use crate::tasks::management::{available_bytes, KeepRule, Management, PassReport};

/// How often the management task runs.
const MANAGEMENT_INTERVAL: Duration = Duration::from_secs(10);
/// How far ahead a disk-full pause tells the capture thread it is idle: at that point
/// it opens the microphone to ask the plan again. It is not how long the pause lasts:
/// the management pass that finds room again lifts it (run at the next tick once the
/// storages have room, at the latest at the next interval), and the idle capture thread
/// asks the plan every second meanwhile, so recording resumes about two seconds after
/// space is back. It used to sleep through the whole 30 s whatever happened meanwhile.
const DISK_FULL_RETRY: Duration = Duration::from_secs(30);
/// Room beyond the audio itself that a file needs before a pause ends: its header and
/// GUANO chunk, and the pages metadata.db writes for its row.
const ROOM_MARGIN: u64 = 64 * 1024;

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
    /// Free bytes each storage needs before a disk-full pause ends: one file and its row.
    room_needed: u64,
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
        let mic = &config.microphone;
        let room_needed = u64::from(mic.samplerate)
            * u64::from(mic.audio_channels)
            * u64::from(mic.bit_depth / 8)
            * u64::from(config.recording.duration)
            + ROOM_MARGIN;
        Ok(Program {
            config,
            paths,
            gate: Arc::new(Gate {
                schedule,
                paused: AtomicBool::new(false),
            }),
            management,
            room_needed,
        })
    }

    /// Whether the temporary directory and metadata.db's folder each have room for one
    /// more file and its row, and the recordings root for that and the free space
    /// retention keeps (below it the management pass would pause again at once). A
    /// folder that cannot be measured does not hold a pause: a write refused again would
    /// say so.
    fn room_for_a_file(&self) -> bool {
        let p = &self.paths;
        let db_dir = p.db_metadata.parent().unwrap_or(Path::new("."));
        let kept_free = self.room_needed.max(self.management.min_free_bytes);
        [
            (p.tmp_audio.as_path(), self.room_needed),
            (db_dir, self.room_needed),
            (p.recordings.as_path(), kept_free),
        ]
        .into_iter()
        .all(|(dir, need)| available_bytes(dir).map_or(true, |a| a >= need))
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

/// A row metadata.db could not take when it was due (a full disk, a lock held past the
/// busy timeout). Kept in memory and retried before every management pass, so a file is
/// not left without a row until the next restart; if the daemon stops first, start-up
/// finds the file without a row and registers it then.
enum Unstored {
    /// A finished recording; `kept` when the file already lies in the recordings root.
    Recording { row: NewRecording, kept: bool },
    /// A capture gap.
    Gap(Gap),
}

impl Unstored {
    fn describe(&self) -> String {
        match self {
            Unstored::Recording { row, .. } => format!("recording {}", row.path.display()),
            Unstored::Gap(g) => format!("{} gap from {}", g.reason, g.started_on),
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
    /// Rows waiting for metadata.db to take them, oldest first.
    unstored: Vec<Unstored>,
    /// When the current disk-full pause began; `None` while there is room.
    disk_full_since: Option<Timestamp>,
}

impl Daemon {
    fn start(layout: Layout) -> anyhow::Result<Daemon> {
        let config = crate::config::load(&layout.config_file)?;
        let paths = layout.storage_paths(&config.paths);
        storage::ensure_storages(&paths, storage::storage_owner(&layout)?)?;
        let mut store = MetadataStore::open(&paths.db_metadata).map_err(|e| {
            // SQLite cannot even open a database without room for its shared-memory
            // index; its own words ("disk I/O error") would not tell an operator why.
            let dir = paths.db_metadata.parent().unwrap_or(Path::new("."));
            match available_bytes(dir) {
                Ok(free) if free < ROOM_MARGIN => anyhow::Error::new(e).context(format!(
                    "the disk holding {} is full ({free} bytes free): the recorder starts once there is room",
                    dir.display()
                )),
                _ => e.into(),
            }
        })?;
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
            unstored: Vec::new(),
            disk_full_since: None,
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
                    let row = self.new_row(&file);
                    self.store_or_keep(Unstored::Recording { row, kept: false });
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
        // tmp/), or during a move or a retention delete (in recordings/), or a row the
        // last run could not write. Nothing is deleted here: each is registered again and
        // the management task decides. A row that cannot be written now (a full disk) is
        // retried while running: refusing to start would record nothing at all.
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
            let row = self.new_row(&file);
            let kept = path.starts_with(&recordings);
            self.store_or_keep(Unstored::Recording { row, kept });
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

    /// The row of a finished file, as a recording of the active deployment. Its id is
    /// fixed here, so storing it again after a failure cannot make a second row.
    fn new_row(&self, file: &FinishedFile) -> NewRecording {
        let synced = clock::clock_sync().map(|c| c.synchronised).unwrap_or(false);
        NewRecording {
            id: Uuid::new_v4(),
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
        }
    }

    /// Writes one row (a recording is marked kept too when its file already lies in the
    /// recordings root). Safe to repeat: the insert is idempotent by id.
    fn store_row(&mut self, item: &Unstored) -> Result<(), StoreError> {
        match item {
            Unstored::Recording { row, kept } => {
                self.store.insert_recording(row)?;
                if *kept {
                    self.store.mark_kept(row.id, &row.path)?;
                }
            }
            Unstored::Gap(gap) => self.store.insert_gap(gap)?,
        }
        Ok(())
    }

    /// Writes a row now, or keeps it for the next management pass when metadata.db
    /// cannot take it yet; a full disk also pauses recording. A row the store refuses
    /// (a value it does not accept) is logged and dropped: retrying would not change it.
    fn store_or_keep(&mut self, item: Unstored) {
        let Err(e) = self.store_row(&item) else {
            return;
        };
        let error = error_chain(&e);
        if e.is_disk_full() {
            tracing::warn!(what = %item.describe(), %error, "metadata.db is full: the row waits for space");
            self.disk_full(&error);
        } else {
            tracing::error!(what = %item.describe(), %error, "storing a row failed");
            self.failed(ErrorKind::StoreFailed, error);
        }
        if e.is_transient() {
            self.unstored.push(item);
        }
    }

    /// Retries the rows metadata.db could not take earlier, oldest first. Returns false
    /// when the disk is still too full for one of them.
    fn store_unstored(&mut self) -> bool {
        let mut room = true;
        for item in std::mem::take(&mut self.unstored) {
            match self.store_row(&item) {
                Ok(()) => {
                    tracing::info!(what = %item.describe(), "stored a row that could not be written earlier")
                }
                Err(e) if e.is_transient() => {
                    room &= !e.is_disk_full();
                    self.unstored.push(item);
                }
                Err(e) => {
                    let error = error_chain(&e);
                    tracing::error!(what = %item.describe(), %error, "storing a row failed");
                    self.failed(ErrorKind::StoreFailed, error);
                }
            }
        }
        room
    }

    /// The disk is full: pause recording. Counted and logged once per pause, however
    /// many writes are refused meanwhile.
    fn disk_full(&mut self, cause: &str) {
        self.last_error = Some(format!("disk full: {cause}"));
        if self.disk_full_since.is_some() {
            return;
        }
        self.disk_full_since = Some(Timestamp::now());
        self.program.gate.paused.store(true, Ordering::Relaxed);
        self.errors.record(ErrorKind::DiskFull);
        tracing::error!(
            cause,
            root = %self.program.paths.recordings.display(),
            "disk full: recording paused until space returns"
        );
    }

    /// There is room again: resume recording and store the pause as a gap.
    fn disk_has_room(&mut self) {
        let Some(since) = self.disk_full_since.take() else {
            return;
        };
        self.program.gate.paused.store(false, Ordering::Relaxed);
        let now = Timestamp::now();
        tracing::info!(
            paused_s = now.duration_since(since).as_secs(),
            "free space is back: recording resumes"
        );
        self.store_or_keep(Unstored::Gap(Gap {
            deployment_id: self.deployment.id,
            started_on: since,
            ended_on: now.max(since),
            reason: "disk_full".into(),
        }));
    }

    fn handle_event(&mut self, event: RecorderEvent) {
        match event {
            RecorderEvent::FileFinished(file) => {
                self.files += 1;
                let row = self.new_row(&file);
                self.store_or_keep(Unstored::Recording { row, kept: false });
            }
            RecorderEvent::Gap { start, end, reason } => {
                tracing::warn!(%start, %end, ?reason, "audio gap");
                self.store_or_keep(Unstored::Gap(Gap {
                    deployment_id: self.deployment.id,
                    started_on: start,
                    ended_on: end,
                    reason: reason.as_str().to_string(),
                }));
            }
            RecorderEvent::Xrun { count, .. } => {
                tracing::warn!(count, "capture overrun recovered");
            }
            RecorderEvent::DeviceLost { device, error } => {
                tracing::error!(%device, %error, "microphone lost; retrying");
                self.errors.record(ErrorKind::DeviceLost);
            }
            RecorderEvent::DeviceBack { pcm } => {
                tracing::info!(%pcm, "microphone back");
            }
            RecorderEvent::DiskFull { error } => {
                let error = error_chain(error.as_ref());
                tracing::error!(%error, "disk full while writing a recording; what was written is kept");
                self.disk_full(&error);
            }
            RecorderEvent::WriteFailed { error } => {
                tracing::error!(%error, "writing a recording failed");
                self.errors.record(ErrorKind::WriteFailed);
            }
            RecorderEvent::ScheduleEnded => {
                tracing::info!("the schedule has ended (past end_date): no more recordings");
                self.schedule_ended = true;
            }
        }
    }

    /// Counts an error for the summaries and keeps its text for `deployment status`.
    fn failed(&mut self, kind: ErrorKind, message: String) {
        self.errors.record(kind);
        self.last_error = Some(message);
    }

    /// Rows left over first, then the pass; then the disk-full pause is decided.
    ///
    /// A pass that ends on a full disk still counts as done for the watchdog: the default
    /// worker is alive and did all a full disk allows, and a restart frees no space (it
    /// would only loop, under systemd, for as long as the disk stays full).
    fn management_pass(&mut self) {
        let rows_fit = self.store_unstored();
        match self
            .program
            .management
            .pass(&mut self.store, Timestamp::now())
        {
            Ok(report) => {
                if report != PassReport::default() {
                    tracing::info!(?report, "management pass");
                }
                self.last_pass = Some(std::time::Instant::now());
                self.last_error = None;
                if report.disk_full {
                    self.disk_full(if report.left_in_tmp > 0 {
                        "no room to keep a recording: it stays in the temporary directory"
                    } else {
                        "free space is below retention.min_free_space_mb and no kept recording is left to delete"
                    });
                } else if rows_fit && self.program.room_for_a_file() {
                    self.disk_has_room();
                } else if self.disk_full_since.is_some() {
                    self.last_error = Some("disk full: waiting for room for a file".into());
                }
            }
            Err(e) if e.is_disk_full() => {
                let error = error_chain(&e);
                tracing::warn!(%error, "management pass stopped by the full disk");
                self.last_pass = Some(std::time::Instant::now());
                self.disk_full(&error);
            }
            Err(e) => {
                tracing::error!(error = %e, "management pass failed");
                self.failed(ErrorKind::ManagementFailed, e.to_string());
            }
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
        let paused = self.program.gate.paused.load(Ordering::Relaxed);
        let recording_health = if paused {
            WorkerHealth::Notok
        } else {
            watchdog::recording_health(&obs, now)
        };
        // While paused the capture thread is idle with the microphone closed; what
        // matters to an operator is why.
        let state = if paused {
            state_name(RecorderState::DiskFull, false)
        } else {
            state_name(obs.state, watchdog::is_stalled(&obs, now))
        };
        DaemonStatus {
            protocol: PROTOCOL,
            pid: std::process::id(),
            started_at: self.started_at.to_string(),
            recording: RecordingWorker {
                health: recording_health,
                state: state.into(),
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
                // A disk-full pause outlives the configuration it began under.
                let paused = self.disk_full_since.is_some();
                program.gate.paused.store(paused, Ordering::Relaxed);
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
        if !self.unstored.is_empty() {
            tracing::warn!(
                rows = self.unstored.len(),
                "stopping with rows metadata.db could not take; start-up registers their files again"
            );
        }
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
        // While paused, a pass as soon as there is room again rather than at the next
        // interval: every second waited is audio lost. Only a few statvfs calls a tick.
        if self.disk_full_since.is_some() && self.program.room_for_a_file() {
            self.management_pass();
        }
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
