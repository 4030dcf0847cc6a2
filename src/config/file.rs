//! Writing configuration files so that a power cut never leaves a half-written one:
//! write a temporary file in the same directory, fsync it, keep the previous file as a
//! backup, rename over the target, fsync the directory.
//!
//! Only validated configurations are written. Nothing here knows about running
//! recorders; reloading one is the caller's decision.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::schema::{Config, Site};
use super::{load, to_ron, validate, ConfigError};

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
/// as [`load`] does and, only if it is valid, installs it at `dst` byte for byte (the
/// user's comments survive), keeping the previous `dst` as `<dst>.last-good`.
pub fn import(src: &Path, dst: &Path) -> Result<ImportOutcome, ConfigError> {
    let config = load(src)?;
    // Re-read the bytes rather than re-serialising, so comments survive; `load` just read
    // the same file, so a failure here is a real I/O problem worth reporting.
    let bytes = fs::read(src).map_err(|source| ConfigError::Read {
        path: src.to_path_buf(),
        source,
    })?;
    let last_good = with_suffix(dst, ".last-good");
    let had_previous = dst.exists();
    write_atomic(dst, &bytes, &last_good, mode_for(&config))?;
    Ok(ImportOutcome {
        deployment: config.deployment.clone(),
        config,
        previous: had_previous.then_some(last_good),
    })
}

/// `path` with `suffix` appended to its file name (`acoupi.ron` → `acoupi.ron.bak`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Replaces `path` with `contents` atomically, with file `mode` (see [`mode_for`]); the
/// previous file, if any, is kept at `backup` (hard link, so `path` never disappears,
/// even for an instant). A backup of a file with secrets keeps its 0600 mode.
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(werr(&dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "acoupi.ron".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(werr(&tmp))?;
        f.write_all(contents).map_err(werr(&tmp))?;
        f.sync_all().map_err(werr(&tmp))?;
        // `mode` above is filtered by the umask; the file mode is part of the contract.
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(werr(&tmp))?;
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
        fs::rename(&tmp, path).map_err(werr(path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(werr(&dir))
    })();
    if result.is_err() {
        // Best effort: the temporary file is ours and useless once the write failed.
        let _ = fs::remove_file(&tmp);
    }
    result
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
            .filter(|n| n.contains(".tmp."))
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
}
