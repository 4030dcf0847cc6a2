//! Opening an SQLite file the way every acoupi database is opened, and the column
//! encodings shared by metadata.db and messages.db.
//!
//! [`open_db`] checks the file before anything is written to it (a corrupt file is
//! reported, never repaired or replaced), then switches to WAL with foreign keys on and a
//! busy timeout. It knows nothing about any table: schemas belong to the callers
//! (`metadata`, `outbox`).

use std::path::Path;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::StoreError;

/// How long a connection waits for another process's write lock (upstream uses 5000 ms).
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// What a commit promises when the power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is synced at every commit, so a committed row
    /// survives power loss. The default for both databases: a commit a minute costs
    /// nothing, a lost row costs a recording.
    Full,
    /// `synchronous=NORMAL`: the database stays consistent after power loss but the
    /// last commits may be rolled back. For bulk work whose loss is harmless.
    Normal,
}

impl Durability {
    fn pragma_value(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// How thoroughly a file is checked before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `PRAGMA integrity_check`: every page, every index entry. For daemon start-up and
    /// `acoupi check`; about 1.5 s at 100,000 recordings on a desktop disk.
    Full,
    /// `PRAGMA quick_check`: page structure without cross-checking indices, about ten
    /// times faster. For short-lived CLI commands such as `deployment status`.
    Quick,
}

impl Check {
    fn pragma(self) -> &'static str {
        match self {
            Check::Full => "PRAGMA integrity_check",
            Check::Quick => "PRAGMA quick_check",
        }
    }

    /// SQLite's name for the check, as stored and reported.
    pub fn name(self) -> &'static str {
        match self {
            Check::Full => "integrity_check",
            Check::Quick => "quick_check",
        }
    }
}

/// Opens (creating if needed) the SQLite file at `path` with [`Check::Full`]: see
/// [`open_db_with`].
pub fn open_db(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    open_db_with(path, durability, Check::Full)
}

/// Opens (creating if needed) the SQLite file at `path`: checks it first and refuses a
/// damaged file with [`StoreError::Corrupt`] (nothing is written to it), then sets WAL,
/// `foreign_keys=ON`, the busy timeout and the requested [`Durability`].
///
/// The parent directory must exist ([`StoreError::ParentMissing`]): storages are created
/// by whoever owns the layout, not as a side effect of opening a database.
pub fn open_db_with(
    path: &Path,
    durability: Durability,
    check: Check,
) -> Result<Connection, StoreError> {
    open_db_inspected(path, durability, check, |_| Ok(()))
}

/// [`open_db_with`], calling `inspect` after the check and before anything is written
/// (the switch to WAL rewrites the file header): the caller's chance to refuse a file
/// that is not its own while it is still byte for byte as found.
pub fn open_db_inspected(
    path: &Path,
    durability: Durability,
    check: Check,
    inspect: impl FnOnce(&Connection) -> Result<(), StoreError>,
) -> Result<Connection, StoreError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(StoreError::ParentMissing {
            path: path.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::sqlite(path, "opening", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::sqlite(path, "setting the busy timeout on", e))?;
    check_integrity(&conn, path, check)?;
    inspect(&conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| StoreError::sqlite(path, "switching to WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", durability.pragma_value())
        .map_err(|e| StoreError::sqlite(path, "setting synchronous on", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| StoreError::sqlite(path, "enabling foreign keys on", e))?;
    Ok(conn)
}

/// Opens an existing SQLite file for reading only (`acoupi audit`, `acoupi check`): no
/// check, no migration, no change of journal mode, and `query_only` so no statement can
/// write. No transaction is begun, so the write lock the recorder needs is never taken.
///
/// The flags are read-write, not `SQLITE_OPEN_READONLY`, on purpose: a read-only
/// connection to a WAL file creates `-wal` and `-shm` files it may not delete on close,
/// which would leave the storage changed by a command that promises to change nothing.
/// A file the user cannot write is still opened (SQLite falls back to reading).
pub fn open_for_reading(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::sqlite(path, "opening", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::sqlite(path, "setting the busy timeout on", e))?;
    conn.pragma_update(None, "query_only", "ON")
        .map_err(|e| StoreError::sqlite(path, "making read-only", e))?;
    Ok(conn)
}

/// The tables of another application's database: `Some` when the file holds tables
/// and none of them is in `known`. A file with no table (new or empty) is `None`, as is
/// one with some of ours beside tables of its own (a user's notes). Both databases
/// refuse a `Some` before writing anything: adding our tables to another program's file
/// would mix two programs' data, and a path pointing at it is a mistake to report.
pub fn foreign_tables(conn: &Connection, known: &[&str]) -> rusqlite::Result<Option<Vec<String>>> {
    let tables = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let ours = tables.iter().any(|t| known.contains(&t.as_str()));
    Ok((!ours && !tables.is_empty()).then_some(tables))
}

/// Runs the check: `None` when SQLite answers a single `ok`, else the first lines of its
/// report. An error means the check could not run (SQLite's own "malformed" or "not a
/// database" errors are classified [`StoreError::Corrupt`] by [`StoreError::sqlite`]).
pub fn integrity_problems(
    conn: &Connection,
    path: &Path,
    check: Check,
) -> Result<Option<String>, StoreError> {
    let lines = conn
        .prepare(check.pragma())
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| StoreError::sqlite(path, "checking the integrity of", e))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(None)
    } else {
        Ok(Some(summarise(&lines)))
    }
}

/// Runs the check and turns anything but a single `ok` (or SQLite's own "malformed" /
/// "not a database" errors) into [`StoreError::Corrupt`].
fn check_integrity(conn: &Connection, path: &Path, check: Check) -> Result<(), StoreError> {
    match integrity_problems(conn, path, check)? {
        None => Ok(()),
        Some(detail) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        }),
    }
}

/// The first few lines of an integrity report: enough to recognise the damage without
/// flooding a terminal with thousands of page numbers.
fn summarise(lines: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = lines
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if lines.len() > SHOWN {
        text.push_str(&format!("; and {} more", lines.len() - SHOWN));
    }
    text
}

/// Whether an SQLite error means the file itself is damaged.
pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Separator between date and time in a stored timestamp: metadata.db uses `T`,
/// messages.db a space (upstream's two conventions, kept so upstream tools read both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStyle {
    /// `2026-11-26T02:10:25.520310+00:00` (metadata.db).
    T,
    /// `2026-11-26 02:10:25.520310+00:00` (messages.db).
    Space,
}

/// Formats `ts` as upstream's ISO-8601 UTC text, always with six fractional digits so
/// that text order equals time order (upstream drops a zero fraction: defect 11).
/// Sub-microsecond digits are truncated; use [`to_micros`] to get the value stored.
pub fn format_timestamp(ts: Timestamp, style: TimestampStyle) -> String {
    let pattern = match style {
        TimestampStyle::T => "%Y-%m-%dT%H:%M:%S%.6f+00:00",
        TimestampStyle::Space => "%Y-%m-%d %H:%M:%S%.6f+00:00",
    };
    to_micros(ts).strftime(pattern).to_string()
}

/// `ts` truncated to the microsecond precision a stored timestamp keeps.
pub fn to_micros(ts: Timestamp) -> Timestamp {
    // Truncating an in-range timestamp stays in range: the only failure is out of range.
    Timestamp::from_microsecond(ts.as_microsecond()).unwrap_or(ts)
}

/// Parses a stored timestamp: either separator, any fraction, an offset or `Z`, or no
/// offset at all (read as UTC, as upstream does). `None` when it is not a timestamp.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let naive: DateTime = text.parse().ok()?;
    TimeZone::UTC.to_timestamp(naive).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_always_carry_six_fraction_digits() {
        let whole: Timestamp = "2026-11-26T02:10:25Z".parse().unwrap();
        assert_eq!(
            format_timestamp(whole, TimestampStyle::T),
            "2026-11-26T02:10:25.000000+00:00"
        );
        let fine: Timestamp = "2026-11-26T02:10:25.520310999Z".parse().unwrap();
        assert_eq!(
            format_timestamp(fine, TimestampStyle::Space),
            "2026-11-26 02:10:25.520310+00:00"
        );
    }

    #[test]
    fn upstream_timestamp_spellings_parse_as_utc() {
        let expected: Timestamp = "2026-11-26T02:10:25.5Z".parse().unwrap();
        for text in [
            "2026-11-26T02:10:25.500000+00:00",
            "2026-11-26 02:10:25.5+00:00",
            "2026-11-26T02:10:25.5",
            "2026-11-26 02:10:25.500",
            "2026-11-26T03:10:25.5+01:00",
        ] {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
