//! The rows ↔ files invariant: every recording row with a path has its file, and every
//! finished WAV file in the recordings or temporary directory has its row.
//!
//! Used by tests after every step and by `acoupi check`. It only reports: what to do with
//! a stray file or row (re-insert, delete, move aside) is the caller's decision.
//! `*.wav.part` files (a capture in progress) and non-WAV files are not its business.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{MetadataStore, StoreError};

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
    let mut files = Vec::new();
    collect_wavs(recordings_root, true, &mut files)?;
    collect_wavs(tmp_dir, false, &mut files)?;
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

fn collect_wavs(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let io = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let path = entry.path();
        if kind.is_dir() && recursive {
            collect_wavs(&path, true, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "wav") {
            out.push(path);
        }
    }
    Ok(())
}
