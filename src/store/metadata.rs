//! metadata.db: deployments, recordings, capture gaps and heartbeats.
//!
//! [`MetadataStore`] holds one connection. Every method is one transaction and the
//! writing ones are idempotent where a replay after a crash could call them twice
//! (`insert_recording`, `mark_kept`, `delete_recording`). It knows nothing about saving
//! filters, destinations or retention policy: callers decide, the store records.
//!
//! Timestamps are stored as upstream's UTC text with six fractional digits and read back
//! truncated to the microsecond; the values returned are what is stored.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use uuid::Uuid;

use super::db::{
    format_timestamp, open_db_inspected, to_micros, Check, Durability, TimestampStyle,
};
use super::metadata_rows::{
    RawDeployment, RawGap, RawHeartbeat, RawRecording, DEPLOYMENT_COLUMNS, GAP_COLUMNS,
    HEARTBEAT_COLUMNS, RECORDING_COLUMNS,
};
use super::metadata_types::{check_range, invalid, validate};
pub use super::metadata_types::{
    Deployment, Gap, Heartbeat, NewRecording, Recording, RecordingState, RecordingSummary,
};
use super::{schema, StoreError};

/// The open metadata.db.
pub struct MetadataStore {
    conn: Connection,
    path: PathBuf,
    was_empty: bool,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore")
            .field("path", &self.path)
            .finish()
    }
}

fn sqlite_err<'a>(db: &'a Path, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |e| StoreError::sqlite(db, op, e)
}

fn ts(t: Timestamp) -> String {
    format_timestamp(t, TimestampStyle::T)
}

fn path_text(path: &Path) -> Result<&str, StoreError> {
    path.to_str().ok_or_else(|| StoreError::NonUtf8Path {
        path: path.to_path_buf(),
    })
}

impl MetadataStore {
    /// Opens metadata.db at `path` with [`Durability::Full`] and [`Check::Full`]
    /// (creating it if missing, refusing a corrupt one) and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Full, Check::Full)
    }

    /// [`MetadataStore::open`] with a chosen durability and depth of check.
    pub fn open_with(
        path: &Path,
        durability: Durability,
        check: Check,
    ) -> Result<Self, StoreError> {
        // A zero-length file is what a truncation leaves (a card pulled mid-write, a
        // `>` in a shell): SQLite would take it for a new database. It is initialised,
        // as there is nothing left to keep, but never silently.
        let was_empty = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0);
        let mut conn =
            open_db_inspected(path, durability, check, |c| schema::refuse_foreign(c, path))?;
        schema::migrate(&mut conn, path)?;
        if was_empty {
            tracing::warn!(path = %path.display(), "metadata.db was an empty file (0 bytes): initialised as a new, empty store; if it held deployments and recordings, stop acoupi and restore it from a backup (the recordings on disk are untouched)");
        }
        Ok(MetadataStore {
            conn,
            path: path.to_path_buf(),
            was_empty,
        })
    }

    /// Opens an existing metadata.db for the read-only commands (`deployment status`,
    /// `check`): no integrity check, no migration, no write lock
    /// ([`super::db::open_for_reading`]), so their cost does not grow with the file and
    /// they never hold up the recorder. Another program's database is still refused
    /// ([`StoreError::Foreign`]). The integrity checks run where they belong: the
    /// recorder's start-up and `acoupi audit`.
    pub fn open_for_reading(path: &Path) -> Result<Self, StoreError> {
        let conn = super::db::open_for_reading(path)?;
        schema::refuse_foreign(&conn, path)?;
        Ok(MetadataStore {
            conn,
            path: path.to_path_buf(),
            was_empty: false,
        })
    }

    /// Whether the file was empty (0 bytes) when opened, and is now a new store.
    pub fn was_empty(&self) -> bool {
        self.was_empty
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for the audit's queries in this module's sibling `audit`.
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Copies every page of the write-ahead log into the database and truncates the log
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`). SQLite does this itself when the last
    /// connection closes; a daemon calls it at a stop so no `-wal` with pages in it is
    /// left even when another connection (a thread left behind) is still open.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.err("checkpointing"))
    }

    fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sqlite_err(&self.path, op)
    }

    /// Starts a deployment. Refuses with [`StoreError::DeploymentActive`] while one is
    /// active; earlier deployments are never touched.
    pub fn start_deployment(
        &mut self,
        name: &str,
        latitude: Option<f64>,
        longitude: Option<f64>,
        started_on: Timestamp,
    ) -> Result<Deployment, StoreError> {
        if name.trim().is_empty() {
            return Err(invalid("name", "a deployment needs a name".into()));
        }
        check_range("latitude", latitude, 90.0)?;
        check_range("longitude", longitude, 180.0)?;
        let deployment = Deployment {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            started_on: to_micros(started_on),
            ended_on: None,
            latitude,
            longitude,
        };
        let err = |op| sqlite_err(&self.path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("locking"))?;
        if let Some(active) = latest_active(&tx, &self.path)? {
            return Err(StoreError::DeploymentActive {
                name: active.name,
                started_on: active.started_on,
            });
        }
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM deployment WHERE started_on = ?1)",
                [ts(deployment.started_on)],
                |r| r.get(0),
            )
            .map_err(err("reading deployments in"))?;
        if taken {
            return Err(StoreError::StartTaken {
                started_on: deployment.started_on,
            });
        }
        tx.execute(
            "INSERT INTO deployment (id, name, started_on, ended_on, latitude, longitude)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            params![
                deployment.id.as_bytes(),
                deployment.name,
                ts(deployment.started_on),
                latitude,
                longitude
            ],
        )
        .map_err(err("inserting a deployment into"))?;
        tx.commit().map_err(err("committing a deployment to"))?;
        Ok(deployment)
    }

    /// Ends the active deployment at `ended_on`; [`StoreError::NotDeployed`] if none is.
    /// An end before the start (a clock that jumped back) is stored as given and logged.
    pub fn end_active_deployment(&mut self, ended_on: Timestamp) -> Result<Deployment, StoreError> {
        let err = |op| sqlite_err(&self.path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("locking"))?;
        let mut active = latest_active(&tx, &self.path)?.ok_or(StoreError::NotDeployed)?;
        let ended_on = to_micros(ended_on);
        if ended_on < active.started_on {
            tracing::warn!(deployment = %active.id, %ended_on, started_on = %active.started_on,
                "deployment ends before it started; the clock probably jumped");
        }
        tx.execute(
            "UPDATE deployment SET ended_on = ?1 WHERE id = ?2",
            params![ts(ended_on), active.id.as_bytes()],
        )
        .map_err(err("ending a deployment in"))?;
        tx.commit().map_err(err("committing a deployment end to"))?;
        active.ended_on = Some(ended_on);
        Ok(active)
    }

    /// The active deployment: the one with the latest start (upstream's rule), if it has
    /// not ended.
    pub fn active_deployment(&self) -> Result<Option<Deployment>, StoreError> {
        latest_active(&self.conn, &self.path)
    }

    /// All deployments, oldest first.
    pub fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployment ORDER BY started_on");
        let raw = collect(&self.conn, &sql, [], RawDeployment::read)
            .map_err(self.err("reading deployments in"))?;
        raw.into_iter().map(|r| r.into_typed(&self.path)).collect()
    }

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

    /// The most recent recording of any deployment.
    pub fn last_recording(&self) -> Result<Option<Recording>, StoreError> {
        Ok(self
            .recordings("1 = ?1 ORDER BY datetime DESC LIMIT 1", [1])?
            .pop())
    }

    /// Count, total duration and last recording of a deployment.
    pub fn recording_summary(&self, deployment_id: Uuid) -> Result<RecordingSummary, StoreError> {
        let (count, total_duration_s): (i64, f64) = self
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(duration_s), 0.0) FROM recording
                 WHERE deployment_id = ?1",
                [deployment_id.as_bytes()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err("summarising recordings in"))?;
        let last = recording_where(
            &self.conn,
            &self.path,
            "deployment_id = ?1 ORDER BY datetime DESC LIMIT 1",
            deployment_id.as_bytes(),
        )?;
        Ok(RecordingSummary {
            // COUNT(*) is never negative.
            count: u64::try_from(count).unwrap_or(0),
            total_duration_s,
            last,
        })
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

    /// Records a capture gap. The deployment must exist and the gap must not end before
    /// it starts.
    pub fn insert_gap(&mut self, gap: &Gap) -> Result<(), StoreError> {
        if gap.ended_on < gap.started_on {
            return Err(invalid(
                "gap",
                format!(
                    "ends at {} before it starts at {}",
                    gap.ended_on, gap.started_on
                ),
            ));
        }
        self.conn
            .execute(
                "INSERT INTO gap (deployment_id, started_on, ended_on, reason)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    gap.deployment_id.as_bytes(),
                    ts(gap.started_on),
                    ts(gap.ended_on),
                    gap.reason
                ],
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::UnknownDeployment {
                    id: gap.deployment_id,
                },
                _ => StoreError::sqlite(&self.path, "inserting a gap into", e),
            })?;
        Ok(())
    }

    /// Gaps that ended at or after `since`, in start order.
    pub fn gaps_since(&self, since: Timestamp) -> Result<Vec<Gap>, StoreError> {
        let sql =
            format!("SELECT {GAP_COLUMNS} FROM gap WHERE ended_on >= ?1 ORDER BY started_on, id");
        let raw = collect(&self.conn, &sql, [ts(since)], RawGap::read)
            .map_err(self.err("reading gaps in"))?;
        raw.into_iter().map(|r| r.into_typed(&self.path)).collect()
    }

    /// Stores a heartbeat; `payload` is serialised as JSON.
    pub fn insert_heartbeat<T: Serialize>(
        &mut self,
        created_on: Timestamp,
        payload: &T,
    ) -> Result<Heartbeat, StoreError> {
        let value = serde_json::to_value(payload)
            .map_err(|e| invalid("heartbeat payload", e.to_string()))?;
        let created_on = to_micros(created_on);
        self.conn
            .execute(
                "INSERT INTO heartbeat (created_on, payload) VALUES (?1, ?2)",
                params![ts(created_on), value.to_string()],
            )
            .map_err(self.err("inserting a heartbeat into"))?;
        Ok(Heartbeat {
            id: self.conn.last_insert_rowid(),
            created_on,
            payload: value,
        })
    }

    /// Heartbeats taken at or after `since`, oldest first.
    pub fn heartbeats_since(&self, since: Timestamp) -> Result<Vec<Heartbeat>, StoreError> {
        let sql = format!(
            "SELECT {HEARTBEAT_COLUMNS} FROM heartbeat WHERE created_on >= ?1
             ORDER BY created_on, id"
        );
        let raw = collect(&self.conn, &sql, [ts(since)], RawHeartbeat::read)
            .map_err(self.err("reading heartbeats in"))?;
        raw.into_iter().map(|r| r.into_typed(&self.path)).collect()
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

/// The latest-started deployment if it has not ended.
fn latest_active(conn: &Connection, db: &Path) -> Result<Option<Deployment>, StoreError> {
    let sql =
        format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployment ORDER BY started_on DESC LIMIT 1");
    let latest = conn
        .query_row(&sql, [], RawDeployment::read)
        .optional()
        .map_err(|e| StoreError::sqlite(db, "reading deployments in", e))?
        .map(|r| r.into_typed(db))
        .transpose()?;
    Ok(latest.filter(|d| d.ended_on.is_none()))
}

/// The first recording matching `clause` (which uses `?1`).
fn recording_where(
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

fn collect<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, read)?;
    rows.collect()
}

/// A LIMIT value: SQLite takes i64; anything larger means "no limit".
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
