//! The `recording` table: a file's row from its first write (`tmp`) through its move
//! (`kept`) to its deletion, and the queries the management task, the audit and
//! `deployment status` page through.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::{collect, path_text, sqlite_err, ts, MetadataStore};
use crate::store::db::{parse_timestamp, to_micros};
use crate::store::metadata_rows::{RawRecording, RECORDING_COLUMNS};
use crate::store::metadata_types::{invalid, validate, NewRecording, Recording, RecordingState};
use crate::store::StoreError;

impl MetadataStore {
    /// Records a finished file in state `tmp`. Idempotent by id: a second call returns
    /// the stored row unchanged. The deployment must exist; a start instant or path
    /// already used by another recording is refused, never overwritten.
    pub fn insert_recording(&mut self, new: &NewRecording) -> Result<Recording, StoreError> {
        validate(new)?;
        let path_str = path_text(&new.path)?.to_owned();
        let frames = i64::try_from(new.frames)
            .map_err(|_| invalid("frames", format!("{} is too large", new.frames)))?;
        let datetime = to_micros(new.datetime);
        let err = |op| sqlite_err(&self.path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("locking"))?;
        if let Some(existing) = recording_where(&tx, &self.path, "id = ?1", new.id.as_bytes())? {
            return Ok(existing);
        }
        let deployment_known: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM deployment WHERE id = ?1)",
                [new.deployment_id.as_bytes()],
                |r| r.get(0),
            )
            .map_err(err("reading deployments in"))?;
        if !deployment_known {
            return Err(StoreError::UnknownDeployment {
                id: new.deployment_id,
            });
        }
        if let Some(other) = recording_where(&tx, &self.path, "datetime = ?1", ts(datetime))? {
            return Err(StoreError::DatetimeTaken {
                id: new.id,
                datetime,
                existing: other.id,
            });
        }
        if let Some(other) = recording_where(&tx, &self.path, "path = ?1", &path_str)? {
            return Err(StoreError::PathTaken {
                id: new.id,
                path: new.path.clone(),
                existing: other.id,
            });
        }
        tx.execute(
            &format!(
                "INSERT INTO recording ({RECORDING_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                new.id.as_bytes(),
                path_str,
                ts(datetime),
                new.duration_s,
                new.samplerate_hz,
                new.audio_channels,
                new.deployment_id.as_bytes(),
                RecordingState::Tmp.as_str(),
                new.clock_synced,
                new.time_expansion,
                new.bit_depth,
                frames,
            ],
        )
        .map_err(err("inserting a recording into"))?;
        tx.commit().map_err(err("committing a recording to"))?;
        Ok(Recording {
            id: new.id,
            path: Some(new.path.clone()),
            datetime,
            duration_s: new.duration_s,
            samplerate_hz: new.samplerate_hz,
            audio_channels: new.audio_channels,
            deployment_id: new.deployment_id,
            state: Some(RecordingState::Tmp),
            clock_synced: Some(new.clock_synced),
            time_expansion: Some(new.time_expansion),
            bit_depth: Some(new.bit_depth),
            frames: Some(new.frames),
        })
    }

    /// Records that the file now lives at `new_path` in the recordings directory (path and
    /// state change together). Call after the file is in place; calling again is harmless.
    pub fn mark_kept(&mut self, id: Uuid, new_path: &Path) -> Result<Recording, StoreError> {
        let path_str = path_text(new_path)?.to_owned();
        let err = |op| sqlite_err(&self.path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("locking"))?;
        if let Some(other) = recording_where(&tx, &self.path, "path = ?1", &path_str)? {
            if other.id != id {
                return Err(StoreError::PathTaken {
                    id,
                    path: new_path.to_path_buf(),
                    existing: other.id,
                });
            }
        }
        let changed = tx
            .execute(
                "UPDATE recording SET path = ?1, state = ?2 WHERE id = ?3",
                params![path_str, RecordingState::Kept.as_str(), id.as_bytes()],
            )
            .map_err(err("updating a recording in"))?;
        if changed == 0 {
            return Err(StoreError::UnknownRecording { id });
        }
        let kept = recording_where(&tx, &self.path, "id = ?1", id.as_bytes())?
            .ok_or(StoreError::UnknownRecording { id })?;
        tx.commit().map_err(err("committing a recording move to"))?;
        Ok(kept)
    }

    /// Registers a file that had no row: inserts it (state `tmp`) and, when `kept` (the
    /// file already lies in the recordings root), marks it kept at its path. The daemon's
    /// start-up repair and `acoupi audit --repair` both register orphans through this.
    /// Safe to repeat: both steps are idempotent by id.
    pub fn register_recording(
        &mut self,
        row: &NewRecording,
        kept: bool,
    ) -> Result<Recording, StoreError> {
        let stored = self.insert_recording(row)?;
        if kept {
            return self.mark_kept(row.id, &row.path);
        }
        Ok(stored)
    }

    /// Deletes a recording and the model outputs, detections and tags that hang from it.
    /// Call after the file is gone. Returns whether the row existed.
    pub fn delete_recording(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let err = |op| sqlite_err(&self.path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("locking"))?;
        // Children first: foreign keys are enforced and upstream's schema has no cascade.
        tx.execute(
            "DELETE FROM predicted_tag WHERE detection_id IN (
                 SELECT d.id FROM detection d JOIN model_output m ON d.model_output_id = m.id
                 WHERE m.recording_id = ?1)",
            [id.as_bytes()],
        )
        .and_then(|_| {
            tx.execute(
                "DELETE FROM detection WHERE model_output_id IN (
                     SELECT id FROM model_output WHERE recording_id = ?1)",
                [id.as_bytes()],
            )
        })
        .and_then(|_| {
            tx.execute(
                "DELETE FROM model_output WHERE recording_id = ?1",
                [id.as_bytes()],
            )
        })
        .map_err(err("deleting model outputs from"))?;
        let deleted = tx
            .execute("DELETE FROM recording WHERE id = ?1", [id.as_bytes()])
            .map_err(err("deleting a recording from"))?;
        tx.commit().map_err(err("committing a deletion to"))?;
        Ok(deleted > 0)
    }

    /// One recording by id.
    pub fn recording(&self, id: Uuid) -> Result<Option<Recording>, StoreError> {
        recording_where(&self.conn, &self.path, "id = ?1", id.as_bytes())
    }

    /// The recording stored at `path`, if any.
    pub fn find_by_path(&self, path: &Path) -> Result<Option<Recording>, StoreError> {
        recording_where(&self.conn, &self.path, "path = ?1", path_text(path)?)
    }

    /// Recordings still in the temporary directory, oldest first. Rows written by
    /// upstream acoupi (no `state`) are never listed here or as kept.
    pub fn tmp_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        self.recordings("state = 'tmp' ORDER BY datetime", params![])
    }

    /// The `limit` oldest kept recordings (retention frees space from these).
    pub fn oldest_kept(&self, limit: usize) -> Result<Vec<Recording>, StoreError> {
        self.kept_after(None, limit)
    }

    /// Up to `limit` kept recordings that started after `after` (from the first when
    /// `None`), oldest first: pages through every kept recording (`datetime` is unique).
    pub fn kept_after(
        &self,
        after: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<Recording>, StoreError> {
        let after = after.map_or_else(String::new, ts);
        self.recordings(
            "state = 'kept' AND datetime > ?1 ORDER BY datetime LIMIT ?2",
            [&after as &dyn rusqlite::ToSql, &sql_limit(limit)],
        )
    }

    /// Up to `limit` kept recordings that started before `before`, oldest first.
    pub fn kept_older_than(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Recording>, StoreError> {
        self.recordings(
            "state = 'kept' AND datetime < ?1 ORDER BY datetime LIMIT ?2",
            [&ts(before) as &dyn rusqlite::ToSql, &sql_limit(limit)],
        )
    }

    /// Recordings that started at or after `since`, oldest first.
    pub fn recordings_since(&self, since: Timestamp) -> Result<Vec<Recording>, StoreError> {
        self.recordings("datetime >= ?1 ORDER BY datetime", [ts(since)])
    }

    /// How many recordings started at or after `since` (indexed: `datetime` is unique).
    pub fn count_recordings_since(&self, since: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM recording WHERE datetime >= ?1",
                [ts(since)],
                |r| r.get(0),
            )
            .map_err(self.err("counting recordings in"))?;
        // COUNT(*) is never negative.
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The start of the `n`th most recent recording (of any deployment), `None` when there
    /// are fewer: where an audit of the newest `n` begins. One walk of `n` entries of the
    /// `datetime` index, whatever the table's size.
    pub fn start_of_newest(&self, n: usize) -> Result<Option<Timestamp>, StoreError> {
        let offset = sql_limit(n.saturating_sub(1));
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT datetime FROM recording ORDER BY datetime DESC LIMIT 1 OFFSET ?1",
                [offset],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading recordings in"))?;
        text.map(|t| {
            parse_timestamp(&t).ok_or_else(|| StoreError::BadValue {
                path: self.path.clone(),
                table: "recording",
                column: "datetime",
                value: t,
            })
        })
        .transpose()
    }

    /// The most recent recording of any deployment.
    pub fn last_recording(&self) -> Result<Option<Recording>, StoreError> {
        Ok(self
            .recordings("1 = ?1 ORDER BY datetime DESC LIMIT 1", [1])?
            .pop())
    }

    /// Every non-NULL recording path (for the audit).
    pub(crate) fn recording_paths(&self) -> Result<Vec<PathBuf>, StoreError> {
        collect(
            &self.conn,
            "SELECT path FROM recording WHERE path IS NOT NULL",
            [],
            |r| r.get::<_, String>(0),
        )
        .map(|v| v.into_iter().map(PathBuf::from).collect())
        .map_err(self.err("reading recording paths in"))
    }

    fn recordings<P: rusqlite::Params>(
        &self,
        clause: &str,
        params: P,
    ) -> Result<Vec<Recording>, StoreError> {
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM recording WHERE {clause}");
        let raw = collect(&self.conn, &sql, params, RawRecording::read)
            .map_err(self.err("reading recordings in"))?;
        raw.into_iter().map(|r| r.into_typed(&self.path)).collect()
    }
}

/// The first recording matching `clause` (which uses `?1`).
pub(super) fn recording_where(
    conn: &Connection,
    db: &Path,
    clause: &str,
    value: impl rusqlite::ToSql,
) -> Result<Option<Recording>, StoreError> {
    let sql = format!("SELECT {RECORDING_COLUMNS} FROM recording WHERE {clause}");
    conn.query_row(&sql, [value], RawRecording::read)
        .optional()
        .map_err(|e| StoreError::sqlite(db, "reading recordings in", e))?
        .map(|r| r.into_typed(db))
        .transpose()
}

/// A LIMIT value: SQLite takes i64; anything larger means "no limit".
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
