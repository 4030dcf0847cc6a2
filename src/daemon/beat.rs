//! `acoupi beat`: the health and heartbeat daemon (`acoupi-beat.service`).
//!
//! Every `heartbeat.interval` seconds it asks the recorder for its workers' state over the
//! control socket, collects the system's vital signs (free space, CPU temperature,
//! throttling and under-voltage, uptime, clock synchronisation), stores a heartbeat row in
//! metadata.db and pings its own watchdog. When the recorder stays unhealthy for
//! [`UNHEALTHY_BEATS`] beats in a row it restarts `acoupi.service`, at most once per
//! [`RESTART_COOLDOWN`], and says so in the log.

use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::Timestamp;
use tokio::signal::unix::{signal, SignalKind};

use crate::daemon::control;
use crate::daemon::messaging::HeartbeatSender;
use crate::daemon::notify;
use crate::health::{RecorderStatus, WorkerHealth, WorkerState};
use crate::messaging::heartbeat::HeartbeatPayload;
use crate::store::metadata::MetadataStore;
use crate::store::{Check, Durability};
use crate::system::layout::Layout;
use crate::system::metrics::Metrics;
use crate::system::systemd::Systemctl;
use crate::system::{clock, process, sysroot::SysRoot};

/// Consecutive unhealthy beats before the recorder is restarted.
pub const UNHEALTHY_BEATS: u32 = 3;
/// Minimum time between two restarts of the recorder by the beat daemon.
pub const RESTART_COOLDOWN: Duration = Duration::from_secs(600);

/// What the beat derives from the configuration; rebuilt on SIGHUP.
struct BeatConfig {
    timezone: String,
    recordings: std::path::PathBuf,
    store: MetadataStore,
    interval: Duration,
    outbox: Option<HeartbeatSender>,
}

impl BeatConfig {
    fn load(layout: &Layout, serial: &str) -> anyhow::Result<BeatConfig> {
        let config = crate::config::load(&layout.config_file)?;
        let paths = layout.storage_paths(&config.paths);
        // The recorder checks the file (`daemon::integrity`); a SIGHUP must not read
        // every index entry again.
        let store = MetadataStore::open_with(&paths.db_metadata, Durability::Full, Check::Quick)?;
        let interval = Duration::from_secs(u64::from(config.heartbeat.interval.max(1)));
        let outbox = HeartbeatSender::open(layout, &config, &paths, interval, serial)?;
        Ok(BeatConfig {
            timezone: config.timezone,
            recordings: paths.recordings,
            store,
            interval,
            outbox,
        })
    }
}

/// Runs the beat loop until SIGTERM/SIGINT. SIGHUP (`systemctl reload`, `acoupi config
/// set`) rereads the configuration; one that does not load is refused and the running
/// one kept.
pub fn run(layout: Layout) -> anyhow::Result<()> {
    let serial = crate::system::device_id::device_id(&SysRoot::default())
        .map_or_else(|_| "unknown".into(), |d| d.id);
    let mut cfg = BeatConfig::load(&layout, &serial)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut beats = tokio::time::interval(cfg.interval);
        let mut ping = tokio::time::interval(
            notify::watchdog_timeout().map_or(Duration::from_secs(30), |t| t / 3),
        );
        let mut supervisor = Supervisor::default();
        write_pid_file(&layout);
        notify::ready();
        tracing::info!(interval_s = cfg.interval.as_secs(), "beat ready");
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = ping.tick() => notify::watchdog(),
                _ = hup.recv() => {
                    notify::reloading();
                    match BeatConfig::load(&layout, &serial) {
                        Ok(new) => {
                            cfg = new;
                            // The first tick of a new interval is at once: a beat with
                            // the new settings, then the new cadence.
                            beats = tokio::time::interval(cfg.interval);
                            tracing::info!(interval_s = cfg.interval.as_secs(), "configuration reloaded");
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "reload refused: keeping the running configuration"),
                    }
                    notify::ready();
                }
                _ = beats.tick() => {
                    let payload = beat(&layout, &mut cfg.store, &cfg.recordings, &cfg.timezone);
                    if let Some(outbox) = cfg.outbox.as_mut() {
                        outbox.offer(&payload);
                    }
                    notify::status(&format!("last heartbeat: recorder {}", payload.status));
                    if supervisor.observe(supervised_status(&payload)) {
                        restart_recorder(&layout);
                    }
                }
            }
        }
        notify::stopping();
        let _ = std::fs::remove_file(layout.beat_pid_file());
        Ok(())
    })
}

/// Writes the pid file `acoupi config set` signals to reload the beat. Without it the
/// beat still runs; only `config set` cannot reach it (systemctl reload still can).
fn write_pid_file(layout: &Layout) {
    let path = layout.beat_pid_file();
    if let Err(e) = std::fs::write(&path, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the beat's pid file");
    }
}

/// Takes and stores one heartbeat.
fn beat(
    layout: &Layout,
    store: &mut MetadataStore,
    storage: &std::path::Path,
    timezone: &str,
) -> HeartbeatPayload {
    let workers = control::query(&layout.control_socket(), Duration::from_secs(2)).ok();
    let status = RecorderStatus::of(workers.as_ref());
    let payload = HeartbeatPayload {
        status,
        workers,
        metrics: Metrics::collect(&SysRoot::default(), storage),
        clock_synchronised: clock::clock_sync().ok().map(|c| c.synchronised),
        recordings_today: local_midnight(timezone)
            .and_then(|midnight| store.count_recordings_since(midnight).ok()),
        last_recording: store.last_recording().ok().flatten().map(|r| r.datetime),
    };
    if let Err(e) = store.insert_heartbeat(Timestamp::now(), &payload) {
        tracing::error!(error = %e, "storing a heartbeat failed");
    }
    payload
}

/// What the supervisor makes of one beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervised {
    /// The beat's own verdict.
    Recorder(RecorderStatus),
    /// Paused on a full disk: it resumes by itself when space returns.
    WaitingForSpace,
    /// Its microphone is gone: it reopens it by itself when it is back.
    WaitingForMicrophone,
}

/// A recorder paused because the disk is full, or waiting for its microphone to come
/// back, is unhealthy in the heartbeat, but it waits by itself and a restart can neither
/// free space nor plug a microphone in: it would only kill it (SIGKILL when `systemctl
/// restart` is refused), show up as a crash in `deployment status` and drop the MQTT
/// session (the broker then says `offline`).
fn supervised_status(payload: &HeartbeatPayload) -> Supervised {
    match &payload.workers {
        Some(w) if w.default.health == WorkerHealth::Ok => match w.recording.state {
            WorkerState::DiskFull => Supervised::WaitingForSpace,
            WorkerState::DeviceMissing => Supervised::WaitingForMicrophone,
            _ => Supervised::Recorder(payload.status),
        },
        _ => Supervised::Recorder(payload.status),
    }
}

/// The start of today in the configured time zone.
fn local_midnight(timezone: &str) -> Option<Timestamp> {
    let tz = crate::schedule::parse_time_zone(timezone).ok()?;
    let today = Timestamp::now().to_zoned_datetime(tz).start_of_day().ok()?;
    Some(today.timestamp())
}

/// Decides when the recorder has been unhealthy long enough to restart it.
#[derive(Debug, Default)]
pub struct Supervisor {
    unhealthy: u32,
    last_restart: Option<Instant>,
}

impl Supervisor {
    /// Records one beat's status; true when a restart is due now. `ok` and a recorder
    /// that waits by itself (see `supervised_status`) end a run of unhealthy beats.
    pub fn observe(&mut self, status: Supervised) -> bool {
        if !matches!(
            status,
            Supervised::Recorder(RecorderStatus::Unhealthy | RecorderStatus::Down)
        ) {
            self.unhealthy = 0;
            return false;
        }
        self.unhealthy += 1;
        let cooled = self
            .last_restart
            .is_none_or(|t| t.elapsed() >= RESTART_COOLDOWN);
        if self.unhealthy >= UNHEALTHY_BEATS && cooled {
            self.unhealthy = 0;
            self.last_restart = Some(Instant::now());
            return true;
        }
        false
    }
}

/// Restarts a stuck recorder: `systemctl restart`, else (refused to the unprivileged
/// beat) SIGKILL to the recorder for `Restart=always` to bring it back. The pid killed
/// must be an `acoupi run` process, whether systemd's `MainPID` or the pid file's (a
/// stale pid file once named an unrelated process, which was killed).
fn restart_recorder(layout: &Layout) {
    tracing::warn!(
        beats = UNHEALTHY_BEATS,
        "the recorder has been unhealthy for several heartbeats: restarting acoupi.service"
    );
    let systemctl = Systemctl::new(layout.mode);
    let Err(e) = systemctl.restart(&["acoupi.service"]) else {
        return;
    };
    // The beat runs as the unprivileged acoupi user, which systemd (without a polkit
    // rule) does not let restart a system service. It may signal its own user's
    // processes, though: SIGKILL ends the recorder and `Restart=always` brings it back.
    tracing::warn!(error = %e, "systemctl restart refused; killing the recorder for systemd to restart it");
    if systemctl.kill_main(&["acoupi.service"], "SIGKILL").is_ok() {
        return;
    }
    match recorder_pid(layout, &systemctl) {
        Some(pid) => {
            if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL) {
                tracing::error!(pid = pid.as_raw(), error = %e, "killing the recorder failed");
            }
        }
        None => tracing::error!(
            pid_file = %layout.pid_file().display(),
            "no running `acoupi run` process found (systemd names none and the pid file is missing or stale); cannot restart the recorder"
        ),
    }
}

/// The recorder's pid: systemd's `MainPID` first, else the pid file, each only when it
/// names an `acoupi run` process.
fn recorder_pid(layout: &Layout, systemctl: &Systemctl) -> Option<nix::unistd::Pid> {
    let from_systemd = systemctl
        .main_pid("acoupi.service")
        .ok()
        .flatten()
        .map(nix::unistd::Pid::from_raw)
        .filter(|pid| process::is_acoupi(*pid, Some("run")));
    from_systemd.or_else(|| process::pid_from_file(&layout.pid_file(), Some("run")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::DaemonStatus;

    const UNHEALTHY: Supervised = Supervised::Recorder(RecorderStatus::Unhealthy);
    const DOWN: Supervised = Supervised::Recorder(RecorderStatus::Down);

    #[test]
    fn recorder_is_restarted_after_three_unhealthy_beats_and_not_again_soon() {
        let mut s = Supervisor::default();
        assert!(!s.observe(UNHEALTHY));
        assert!(!s.observe(DOWN));
        assert!(s.observe(UNHEALTHY), "third unhealthy beat restarts");
        for _ in 0..10 {
            assert!(!s.observe(DOWN), "cool-down holds further restarts");
        }
    }

    #[test]
    fn a_recorder_waiting_for_space_or_its_microphone_is_not_restarted() {
        let status: DaemonStatus = serde_json::from_value(serde_json::json!({
            "protocol": 1, "pid": 1, "started_at": "2026-01-01T00:00:00Z",
            "recording": {"health": "notok", "state": "disk-full",
                "detail": "disk full: recording paused until space returns",
                "device": "mic", "frames": 0, "xruns": 0, "files": 0},
            "default": {"health": "ok", "last_pass_age_s": 3, "last_error": null}
        }))
        .unwrap();
        let mut payload = HeartbeatPayload {
            status: RecorderStatus::Unhealthy,
            workers: Some(status),
            metrics: Metrics::collect(&SysRoot::default(), std::path::Path::new("/")),
            clock_synchronised: None,
            recordings_today: None,
            last_recording: None,
        };
        let mut s = Supervisor::default();
        for _ in 0..10 {
            assert!(!s.observe(supervised_status(&payload)));
        }
        // Nor one waiting for its microphone: a restart cannot plug it in.
        payload.workers.as_mut().unwrap().recording.state = WorkerState::DeviceMissing;
        for _ in 0..10 {
            assert!(!s.observe(supervised_status(&payload)));
        }
        // A stalled capture is another matter.
        payload.workers.as_mut().unwrap().recording.state = WorkerState::Stalled;
        assert!(!s.observe(supervised_status(&payload)));
        assert!(!s.observe(supervised_status(&payload)));
        assert!(s.observe(supervised_status(&payload)));
    }

    #[test]
    fn a_healthy_beat_resets_the_count() {
        let mut s = Supervisor::default();
        assert!(!s.observe(DOWN));
        assert!(!s.observe(DOWN));
        assert!(!s.observe(Supervised::Recorder(RecorderStatus::Ok)));
        assert!(!s.observe(DOWN));
        assert!(!s.observe(DOWN));
        assert!(s.observe(DOWN));
    }
}
