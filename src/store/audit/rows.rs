//! The audit's SQL: recording rows read loosely (a row upstream acoupi or a hand wrote
//! must not stop the audit), the re-checks that tell a transient state from a finding,
//! and the repair's marks.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use crate::store::db::{format_timestamp, TimestampStyle};
use crate::store::{schema, StoreError};

/// The schema version that added `recording.file_missing_since`.
const MISSING_MARK_VERSION: i64 = 3;

/// What the audit needs of one `recording` row with a path.
#[derive(Debug, Clone)]
pub(super) struct AuditRow {
    /// Row id as stored (16 bytes for rows we wrote).
    pub id: Vec<u8>,
    /// The file.
    pub path: PathBuf,
    /// Stored duration in seconds.
    pub duration_s: Option<f64>,
    /// Stored (real) samplerate.
    pub samplerate_hz: Option<i64>,
    /// Stored channel count.
    pub audio_channels: Option<i64>,
    /// Stored time expansion (ours; `None` in upstream rows).
    pub time_expansion: Option<f64>,
    /// Stored frame count (ours; `None` in upstream rows).
    pub frames: Option<i64>,
    /// When `audit --repair` marked the file missing.
    pub missing_since: Option<String>,
}

fn err<'a>(db: &'a Path, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |e| StoreError::sqlite(db, op, e)
}

/// Every recording row with a path (that started at or after `since`, when given: the
/// `datetime` index makes that a range read). A file not yet migrated to the version
/// with the missing mark (opened read-only, so not migrated now) has no marked rows.
pub(super) fn audit_rows(
    conn: &Connection,
    db: &Path,
    since: Option<jiff::Timestamp>,
) -> Result<Vec<AuditRow>, StoreError> {
    let mark = if schema::stored_version(conn, db)? >= MISSING_MARK_VERSION {
        "file_missing_since"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT id, path, duration_s, samplerate_hz, audio_channels, time_expansion, frames, {mark}
         FROM recording WHERE path IS NOT NULL AND datetime >= ?1"
    );
    // Every stored datetime (ours and upstream's spellings) sorts after the empty text.
    let from = since
        .map(|t| crate::store::db::format_timestamp(t, crate::store::db::TimestampStyle::T))
        .unwrap_or_default();
    let mut stmt = conn
        .prepare(&sql)
        .map_err(err(db, "reading recordings in"))?;
    let rows = stmt
        .query_map([&from], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                path: PathBuf::from(r.get::<_, String>(1)?),
                duration_s: r.get(2)?,
                samplerate_hz: r.get(3)?,
                audio_channels: r.get(4)?,
                time_expansion: r.get(5)?,
                frames: r.get(6)?,
                missing_since: r.get(7)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(err(db, "reading recordings in"))?;
    // Sorted here, not by SQL: `ORDER BY path` would make SQLite walk the whole path
    // index even for the two days `check` asks for, instead of the `datetime` range.
    let mut rows = rows;
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(rows)
}

/// The path row `id` holds now (`None`: the row is gone or has no path). A row whose
/// file seemed missing may have moved on meanwhile (the management task moved the file
/// and updated the row, or retention deleted both).
pub(super) fn current_path(
    conn: &Connection,
    db: &Path,
    id: &[u8],
) -> Result<Option<PathBuf>, StoreError> {
    conn.query_row("SELECT path FROM recording WHERE id = ?1", [id], |r| {
        r.get::<_, Option<String>>(0)
    })
    .optional()
    .map(|p| p.flatten().map(PathBuf::from))
    .map_err(err(db, "reading recordings in"))
}

/// Whether some row holds `path` now (a file that seemed to have no row may have been
/// registered meanwhile), or `path` is the destination of a move in progress: the
/// management task puts `tmp/NAME.wav` at `recordings/…/NAME.wav` (or `NAME_n.wav` when
/// the name is taken) and only then points the row there, while the temporary file and
/// its row stay until the row has moved.
pub(super) fn has_row_or_is_moving(
    conn: &Connection,
    db: &Path,
    path: &Path,
    tmp_dir: &Path,
) -> Result<bool, StoreError> {
    let Some(text) = path.to_str() else {
        return Ok(false);
    };
    let sources = moved_from(path, tmp_dir);
    let source = |i: usize| sources.get(i).and_then(|p| p.to_str()).unwrap_or("");
    let mut stmt = conn
        .prepare_cached("SELECT path FROM recording WHERE path IN (?1, ?2, ?3)")
        .map_err(err(db, "reading recordings in"))?;
    let held = stmt
        .query_map([text, source(0), source(1)], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(err(db, "reading recordings in"))?;
    Ok(held.iter().any(|p| p == text || Path::new(p).is_file()))
}

/// The temporary files a file in the recordings root may be being moved from:
/// `tmp_dir/NAME.wav` for `NAME.wav`, and also `tmp_dir/BASE.wav` for `BASE_n.wav` (the
/// suffix a move adds when the name is taken).
fn moved_from(path: &Path, tmp_dir: &Path) -> Vec<PathBuf> {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return Vec::new();
    };
    let mut sources = vec![tmp_dir.join(format!("{stem}.wav"))];
    if let Some((base, n)) = stem.rsplit_once('_') {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            sources.push(tmp_dir.join(format!("{base}.wav")));
        }
    }
    sources
}

/// Marks the row at `path` as having lost its file, unless it is marked already.
/// Returns whether a row was marked.
pub(super) fn mark_missing(
    conn: &Connection,
    db: &Path,
    path: &Path,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Some(text) = path.to_str() else {
        return Ok(false);
    };
    let n = conn
        .execute(
            "UPDATE recording SET file_missing_since = ?1
             WHERE path = ?2 AND file_missing_since IS NULL",
            params![format_timestamp(now, TimestampStyle::T), text],
        )
        .map_err(err(db, "marking a missing file in"))?;
    Ok(n > 0)
}

/// Clears the mark of the row at `path` (its file is back). Returns whether one was.
pub(super) fn clear_missing(conn: &Connection, db: &Path, path: &Path) -> Result<bool, StoreError> {
    let Some(text) = path.to_str() else {
        return Ok(false);
    };
    let n = conn
        .execute(
            "UPDATE recording SET file_missing_since = NULL
             WHERE path = ?1 AND file_missing_since IS NOT NULL",
            [text],
        )
        .map_err(err(db, "clearing a missing-file mark in"))?;
    Ok(n > 0)
}

/// The deployment a recording that started at `start` belongs to: the last one started
/// by then, else (a file older than every deployment, or named without a time) the
/// latest. `None` when there is no deployment at all.
pub(super) fn deployment_for(
    conn: &Connection,
    db: &Path,
    start: Timestamp,
) -> Result<Option<Uuid>, StoreError> {
    let read = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
        conn.query_row(sql, p, |r| r.get::<_, [u8; 16]>(0))
            .optional()
            .map_err(err(db, "reading deployments in"))
    };
    let at = read(
        "SELECT id FROM deployment WHERE started_on <= ?1 ORDER BY started_on DESC LIMIT 1",
        &[&format_timestamp(start, TimestampStyle::T)],
    )?;
    let id = match at {
        Some(id) => Some(id),
        None => read(
            "SELECT id FROM deployment ORDER BY started_on DESC LIMIT 1",
            &[],
        )?,
    };
    Ok(id.map(Uuid::from_bytes))
}
