//! What the recording worker tells the rest of the program: the progress counters the
//! watchdog reads and the events the daemon receives.
//!
//! Plain data; the capture thread in [`super::recorder`] is the only writer.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use jiff::Timestamp;

use super::wav::WavError;
use super::{AudioError, FinishedFile};

/// What the recorder is doing, as the watchdog and `STATUS=` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecorderState {
    /// Outside any window; the PCM is closed.
    Idle = 0,
    /// Stream open, between files.
    Listening = 1,
    /// Writing a file.
    Recording = 2,
    /// The device should be open but is not there; retrying with back-off.
    DeviceMissing = 3,
    /// The last file was cut short by a full disk; waiting for the next slot.
    DiskFull = 4,
    /// The thread has ended.
    Stopped = 5,
}

impl RecorderState {
    fn from_u8(v: u8) -> RecorderState {
        match v {
            1 => RecorderState::Listening,
            2 => RecorderState::Recording,
            3 => RecorderState::DeviceMissing,
            4 => RecorderState::DiskFull,
            5 => RecorderState::Stopped,
            _ => RecorderState::Idle,
        }
    }
}

/// Counters the capture thread updates and the daemon's watchdog reads. Plain atomics:
/// the thread never waits on a reader.
#[derive(Debug, Default)]
pub struct Progress {
    frames: AtomicU64,
    last_read_ms: AtomicI64,
    state: AtomicU8,
    xruns: AtomicU64,
}

impl Progress {
    /// Frames read from the device since the thread started.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Wall time of the last successful read.
    pub fn last_read(&self) -> Option<Timestamp> {
        match self.last_read_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        }
    }

    /// The current state.
    pub fn state(&self) -> RecorderState {
        RecorderState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Overruns recovered from so far.
    pub fn xruns(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
    }

    pub(crate) fn set_state(&self, s: RecorderState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    /// Counts `n` frames read now.
    pub(crate) fn add_frames(&self, n: u64) {
        self.frames.fetch_add(n, Ordering::Relaxed);
        self.last_read_ms
            .store(Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }

    /// Counts an overrun; returns the new total.
    pub(crate) fn add_xrun(&self) -> u64 {
        self.xruns.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Why audio is missing between two instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// The device buffer overran (the thread did not read in time).
    Xrun,
    /// The device was missing or failed.
    DeviceMissing,
    /// The device stopped delivering audio for a while without reporting an overrun.
    Stall,
}

impl GapReason {
    /// The word stored in metadata.db's `gap.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Xrun => "xrun",
            GapReason::DeviceMissing => "device_missing",
            GapReason::Stall => "stall",
        }
    }
}

/// What the recorder reports.
#[derive(Debug, Clone)]
pub enum RecorderEvent {
    /// A file was finished and renamed to `.wav`.
    FileFinished(FinishedFile),
    /// Audio between `start` and `end` was not captured (estimate for overruns).
    Gap {
        /// Start of the gap.
        start: Timestamp,
        /// End of the gap.
        end: Timestamp,
        /// Why.
        reason: GapReason,
    },
    /// An overrun was recovered from.
    Xrun {
        /// Wall time of the overrun.
        at: Timestamp,
        /// Overruns so far.
        count: u64,
    },
    /// The device could not be opened or stopped working; retrying with back-off.
    DeviceLost {
        /// `microphone.device_name`.
        device: String,
        /// The failure.
        error: Arc<AudioError>,
    },
    /// The device works again.
    DeviceBack {
        /// The PCM that opened.
        pcm: String,
    },
    /// The disk filled up: the current file was cut short (and kept valid), or the
    /// next could not be created. The rest of the slot is skipped; the daemon pauses
    /// recording until there is room again.
    DiskFull {
        /// The write that failed.
        error: Arc<WavError>,
    },
    /// Writing a file failed for another reason (e.g. the directory is missing); the
    /// slot is skipped.
    WriteFailed {
        /// The failure.
        error: Arc<WavError>,
    },
    /// The planner said "never again"; the thread has ended.
    ScheduleEnded,
}

impl RecorderEvent {
    /// The event a failed write of a recording is: [`RecorderEvent::DiskFull`] when the
    /// file system had no room ([`WavError::is_disk_full`]), so the daemon pauses,
    /// else [`RecorderEvent::WriteFailed`].
    pub fn write_failure(error: WavError) -> RecorderEvent {
        let error = Arc::new(error);
        if error.is_disk_full() {
            RecorderEvent::DiskFull { error }
        } else {
            RecorderEvent::WriteFailed { error }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_write(errno: i32) -> RecorderEvent {
        RecorderEvent::write_failure(WavError::Io {
            what: "writing",
            path: "/run/acoupi/tmp/20260102_030405_678.wav.part".into(),
            source: std::io::Error::from_raw_os_error(errno),
        })
    }

    /// Issue 12: the WAV writer knew only `ENOSPC`, so a write refused by a quota was a
    /// plain write failure and recording did not pause.
    #[test]
    fn issue_12_a_write_refused_by_a_quota_pauses_like_a_full_disk() {
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let event = failed_write(errno);
            assert!(
                matches!(event, RecorderEvent::DiskFull { .. }),
                "{errno}: {event:?}"
            );
        }
        let event = failed_write(libc::ENOENT);
        assert!(
            matches!(event, RecorderEvent::WriteFailed { .. }),
            "{event:?}"
        );
    }
}
