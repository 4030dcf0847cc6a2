//! Storage folders: create them with the right owner before a deployment starts, and
//! check that they are writable and not full.
//!
//! Directories are created `0750`; in system mode, when run as root (e.g. `sudo acoupi
//! deployment start`), what is created is handed to user `acoupi` so the service can
//! write it. This module does not open databases or know what goes in the folders.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use super::layout::{Layout, Mode, StoragePaths};
use super::metrics::{self, MetricsError};

/// The system user the services run as.
pub const SERVICE_USER: &str = "acoupi";

/// A storage folder problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A folder could not be created.
    #[error("creating storage folder {}: {source}; check the path in the configuration and the permissions of its parent", path.display())]
    Create {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A path that must be a folder is something else.
    #[error("storage path {} exists but is not a folder; move it away or configure another path", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A folder could not be handed to the service user.
    #[error("giving {} to uid {uid} (the service user): {source}", path.display())]
    Chown {
        /// The folder.
        path: PathBuf,
        /// The intended owner.
        uid: u32,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The probe file could not be created, written, synced or removed.
    #[error("storage folder {} is not writable by user {user}: {source}; fix its owner or permissions (e.g. `chown -R {user} {}`)", dir.display(), dir.display())]
    NotWritable {
        /// The folder.
        dir: PathBuf,
        /// The user this process runs as.
        user: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Too little free space.
    #[error("storage folder {} has {free_mb} MiB free, less than the required {min_mb} MiB (retention.min_free_space_mb); delete or move old recordings", dir.display())]
    LowSpace {
        /// The folder.
        dir: PathBuf,
        /// Free MiB (2^20 bytes, the unit of `retention.min_free_space_mb`) available to
        /// unprivileged users.
        free_mb: u64,
        /// The configured minimum.
        min_mb: u64,
    },
    /// Free space could not be read.
    #[error("checking free space: {0}")]
    Space(#[source] MetricsError),
    /// The service user does not exist.
    #[error("system user {name} does not exist; run `systemd-sysusers` (it is created from /usr/lib/sysusers.d/acoupi.conf)")]
    NoSuchUser {
        /// The user name.
        name: String,
    },
    /// The user database could not be read.
    #[error("looking up user {name}: {source}")]
    UserLookup {
        /// The user name.
        name: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
}

/// Who should own newly created storage folders: user `acoupi` when this is a system
/// installation and we are root; `None` (the current user) otherwise.
pub fn storage_owner(layout: &Layout) -> Result<Option<(Uid, Gid)>, StorageError> {
    if layout.mode != Mode::System || !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name(SERVICE_USER) {
        Ok(Some(u)) => Ok(Some((u.uid, u.gid))),
        Ok(None) => Err(StorageError::NoSuchUser {
            name: SERVICE_USER.into(),
        }),
        Err(source) => Err(StorageError::UserLookup {
            name: SERVICE_USER.into(),
            source,
        }),
    }
}

/// Gives a SQLite database the CLI may have just created as root (and its `-wal`/`-shm`
/// files) to `owner`, so the services, which run as user `acoupi`, can write it.
pub fn hand_over_db(db: &Path, owner: Option<(Uid, Gid)>) -> Result<(), StorageError> {
    hand_over(db, &["", "-wal", "-shm"], owner)
}

/// [`hand_over_db`] to whoever [`storage_owner`] says should own the storages of
/// `layout`: the CLI's way of handing over a database it may have created or opened.
pub fn hand_over_db_to_service(layout: &Layout, db: &Path) -> Result<(), StorageError> {
    hand_over_db(db, storage_owner(layout)?)
}

/// Gives the configuration file the CLI just wrote as root (and its `.bak` and
/// `.last-good` copies) to the service user: one holding a password is mode 0600, which
/// the services, running as user `acoupi`, could not read otherwise. Without a system
/// installation, root, or a user `acoupi`, there is no service to hand it to.
pub fn hand_over_config(layout: &Layout) -> Result<(), StorageError> {
    match storage_owner(layout) {
        Ok(owner) => hand_over(&layout.config_file, &["", ".bak", ".last-good"], owner),
        Err(StorageError::NoSuchUser { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Chowns `base` followed by each suffix, where such a file exists, to `owner`.
fn hand_over(
    base: &Path,
    suffixes: &[&str],
    owner: Option<(Uid, Gid)>,
) -> Result<(), StorageError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    for suffix in suffixes {
        let mut name = base.as_os_str().to_owned();
        name.push(suffix);
        let path = Path::new(&name);
        if path.exists() {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|source| {
                StorageError::Chown {
                    path: path.to_path_buf(),
                    uid: uid.as_raw(),
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// Creates the recordings folder, the temporary audio folder and the folder of the
/// metadata database (mode `0750`). Folders this call creates, and existing leaf folders
/// owned by someone else, are given to `owner` when one is set; existing parents such as
/// `/var/lib` are left alone.
pub fn ensure_storages(
    paths: &StoragePaths,
    owner: Option<(Uid, Gid)>,
) -> Result<(), StorageError> {
    let db_dir = paths
        .db_metadata
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for dir in [
        paths.recordings.as_path(),
        paths.tmp_audio.as_path(),
        db_dir,
    ] {
        ensure_dir(dir, owner)?;
    }
    Ok(())
}

fn ensure_dir(dir: &Path, owner: Option<(Uid, Gid)>) -> Result<(), StorageError> {
    // Create outermost-first so each new level can be chowned before the next.
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
        .collect();
    for level in missing.iter().rev() {
        match DirBuilder::new().mode(0o750).create(level) {
            Ok(()) => {
                // Set explicitly: a strict umask (e.g. 077) would have removed group access.
                std::fs::set_permissions(level, std::fs::Permissions::from_mode(0o750)).map_err(
                    |source| StorageError::Create {
                        path: level.to_path_buf(),
                        source,
                    },
                )?;
                chown(level, owner)?;
            }
            // Another process (the other daemon) won the race: fine, it is a folder now.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(StorageError::Create {
                    path: level.to_path_buf(),
                    source,
                })
            }
        }
    }
    let meta = std::fs::metadata(dir).map_err(|source| StorageError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(StorageError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    if let Some((uid, _)) = owner {
        // A leaf left behind by an earlier run as root would lock the service out.
        if meta.uid() != uid.as_raw() {
            chown(dir, owner)?;
        }
    }
    Ok(())
}

fn chown(path: &Path, owner: Option<(Uid, Gid)>) -> Result<(), StorageError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|source| StorageError::Chown {
        path: path.to_path_buf(),
        uid: uid.as_raw(),
        source,
    })
}

/// Proves `dir` is writable: creates a probe file, writes and fsyncs it, removes it.
/// `access(2)` is not enough: it ignores read-only mounts and full disks.
pub fn check_writable(dir: &Path) -> Result<(), StorageError> {
    let probe = dir.join(format!(".acoupi-write-probe-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)?;
        f.write_all(b"acoupi")?;
        f.sync_all()?;
        std::fs::remove_file(&probe)
    })();
    result.map_err(|source| {
        // Best effort: the write or sync may have failed after the file was created.
        let _ = std::fs::remove_file(&probe);
        StorageError::NotWritable {
            dir: dir.to_path_buf(),
            user: current_user(),
            source,
        }
    })
}

fn current_user() -> String {
    let uid = Uid::effective();
    match User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {uid}"),
    }
}

/// Fails when the file system holding `dir` has less than `min_mb` megabytes free.
pub fn free_space_ok(dir: &Path, min_mb: u64) -> Result<(), StorageError> {
    let space = metrics::disk_space(dir).map_err(StorageError::Space)?;
    let free_mb = space.free_bytes / (1024 * 1024);
    if free_mb < min_mb {
        return Err(StorageError::LowSpace {
            dir: dir.to_path_buf(),
            free_mb,
            min_mb,
        });
    }
    Ok(())
}
