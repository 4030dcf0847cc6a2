//! Reading metadata.db rows into the public types: the column lists every SELECT uses and
//! the checked conversions from SQLite's loose typing.
//!
//! Rows are read in two steps, raw values inside rusqlite's row callback and typed
//! conversion outside it, so that a bad value becomes a [`StoreError::BadValue`] naming the
//! file, table and column rather than an opaque conversion error.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::Row;
use uuid::Uuid;

use super::db::parse_timestamp;
use super::metadata_types::{Deployment, Gap, Heartbeat, Recording, RecordingState};
use super::StoreError;

/// Columns of `deployment`, in the order [`RawDeployment::read`] expects.
pub(super) const DEPLOYMENT_COLUMNS: &str = "id, name, started_on, ended_on, latitude, longitude";

/// Columns of `recording`, in the order [`RawRecording::read`] expects.
pub(super) const RECORDING_COLUMNS: &str = "id, path, datetime, duration_s, samplerate_hz, \
     audio_channels, deployment_id, state, clock_synced, time_expansion, bit_depth, frames";

/// Columns of `gap`, in the order [`RawGap::read`] expects.
pub(super) const GAP_COLUMNS: &str = "deployment_id, started_on, ended_on, reason";

/// Columns of `heartbeat`, in the order [`RawHeartbeat::read`] expects.
pub(super) const HEARTBEAT_COLUMNS: &str = "id, created_on, payload";

/// One `deployment` row as stored.
pub(super) struct RawDeployment {
    id: [u8; 16],
    name: String,
    started_on: String,
    ended_on: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl RawDeployment {
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawDeployment {
            id: row.get(0)?,
            name: row.get(1)?,
            started_on: row.get(2)?,
            ended_on: row.get(3)?,
            latitude: row.get(4)?,
            longitude: row.get(5)?,
        })
    }

    pub(super) fn into_typed(self, db: &Path) -> Result<Deployment, StoreError> {
        const T: &str = "deployment";
        Ok(Deployment {
            id: Uuid::from_bytes(self.id),
            name: self.name,
            started_on: timestamp(db, T, "started_on", &self.started_on)?,
            ended_on: self
                .ended_on
                .map(|t| timestamp(db, T, "ended_on", &t))
                .transpose()?,
            latitude: self.latitude,
            longitude: self.longitude,
        })
    }
}

/// One `recording` row as stored.
pub(super) struct RawRecording {
    id: [u8; 16],
    path: Option<String>,
    datetime: String,
    duration_s: f64,
    samplerate_hz: i64,
    audio_channels: i64,
    deployment_id: [u8; 16],
    state: Option<String>,
    clock_synced: Option<bool>,
    time_expansion: Option<f64>,
    bit_depth: Option<i64>,
    frames: Option<i64>,
}

impl RawRecording {
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawRecording {
            id: row.get(0)?,
            path: row.get(1)?,
            datetime: row.get(2)?,
            duration_s: row.get(3)?,
            samplerate_hz: row.get(4)?,
            audio_channels: row.get(5)?,
            deployment_id: row.get(6)?,
            state: row.get(7)?,
            clock_synced: row.get(8)?,
            time_expansion: row.get(9)?,
            bit_depth: row.get(10)?,
            frames: row.get(11)?,
        })
    }

    pub(super) fn into_typed(self, db: &Path) -> Result<Recording, StoreError> {
        const T: &str = "recording";
        let state = match self.state.as_deref() {
            None => None,
            Some("tmp") => Some(RecordingState::Tmp),
            Some("kept") => Some(RecordingState::Kept),
            Some(other) => return Err(bad(db, T, "state", other)),
        };
        Ok(Recording {
            id: Uuid::from_bytes(self.id),
            path: self.path.map(PathBuf::from),
            datetime: timestamp(db, T, "datetime", &self.datetime)?,
            duration_s: self.duration_s,
            samplerate_hz: int(db, T, "samplerate_hz", self.samplerate_hz)?,
            audio_channels: int(db, T, "audio_channels", self.audio_channels)?,
            deployment_id: Uuid::from_bytes(self.deployment_id),
            state,
            clock_synced: self.clock_synced,
            time_expansion: self.time_expansion,
            bit_depth: self
                .bit_depth
                .map(|v| int(db, T, "bit_depth", v))
                .transpose()?,
            frames: self.frames.map(|v| int(db, T, "frames", v)).transpose()?,
        })
    }
}

/// One `gap` row as stored.
pub(super) struct RawGap {
    deployment_id: [u8; 16],
    started_on: String,
    ended_on: String,
    reason: String,
}

impl RawGap {
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawGap {
            deployment_id: row.get(0)?,
            started_on: row.get(1)?,
            ended_on: row.get(2)?,
            reason: row.get(3)?,
        })
    }

    pub(super) fn into_typed(self, db: &Path) -> Result<Gap, StoreError> {
        Ok(Gap {
            deployment_id: Uuid::from_bytes(self.deployment_id),
            started_on: timestamp(db, "gap", "started_on", &self.started_on)?,
            ended_on: timestamp(db, "gap", "ended_on", &self.ended_on)?,
            reason: self.reason,
        })
    }
}

/// One `heartbeat` row as stored.
pub(super) struct RawHeartbeat {
    id: i64,
    created_on: String,
    payload: String,
}

impl RawHeartbeat {
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawHeartbeat {
            id: row.get(0)?,
            created_on: row.get(1)?,
            payload: row.get(2)?,
        })
    }

    pub(super) fn into_typed(self, db: &Path) -> Result<Heartbeat, StoreError> {
        let payload = serde_json::from_str(&self.payload)
            .map_err(|_| bad(db, "heartbeat", "payload", &self.payload))?;
        Ok(Heartbeat {
            id: self.id,
            created_on: timestamp(db, "heartbeat", "created_on", &self.created_on)?,
            payload,
        })
    }
}

fn timestamp(
    db: &Path,
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<Timestamp, StoreError> {
    parse_timestamp(text).ok_or_else(|| bad(db, table, column, text))
}

fn int<T: TryFrom<i64>>(
    db: &Path,
    table: &'static str,
    column: &'static str,
    value: i64,
) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| bad(db, table, column, &value.to_string()))
}

fn bad(db: &Path, table: &'static str, column: &'static str, value: &str) -> StoreError {
    StoreError::BadValue {
        path: db.to_path_buf(),
        table,
        column,
        value: value.to_owned(),
    }
}
