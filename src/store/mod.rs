//! The only module that speaks SQL.
//!
//! metadata.db keeps upstream acoupi's schema byte for byte (tables, column names and
//! types, indices, `PRAGMA user_version = 1`, UUIDs as 16-byte BLOBs, ISO-8601 TEXT
//! timestamps) so upstream tooling keeps reading it; our additions are new tables and new
//! nullable columns, applied by numbered migrations recorded in `acoupi_schema_version`.
//! messages.db (the outbox) lives in [`outbox`], with its own connection settings (WAL,
//! `synchronous=FULL`).
//!
//! Callers get typed methods and [`StoreError`]; they never see SQL. This module knows
//! nothing about schedules, saving filters or where files should go: it records what the
//! tasks decide and reports ([`audit()`]) where rows and files disagree.
//!
//! # Crash protocol
//! Every method is one transaction and is idempotent, so a step interrupted by a crash
//! can be replayed after restart. File operations are ordered by the callers so that what
//! is left is always recognisable: the recorder writes the file, then
//! [`MetadataStore::insert_recording`]; the management task moves the file, then
//! [`MetadataStore::mark_kept`]; it removes the file, then
//! [`MetadataStore::delete_recording`]. [`audit()`] lists anything left over.
//!
//! # Opening
//! [`open_db`] (also used for messages.db) checks the file before writing to it:
//! [`Check::Full`] at daemon start-up and in `acoupi check`, [`Check::Quick`] for short
//! CLI commands. A damaged file is reported as [`StoreError::Corrupt`] and left in place.

pub mod audit;
pub mod db;
pub mod metadata;
mod metadata_rows;
mod metadata_types;
pub mod outbox;
mod schema;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_invariant;
#[cfg(test)]
mod tests_model_outputs;
#[cfg(test)]
mod tests_recordings;
#[cfg(test)]
mod tests_summary;

use std::path::{Path, PathBuf};

pub use audit::{audit, run_audit, Audit, AuditOptions, AuditReport};
pub use db::{open_db, open_db_inspected, open_db_with, open_for_reading, Check, Durability};
pub use metadata::{
    Deployment, Gap, Heartbeat, IntegrityRecord, MetadataStore, NewRecording, Recording,
    RecordingState, RecordingSummary,
};

/// Everything that can go wrong in the store. Messages name the database file and, where
/// the operator can act, what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that should hold the database does not exist.
    #[error("cannot open {}: directory {} does not exist; `acoupi check` or `acoupi deployment start` creates the storages", .path.display(), parent_of(.path).display())]
    ParentMissing {
        /// The database file.
        path: PathBuf,
    },
    /// `integrity_check` failed or SQLite found the file malformed.
    #[error("{} at {} is corrupt ({}): move it aside and run `acoupi check`; recordings on disk are kept", file_name(.path), .path.display(), .detail)]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The file refused write-ahead logging (e.g. a read-only or network filesystem).
    #[error("{} stays in journal mode {mode:?} instead of WAL; put the storages on a local writable filesystem", .path.display())]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The file is another application's database: it has tables acoupi does not
    /// know and none of its own. Nothing was written to it.
    #[error("{} is not an acoupi metadata database: it holds other tables ({}) and none of acoupi's; nothing was written to it; point paths.db_metadata at another file (`acoupi config set paths.db_metadata /path/to/metadata.db`) or move this one away", .path.display(), .tables.join(", "))]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// The tables found.
        tables: Vec<String>,
    },
    /// The file was written by a newer acoupi whose schema this binary does not know.
    #[error("{} has schema version {found} but this acoupi knows up to {known}; upgrade acoupi or move the file aside", .path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Version found in the file (ours, or upstream's `user_version`).
        found: i64,
        /// Highest version this binary knows.
        known: i64,
    },
    /// Any other SQLite failure.
    #[error("{op} {}", .path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done, as a phrase ending before the file name.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file or directory could not be read while auditing.
    #[error("reading {}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `deployment start` while a deployment is running; nothing was changed.
    #[error("deployment {name:?} is already active since {started_on}; stop it first (`acoupi deployment stop`)")]
    DeploymentActive {
        /// Name of the active deployment.
        name: String,
        /// When it started.
        started_on: jiff::Timestamp,
    },
    /// `deployment stop` with no active deployment.
    #[error("no deployment is active; start one with `acoupi deployment start`")]
    NotDeployed,
    /// A deployment already started at exactly this instant (upstream's UNIQUE `started_on`).
    #[error("a deployment already started at {started_on}; use another start time")]
    StartTaken {
        /// The contested start time.
        started_on: jiff::Timestamp,
    },
    /// A value was out of its valid range; nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (`latitude`, `duration_s`, ...).
        field: &'static str,
        /// Why, with the value.
        reason: String,
    },
    /// A recording refers to a deployment that is not in the database.
    #[error("deployment {id} is not in the metadata store; start a deployment first")]
    UnknownDeployment {
        /// The missing deployment id.
        id: uuid::Uuid,
    },
    /// The recording id is not in the database.
    #[error("recording {id} is not in the metadata store")]
    UnknownRecording {
        /// The missing recording id.
        id: uuid::Uuid,
    },
    /// Another recording already starts at this instant (upstream's UNIQUE `datetime`).
    #[error(
        "recording {id} starts at {datetime}, the same instant as recording {existing}; not stored"
    )]
    DatetimeTaken {
        /// The rejected recording.
        id: uuid::Uuid,
        /// The contested start.
        datetime: jiff::Timestamp,
        /// The recording that holds it.
        existing: uuid::Uuid,
    },
    /// Another recording already has this path (upstream's UNIQUE `path`).
    #[error("recording {id} has path {}, already used by recording {existing}; not stored", .path.display())]
    PathTaken {
        /// The rejected recording.
        id: uuid::Uuid,
        /// The contested path.
        path: PathBuf,
        /// The recording that holds it.
        existing: uuid::Uuid,
    },
    /// A path that cannot be stored as TEXT.
    #[error("path {} is not valid UTF-8 and cannot be stored", .path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// A stored value this binary cannot read (written by hand or by a foreign tool).
    #[error("{} holds an unreadable {column} {value:?} in table {table}; fix or move the file aside", .path.display())]
    BadValue {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The raw text.
        value: String,
    },
}

impl StoreError {
    /// Wraps an SQLite error, classifying corruption as [`StoreError::Corrupt`] wherever
    /// it shows up (integrity_check does not read every byte of every page).
    pub fn sqlite(path: &Path, op: &'static str, source: rusqlite::Error) -> StoreError {
        if db::is_corruption(&source) {
            StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: source.to_string(),
            }
        } else {
            StoreError::Sqlite {
                path: path.to_path_buf(),
                op,
                source,
            }
        }
    }

    /// True when SQLite or the file system had no room (`SQLITE_FULL`, or
    /// [`crate::files::is_disk_full`]): the same write can succeed once space is back,
    /// so the caller keeps it and retries.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            StoreError::Io { source, .. } => crate::files::is_disk_full(source),
            _ => false,
        }
    }

    /// True for a failure of SQLite or the file system (full, busy beyond the timeout,
    /// an I/O error), as opposed to the store refusing a value: the same call may succeed
    /// later, unchanged.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Sqlite { .. } | StoreError::Io { .. })
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".to_owned())
}
