//! What `deployment status` and `check` read at a cost independent of the archive's
//! size: each deployment's recording count and total duration (`acoupi_recording_summary`,
//! kept by triggers, see [`crate::store::schema`]) and the last integrity check of the
//! file (`acoupi_integrity`, written by the daemon's background pass).
//!
//! A file not yet migrated to [`SUMMARY_VERSION`] (opened read-only by status before the
//! recorder ever started on it) is summarised by counting, and has no integrity record.

use std::path::Path;

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use uuid::Uuid;

use super::recordings::recording_where;
use super::{sqlite_err, ts, MetadataStore};
use crate::store::db::{integrity_problems, open_for_reading, parse_timestamp, to_micros, Check};
use crate::store::metadata_types::RecordingSummary;
use crate::store::schema::{self, stored_version, SUMMARY_VERSION};
use crate::store::StoreError;

/// The last integrity check of metadata.db, as stored by whoever ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrityRecord {
    /// When the check ended.
    pub checked_on: Timestamp,
    /// `integrity_check` (every page and index entry) or `quick_check` (pages only).
    pub check: String,
    /// SQLite's report when the check failed (first lines); `None` when it said `ok`.
    pub problems: Option<String>,
}

impl IntegrityRecord {
    /// Whether the check passed.
    pub fn ok(&self) -> bool {
        self.problems.is_none()
    }
}

/// One row of `acoupi_recording_summary`, or of the same figures counted from `recording`.
type SummaryRow = (Vec<u8>, i64, f64);

/// Each deployment's count and total duration counted from `recording` (an index scan),
/// with a row for every deployment (the recording triggers only update rows).
const COUNTED: &str = "SELECT d.id, COUNT(r.deployment_id), TOTAL(r.duration_s)
     FROM (SELECT id FROM deployment UNION SELECT DISTINCT deployment_id FROM recording) d
     LEFT JOIN recording r ON r.deployment_id = d.id
     GROUP BY d.id ORDER BY d.id";

/// Each deployment's count and total duration as the triggers kept them.
const KEPT: &str = "SELECT deployment_id, recordings, total_duration_s
     FROM acoupi_recording_summary ORDER BY deployment_id";

/// Durations are summed in floating point in a different order by the triggers than by a
/// count; differences below this are rounding, not drift.
const DURATION_SLACK_S: f64 = 1e-3;

impl MetadataStore {
    /// Runs `check` over the file at `path` on a connection of its own and stores the
    /// result ([`MetadataStore::record_integrity`]): the daemon's background pass. The
    /// check reads every page without the write lock (the recorder keeps committing
    /// meanwhile); only the one-row write of its result takes it, for a moment. A damaged
    /// file is a result, not an error: its report is what gets stored (if SQLite can
    /// still write that one row) and returned. The returned store is the connection used,
    /// writable, for a following [`MetadataStore::recount_summary`].
    pub fn check_integrity(
        path: &Path,
        check: Check,
    ) -> Result<(MetadataStore, IntegrityRecord), StoreError> {
        let conn = open_for_reading(path)?;
        schema::refuse_foreign(&conn, path)?;
        let problems = match integrity_problems(&conn, path, check) {
            Ok(problems) => problems,
            Err(StoreError::Corrupt { detail, .. }) => Some(detail),
            Err(e) => return Err(e),
        };
        conn.pragma_update(None, "query_only", "OFF")
            .map_err(|e| StoreError::sqlite(path, "making writable", e))?;
        let mut store = MetadataStore {
            conn,
            path: path.to_path_buf(),
            was_empty: false,
        };
        let record = store.record_integrity(check, problems.as_deref(), Timestamp::now())?;
        Ok((store, record))
    }

    /// Count, total duration and last recording of a deployment: three index lookups,
    /// whatever the number of recordings (a file not yet migrated is counted instead).
    pub fn recording_summary(&self, deployment_id: Uuid) -> Result<RecordingSummary, StoreError> {
        let sql = if self.has_summary()? {
            "SELECT recordings, total_duration_s FROM acoupi_recording_summary
             WHERE deployment_id = ?1"
        } else {
            "SELECT COUNT(*), TOTAL(duration_s) FROM recording WHERE deployment_id = ?1"
        };
        let (count, total_duration_s): (i64, f64) = self
            .conn
            .query_row(sql, [deployment_id.as_bytes()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(self.err("summarising recordings in"))?
            // No summary row: the deployment has never had a recording.
            .unwrap_or((0, 0.0));
        let last = recording_where(
            &self.conn,
            &self.path,
            "deployment_id = ?1 ORDER BY datetime DESC LIMIT 1",
            deployment_id.as_bytes(),
        )?;
        Ok(RecordingSummary {
            // A count is never negative.
            count: u64::try_from(count).unwrap_or(0),
            total_duration_s,
            last,
        })
    }

    /// Counts every deployment's recordings again and, where the summary the triggers
    /// keep disagrees, rewrites it; returns whether it did. The triggers cannot see a row
    /// another program replaced with `INSERT OR REPLACE` (SQLite fires no delete trigger
    /// for it), nor count a row whose deployment is not in `deployment` (possible where
    /// foreign keys are off), so the daemon's daily pass calls this. One index scan under the write
    /// lock: 0.1 s at 1,000,000 recordings on a desktop.
    pub fn recount_summary(&mut self) -> Result<bool, StoreError> {
        let err = |op| sqlite_err(&self.path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("locking"))?;
        let read = |sql: &str| -> rusqlite::Result<Vec<SummaryRow>> {
            let mut stmt = tx.prepare(sql)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        };
        let counted = read(COUNTED).map_err(err("counting recordings in"))?;
        let kept = read(KEPT).map_err(err("reading the recording summary of"))?;
        let agree = counted.len() == kept.len()
            && counted
                .iter()
                .zip(&kept)
                .all(|(c, k)| c.0 == k.0 && c.1 == k.1 && (c.2 - k.2).abs() <= DURATION_SLACK_S);
        if agree {
            return Ok(false);
        }
        tx.execute_batch(&format!(
            "DELETE FROM acoupi_recording_summary;
             INSERT INTO acoupi_recording_summary (deployment_id, recordings, total_duration_s)
             {COUNTED};"
        ))
        .map_err(err("rewriting the recording summary of"))?;
        tx.commit()
            .map_err(err("committing the recording summary to"))?;
        Ok(true)
    }

    /// Stores the result of an integrity check of this file (`problems`: SQLite's report,
    /// `None` for `ok`), replacing the previous one.
    pub fn record_integrity(
        &mut self,
        check: Check,
        problems: Option<&str>,
        checked_on: Timestamp,
    ) -> Result<IntegrityRecord, StoreError> {
        let checked_on = to_micros(checked_on);
        self.conn
            .execute(
                "INSERT OR REPLACE INTO acoupi_integrity (id, checked_on, kind, problems)
                 VALUES (1, ?1, ?2, ?3)",
                params![ts(checked_on), check.name(), problems],
            )
            .map_err(self.err("recording the integrity check in"))?;
        Ok(IntegrityRecord {
            checked_on,
            check: check.name().to_string(),
            problems: problems.map(str::to_string),
        })
    }

    /// The last integrity check stored in this file; `None` when none was (a file not
    /// yet migrated, or no daemon has started on it since).
    pub fn last_integrity(&self) -> Result<Option<IntegrityRecord>, StoreError> {
        if !self.has_summary()? {
            return Ok(None);
        }
        let row: Option<(String, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT checked_on, kind, problems FROM acoupi_integrity WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.err("reading the integrity check of"))?;
        row.map(|(when, check, problems)| {
            let checked_on = parse_timestamp(&when).ok_or_else(|| StoreError::BadValue {
                path: self.path.clone(),
                table: "acoupi_integrity",
                column: "checked_on",
                value: when.clone(),
            })?;
            Ok(IntegrityRecord {
                checked_on,
                check,
                problems,
            })
        })
        .transpose()
    }

    /// Whether the file has the summary and integrity tables (schema version 4 on).
    fn has_summary(&self) -> Result<bool, StoreError> {
        Ok(stored_version(&self.conn, &self.path)? >= SUMMARY_VERSION)
    }
}
