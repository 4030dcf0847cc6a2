//! The management task: what happens to a recording after the recorder finishes it.
//!
//! Each pass takes the recordings still in the temporary directory and either keeps them
//! (moved to `recordings/YYYY/MM/DD/`, UTC like the file names) or deletes them, as the
//! saving filters say; then it enforces retention (free space, maximum age), oldest first.
//! Free space is [`retention`]'s: a threshold the disk cannot meet never deletes a
//! recording.
//!
//! Invariant kept at every step, crash or not: a `recording` row never points at a missing
//! file. Moves put the file in its new place (a hard link on the same file system, else a
//! copy, fsynced) before the row changes and remove the old name only after; deletions
//! remove the row before the file. A crash between two steps leaves at worst a file
//! without a row, which the next start-up registers again.
//!
//! A full disk is a state, not a failure: a move that finds no room (for the copy, or for
//! the row's update in metadata.db) is undone, the rest wait for the next pass, retention
//! still runs, and the report says `disk_full`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use jiff::Timestamp;
use uuid::Uuid;

use crate::audio::{add_missing_guano, name, GuanoContext};
use crate::store::metadata::{MetadataStore, Recording, RecordingState};
use crate::store::StoreError;

/// Decides whether a recording starting at an instant is kept (the saving filters).
pub type KeepRule = Box<dyn Fn(Timestamp) -> bool + Send>;

/// What the management task needs to know.
pub struct Management {
    /// The saving filters; `None` keeps everything (unless `keep_detected`).
    pub keep: Option<KeepRule>,
    /// The detection-based saving filter (`detection.keep_only_detected`): a recording
    /// is kept when the model found something in it, or when it was not analysed (no
    /// model output: skipped while the model was behind), or when `keep` keeps it.
    pub keep_detected: bool,
    /// With `keep_detected`: the fraction of recordings without a detection kept all
    /// the same ([`kept_as_negative`]).
    pub keep_negatives: f64,
    /// Root of the kept recordings.
    pub recordings_root: PathBuf,
    /// Free space to keep on the recordings file system, in bytes (the daemon clamps
    /// it with [`retention::clamp_min_free`]).
    pub min_free_bytes: u64,
    /// Kept recordings older than this are deleted.
    pub max_age: Option<jiff::SignedDuration>,
    /// What a GUANO chunk says beyond the audio: a file kept without one (the writer
    /// leaves it out on a full disk) gets it before the move.
    pub guano: GuanoContext,
    /// Whether the last pass found the free-space threshold out of reach: the error is
    /// logged when this turns true, not at every pass.
    out_of_reach: AtomicBool,
    /// Whether a move may be a hard link: the first file moved and the recordings root
    /// on one file system (`st_dev`), looked at once. Only a hint: a link that fails
    /// still copies, and a copy always works.
    links: OnceLock<bool>,
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
    /// Recordings a full disk kept from moving: they stay in the temporary directory,
    /// with their rows, until a later pass.
    pub left_in_tmp: u64,
    /// True when free space is below the minimum and deleting kept recordings cannot
    /// restore it (none left, or all of them would free too little:
    /// `min_free_out_of_reach`), or a move found the disk full (`left_in_tmp`): the
    /// recorder must pause.
    pub disk_full: bool,
    /// Free space is below the minimum and deleting every kept recording that could
    /// help would not restore it, so none was deleted.
    pub min_free_out_of_reach: bool,
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Adding the GUANO chunk a full disk left out failed.
    #[error(transparent)]
    Guano(#[from] crate::audio::wav::WavError),
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

impl ManagementError {
    /// True when the cause is a full file system ([`crate::files::is_disk_full`], or
    /// SQLite's `SQLITE_FULL`): space, not the pass, is what is missing.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ManagementError::Store(e) => e.is_disk_full(),
            ManagementError::Guano(e) => e.is_disk_full(),
            ManagementError::Io { source, .. } => crate::files::is_disk_full(source),
        }
    }
}

impl From<crate::files::FsError> for ManagementError {
    fn from(e: crate::files::FsError) -> ManagementError {
        ManagementError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ManagementError + 'a {
    move |source| ManagementError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Management {
    /// Keeps everything (no saving filters), forever, with `min_free_bytes` free.
    pub fn new(recordings_root: PathBuf, min_free_bytes: u64) -> Management {
        Management {
            keep: None,
            keep_detected: false,
            keep_negatives: 0.0,
            recordings_root,
            min_free_bytes,
            max_age: None,
            guano: GuanoContext::default(),
            out_of_reach: AtomicBool::new(false),
            links: OnceLock::new(),
        }
    }

    /// One pass: filter the temporary recordings, then enforce retention.
    ///
    /// A recording the model has not analysed yet is kept like one it will never
    /// analyse: it leaves the temporary directory (RAM in the image) now, and
    /// [`Management::decide_after_detection`] deletes it later if the model rules it out.
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
            if self.keeps(store, &rec)? {
                match self.keep_file(store, &rec, &path) {
                    Ok(()) => report.kept += 1,
                    Err(e) if e.is_disk_full() => {
                        // The file stays in the temporary directory with its row; the
                        // others would meet the same full disk. Retention may free some.
                        tracing::warn!(path = %path.display(), error = %crate::error::chain(&e), "disk full: recording left in the temporary directory");
                        report.left_in_tmp += 1;
                        report.disk_full = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
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

    /// Once the model's output for `id` is stored: a recording already kept that the
    /// saving filters now rule out (`keep_only_detected`, nothing found, and no time
    /// filter keeps it) is deleted, row first. One still in the temporary directory is
    /// left to the next pass, which decides it the same way. Returns whether it was
    /// deleted.
    pub fn decide_after_detection(
        &self,
        store: &mut MetadataStore,
        id: Uuid,
    ) -> Result<bool, ManagementError> {
        if !self.keep_detected {
            return Ok(false);
        }
        let Some(rec) = store.recording(id)? else {
            return Ok(false);
        };
        if rec.state != Some(RecordingState::Kept) || self.keeps(store, &rec)? {
            return Ok(false);
        }
        store.delete_recording(rec.id)?;
        if let Some(path) = &rec.path {
            remove_if_present(path)?;
            tracing::info!(path = %path.display(), "keep_only_detected: the model found nothing; recording deleted");
        }
        Ok(true)
    }

    /// The saving decision: the time-based filters OR the detection-based one; neither
    /// configured keeps everything.
    fn keeps(&self, store: &MetadataStore, rec: &Recording) -> Result<bool, ManagementError> {
        if self.keep.is_none() && !self.keep_detected {
            return Ok(true);
        }
        if self.keep.as_ref().is_some_and(|keep| keep(rec.datetime)) {
            return Ok(true);
        }
        if !self.keep_detected {
            return Ok(false);
        }
        // Stored detections already passed `detection.threshold` and `classes`.
        let outputs = store.model_outputs(rec.id)?;
        Ok(outputs.is_empty()
            || outputs.iter().any(|o| !o.detections.is_empty())
            || kept_as_negative(rec.id, self.keep_negatives))
    }

    /// Moves a recording into the recordings root and its row after it. When the row
    /// cannot follow (a full metadata.db), the new name is removed again: the recording
    /// stays where its row says, and no file is left without a row.
    fn keep_file(
        &self,
        store: &mut MetadataStore,
        rec: &Recording,
        path: &Path,
    ) -> Result<(), ManagementError> {
        // The metadata a full disk cut off goes back in before the file is kept. While the
        // disk is still full the file waits in the temporary directory (the pass stops at
        // a full disk and a later one tries again): a kept file is never looked at again,
        // so keeping it now would leave it without GUANO for good (a soak finding). Any
        // other failure keeps the audio without it (`acoupi audit` reports it).
        match add_missing_guano(path, &self.guano, rec.datetime) {
            Ok(true) => {
                tracing::info!(path = %path.display(), "added the GUANO chunk a full disk left out")
            }
            Ok(false) => {}
            Err(e) if e.is_disk_full() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not add the missing GUANO chunk; keeping the audio without it")
            }
        }
        let dest = self.destination(store, rec, path)?;
        if dest == path {
            // Registered where it already lies (start-up found it in the recordings root
            // but could not mark it kept): moving a file onto itself and removing the
            // "old" name would delete it.
            store.mark_kept(rec.id, &dest)?;
            return Ok(());
        }
        let link = *self
            .links
            .get_or_init(|| same_file_system(path, &self.recordings_root));
        move_file(path, &dest, link)?;
        if let Err(e) = store.mark_kept(rec.id, &dest) {
            if let Err(undo) = remove_if_present(&dest) {
                tracing::warn!(path = %dest.display(), error = %undo, "undoing a move failed; start-up registers the copy");
            }
            return Err(e.into());
        }
        remove_if_present(path)?;
        Ok(())
    }

    /// `recordings/YYYY/MM/DD/<file name>`, zero-padded, in UTC like the file names.
    /// A name another recording already holds (the clock stepped back and the recorder
    /// named a file after the same instant again) gets a `_1`, `_2`, … suffix: a move
    /// never replaces a file a row points to. A file there with no row is what a crash
    /// mid-move left of this same recording, and is replaced.
    fn destination(
        &self,
        store: &MetadataStore,
        rec: &Recording,
        path: &Path,
    ) -> Result<PathBuf, ManagementError> {
        let day = rec.datetime.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name::file_stem(rec.datetime));
        let dir = self
            .recordings_root
            .join(format!("{:04}", day.year()))
            .join(format!("{:02}", day.month()))
            .join(format!("{:02}", day.day()));
        let mut n = 0u32;
        loop {
            let dest = dir.join(format!("{}.wav", name::numbered(&stem, n)));
            match store.find_by_path(&dest)? {
                Some(other) if other.id != rec.id => n += 1,
                _ => return Ok(dest),
            }
        }
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
        let out_of_reach = retention::free_space(store, root, self.min_free_bytes, report)?;
        report.min_free_out_of_reach = out_of_reach;
        let was = self.out_of_reach.swap(out_of_reach, Ordering::Relaxed);
        if out_of_reach && !was {
            tracing::error!(
                recordings = %root.display(),
                min_free_bytes = self.min_free_bytes,
                "free space is below retention.min_free_space_mb and deleting every kept recording would not restore it: nothing deleted, recording paused; free space on that disk or lower retention.min_free_space_mb"
            );
        }
        Ok(())
    }
}

/// Whether a recording without a detection is among the `fraction` kept anyway. Decided
/// by its id (random in a v4 UUID; its first 48 bits are), so every pass and every
/// restart decides the same, and about `fraction` of them are kept.
pub fn kept_as_negative(id: Uuid, fraction: f64) -> bool {
    let bytes = id.as_bytes();
    let draw = u64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], 0, 0,
    ]) >> 16;
    (draw as f64) < fraction * (1u64 << 48) as f64
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

/// Whether `a` and `b` lie on one file system; true when either cannot be looked at
/// (then the link is tried, as without the hint).
fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => true,
    }
}

/// Puts `src` at `dest` durably (a temporary name, then
/// [`crate::files::rename_durably`]), leaving `src` in place. On the same file system
/// (`link`) the temporary name is a hard link: no data is copied and no space is needed,
/// so a full disk does not stop the move. Across file systems (the temporary directory
/// is usually a tmpfs) it is a copy, fsynced, without first trying a link bound to fail;
/// a copy that fails is removed, since on a full disk it holds the last free blocks.
fn move_file(src: &Path, dest: &Path, link: bool) -> Result<(), ManagementError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let part = dest.with_extension("wav.moving");
    // A leftover of a crash mid-move; a link cannot replace it.
    remove_if_present(&part)?;
    if !link || fs::hard_link(src, &part).is_err() {
        // EXDEV across file systems, EPERM where links are not supported: copy.
        let copied = fs::copy(src, &part)
            .map_err(io_err("copying a recording to", &part))
            .and_then(|_| {
                fs::File::open(&part)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err("syncing", &part))
            });
        if let Err(e) = copied {
            let _ = fs::remove_file(&part);
            return Err(e);
        }
    }
    Ok(crate::files::rename_durably(&part, dest)?)
}

fn remove_if_present(path: &Path) -> Result<(), ManagementError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

pub mod retention;
#[cfg(test)]
mod tests;
