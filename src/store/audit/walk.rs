//! The file-system half of the audit: every finished `*.wav` under the recordings root
//! (recursively) and in the temporary directory (not recursively: the recorder writes
//! nowhere below it).
//!
//! `*.wav.part` (a capture in progress or a crash leftover the daemon repairs at start),
//! `*.wav.moving` (a move in progress) and other files are not recordings yet. Symbolic
//! links are not followed: the recorder never makes them, and following one could walk
//! out of the storage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::store::StoreError;

/// A finished WAV file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavFile {
    /// The file.
    pub path: PathBuf,
    /// Last modification, when the file system reports one.
    pub modified: Option<SystemTime>,
    /// Found in the temporary directory (rather than the recordings root).
    pub in_tmp: bool,
}

/// Every finished WAV file under `recordings_root` and in `tmp_dir`, sorted by path and
/// listed once even if one directory lies inside the other. A missing directory holds
/// no files; one that cannot be read is an error naming it.
pub fn wav_files(recordings_root: &Path, tmp_dir: &Path) -> Result<Vec<WavFile>, StoreError> {
    let mut found = BTreeMap::new();
    collect(recordings_root, true, false, &mut found)?;
    collect(tmp_dir, false, true, &mut found)?;
    Ok(found.into_values().collect())
}

/// [`wav_files`] limited to the kept recordings' day folders (`YYYY/MM/DD`, UTC, the
/// management task's layout) from the date of `since` to tomorrow, and the temporary
/// directory: what a bounded audit needs, listed without walking the whole archive. A
/// kept file last modified before `since` ended before it, so it started before it too:
/// its row is outside the window and the file is left out with it (otherwise each one
/// would be looked up as a possible orphan). Temporary files are all listed.
pub fn wav_files_since(
    recordings_root: &Path,
    tmp_dir: &Path,
    since: jiff::Timestamp,
) -> Result<Vec<WavFile>, StoreError> {
    let mut found = BTreeMap::new();
    let utc = jiff::tz::TimeZone::UTC;
    let today = utc.to_datetime(jiff::Timestamp::now()).date();
    let last = today.tomorrow().unwrap_or(today);
    let mut day = utc.to_datetime(since).date();
    while day <= last {
        let folder = recordings_root.join(day.strftime("%Y/%m/%d").to_string());
        collect(&folder, true, false, &mut found)?;
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    let since = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_micros(u64::try_from(since.as_microsecond()).unwrap_or(0));
    found.retain(|_, f| f.modified.is_none_or(|m| m >= since));
    collect(tmp_dir, false, true, &mut found)?;
    Ok(found.into_values().collect())
}

fn collect(
    dir: &Path,
    recursive: bool,
    in_tmp: bool,
    out: &mut BTreeMap<PathBuf, WavFile>,
) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io(source)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let path = entry.path();
        if kind.is_dir() && recursive {
            collect(&path, true, in_tmp, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "wav") {
            let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
            out.insert(
                path.clone(),
                WavFile {
                    path,
                    modified,
                    in_tmp,
                },
            );
        }
    }
    Ok(())
}
