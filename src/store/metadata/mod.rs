//! metadata.db: deployments (here), recordings ([`recordings`]), capture gaps and
//! heartbeats ([`journal`]), model outputs with their detections and tags
//! ([`model_outputs`]), and the figures `deployment status` reads without counting:
//! the recording summary and the last integrity check ([`summary`]).
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
use uuid::Uuid;

use super::db::{
    format_timestamp, open_db_inspected, to_micros, Check, Durability, TimestampStyle,
};
use super::metadata_rows::{RawDeployment, DEPLOYMENT_COLUMNS};
use super::metadata_types::{check_range, invalid};
pub use super::metadata_types::{
    Deployment, Gap, Heartbeat, NewRecording, Recording, RecordingState, RecordingSummary,
};
use super::{schema, StoreError};

mod journal;
mod model_outputs;
mod recordings;
mod summary;

pub use model_outputs::{BoundingBox, DetectionRow, ModelOutput, PredictedTag, PredictionType};
pub use summary::IntegrityRecord;

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
