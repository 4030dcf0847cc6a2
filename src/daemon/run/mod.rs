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
//!
//! This module has the daemon's life cycle and event loop; `program` what it derives
//! from a configuration, `pause` the disk-full pause (one value, shared with the capture
//! thread's schedule), `rows` files and their rows (crash recovery, rows kept while
//! metadata.db cannot take them, when the pause begins and ends), `report` what it says
//! about itself (control socket, `STATUS=`, the watchdog's observation).

mod detect;
mod pause;
mod program;
mod report;
mod rows;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::audio::recorder::Stopped;
use crate::audio::{spawn_recorder, RecorderConfig, RecorderEvent, RecorderHandle};
use crate::daemon::control;
use crate::daemon::errors::{ErrorKind, ErrorTally};
use crate::daemon::messaging::{self, MessagingService};
use crate::daemon::notify;
use crate::daemon::watchdog;
use crate::detection::worker::Outcome;
use crate::schedule::plan::Planner;
use crate::store::metadata::{Deployment, Gap, MetadataStore};
use crate::store::{Check, Durability};
use crate::system::layout::Layout;
use crate::system::{device_id, storage, sysroot::SysRoot};
use crate::tasks::management::{available_bytes, PassReport};

use pause::Pause;
use program::Program;
use rows::Unstored;

/// How often the management task runs when no file finishes (retention, disk-full
/// recovery); a finished file starts a pass at once.
const MANAGEMENT_INTERVAL: Duration = Duration::from_secs(10);
/// How long a stop waits for the capture thread to finish its file itself. It checks
/// its shutdown flag at least every 0.5 s (`WAIT_MS`) unless a device call blocks;
/// past this the file is finished without it, so SIGTERM → exit stays within 2 s even
/// while the microphone is open and silent.
const CAPTURE_STOP_WAIT: Duration = Duration::from_millis(800);
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

/// A running capture thread and the flag that stops it.
struct Capture {
    handle: RecorderHandle,
    shutdown: Arc<AtomicBool>,
    started: Timestamp,
}

/// The recorder's default worker: everything `acoupi run` holds between events.
///
/// Owned by the one task of the current-thread runtime, so no field needs a lock of its
/// own; what another thread also sees is behind an `Arc`, and its comment says which
/// thread and why.
struct Daemon {
    /// Where the configuration, the pid file and the control socket are: a reload reads
    /// the configuration again from here.
    layout: Layout,
    /// metadata.db, opened once at start-up (integrity check, migrations) and written
    /// only from this task, so the capture thread never waits on SQLite.
    store: MetadataStore,
    /// The active deployment: every row carries its id, and its place feeds the solar
    /// schedule and the GUANO position.
    deployment: Deployment,
    /// The device's serial (Pi serial, else machine-id), read once: it names the
    /// recorder in GUANO chunks and messages and does not change while running.
    serial: String,
    /// Everything derived from the configuration in force; replaced whole on a reload
    /// that loads, kept on one that does not.
    program: Program,
    /// The capture thread; `None` only while a reload swaps it or after the stop.
    capture: Option<Capture>,
    /// Events from the capture thread. The daemon keeps the sender too, so the thread a
    /// reload starts reports on the same channel and no event of the old one is lost.
    events: UnboundedReceiver<RecorderEvent>,
    /// The sender each capture thread gets a clone of.
    events_tx: tokio::sync::mpsc::UnboundedSender<RecorderEvent>,
    /// When this process started, for `status` (and the watchdog's grace before the
    /// first read, while no capture thread runs).
    started_at: Timestamp,
    /// Files finished since start-up, for `status` and `STATUS=`.
    files: u64,
    /// The stream-time end of the latest file captured or recovered: a capture thread
    /// started after it (a reload) names no file before it (see
    /// [`RecorderConfig::kept_until`]).
    kept_until: Option<Timestamp>,
    /// When the last management pass completed: the watchdog's evidence that the default
    /// worker is making progress.
    last_pass: Option<std::time::Instant>,
    /// The latest error's text for `deployment status`; a pass that succeeds clears it.
    last_error: Option<String>,
    /// The planner said "never again": an idle capture thread is then no stall.
    schedule_ended: bool,
    /// How long the capture may go without audio before it counts as stalled, derived
    /// once from systemd's `WatchdogSec`.
    stall_after: Duration,
    /// The connected program's delivery thread; `None` for the standalone program.
    messaging: Option<MessagingService>,
    /// Every error met, by kind, for the connected program's summaries. Shared with the
    /// messaging thread, which reads and resets it when it sends a summary.
    errors: Arc<ErrorTally>,
    /// Rows waiting for metadata.db to take them, oldest first.
    unstored: Vec<Unstored>,
    /// The disk-full pause. Shared with the capture thread, which plans through the
    /// gate that reads it; begun and ended only here (`disk_full`, `disk_has_room`).
    pause: Arc<Pause>,
    /// The detection worker; `None` without a model (or one that does not load).
    detection: Option<detect::Detection>,
    /// Recordings queued for the model, for status (`waiting`). Kept across reloads (a
    /// replaced worker still finishes its queue).
    waiting: std::collections::HashSet<uuid::Uuid>,
    /// What the detection thread made of each recording.
    outcomes: UnboundedReceiver<Outcome>,
    /// The sender each detection thread gets a clone of.
    outcomes_tx: UnboundedSender<Outcome>,
}

impl Daemon {
    fn start(layout: Layout) -> anyhow::Result<Daemon> {
        let config = crate::config::load(&layout.config_file)?;
        let paths = layout.storage_paths(&config.paths);
        storage::ensure_storages(&paths, storage::storage_owner(&layout)?)?;
        // quick_check, not the full check: see `daemon::integrity`.
        let mut store = MetadataStore::open_with(&paths.db_metadata, Durability::Full, Check::Quick).map_err(|e| {
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
        super::integrity::start(&mut store);
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
        let pause = Arc::new(Pause::default());
        let program = Program::new(config, &layout, &deployment, &serial, pause.clone())?;
        let errors = Arc::new(ErrorTally::default());
        let messaging =
            MessagingService::start(&layout, &program.config, &program.paths, &serial, &errors)?;
        let (events_tx, events) = unbounded_channel();
        let (outcomes_tx, outcomes) = unbounded_channel();
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
            kept_until: None,
            last_pass: None,
            last_error: None,
            schedule_ended: false,
            stall_after: watchdog::stall_after(notify::watchdog_timeout()),
            messaging,
            errors,
            unstored: Vec::new(),
            pause,
            detection: None,
            waiting: Default::default(),
            outcomes,
            outcomes_tx,
        };
        daemon.recover_tmp_dir()?;
        daemon.start_capture()?;
        // The model loads after capture has started: loading a large one takes seconds,
        // and audio comes first (a file finished meanwhile is simply not analysed).
        daemon.detection = detect::start(
            &daemon.program.config,
            &daemon.deployment,
            &daemon.outcomes_tx,
        );
        Ok(daemon)
    }

    fn start_capture(&mut self) -> anyhow::Result<()> {
        let cfg = RecorderConfig {
            kept_until: self.kept_until,
            ..self.program.recorder_config(&self.deployment, &self.serial)
        };
        let shutdown = Arc::new(AtomicBool::new(false));
        let planner: Arc<dyn Planner> = self.program.gate.clone();
        let events = self.events_tx.clone();
        // A closed receiver means the daemon is going away; nothing left to tell.
        let sink = move |e| drop(events.send(e));
        let handle = spawn_recorder(cfg, planner, sink, shutdown.clone())?;
        self.capture = Some(Capture {
            handle,
            shutdown,
            started: Timestamp::now(),
        });
        self.schedule_ended = false;
        Ok(())
    }

    /// Stops the capture thread; it finishes the file in progress first, or, stuck in
    /// a device call past [`CAPTURE_STOP_WAIT`], has it finished for it (see
    /// `RecorderHandle::stop`).
    async fn stop_capture(&mut self) {
        if let Some(c) = self.capture.take() {
            c.shutdown.store(true, Ordering::Relaxed);
            let stopped =
                tokio::task::spawn_blocking(move || c.handle.stop(CAPTURE_STOP_WAIT)).await;
            match stopped {
                Ok(Stopped::Joined) => {}
                Ok(Stopped::TakenOver) => {
                    tracing::warn!(waited = ?CAPTURE_STOP_WAIT, "the recording thread is stuck in a device call; its file was finished without it")
                }
                Ok(Stopped::Panicked) | Err(_) => {
                    tracing::error!("the recording thread ended abnormally")
                }
            }
        }
        while let Ok(event) = self.events.try_recv() {
            self.handle_event(event);
        }
    }

    fn handle_event(&mut self, event: RecorderEvent) {
        match event {
            RecorderEvent::FileFinished(file) => {
                self.files += 1;
                self.kept_until = self.kept_until.max(Some(file.end()));
                let row = self.new_row(&file);
                let (id, path, started) = (row.id, row.path.clone(), row.datetime);
                self.store_or_keep(Unstored::Recording { row, kept: false });
                self.queue_for_detection(id, path, started);
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
                let error = crate::error::chain(error.as_ref());
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
                    } else if report.min_free_out_of_reach {
                        "free space is below retention.min_free_space_mb and deleting every kept recording would not restore it: nothing deleted; free space or lower retention.min_free_space_mb"
                    } else {
                        "free space is below retention.min_free_space_mb and no kept recording is left to delete"
                    });
                } else if rows_fit && self.program.room_for_a_file() {
                    self.disk_has_room();
                } else if self.pause.is_paused() {
                    self.last_error = Some("disk full: waiting for room for a file".into());
                }
            }
            Err(e) if e.is_disk_full() => {
                let error = crate::error::chain(&e);
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

    async fn reload(&mut self) {
        notify::reloading();
        // A disk-full pause outlives the configuration it began under: the new gate
        // reads the same pause.
        let (layout, deployment, serial) = (&self.layout, &self.deployment, &self.serial);
        let result = crate::config::load(&layout.config_file)
            .map_err(anyhow::Error::from)
            .and_then(|c| Program::new(c, layout, deployment, serial, self.pause.clone()));
        match result {
            Ok(program) => {
                self.stop_capture().await;
                self.program = program;
                let capture = self.start_capture();
                self.reload_detection();
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
                Some(event) = self.events.recv() => {
                    // A finished file is moved out of the temporary directory (RAM in
                    // the image) at once, not at the next tick: a power cut then loses
                    // at most the file in progress.
                    let finished = matches!(event, RecorderEvent::FileFinished(_));
                    self.handle_event(event);
                    if finished {
                        manage.reset_immediately();
                    }
                }
                Some(outcome) = self.outcomes.recv() => {
                    self.detection_done(outcome);
                    manage.reset_immediately();
                }
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
        // Outcomes already in, stored; recordings still waiting for the model stay kept
        // as not analysed (a detection-based filter keeps them).
        while let Ok(outcome) = self.outcomes.try_recv() {
            self.detection_done(outcome);
        }
        self.waiting.clear();
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
        if let Err(e) = self.store.checkpoint() {
            tracing::warn!(error = %crate::error::chain(&e), "checkpointing metadata.db at the stop failed");
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
        if self.pause.is_paused() && self.program.room_for_a_file() {
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
