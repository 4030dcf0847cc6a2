//! The management task: what happens to a recording after the recorder finishes it.
//!
//! Each pass takes the recordings still in the temporary directory and either keeps them
//! (moved to `recordings/YYYY/MM/DD/`, UTC like the file names) or deletes them, as the
//! saving filters say; then it enforces retention (free space, maximum age), oldest first.
//!
//! Invariant kept at every step, crash or not: a `recording` row never points at a missing
//! file. Moves copy and fsync the file to its new place before the row changes and remove
//! the old file only after; deletions remove the row before the file. A crash between
//! two steps leaves at worst a file without a row, which the next start-up registers again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::store::metadata::{MetadataStore, Recording};
use crate::store::StoreError;

/// Decides whether a recording starting at an instant is kept (the saving filters).
pub type KeepRule = Box<dyn Fn(Timestamp) -> bool + Send>;

/// What the management task needs to know.
pub struct Management {
    /// The saving filters; `None` keeps everything.
    pub keep: Option<KeepRule>,
    /// Root of the kept recordings.
    pub recordings_root: PathBuf,
    /// Free space to keep on the recordings file system, in bytes.
    pub min_free_bytes: u64,
    /// Kept recordings older than this are deleted.
    pub max_age: Option<jiff::SignedDuration>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Recordings moved to the recordings directory.
    pub kept: u64,
    /// Recordings deleted by the saving filters.
    pub filtered_out: u64,
    /// Kept recordings deleted to free space or for age.
    pub retired: u64,
    /// Rows whose file had vanished (removed, and logged).
    pub missing_files: u64,
    /// True when free space is below the minimum and nothing is left to delete:
    /// the recorder must pause.
    pub disk_full: bool,
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ManagementError + 'a {
    move |source| ManagementError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Management {
    /// One pass: filter the temporary recordings, then enforce retention.
    pub fn pass(
        &self,
        store: &mut MetadataStore,
        now: Timestamp,
    ) -> Result<PassReport, ManagementError> {
        let mut report = PassReport::default();
        for rec in store.tmp_recordings()? {
            let Some(path) = rec.path.clone() else {
                continue;
            };
            if !path.exists() {
                tracing::warn!(path = %path.display(), "recording file vanished; removing its row");
                store.delete_recording(rec.id)?;
                report.missing_files += 1;
                continue;
            }
            if self.keep.as_ref().is_none_or(|keep| keep(rec.datetime)) {
                let dest = self.destination(&rec, &path);
                move_file(&path, &dest)?;
                store.mark_kept(rec.id, &dest)?;
                remove_if_present(&path)?;
                report.kept += 1;
            } else {
                store.delete_recording(rec.id)?;
                remove_if_present(&path)?;
                report.filtered_out += 1;
            }
        }
        self.retire_old(store, now, &mut report)?;
        self.free_space(store, &mut report)?;
        Ok(report)
    }

    /// `recordings/YYYY/MM/DD/<file name>`, zero-padded, in UTC like the file names.
    fn destination(&self, rec: &Recording, path: &Path) -> PathBuf {
        let day = rec.datetime.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let name = path.file_name().map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(format!("{}.wav", rec.datetime.strftime("%Y%m%d_%H%M%S")))
        });
        self.recordings_root
            .join(format!("{:04}", day.year()))
            .join(format!("{:02}", day.month()))
            .join(format!("{:02}", day.day()))
            .join(name)
    }

    fn retire_old(
        &self,
        store: &mut MetadataStore,
        now: Timestamp,
        report: &mut PassReport,
    ) -> Result<(), ManagementError> {
        let Some(max_age) = self.max_age else {
            return Ok(());
        };
        let Ok(cutoff) = now.checked_sub(max_age) else {
            return Ok(());
        };
        loop {
            let batch = store.kept_older_than(cutoff, 500)?;
            if batch.is_empty() {
                return Ok(());
            }
            for rec in batch {
                retire(store, &rec)?;
                report.retired += 1;
            }
        }
    }

    fn free_space(
        &self,
        store: &mut MetadataStore,
        report: &mut PassReport,
    ) -> Result<(), ManagementError> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let root = &self.recordings_root;
        while available_bytes(root).map_err(io_err("measuring free space on", root))?
            < self.min_free_bytes
        {
            let oldest = store.oldest_kept(50)?;
            if oldest.is_empty() {
                report.disk_full = true;
                return Ok(());
            }
            for rec in oldest {
                retire(store, &rec)?;
                report.retired += 1;
            }
        }
        Ok(())
    }
}

/// Deletes a kept recording: row first, then the file.
fn retire(store: &mut MetadataStore, rec: &Recording) -> Result<(), ManagementError> {
    store.delete_recording(rec.id)?;
    if let Some(path) = &rec.path {
        remove_if_present(path)?;
        tracing::info!(path = %path.display(), "retention: deleted recording");
    }
    Ok(())
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Copies `src` to `dest` durably (temporary name, fsync, rename, fsync the directory).
/// The temporary directory is usually a tmpfs, so a plain rename would cross devices.
fn move_file(src: &Path, dest: &Path) -> Result<(), ManagementError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let part = dest.with_extension("wav.moving");
    fs::copy(src, &part).map_err(io_err("copying a recording to", &part))?;
    fs::File::open(&part)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing", &part))?;
    fs::rename(&part, dest).map_err(io_err("renaming into place", dest))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))?;
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), ManagementError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}
