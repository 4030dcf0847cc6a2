//! The values metadata.db stores and returns: deployments, recordings, gaps, heartbeats.
//!
//! Plain data with no SQL; `metadata_rows.rs` maps them to and from columns. A row is
//! built from [`FinishedFile`], the recorder's description of a file.

use std::path::PathBuf;

use jiff::Timestamp;
use uuid::Uuid;

use crate::audio::FinishedFile;

use super::StoreError;

/// A deployment row: one period of recording at one site.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Unique id (stored as a 16-byte BLOB).
    pub id: Uuid,
    /// Operator-chosen name.
    pub name: String,
    /// When it started.
    pub started_on: Timestamp,
    /// When it ended; `None` while active.
    pub ended_on: Option<Timestamp>,
    /// Site latitude in degrees, if known.
    pub latitude: Option<f64>,
    /// Site longitude in degrees, if known.
    pub longitude: Option<f64>,
}

/// Where a recording's file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingState {
    /// In the temporary (RAM) directory, waiting for the management task.
    Tmp,
    /// Moved to the recordings directory.
    Kept,
}

impl RecordingState {
    /// The text stored in `recording.state`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordingState::Tmp => "tmp",
            RecordingState::Kept => "kept",
        }
    }
}

/// A finished file, as the recorder reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecording {
    /// Unique id, chosen by the recorder (also in the file name).
    pub id: Uuid,
    /// The file in the temporary directory.
    pub path: PathBuf,
    /// Instant of the first frame (upstream's `datetime`, unique).
    pub datetime: Timestamp,
    /// Measured duration: frames / samplerate.
    pub duration_s: f64,
    /// Capture samplerate in Hz, before time expansion.
    pub samplerate_hz: u32,
    /// Number of channels.
    pub audio_channels: u16,
    /// The deployment it belongs to (must exist).
    pub deployment_id: Uuid,
    /// Whether the system clock was synchronised when the file started.
    pub clock_synced: bool,
    /// Time-expansion factor written in the header (1 for none).
    pub time_expansion: f64,
    /// Bits per sample in the file.
    pub bit_depth: u16,
    /// Frames in the file.
    pub frames: u64,
}

impl NewRecording {
    /// The row of a finished file, as a recording of `deployment_id`, with a fresh id (so
    /// storing it again after a failure cannot make a second row). The recorder, the
    /// daemon's start-up repair and `acoupi audit --repair` all build rows this way.
    pub fn from_file(file: &FinishedFile, deployment_id: Uuid, clock_synced: bool) -> Self {
        NewRecording {
            id: Uuid::new_v4(),
            path: file.path.clone(),
            datetime: file.start,
            duration_s: file.frames as f64 / f64::from(file.samplerate),
            samplerate_hz: file.samplerate,
            audio_channels: file.channels,
            deployment_id,
            clock_synced,
            time_expansion: file.time_expansion,
            bit_depth: file.bit_depth,
            frames: file.frames,
        }
    }
}

/// A recording row. Columns we added are `None` in rows written by upstream acoupi.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Unique id.
    pub id: Uuid,
    /// Where the file is; `None` when not stored locally (upstream allows it).
    pub path: Option<PathBuf>,
    /// Instant of the first frame.
    pub datetime: Timestamp,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Samplerate in Hz.
    pub samplerate_hz: u32,
    /// Number of channels.
    pub audio_channels: u16,
    /// The deployment it belongs to.
    pub deployment_id: Uuid,
    /// Temporary or kept; `None` for upstream rows.
    pub state: Option<RecordingState>,
    /// Whether the clock was synchronised at the start.
    pub clock_synced: Option<bool>,
    /// Time-expansion factor.
    pub time_expansion: Option<f64>,
    /// Bits per sample.
    pub bit_depth: Option<u16>,
    /// Frames in the file.
    pub frames: Option<u64>,
}

/// What `deployment status` shows about a deployment's recordings.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSummary {
    /// Number of recording rows.
    pub count: u64,
    /// Sum of their durations in seconds.
    pub total_duration_s: f64,
    /// The most recent one.
    pub last: Option<Recording>,
}

/// A stretch of a deployment during which audio should have been captured but was not.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// The deployment it belongs to.
    pub deployment_id: Uuid,
    /// First instant missing.
    pub started_on: Timestamp,
    /// First instant captured again.
    pub ended_on: Timestamp,
    /// Short machine-readable cause (`xrun`, `device_missing`, `restart`, ...).
    pub reason: String,
}

/// A stored heartbeat: when, and the payload the beat daemon chose to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// Row id, increasing.
    pub id: i64,
    /// When the heartbeat was taken.
    pub created_on: Timestamp,
    /// Workers' state, free space, temperature, throttling, uptime, clock sync, ...
    pub payload: serde_json::Value,
}

/// A value out of range: nothing is written.
pub(super) fn invalid(field: &'static str, reason: String) -> StoreError {
    StoreError::Invalid { field, reason }
}

/// `value`, when set, is finite and within `[-bound, bound]`.
pub(super) fn check_range(
    field: &'static str,
    value: Option<f64>,
    bound: f64,
) -> Result<(), StoreError> {
    match value {
        Some(v) if !(v.is_finite() && (-bound..=bound).contains(&v)) => Err(invalid(
            field,
            format!("{v} is outside [-{bound}, {bound}]"),
        )),
        _ => Ok(()),
    }
}

/// The checks every new recording passes before it is written.
pub(super) fn validate(new: &NewRecording) -> Result<(), StoreError> {
    if !(new.duration_s.is_finite() && new.duration_s > 0.0) {
        return Err(invalid(
            "duration_s",
            format!("{} is not > 0", new.duration_s),
        ));
    }
    if new.samplerate_hz == 0 {
        return Err(invalid("samplerate_hz", "0 is not > 0".into()));
    }
    if new.audio_channels == 0 {
        return Err(invalid("audio_channels", "0 is not >= 1".into()));
    }
    if !(new.time_expansion.is_finite() && new.time_expansion > 0.0) {
        return Err(invalid(
            "time_expansion",
            format!("{} is not > 0", new.time_expansion),
        ));
    }
    if new.path.as_os_str().is_empty() {
        return Err(invalid("path", "empty".into()));
    }
    Ok(())
}
