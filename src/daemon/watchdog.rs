//! Judging progress: when the daemon may tell systemd "still alive" and what it reports.
//!
//! `WATCHDOG=1` means progress, not "the process exists": it is sent only while the
//! recording worker reads audio when it should and the default worker completes its
//! passes. A capture stuck in a blocking read therefore ends in a systemd restart.
//! Pure functions over observations, so every rule is tested without a sound card.

use std::time::Duration;

use jiff::Timestamp;

use crate::audio::RecorderState;
use crate::health::WorkerHealth;

/// How long the capture may go without a successful read while a window is open before
/// it counts as stalled, at most. A period is 0.1 s; reopening a USB device takes about a
/// second.
pub const STALL_AFTER: Duration = Duration::from_secs(10);

/// The stall threshold for a watchdog timeout: half of `WatchdogSec` (so a stall is
/// noticed well before systemd gives up), at most [`STALL_AFTER`], at least one second.
pub fn stall_after(watchdog_timeout: Option<Duration>) -> Duration {
    watchdog_timeout
        .map(|t| (t / 2).clamp(Duration::from_secs(1), STALL_AFTER))
        .unwrap_or(STALL_AFTER)
}

/// What the watchdog looks at for the recording worker.
#[derive(Debug, Clone, Copy)]
pub struct RecorderObservation {
    /// The recorder's state.
    pub state: RecorderState,
    /// Wall time of its last successful read (`None`: none yet).
    pub last_read: Option<Timestamp>,
    /// When the current recorder thread was started.
    pub started: Timestamp,
    /// Reads may pause this long before the capture counts as stalled ([`stall_after`]).
    pub stall_after: Duration,
}

/// True when the capture should be delivering audio but has not for `obs.stall_after`.
pub fn is_stalled(obs: &RecorderObservation, now: Timestamp) -> bool {
    let streaming = matches!(
        obs.state,
        RecorderState::Recording | RecorderState::Listening
    );
    let since = obs.last_read.unwrap_or(obs.started).max(obs.started);
    streaming && now.duration_since(since).unsigned_abs() > obs.stall_after
}

/// The recording worker's health for `status`: anything that keeps audio from being
/// recorded (stall, missing device, full disk, a dead thread) is `notok`.
pub fn recording_health(obs: &RecorderObservation, now: Timestamp) -> WorkerHealth {
    match obs.state {
        RecorderState::DeviceMissing | RecorderState::DiskFull | RecorderState::Stopped => {
            WorkerHealth::Notok
        }
        _ if is_stalled(obs, now) => WorkerHealth::Notok,
        _ => WorkerHealth::Ok,
    }
}

/// Whether the daemon may send `WATCHDOG=1` now. A missing device or a full disk is a
/// state the recorder handles itself (retrying, pausing), so the watchdog keeps quiet
/// about them: a restart would not help. A stalled read or a dead thread does not heal.
pub fn may_ping(
    obs: &RecorderObservation,
    default_worker: WorkerHealth,
    schedule_ended: bool,
    now: Timestamp,
) -> bool {
    let recorder_alive = obs.state != RecorderState::Stopped || schedule_ended;
    recorder_alive && !is_stalled(obs, now) && default_worker == WorkerHealth::Ok
}

/// The default worker's health: `ok` while management passes complete on time. A pass
/// that ends on a full disk has completed (the daemon counts it): the worker is alive,
/// and a restart would free no space.
pub fn default_health(last_pass_age: Option<Duration>, interval: Duration) -> WorkerHealth {
    match last_pass_age {
        Some(age) if age > interval * 3 + Duration::from_secs(30) => WorkerHealth::Notok,
        _ => WorkerHealth::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(state: RecorderState, last_read_ago: Option<i64>) -> (RecorderObservation, Timestamp) {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let started = now - jiff::SignedDuration::from_secs(600);
        let last_read = last_read_ago.map(|s| now - jiff::SignedDuration::from_secs(s));
        let stall_after = STALL_AFTER;
        (
            RecorderObservation {
                state,
                last_read,
                started,
                stall_after,
            },
            now,
        )
    }

    #[test]
    fn watchdog_is_withheld_when_capture_stalls() {
        let (o, now) = obs(RecorderState::Recording, Some(11));
        assert!(is_stalled(&o, now));
        assert!(!may_ping(&o, WorkerHealth::Ok, false, now));
        assert_eq!(recording_health(&o, now), WorkerHealth::Notok);
    }

    #[test]
    fn watchdog_is_sent_while_audio_flows_or_idle() {
        let (o, now) = obs(RecorderState::Recording, Some(1));
        assert!(may_ping(&o, WorkerHealth::Ok, false, now));
        // Idle outside windows: no reads expected, still alive.
        let (o, now) = obs(RecorderState::Idle, Some(3600));
        assert!(may_ping(&o, WorkerHealth::Ok, false, now));
        assert_eq!(recording_health(&o, now), WorkerHealth::Ok);
    }

    #[test]
    fn missing_device_is_notok_but_not_a_restart() {
        let (o, now) = obs(RecorderState::DeviceMissing, Some(300));
        assert_eq!(recording_health(&o, now), WorkerHealth::Notok);
        assert!(may_ping(&o, WorkerHealth::Ok, false, now));
    }

    #[test]
    fn full_disk_is_notok_but_not_a_restart() {
        // The file was just cut short, then the daemon paused recording (idle, with the
        // microphone closed) for as long as the disk stays full.
        let (o, now) = obs(RecorderState::DiskFull, Some(1));
        assert_eq!(recording_health(&o, now), WorkerHealth::Notok);
        assert!(may_ping(&o, WorkerHealth::Ok, false, now));
        let (o, now) = obs(RecorderState::Idle, Some(600));
        assert!(may_ping(&o, WorkerHealth::Ok, false, now));
    }

    #[test]
    fn dead_recorder_or_stuck_default_worker_stops_the_watchdog() {
        let (o, now) = obs(RecorderState::Stopped, Some(1));
        assert!(!may_ping(&o, WorkerHealth::Ok, false, now));
        assert!(
            may_ping(&o, WorkerHealth::Ok, true, now),
            "schedule ended is expected"
        );
        let (o, now) = obs(RecorderState::Recording, Some(1));
        assert!(!may_ping(&o, WorkerHealth::Notok, false, now));
    }

    #[test]
    fn a_fresh_recorder_gets_time_to_deliver_its_first_frames() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let o = RecorderObservation {
            state: RecorderState::Listening,
            last_read: None,
            started: now - jiff::SignedDuration::from_secs(2),
            stall_after: STALL_AFTER,
        };
        assert!(!is_stalled(&o, now));
    }

    #[test]
    fn stall_threshold_follows_the_watchdog_timeout() {
        assert_eq!(stall_after(None), STALL_AFTER);
        assert_eq!(stall_after(Some(Duration::from_secs(30))), STALL_AFTER);
        assert_eq!(
            stall_after(Some(Duration::from_secs(4))),
            Duration::from_secs(2)
        );
        assert_eq!(
            stall_after(Some(Duration::from_millis(500))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn default_worker_is_notok_when_passes_stop() {
        let i = Duration::from_secs(10);
        assert_eq!(
            default_health(Some(Duration::from_secs(5)), i),
            WorkerHealth::Ok
        );
        assert_eq!(default_health(None, i), WorkerHealth::Ok);
        assert_eq!(
            default_health(Some(Duration::from_secs(61)), i),
            WorkerHealth::Notok
        );
    }
}
