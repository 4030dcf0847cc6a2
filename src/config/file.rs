//! Writing configuration files so that a power cut never leaves a half-written one:
//! write a temporary file in the same directory, fsync it, keep the previous file as a
//! backup, rename over the target, fsync the directory.
//!
//! Only validated configurations are written, and only over a regular file (never a
//! device, directory, fifo or symbolic link). Writers serialise on [`lock`], a `flock` on
//! `<file>.lock` beside the configuration held across read-modify-write, so concurrent
//! `acoupi config set` runs all keep their change. Nothing here knows about running
//! recorders; reloading one is the caller's decision.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::schema::{Config, Site};
use super::{parse, read_text, to_ron, validate, ConfigError, FieldError};
use crate::files;

/// Mode of a configuration file without secrets: readable by the recorder's user and by
/// operators.
const CONFIG_MODE: u32 = 0o644;
/// Mode of a configuration file holding a password or token: owner only.
const SECRET_CONFIG_MODE: u32 = 0o600;

/// True when `config` holds a password or token (MQTT password, HTTP password or bearer
/// token): such a file is for its owner's eyes only.
pub fn holds_secrets(config: &Config) -> bool {
    config.messaging.as_ref().is_some_and(|m| {
        m.mqtt.as_ref().is_some_and(|q| q.password.is_some())
            || m.http
                .as_ref()
                .is_some_and(|h| h.password.is_some() || h.bearer_token.is_some())
    })
}

/// The mode `config` must be written with: 0600 as soon as it holds a secret.
pub fn mode_for(config: &Config) -> u32 {
    if holds_secrets(config) {
        SECRET_CONFIG_MODE
    } else {
        CONFIG_MODE
    }
}

/// Validates `config` and writes it to `path` as pretty RON, keeping the previous file
/// as `<path>.bak`. Creates the directory if needed.
pub fn save(config: &Config, path: &Path) -> Result<(), ConfigError> {
    validate(config).map_err(|errors| ConfigError::Invalid {
        path: path.to_path_buf(),
        errors,
    })?;
    let text = to_ron(config)?;
    write_atomic(
        path,
        text.as_bytes(),
        &with_suffix(path, ".bak"),
        mode_for(config),
    )
}

/// What [`import`] installed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    /// The configuration now in place.
    pub config: Config,
    /// The deployment section, if the file carries one (start it without a terminal).
    pub deployment: Option<Site>,
    /// Where the previous configuration was kept, if there was one.
    pub previous: Option<PathBuf>,
}

/// Validates the user-supplied file `src` (e.g. the boot-partition `acoupi.ron`) exactly
/// as [`load`](super::load) does and, only if it is valid, installs its text at `dst`
/// (the user's comments survive; a UTF-8 byte order mark does not), keeping the previous
/// `dst` as `<dst>.last-good`. `dst` must be a regular file or not exist yet; the
/// configuration lock of `dst` is held throughout.
pub fn import(src: &Path, dst: &Path) -> Result<ImportOutcome, ConfigError> {
    import_with(src, dst, &|_| Vec::new())
}

/// [`import`] with `extra` checks that need more than the file (the storage paths a
/// layout resolves): their errors refuse the file like validation errors.
pub fn import_with(
    src: &Path,
    dst: &Path,
    extra: &dyn Fn(&Config) -> Vec<FieldError>,
) -> Result<ImportOutcome, ConfigError> {
    // Before the lock: a lock file beside a device node (`--to /dev/null`) is not ours
    // to create.
    check_destination(dst)?;
    let _lock = lock(dst)?;
    // Read once: what is validated is exactly what is installed.
    let text = read_text(src)?;
    let config = parse(&text, src)?;
    let mut errors = validate(&config).err().unwrap_or_default();
    if errors.is_empty() {
        errors = extra(&config);
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid {
            path: src.to_path_buf(),
            errors,
        });
    }
    let last_good = with_suffix(dst, ".last-good");
    let had_previous = dst.exists();
    write_atomic(dst, text.as_bytes(), &last_good, mode_for(&config))?;
    Ok(ImportOutcome {
        deployment: config.deployment.clone(),
        config,
        previous: had_previous.then_some(last_good),
    })
}

/// Refuses a destination that exists and is not a regular file (a symbolic link is not
/// followed: it is refused too).
pub fn check_destination(path: &Path) -> Result<(), ConfigError> {
    let kind = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(meta) => kind_of(&meta.file_type()),
        Err(_) => return Ok(()),
    };
    Err(ConfigError::NotAFile {
        path: path.to_path_buf(),
        kind,
    })
}

/// What a file that is not a regular file is, for messages ("a character device").
pub(crate) fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Refuses a new destination whose directory does not exist (an existing regular file
/// is fine): `config import --to` installs a file, it does not create directories.
pub fn check_new_in_existing_dir(path: &Path) -> Result<(), ConfigError> {
    check_destination(path)?;
    if fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(ConfigError::NoDirectory {
            path: path.to_path_buf(),
            dir,
        })
    }
}

/// The exclusive lock writers of the configuration at a path hold; released on drop.
#[derive(Debug)]
pub struct ConfigLock {
    _lock: nix::fcntl::Flock<File>,
}

/// Takes the exclusive writer lock of the configuration `path`: a `flock` on
/// `<path>.lock`, created if needed (with its directory). Blocks until the writer that
/// holds it is done; hold it from reading the file to writing it back.
pub fn lock(path: &Path) -> Result<ConfigLock, ConfigError> {
    let lock_path = with_suffix(path, ".lock");
    let err = |source| ConfigError::Lock {
        path: lock_path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let open = |write: bool| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(write)
            .mode(CONFIG_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path)
    };
    // An operator without write access to an existing lock file can still lock it
    // read-only: flock does not care how the file was opened.
    let file = match open(true) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => open(false),
        other => other,
    }
    .map_err(err)?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| err(std::io::Error::from(errno)))?;
    Ok(ConfigLock { _lock: lock })
}

/// `path` with `suffix` appended to its file name (`acoupi.ron` → `acoupi.ron.bak`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Replaces `path` with `contents` atomically, with file `mode` (see [`mode_for`]); the
/// previous file, if any, is kept at `backup` (hard link, so `path` never disappears,
/// even for an instant). A backup of a file with secrets keeps its 0600 mode. A `path`
/// that exists and is not a regular file is refused ([`check_destination`]). The new
/// file is written and renamed by [`files::NewFile`].
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    backup: &Path,
    mode: u32,
) -> Result<(), ConfigError> {
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ConfigError::Write { path: p, source }
    };
    let from_fs = |e: files::FsError| ConfigError::Write {
        path: e.path,
        source: e.source,
    };
    check_destination(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(werr(dir))?;
    }
    let mut new = files::NewFile::create(path, files::Mode::Exact(mode)).map_err(from_fs)?;
    new.write_all(contents).map_err(from_fs)?;
    if path.exists() {
        match fs::remove_file(backup) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(werr(backup)(e)),
        }
        if fs::hard_link(path, backup).is_err() {
            // File systems without hard links (FAT boot partitions) get a copy.
            fs::copy(path, backup).map_err(werr(backup))?;
        }
    }
    new.commit(files::DirSync::Required).map_err(from_fs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn valid() -> Config {
        let mut c = Config::default();
        c.microphone.device_name = "UltraMic".into();
        c
    }

    #[test]
    fn save_keeps_previous_as_bak_with_mode_0644() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/acoupi.ron");
        let mut c = valid();
        save(&c, &path).unwrap();
        assert!(!with_suffix(&path, ".bak").exists());
        c.microphone.samplerate = 96_000;
        save(&c, &path).unwrap();
        let bak = super::super::load(&with_suffix(&path, ".bak")).unwrap();
        assert_eq!(bak.microphone.samplerate, 48_000);
        assert_eq!(super::super::load(&path).unwrap(), c);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn config_with_a_password_is_written_0600_and_its_backup_is_not_readable_either() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acoupi.ron");
        let mut c = valid();
        save(&c, &path).unwrap();
        c.program = crate::config::schema::Program::Connected;
        c.messaging = Some(
            ron::from_str(
                "(mqtt: Some((host: \"b\", username: Some(\"u\"), password: Some(\"hunter2\"))))",
            )
            .unwrap(),
        );
        save(&c, &path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(fs::read_to_string(&path).unwrap().contains("hunter2"));
        // The next save keeps this file as the backup: still 0600 (a hard link).
        save(&c, &path).unwrap();
        let bak = fs::metadata(with_suffix(&path, ".bak")).unwrap();
        assert_eq!(bak.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn save_refuses_invalid_config_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acoupi.ron");
        let e = save(&Config::default(), &path).unwrap_err().to_string();
        assert!(e.contains("microphone.device_name is not set"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn import_installs_bytes_and_keeps_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("etc/acoupi.ron");
        save(&valid(), &dst).unwrap();
        let before = fs::read(&dst).unwrap();
        let src = dir.path().join("boot.ron");
        let text = "// my site\n(microphone: (device_name: \"USB\"), deployment: (name: \"wood\", latitude: 51.5, longitude: -0.1))\n";
        fs::write(&src, text).unwrap();
        let out = import(&src, &dst).unwrap();
        assert_eq!(out.deployment.unwrap().name, "wood");
        assert_eq!(fs::read_to_string(&dst).unwrap(), text);
        assert_eq!(fs::read(with_suffix(&dst, ".last-good")).unwrap(), before);
        assert_eq!(out.previous, Some(with_suffix(&dst, ".last-good")));
    }

    #[test]
    fn import_of_invalid_file_leaves_destination_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("acoupi.ron");
        save(&valid(), &dst).unwrap();
        let before = fs::read(&dst).unwrap();
        let src = dir.path().join("boot.ron");
        fs::write(&src, "(microphone: (device_name: \"USB\", samplerate: 1))").unwrap();
        let e = import(&src, &dst).unwrap_err().to_string();
        assert!(e.contains("microphone.samplerate must be between"), "{e}");
        assert_eq!(fs::read(&dst).unwrap(), before);
        assert!(!with_suffix(&dst, ".last-good").exists());
    }

    /// Issue 11: a file saved by Notepad as "UTF-8 with BOM" imports; what is installed
    /// is the text without the mark.
    #[test]
    fn import_accepts_a_byte_order_mark_and_installs_the_text_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("acoupi.ron");
        let src = dir.path().join("boot.ron");
        let text = "(\r\n  microphone: (device_name: \"USB\"),\r\n)\r\n";
        fs::write(&src, [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat()).unwrap();
        let out = import(&src, &dst).unwrap();
        assert_eq!(out.config.microphone.device_name, "USB");
        assert_eq!(fs::read_to_string(&dst).unwrap(), text);
        assert_eq!(super::super::load(&src).unwrap(), out.config);
    }

    /// Issue 11: `--to /dev/null` as root replaced the device node with a file.
    #[test]
    fn writing_over_a_device_fifo_directory_or_symlink_is_refused() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("boot.ron");
        fs::write(&src, "(microphone: (device_name: \"USB\"))").unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("target.ron"), &link).unwrap();
        for (dst, kind) in [
            (Path::new("/dev/null"), "a character device"),
            (fifo.as_path(), "a fifo"),
            (dir.path(), "a directory"),
            (link.as_path(), "a symbolic link"),
        ] {
            let e = import(&src, dst).unwrap_err().to_string();
            assert!(e.contains(&format!("is {kind}, not a regular file")), "{e}");
            assert!(save(&valid(), dst).is_err());
        }
        assert!(fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(!dir.path().join("target.ron").exists());
        assert!(!Path::new("/dev/null.lock").exists());
        let e = check_new_in_existing_dir(&dir.path().join("no/such/acoupi.ron")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        check_new_in_existing_dir(&dir.path().join("new.ron")).unwrap();
    }

    /// The writer lock excludes a second writer until the first drops it.
    #[test]
    fn lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/acoupi.ron");
        let held = lock(&path).unwrap();
        let lock_file = with_suffix(&path, ".lock");
        let other = File::open(&lock_file).unwrap();
        let other = nix::fcntl::Flock::lock(other, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map(drop)
            .map_err(|(f, e)| (drop(f), e).1);
        assert_eq!(other, Err(nix::errno::Errno::EWOULDBLOCK));
        drop(held);
        let again = File::open(&lock_file).unwrap();
        assert!(
            nix::fcntl::Flock::lock(again, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
        );
    }
}
