//! The recorder's health as every part of acoupi words it: what the control socket
//! answers ([`DaemonStatus`]), each worker's judgement ([`WorkerHealth`]) and state
//! ([`WorkerState`]), and the beat's verdict on the recorder ([`RecorderStatus`]).
//!
//! A leaf module of plain data: the daemon writes these values, `acoupi beat`, the CLI and
//! the heartbeat message read them, and none of the readers has to import the daemon (that
//! import once made `messaging` and `daemon` a circle). Every word is declared once with
//! `word_enum!`, so the JSON, the terminal and the tests cannot drift apart.
//! **Invariant:** depends on nothing else in the crate but `words`.

use serde::{Deserialize, Serialize};

word_enum! {
    /// Health of one worker as the daemon judges it; the words are the protocol's, the
    /// status output's and the heartbeat's.
    pub enum WorkerHealth {
        /// Making progress as it should.
        Ok => "ok",
        /// Stalled, failing or waiting on something it needs (device, disk space).
        Notok => "notok",
    }
}

/// What the recording worker reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingWorker {
    /// Overall judgement.
    pub health: WorkerHealth,
    /// What it is doing now (why, when `health` is `notok`).
    pub state: WorkerState,
    /// Human-readable detail, e.g. "recording 12/60 s" or "idle until 18:40 (Europe/London)".
    pub detail: String,
    /// The PCM being captured.
    pub device: String,
    /// Frames captured since the daemon started.
    pub frames: u64,
    /// Overruns recovered since the daemon started.
    pub xruns: u64,
    /// Files finished since the daemon started.
    pub files: u64,
}

/// What the default worker (management and other periodic tasks) reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefaultWorker {
    /// Overall judgement.
    pub health: WorkerHealth,
    /// Seconds since the last completed management pass.
    pub last_pass_age_s: Option<u64>,
    /// The last error of a periodic task, if any.
    pub last_error: Option<String>,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// Protocol version (`daemon::control::PROTOCOL`).
    pub protocol: u32,
    /// The daemon's process id.
    pub pid: u32,
    /// When the daemon started (RFC 3339, UTC).
    pub started_at: String,
    /// The recording worker.
    pub recording: RecordingWorker,
    /// The default worker.
    pub default: DefaultWorker,
}

word_enum! {
    /// What the recording worker is doing, as the control socket, `deployment status`
    /// and the heartbeat say it. The beat's supervisor leaves `DiskFull` and
    /// `DeviceMissing` alone: the recorder waits for those by itself.
    pub enum WorkerState {
        /// Outside a recording window, the microphone closed.
        Idle => "idle",
        /// The microphone open, between files.
        Listening => "listening",
        /// Writing a file.
        Recording => "recording",
        /// The microphone is gone; the recorder retries until it is back.
        DeviceMissing => "device-missing",
        /// A write found the disk full; recording is paused until space returns.
        DiskFull => "disk-full",
        /// Inside a window but no audio arrives (the watchdog withholds its ping).
        Stalled => "stalled",
        /// The capture thread has ended (the schedule has ended, or it died).
        Stopped => "stopped",
    }
}

word_enum! {
    /// The recorder as one beat found it: the `status` of a stored heartbeat, the beat's
    /// `STATUS=` line and what its supervisor counts.
    pub enum RecorderStatus {
        /// Both workers answered `ok`.
        Ok => "ok",
        /// The recorder answered, but a worker is not `ok`.
        Unhealthy => "unhealthy",
        /// The recorder did not answer on its control socket.
        Down => "down",
    }
}

impl RecorderStatus {
    /// The verdict on the control socket's answer, `None` when the recorder gave none.
    pub fn of(workers: Option<&DaemonStatus>) -> RecorderStatus {
        match workers {
            None => RecorderStatus::Down,
            Some(s)
                if s.recording.health == WorkerHealth::Ok
                    && s.default.health == WorkerHealth::Ok =>
            {
                RecorderStatus::Ok
            }
            Some(_) => RecorderStatus::Unhealthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_answer_reads_back_with_its_words() {
        let status: DaemonStatus = serde_json::from_value(serde_json::json!({
            "protocol": 1, "pid": 7, "started_at": "2026-01-01T00:00:00Z",
            "recording": {"health": "notok", "state": "device-missing", "detail": "",
                "device": "mic", "frames": 0, "xruns": 0, "files": 0},
            "default": {"health": "ok", "last_pass_age_s": null, "last_error": null}
        }))
        .unwrap();
        assert_eq!(status.recording.state, WorkerState::DeviceMissing);
        assert_eq!(RecorderStatus::of(Some(&status)), RecorderStatus::Unhealthy);
        assert_eq!(RecorderStatus::of(None), RecorderStatus::Down);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["recording"]["state"], "device-missing");
        assert_eq!(json["recording"]["health"], "notok");
        let words: Vec<_> = WorkerState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "idle",
                "listening",
                "recording",
                "device-missing",
                "disk-full",
                "stalled",
                "stopped"
            ]
        );
    }
}
