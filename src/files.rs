//! Facts about files that every module shares: which I/O error means a full disk, and
//! how a file is replaced so that a power cut leaves the old one or the new one, never
//! half of either.
//!
//! The crash-safe replacement is always the same four steps: write a temporary file
//! beside the target, fsync it, rename it over the target, fsync the directory (without
//! the last step the rename itself may not survive the power cut). [`NewFile`] does them
//! for whole files written at once (configuration, unit files, the boot partition's
//! copies); [`rename_durably`] is the last two for files written otherwise (the WAV
//! writer's `.part`, a recording moved by the management task).
//!
//! This module depends on nothing else in the crate, so every layer may use it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// True when `e` says the file system has no room for this user: `ENOSPC`, or `EDQUOT`
/// (a quota is a full disk for whoever hits it; recording must pause either way).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// One step of a file operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct FsError {
    /// What was being done ("writing", "renaming into place", …).
    pub op: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl FsError {
    /// True when the cause is a full file system ([`is_disk_full`]).
    pub fn is_disk_full(&self) -> bool {
        is_disk_full(&self.source)
    }
}

/// The error constructor for `op` on `path`.
fn failed<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// fsyncs the directory `dir`, so that a rename or a new name in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed("syncing directory", dir))
}

/// Renames `from` over `to` and fsyncs `to`'s directory. `from` must already be synced
/// by the caller (it holds the file, and knows whether it was written or linked).
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), FsError> {
    fs::rename(from, to).map_err(failed("renaming into place", to))?;
    sync_dir(parent(to))
}

/// Whether a directory that refuses fsync fails the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSync {
    /// The directory's fsync must succeed: the write is not durable without it.
    Required,
    /// Tried, and a refusal ignored: for file systems that may not sync a directory
    /// (the FAT boot partition); the rename is done either way.
    BestEffort,
}

/// The mode a [`NewFile`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly these bits, past the umask: the mode is part of the contract (a
    /// configuration the service user must read, one holding secrets 0600).
    Exact(u32),
    /// These bits filtered by the umask, as `open(2)` gives them: for file systems that
    /// decide modes themselves (FAT refuses a `chmod` to anything but its mount's mode).
    Umask(u32),
}

/// A file that replaces `target` when committed: written under a temporary name beside
/// it, which is removed if the new file is dropped uncommitted.
///
/// The temporary file is created with `O_EXCL|O_NOFOLLOW` after removing whatever had its
/// name (a leftover of a crash, or a symbolic link someone planted: unlinking a link never
/// touches its target), and the rename replaces a link at `target` rather than writing
/// through it.
#[derive(Debug)]
pub struct NewFile {
    file: File,
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl NewFile {
    /// Creates the temporary file for `target` (`.<name>.<pid>.tmp` in its directory,
    /// which must exist) with `mode`.
    pub fn create(target: &Path, mode: Mode) -> Result<NewFile, FsError> {
        let bits = match mode {
            Mode::Exact(bits) | Mode::Umask(bits) => bits,
        };
        let name = target
            .file_name()
            .map_or_else(|| "acoupi".into(), |n| n.to_string_lossy().into_owned());
        let tmp = parent(target).join(format!(".{name}.{}.tmp", std::process::id()));
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(failed("removing", &tmp)(e));
            }
            _ => {}
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(bits)
            .open(&tmp)
            .map_err(failed("creating", &tmp))?;
        let new = NewFile {
            file,
            tmp,
            target: target.to_path_buf(),
            committed: false,
        };
        if let Mode::Exact(bits) = mode {
            // `open` filtered the bits by the umask.
            new.file
                .set_permissions(fs::Permissions::from_mode(bits))
                .map_err(failed("setting the mode of", &new.tmp))?;
        }
        Ok(new)
    }

    /// Appends `bytes` to the new file.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), FsError> {
        self.file
            .write_all(bytes)
            .map_err(failed("writing", &self.tmp))
    }

    /// fsyncs the new file, renames it over the target and fsyncs the directory
    /// (as `dir_sync` says).
    pub fn commit(mut self, dir_sync: DirSync) -> Result<(), FsError> {
        self.file.sync_all().map_err(failed("syncing", &self.tmp))?;
        fs::rename(&self.tmp, &self.target).map_err(failed("renaming into place", &self.target))?;
        self.committed = true;
        match sync_dir(parent(&self.target)) {
            Err(_) if dir_sync == DirSync::BestEffort => Ok(()),
            other => other,
        }
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the temporary file is ours and useless once the write failed
            // (on a full disk it may hold the last free blocks).
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Replaces `target` with `contents` durably ([`NewFile`]), with `mode`.
pub fn replace(
    target: &Path,
    contents: &[u8],
    mode: Mode,
    dir_sync: DirSync,
) -> Result<(), FsError> {
    let mut new = NewFile::create(target, mode)?;
    new.write_all(contents)?;
    new.commit(dir_sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_quota_is_a_full_disk_like_no_space() {
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            assert!(
                is_disk_full(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        assert!(!is_disk_full(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_disk_full(&io::Error::other("no errno")));
    }

    #[test]
    fn replace_writes_the_mode_exactly_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("unit.service");
        fs::write(&target, "old").unwrap();
        replace(&target, b"new", Mode::Exact(0o600), DirSync::Required).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(entries(dir.path()), ["unit.service"]);
    }

    #[test]
    fn replace_never_writes_through_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let target = dir.path().join("acoupi.ron");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        // A link planted at the temporary name is removed, not followed.
        let tmp = dir
            .path()
            .join(format!(".acoupi.ron.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        replace(&target, b"new", Mode::Umask(0o644), DirSync::Required).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(&target).unwrap().is_file());
        assert_eq!(entries(dir.path()), ["acoupi.ron", "victim"]);
    }

    #[test]
    fn a_new_file_dropped_uncommitted_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("acoupi.ron");
        fs::write(&target, "old").unwrap();
        let mut new = NewFile::create(&target, Mode::Umask(0o644)).unwrap();
        new.write_all(b"half").unwrap();
        drop(new);
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["acoupi.ron"]);
    }

    #[test]
    fn rename_durably_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.part"), dir.path().join("a.wav"));
        fs::write(&from, "audio").unwrap();
        rename_durably(&from, &to).unwrap();
        assert_eq!(entries(dir.path()), ["a.wav"]);
        let e = rename_durably(&from, &to).unwrap_err();
        assert_eq!(e.path, to);
        assert!(!e.is_disk_full());
    }
}
