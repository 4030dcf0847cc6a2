//! Rows ↔ files, and the audit built on it.
//!
//! [`audit()`] is the bare invariant: every recording row with a path has its file, and
//! every finished WAV file in the recordings or temporary directory has its row. Tests
//! check it after every step and the daemon's start-up repair registers the files it
//! lists. It only reports.
//!
//! [`run_audit`] is `acoupi audit` and the audit part of `acoupi check`: the same
//! comparison on a read-only connection, safe while `acoupi run` records, plus each
//! file's header against its row, the GUANO chunk and SQLite's integrity check
//! ([`report`]). [`repair()`] acts on its findings: it registers files without a row
//! and marks rows whose file is gone, and never deletes a file or a row ([`mod@repair`]).
//!
//! The WAV files are read with [`crate::audio::inspect`]; this is the one place the store
//! looks inside audio files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{MetadataStore, StoreError};

pub mod repair;
pub mod report;
mod rows;
pub mod walk;

#[cfg(test)]
mod tests;

pub use repair::{repair, NotRegistered, RepairReport};
pub use report::{run_audit, AuditFinding, AuditOptions, AuditReport, FindingKind};

/// Where rows and files disagree. Both lists are sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Paths stored in `recording` whose file does not exist.
    pub rows_without_file: Vec<PathBuf>,
    /// `*.wav` files under the recordings root or the temporary directory with no row.
    pub files_without_row: Vec<PathBuf>,
}

impl Audit {
    /// No disagreement.
    pub fn is_clean(&self) -> bool {
        self.rows_without_file.is_empty() && self.files_without_row.is_empty()
    }
}

/// Compares the rows of `store` with the WAV files under `recordings_root` (recursively)
/// and in `tmp_dir`. Paths are compared as stored, so pass the roots in the same form the
/// recorder and management task use (absolute). A missing directory holds no files.
pub fn audit(
    store: &MetadataStore,
    recordings_root: &Path,
    tmp_dir: &Path,
) -> Result<Audit, StoreError> {
    let rows: HashSet<PathBuf> = store.recording_paths()?.into_iter().collect();
    let files: Vec<PathBuf> = walk::wav_files(recordings_root, tmp_dir)?
        .into_iter()
        .map(|f| f.path)
        .collect();
    let on_disk: HashSet<&PathBuf> = files.iter().collect();

    let mut rows_without_file: Vec<PathBuf> = rows
        .iter()
        .filter(|p| !on_disk.contains(p) && !p.is_file())
        .cloned()
        .collect();
    let mut files_without_row: Vec<PathBuf> = files
        .iter()
        .filter(|f| !rows.contains(*f))
        .cloned()
        .collect();
    rows_without_file.sort();
    files_without_row.sort();
    Ok(Audit {
        rows_without_file,
        files_without_row,
    })
}
