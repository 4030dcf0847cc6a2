//! Where everything lives: the one place that turns "system or user mode" and
//! `ACOUPI_HOME` into paths.
//!
//! System mode (the image, or any host with `/etc/acoupi`): configuration in
//! `/etc/acoupi`, state in `/var/lib/acoupi`, runtime files (temporary audio, control
//! socket) in `/run/acoupi`. User mode (a laptop): everything under `ACOUPI_HOME`
//! (default `~/.acoupi`). Unlike upstream, storages live under the same root in user
//! mode too, so moving `ACOUPI_HOME` moves everything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The configuration's `paths` section. Relative paths are read from `ACOUPI_HOME`; defaults derive from the layout
/// (system or user mode), never from `$HOME` behind the user's back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    /// Temporary audio (`*.wav.part` while recording); a tmpfs on the device.
    pub tmp_audio: Option<PathBuf>,
    /// Root of the kept recordings (`YYYY/MM/DD/` below it).
    pub recordings: Option<PathBuf>,
    /// The metadata database.
    pub db_metadata: Option<PathBuf>,
}

/// System-wide installation or a per-user one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Units in `/usr/lib/systemd/system`, user `acoupi`, `/etc/acoupi`.
    System,
    /// `systemctl --user` units, everything under `ACOUPI_HOME`.
    User,
}

/// The directories and files of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// System or user mode.
    pub mode: Mode,
    /// State home (`/var/lib/acoupi` or `ACOUPI_HOME`).
    pub home: PathBuf,
    /// The program configuration file.
    pub config_file: PathBuf,
    /// Runtime directory: control socket and, by default, temporary audio.
    pub runtime_dir: PathBuf,
}

/// The system-mode configuration directory; its existence selects system mode.
pub const SYSTEM_CONFIG_DIR: &str = "/etc/acoupi";
/// The system-mode state home.
pub const SYSTEM_HOME: &str = "/var/lib/acoupi";
/// The system-mode runtime directory (`RuntimeDirectory=acoupi`).
pub const SYSTEM_RUNTIME_DIR: &str = "/run/acoupi";

impl Layout {
    /// The layout for this process: system mode when `/etc/acoupi` exists and
    /// `ACOUPI_HOME` is unset or points at the system home; user mode otherwise.
    pub fn detect() -> Layout {
        let acoupi_home = std::env::var_os("ACOUPI_HOME").filter(|v| !v.is_empty());
        let system_home = acoupi_home
            .as_ref()
            .is_none_or(|h| Path::new(h) == Path::new(SYSTEM_HOME));
        if system_home && Path::new(SYSTEM_CONFIG_DIR).is_dir() {
            return Layout::system();
        }
        let home = match acoupi_home {
            Some(h) => PathBuf::from(h),
            // The single place a default is taken from $HOME, as upstream's `~/.acoupi`.
            None => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"))
                .join(".acoupi"),
        };
        Layout::user(home)
    }

    /// The system-mode layout.
    pub fn system() -> Layout {
        Layout {
            mode: Mode::System,
            home: SYSTEM_HOME.into(),
            config_file: Path::new(SYSTEM_CONFIG_DIR).join("acoupi.ron"),
            runtime_dir: SYSTEM_RUNTIME_DIR.into(),
        }
    }

    /// A user-mode layout rooted at `home`.
    pub fn user(home: PathBuf) -> Layout {
        Layout {
            mode: Mode::User,
            config_file: home.join("config").join("acoupi.ron"),
            runtime_dir: home.join("run"),
            home,
        }
    }

    /// The storages directory (`metadata.db`, `recordings/`, `messages.db`).
    pub fn storages(&self) -> PathBuf {
        self.home.join("storages")
    }

    /// The daemon's control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir.join("acoupi.sock")
    }

    /// The pid file of `acoupi run`, which `acoupi config set` signals to reload.
    pub fn pid_file(&self) -> PathBuf {
        self.runtime_dir.join("acoupi.pid")
    }

    /// The pid file of `acoupi beat`, which `acoupi config set` signals to reload too.
    /// In the home, not the runtime directory: that one is `acoupi.service`'s, read-only
    /// to the beat (`ProtectSystem=strict`) and removed whenever the recorder stops
    /// (other than for a restart).
    pub fn beat_pid_file(&self) -> PathBuf {
        self.home.join("beat.pid")
    }

    /// The configured paths with defaults filled in and relative paths read from `home`.
    pub fn storage_paths(&self, paths: &Paths) -> StoragePaths {
        let resolve = |p: &Option<PathBuf>, default: PathBuf| match p {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => self.home.join(p),
            None => default,
        };
        StoragePaths {
            tmp_audio: resolve(&paths.tmp_audio, self.runtime_dir.join("tmp")),
            recordings: resolve(&paths.recordings, self.storages().join("recordings")),
            db_metadata: resolve(&paths.db_metadata, self.storages().join("metadata.db")),
        }
    }
}

impl Layout {
    /// The outbox database of the connected program: `configured` (relative paths read
    /// from `home`) or, when unset, `messages.db` next to the metadata database.
    pub fn messages_db(&self, paths: &StoragePaths, configured: Option<&Path>) -> PathBuf {
        match configured {
            Some(p) if p.is_absolute() => p.to_path_buf(),
            Some(p) => self.home.join(p),
            None => paths
                .db_metadata
                .parent()
                .map_or_else(|| self.storages(), Path::to_path_buf)
                .join("messages.db"),
        }
    }
}

/// Absolute storage paths after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoragePaths {
    /// Temporary audio directory.
    pub tmp_audio: PathBuf,
    /// Kept recordings root.
    pub recordings: PathBuf,
    /// The metadata database file.
    pub db_metadata: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_mode_keeps_every_default_under_home() {
        let l = Layout::user("/x/home".into());
        let p = l.storage_paths(&Paths::default());
        assert_eq!(l.config_file, Path::new("/x/home/config/acoupi.ron"));
        assert_eq!(p.db_metadata, Path::new("/x/home/storages/metadata.db"));
        assert_eq!(p.recordings, Path::new("/x/home/storages/recordings"));
        assert_eq!(p.tmp_audio, Path::new("/x/home/run/tmp"));
        assert_eq!(l.control_socket(), Path::new("/x/home/run/acoupi.sock"));
    }

    #[test]
    fn messages_db_sits_next_to_the_metadata_database_unless_configured() {
        let l = Layout::user("/x/home".into());
        let p = l.storage_paths(&Paths {
            db_metadata: Some("/data/meta.db".into()),
            ..Paths::default()
        });
        assert_eq!(l.messages_db(&p, None), Path::new("/data/messages.db"));
        assert_eq!(
            l.messages_db(&p, Some(Path::new("out/m.db"))),
            Path::new("/x/home/out/m.db")
        );
    }

    #[test]
    fn relative_config_paths_are_read_from_home() {
        let l = Layout::system();
        let p = l.storage_paths(&Paths {
            recordings: Some("rec".into()),
            tmp_audio: Some("/dev/shm/a".into()),
            db_metadata: None,
        });
        assert_eq!(p.recordings, Path::new("/var/lib/acoupi/rec"));
        assert_eq!(p.tmp_audio, Path::new("/dev/shm/a"));
        assert_eq!(
            p.db_metadata,
            Path::new("/var/lib/acoupi/storages/metadata.db")
        );
    }
}
