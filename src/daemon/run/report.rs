//! What the recorder says about itself: the control socket's `status` answer, the
//! `STATUS=` line, and the observation the watchdog judges.

use jiff::Timestamp;

use crate::audio::RecorderState;
use crate::daemon::control::PROTOCOL;
use crate::daemon::watchdog::{self, RecorderObservation};
use crate::health::{DaemonStatus, DefaultWorker, RecordingWorker, WorkerHealth, WorkerState};
use crate::schedule::plan::{Plan, Planner};

use super::{Daemon, MANAGEMENT_INTERVAL};

impl Daemon {
    pub(super) fn observation(&self) -> RecorderObservation {
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

    pub(super) fn status(&self) -> DaemonStatus {
        let now = Timestamp::now();
        let obs = self.observation();
        let progress = self.capture.as_ref().map(|c| &c.handle.progress);
        let last_pass_age = self.last_pass.map(|t| t.elapsed());
        let paused = self.pause.is_paused();
        let recording_health = if paused {
            WorkerHealth::Notok
        } else {
            watchdog::recording_health(&obs, now)
        };
        // While paused the capture thread is idle with the microphone closed; what
        // matters to an operator is why.
        let state = if paused {
            worker_state(RecorderState::DiskFull, false)
        } else {
            worker_state(obs.state, watchdog::is_stalled(&obs, now))
        };
        DaemonStatus {
            protocol: PROTOCOL,
            pid: std::process::id(),
            started_at: self.started_at.to_string(),
            recording: RecordingWorker {
                health: recording_health,
                state,
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
    pub(super) fn detail(&self, obs: &RecorderObservation, now: Timestamp) -> String {
        let tz = self.program.gate.schedule.time_zone();
        let local = |t: Timestamp| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        };
        if self.pause.is_paused() {
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
}

/// The word the status answer gives the capture thread's state; a stall overrides it.
fn worker_state(state: RecorderState, stalled: bool) -> WorkerState {
    match state {
        _ if stalled => WorkerState::Stalled,
        RecorderState::Idle => WorkerState::Idle,
        RecorderState::Listening => WorkerState::Listening,
        RecorderState::Recording => WorkerState::Recording,
        RecorderState::DeviceMissing => WorkerState::DeviceMissing,
        RecorderState::DiskFull => WorkerState::DiskFull,
        RecorderState::Stopped => WorkerState::Stopped,
    }
}
