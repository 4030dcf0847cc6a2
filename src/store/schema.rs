//! metadata.db's schema: upstream acoupi's tables as they are, then our numbered
//! migrations.
//!
//! Migration 1 is upstream's schema (`CREATE ... IF NOT EXISTS`, `user_version = 1`), so a
//! file written by upstream acoupi passes through it unchanged. Later migrations only add
//! tables and nullable columns: upstream tools select the columns they know and never
//! see ours. Each migration runs in one `BEGIN IMMEDIATE` transaction together with its
//! row in `acoupi_schema_version`, so it is applied exactly once even when two processes
//! open the file at the same moment.

use std::path::Path;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::db::{format_timestamp, TimestampStyle};
use super::StoreError;

/// Upstream's `PRAGMA user_version` for the schema below.
pub const UPSTREAM_USER_VERSION: i64 = 1;

/// Upstream acoupi's metadata.db schema (acoupi 0.6 `create_base_schema`).
const UPSTREAM_V1: &str = "
CREATE TABLE IF NOT EXISTS deployment (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    started_on TEXT NOT NULL UNIQUE,
    ended_on TEXT,
    latitude REAL,
    longitude REAL
);
CREATE TABLE IF NOT EXISTS recording (
    id BLOB PRIMARY KEY,
    path TEXT UNIQUE,
    datetime TEXT NOT NULL UNIQUE,
    duration_s REAL NOT NULL,
    samplerate_hz INTEGER NOT NULL,
    audio_channels INTEGER NOT NULL DEFAULT 1,
    deployment_id BLOB NOT NULL,
    FOREIGN KEY (deployment_id) REFERENCES deployment(id)
);
CREATE TABLE IF NOT EXISTS model_output (
    id BLOB PRIMARY KEY,
    model_name TEXT NOT NULL,
    recording_id BLOB NOT NULL,
    created_on TEXT NOT NULL,
    FOREIGN KEY (recording_id) REFERENCES recording(id)
);
CREATE TABLE IF NOT EXISTS detection (
    id BLOB PRIMARY KEY,
    prediction_type TEXT NOT NULL CHECK (
        prediction_type IN ('presence', 'sequence', 'event')
    ),
    start_time_s REAL,
    end_time_s REAL,
    low_freq_hz REAL,
    high_freq_hz REAL,
    detection_score REAL NOT NULL,
    model_output_id BLOB NOT NULL,
    FOREIGN KEY (model_output_id) REFERENCES model_output(id)
);
CREATE TABLE IF NOT EXISTS predicted_tag (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    confidence_score REAL NOT NULL,
    detection_id BLOB NOT NULL,
    FOREIGN KEY (detection_id) REFERENCES detection(id)
);
CREATE INDEX IF NOT EXISTS idx_recording_deployment_id ON recording(deployment_id);
CREATE INDEX IF NOT EXISTS idx_model_output_recording_id ON model_output(recording_id);
CREATE INDEX IF NOT EXISTS idx_model_output_created_on ON model_output(created_on);
CREATE INDEX IF NOT EXISTS idx_detection_model_output_id ON detection(model_output_id);
CREATE INDEX IF NOT EXISTS idx_predicted_tag_detection_id ON predicted_tag(detection_id);
CREATE INDEX IF NOT EXISTS idx_predicted_tag_key_value ON predicted_tag(key, value);
PRAGMA user_version = 1;
";

/// Our additions: file state and capture facts on `recording`, capture gaps, heartbeats.
/// `idx_recording_deployment_datetime` covers `deployment status`'s count, total duration
/// and last recording without a sort (190 ms → about 1 ms at 100,000 recordings).
const ACOUPI_V2: &str = "
ALTER TABLE recording ADD COLUMN state TEXT CHECK (state IN ('tmp', 'kept'));
ALTER TABLE recording ADD COLUMN clock_synced INTEGER;
ALTER TABLE recording ADD COLUMN time_expansion REAL;
ALTER TABLE recording ADD COLUMN bit_depth INTEGER;
ALTER TABLE recording ADD COLUMN frames INTEGER;
CREATE INDEX IF NOT EXISTS idx_recording_state_datetime ON recording(state, datetime);
CREATE INDEX IF NOT EXISTS idx_recording_deployment_datetime
    ON recording(deployment_id, datetime, duration_s);
CREATE TABLE IF NOT EXISTS gap (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id BLOB NOT NULL,
    started_on TEXT NOT NULL,
    ended_on TEXT NOT NULL,
    reason TEXT NOT NULL,
    FOREIGN KEY (deployment_id) REFERENCES deployment(id)
);
CREATE INDEX IF NOT EXISTS idx_gap_started_on ON gap(started_on);
CREATE TABLE IF NOT EXISTS heartbeat (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_on TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_heartbeat_created_on ON heartbeat(created_on);
";

/// `acoupi audit --repair`'s mark on a row whose file is gone: when the loss was noticed.
/// Rows are never deleted for a missing file (the row is the only trace left of the
/// recording); the mark says the loss is known, so later audits do not report it again.
const ACOUPI_V3: &str = "
ALTER TABLE recording ADD COLUMN file_missing_since TEXT;
";

/// `deployment status` at a cost independent of the archive's size: each deployment's
/// recording count and total duration, kept by triggers on `recording` (so rows written
/// by upstream acoupi, a repair or a hand are counted too) and filled once here from the
/// rows already stored. Counting the rows instead is an index scan: 110 ms at 1,000,000
/// recordings. Every deployment gets its row when it is inserted, so the recording
/// triggers only add and subtract; they use no conflict clause (an outer `INSERT OR
/// REPLACE` would impose its own). Only `deployment_id` and `duration_s` updates fire the
/// update trigger (moves change `path` and `state`, and stay as cheap as before).
///
/// `acoupi_integrity` holds the last integrity check of the file (one row): the daemon
/// checks at start-up and once a day in the background, and `deployment status` and
/// `check` report the result without checking every page themselves.
const ACOUPI_V4: &str = "
CREATE TABLE IF NOT EXISTS acoupi_recording_summary (
    deployment_id BLOB PRIMARY KEY,
    recordings INTEGER NOT NULL,
    total_duration_s REAL NOT NULL
);
DELETE FROM acoupi_recording_summary;
INSERT INTO acoupi_recording_summary (deployment_id, recordings, total_duration_s)
    SELECT d.id, COUNT(r.deployment_id), TOTAL(r.duration_s)
    FROM (SELECT id FROM deployment UNION SELECT DISTINCT deployment_id FROM recording) d
    LEFT JOIN recording r ON r.deployment_id = d.id
    GROUP BY d.id;
CREATE TRIGGER IF NOT EXISTS acoupi_recording_summary_deployment AFTER INSERT ON deployment
BEGIN
    INSERT INTO acoupi_recording_summary (deployment_id, recordings, total_duration_s)
        SELECT NEW.id, 0, 0.0 WHERE NOT EXISTS (
            SELECT 1 FROM acoupi_recording_summary WHERE deployment_id = NEW.id);
END;
CREATE TRIGGER IF NOT EXISTS acoupi_recording_summary_insert AFTER INSERT ON recording
BEGIN
    UPDATE acoupi_recording_summary SET recordings = recordings + 1,
        total_duration_s = total_duration_s + COALESCE(NEW.duration_s, 0.0)
        WHERE deployment_id = NEW.deployment_id;
END;
CREATE TRIGGER IF NOT EXISTS acoupi_recording_summary_delete AFTER DELETE ON recording
BEGIN
    UPDATE acoupi_recording_summary SET recordings = recordings - 1,
        total_duration_s = total_duration_s - COALESCE(OLD.duration_s, 0.0)
        WHERE deployment_id = OLD.deployment_id;
END;
CREATE TRIGGER IF NOT EXISTS acoupi_recording_summary_update
    AFTER UPDATE OF deployment_id, duration_s ON recording
BEGIN
    UPDATE acoupi_recording_summary SET
        recordings = recordings
            + (deployment_id = NEW.deployment_id) - (deployment_id = OLD.deployment_id),
        total_duration_s = total_duration_s
            + CASE WHEN deployment_id = NEW.deployment_id THEN COALESCE(NEW.duration_s, 0.0) ELSE 0.0 END
            - CASE WHEN deployment_id = OLD.deployment_id THEN COALESCE(OLD.duration_s, 0.0) ELSE 0.0 END
        WHERE deployment_id IN (OLD.deployment_id, NEW.deployment_id);
END;
CREATE TABLE IF NOT EXISTS acoupi_integrity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_on TEXT NOT NULL,
    kind TEXT NOT NULL,
    problems TEXT
);
";

/// The schema version that added `acoupi_recording_summary` and `acoupi_integrity`: a
/// file opened read-only and not migrated yet is summarised by counting.
pub const SUMMARY_VERSION: i64 = 4;
/// Every table metadata.db may hold: upstream's and ours (SQLite's own `sqlite_*`
/// tables aside).
const KNOWN_TABLES: &[&str] = &[
    "deployment",
    "recording",
    "model_output",
    "detection",
    "predicted_tag",
    "acoupi_schema_version",
    "gap",
    "heartbeat",
    "acoupi_recording_summary",
    "acoupi_integrity",
];

/// Refuses another application's database ([`StoreError::Foreign`], by
/// [`super::db::foreign_tables`]) before anything is written to it.
pub fn refuse_foreign(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    match super::db::foreign_tables(conn, KNOWN_TABLES) {
        Ok(None) => Ok(()),
        Ok(Some(tables)) => Err(StoreError::Foreign {
            path: path.to_path_buf(),
            tables,
        }),
        Err(e) => Err(StoreError::sqlite(path, "listing the tables of", e)),
    }
}

/// The migrations in order; a file at version `n` has had the first `n` applied.
const MIGRATIONS: &[&str] = &[UPSTREAM_V1, ACOUPI_V2, ACOUPI_V3, ACOUPI_V4];

/// The schema version this binary writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// The version recorded in `acoupi_schema_version` (0 when the table is absent: a file
/// upstream acoupi wrote, or one never opened for writing), read without changing the
/// file. [`StoreError::NewerSchema`] when a newer acoupi wrote it.
pub fn stored_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let err = |op| move |e| StoreError::sqlite(path, op, e);
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master
             WHERE type = 'table' AND name = 'acoupi_schema_version')",
            [],
            |r| r.get(0),
        )
        .map_err(err("reading the schema of"))?;
    if !has_table {
        return Ok(0);
    }
    let found: i64 = conn
        .query_row("SELECT MAX(version) FROM acoupi_schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .map_err(err("reading the schema version of"))?
        .unwrap_or(0);
    if found > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: CURRENT_VERSION,
        });
    }
    Ok(found)
}

/// Brings the file up to [`CURRENT_VERSION`]; returns the versions applied now.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<Vec<i64>, StoreError> {
    let err = |op| move |e| StoreError::sqlite(path, op, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("locking for migration"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS acoupi_schema_version (
            version INTEGER PRIMARY KEY,
            applied_on TEXT NOT NULL
        );",
    )
    .map_err(err("creating the version table in"))?;
    let found: i64 = tx
        .query_row("SELECT MAX(version) FROM acoupi_schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()
        .map_err(err("reading the schema version of"))?
        .flatten()
        .unwrap_or(0);
    if found > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: CURRENT_VERSION,
        });
    }
    let upstream: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err("reading user_version of"))?;
    if upstream > UPSTREAM_USER_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: upstream,
            known: UPSTREAM_USER_VERSION,
        });
    }
    let now = format_timestamp(Timestamp::now(), TimestampStyle::T);
    let mut applied = Vec::new();
    for (version, sql) in (1..).zip(MIGRATIONS.iter()).skip(found as usize) {
        tx.execute_batch(sql).map_err(err("migrating"))?;
        tx.execute(
            "INSERT INTO acoupi_schema_version (version, applied_on) VALUES (?1, ?2)",
            (version, &now),
        )
        .map_err(err("recording the schema version of"))?;
        applied.push(version);
    }
    tx.commit().map_err(err("committing the migration of"))?;
    if !applied.is_empty() {
        tracing::info!(path = %path.display(), ?applied, "metadata schema migrated");
    }
    Ok(applied)
}
