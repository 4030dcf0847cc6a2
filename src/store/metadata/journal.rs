//! The capture log: gaps in the recording and the heartbeats `acoupi-beat` takes.

use jiff::Timestamp;
use rusqlite::params;
use serde::Serialize;

use super::{collect, ts, MetadataStore};
use crate::store::db::to_micros;
use crate::store::metadata_rows::{RawGap, RawHeartbeat, GAP_COLUMNS, HEARTBEAT_COLUMNS};
use crate::store::metadata_types::{invalid, Gap, Heartbeat};
use crate::store::StoreError;

impl MetadataStore {
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
}
