//! Retention by free space: how much `retention.min_free_space_mb` may ask for, and
//! which kept recordings a pass deletes to get it.
//!
//! Two rules keep a threshold from emptying the disk (issue 11: a typo of 5120000 MiB
//! once deleted every recording on a disk with 76 GB free):
//!
//! - The threshold may ask for at most **half the size of the file system holding the
//!   recordings** ([`min_free_limit`]). Half leaves room for a year of recordings on a
//!   32 GB card while keeping any realistic reserve (the default is 512 MiB) legal.
//!   `acoupi config set` and `acoupi check` refuse more ([`check_min_free`]); the
//!   daemon clamps to the limit with an error in its log ([`clamp_min_free`]), since
//!   refusing to record would lose more than the typo.
//! - A pass deletes only the oldest kept recordings whose removal closes the
//!   *shortfall* (the threshold minus the space available), counting what each file
//!   would really free: a file on another file system, or with another hard link,
//!   frees nothing here and is left alone. When deleting every kept recording that can
//!   help would not close the shortfall, nothing is deleted: the disk is full of
//!   something else, and the recordings would be lost for nothing. The recorder pauses
//!   instead (as when nothing is left to delete), and the log says so once.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::store::metadata::{MetadataStore, Recording};

use super::{available_bytes, io_err, retire, ManagementError, PassReport};

/// Bytes in the unit of `retention.min_free_space_mb` (MiB).
pub const MIB: u64 = 1024 * 1024;

/// The largest `retention.min_free_space_mb` a file system accepts: half its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinFreeLimit {
    /// Size of the file system holding the recordings, in MiB.
    pub fs_total_mib: u64,
    /// The largest accepted threshold, in MiB.
    pub max_mib: u64,
}

/// Why a free-space threshold is refused or cannot be judged.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The threshold asks for more than half the file system.
    #[error("retention.min_free_space_mb is {value} MiB, more than half of the {} MiB file system holding {}; set it to at most {} (e.g. `acoupi config set retention.min_free_space_mb {}`)", .limit.fs_total_mib, .root.display(), .limit.max_mib, suggestion(.limit))]
    MinFreeTooLarge {
        /// The configured value, in MiB.
        value: u64,
        /// The file system's limit.
        limit: MinFreeLimit,
        /// The recordings root (or the existing folder it will be created in).
        root: PathBuf,
    },
    /// The file system could not be measured.
    #[error("measuring the file system holding {}: {source}", .path.display())]
    Measure {
        /// The folder measured.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

/// The value the error suggests: the default when it fits, else the limit.
fn suggestion(limit: &MinFreeLimit) -> u64 {
    limit.max_mib.min(512)
}

/// The limit of the file system that holds (or will hold) `recordings_root`: measured
/// at the nearest folder that exists, since `config set` may run before the storages
/// are created.
pub fn min_free_limit(recordings_root: &Path) -> Result<(MinFreeLimit, PathBuf), RetentionError> {
    let measured = recordings_root
        .ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let st = nix::sys::statvfs::statvfs(&measured).map_err(|source| RetentionError::Measure {
        path: measured.clone(),
        source,
    })?;
    // `u64::from`, not `as`: the C types are 32-bit on armv7 and 64-bit elsewhere.
    #[allow(clippy::useless_conversion)]
    let total = u64::from(st.blocks()).saturating_mul(u64::from(st.fragment_size()));
    let fs_total_mib = total / MIB;
    Ok((
        MinFreeLimit {
            fs_total_mib,
            max_mib: fs_total_mib / 2,
        },
        measured,
    ))
}

/// Refuses a `min_free_mib` larger than [`min_free_limit`] of the recordings' file
/// system. `acoupi config set` and `acoupi check` call this.
pub fn check_min_free(recordings_root: &Path, min_free_mib: u64) -> Result<(), RetentionError> {
    let (limit, root) = min_free_limit(recordings_root)?;
    if min_free_mib > limit.max_mib {
        return Err(RetentionError::MinFreeTooLarge {
            value: min_free_mib,
            limit,
            root,
        });
    }
    Ok(())
}

/// The threshold in bytes the daemon enforces: `min_free_mib`, or the limit of the file
/// system when it asks for more (logged as an error naming the field, the value and the
/// file system's size: the configuration needs fixing, but recording goes on). A file
/// system that cannot be measured keeps the value: retention still never deletes more
/// than closes the shortfall.
pub fn clamp_min_free(recordings_root: &Path, min_free_mib: u64) -> u64 {
    match check_min_free(recordings_root, min_free_mib) {
        Ok(()) => min_free_mib.saturating_mul(MIB),
        Err(RetentionError::MinFreeTooLarge { value, limit, root }) => {
            tracing::error!(
                field = "retention.min_free_space_mb",
                value,
                file_system_mib = limit.fs_total_mib,
                using = limit.max_mib,
                recordings = %root.display(),
                "retention.min_free_space_mb asks for more than half of the file system holding the recordings: using {} MiB instead; fix it with `acoupi config set retention.min_free_space_mb {}`",
                limit.max_mib,
                suggestion(&limit),
            );
            limit.max_mib.saturating_mul(MIB)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check retention.min_free_space_mb against the file system size");
            min_free_mib.saturating_mul(MIB)
        }
    }
}

/// How many kept rows are read at a time while planning.
const PAGE: usize = 200;

/// Deletes the oldest kept recordings that close the shortfall below `min_free` on the
/// file system of `root`, and no more; deletes nothing when they could not close it.
/// Returns whether the threshold is out of reach (to warn once, not every pass).
pub(super) fn free_space(
    store: &mut MetadataStore,
    root: &Path,
    min_free: u64,
    report: &mut PassReport,
) -> Result<bool, ManagementError> {
    let measure = || available_bytes(root).map_err(io_err("measuring free space on", root));
    let available = measure()?;
    if available >= min_free {
        return Ok(false);
    }
    let shortfall = min_free - available;
    let Some(plan) = plan_deletions(store, root, shortfall)? else {
        report.disk_full = true;
        return Ok(true);
    };
    for rec in plan {
        retire(store, &rec)?;
        report.retired += 1;
        // Measured again after each: other writers and the file system's own
        // accounting may have freed more than planned. Every file is someone's data.
        if measure()? >= min_free {
            break;
        }
    }
    Ok(false)
}

/// The oldest kept recordings whose files together free at least `shortfall` bytes on
/// the file system of `root`, skipping those that would free nothing there; `None`
/// when all of them together would not.
fn plan_deletions(
    store: &MetadataStore,
    root: &Path,
    shortfall: u64,
) -> Result<Option<Vec<Recording>>, ManagementError> {
    let device = std::fs::metadata(root)
        .map_err(io_err("reading", root))?
        .dev();
    let mut plan = Vec::new();
    let mut freed = 0u64;
    let mut after = None;
    loop {
        let page = store.kept_after(after, PAGE)?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        after = Some(last.datetime);
        for rec in page {
            let frees = rec.path.as_deref().map_or(0, |p| frees_bytes(p, device));
            if frees == 0 {
                continue;
            }
            freed = freed.saturating_add(frees);
            plan.push(rec);
            if freed >= shortfall {
                return Ok(Some(plan));
            }
        }
    }
}

/// The bytes deleting `path` gives back to file system `device`: its allocated blocks
/// when it is the file's only name there, else nothing. A file already gone frees
/// nothing either (the pass removes its row on its own).
fn frees_bytes(path: &Path, device: u64) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.dev() == device && m.nlink() == 1 => m.blocks() * 512,
        _ => 0,
    }
}
