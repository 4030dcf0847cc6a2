//! User-mode unit files, derived from the system units so the two cannot drift apart.
//!
//! The system units (`overlay/usr/lib/systemd/system/*.service`, owned by the image) are
//! the single source. A user manager cannot switch users, create system users, apply
//! most sandboxing (it needs mount namespaces) or reboot the machine, so
//! [`user_unit_text`] drops those settings, points `ExecStart=` at the running binary
//! and sets `ACOUPI_HOME`. This file knows the shape of unit files, not what the
//! daemons do.

use std::path::{Path, PathBuf};

use super::UNITS;
use crate::files::{self, DirSync};
use crate::system::layout::{Layout, Mode};

/// Installing the user units failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Called for a system installation.
    #[error("user units are only installed in user mode; system units come with the image in /usr/lib/systemd/system")]
    NotUserMode,
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("cannot find the user unit folder: neither XDG_CONFIG_HOME nor HOME is set to an absolute path")]
    NoUnitDir,
    /// The path of the running binary is unknown.
    #[error("finding the path of the acoupi binary for ExecStart=: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// `ACOUPI_HOME` could not be made absolute for `Environment=`.
    #[error("resolving ACOUPI_HOME {} to an absolute path: {source}", path.display())]
    Home {
        /// The home as configured.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a unit file failed.
    #[error("writing unit file {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `daemon-reload` failed after writing.
    #[error("reloading the user manager after writing units: {0}")]
    Reload(#[source] super::SystemctlError),
}

/// One system unit's file name and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitSource {
    /// The file name (`acoupi.service`).
    pub name: &'static str,
    /// The system unit's text.
    pub text: &'static str,
}

/// Settings a user manager cannot apply: identity, privileged sandboxing (mount or
/// namespace setup), device policy, capability and scheduling changes needing
/// privileges, and machine-wide actions; also the state/runtime directory settings,
/// because in user mode every path derives from `ACOUPI_HOME` instead. Everything else
/// (seccomp filters, `NoNewPrivileges`, `UMask`, watchdog, restart policy) is kept.
const SYSTEM_ONLY_KEYS: &[&str] = &[
    "User",
    "Group",
    "DynamicUser",
    "SupplementaryGroups",
    "DeviceAllow",
    "DevicePolicy",
    "PrivateDevices",
    "PrivateTmp",
    "PrivateUsers",
    "PrivateNetwork",
    "PrivateMounts",
    "ProtectSystem",
    "ProtectHome",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "ProtectProc",
    "ProcSubset",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "BindPaths",
    "BindReadOnlyPaths",
    "TemporaryFileSystem",
    "RestrictNamespaces",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "RemoveIPC",
    "StateDirectory",
    "StateDirectoryMode",
    "RuntimeDirectory",
    "RuntimeDirectoryMode",
    "RuntimeDirectoryPreserve",
    "LogsDirectory",
    "LogsDirectoryMode",
    "CacheDirectory",
    "CacheDirectoryMode",
    "ConfigurationDirectory",
    "ConfigurationDirectoryMode",
    "Nice",
    "CPUSchedulingPolicy",
    "CPUSchedulingPriority",
    "IOSchedulingClass",
    "IOSchedulingPriority",
    "OOMScoreAdjust",
    "LimitRTPRIO",
    "LimitMEMLOCK",
    "FailureAction",
    "SuccessAction",
    "StartLimitAction",
    "JobTimeoutAction",
];

/// The folder user units go in: `$XDG_CONFIG_HOME/systemd/user`, else
/// `$HOME/.config/systemd/user` (relative values are ignored, as the XDG spec says).
pub fn user_unit_dir() -> Result<PathBuf, InstallError> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let config = absolute("XDG_CONFIG_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".config")))
        .ok_or(InstallError::NoUnitDir)?;
    Ok(config.join("systemd").join("user"))
}

/// The user-unit version of a system unit's text:
/// - comments are dropped (they describe the system unit) and a header says so;
/// - settings in `SYSTEM_ONLY_KEYS` are dropped, as are `Exec*=` lines with the `+`/`!`
///   (privileged) prefix, such as `ExecStartPre=+systemd-sysusers`;
/// - `Exec*=` lines running `acoupi` run `exe` instead;
/// - `Environment=` lines keep every assignment except `ACOUPI_HOME`, which is set to
///   `home` right after `[Service]`;
/// - `WantedBy=` becomes `default.target`.
pub fn user_unit_text(system_unit: &str, home: &Path, exe: &Path) -> String {
    let mut out = String::from(
        "# Generated by acoupi for a per-user installation from the system unit of the\n\
         # same name (its comments explain the settings); changes are overwritten the\n\
         # next time the units are installed.\n",
    );
    let mut section = String::new();
    for logical in logical_lines(system_unit) {
        let trimmed = logical.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_string();
            out.push_str(trimmed);
            out.push('\n');
            if section == "[Service]" {
                let assignment = format!("ACOUPI_HOME={}", home.display());
                out.push_str(&format!("Environment={}\n", quote_word(&assignment)));
            }
            continue;
        }
        if trimmed.starts_with(['#', ';']) {
            // The system unit's comments explain settings dropped here; they would mislead.
            continue;
        }
        if trimmed.is_empty() {
            // Blank lines separate sections; one is enough.
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            // Not a setting systemd would accept either; keep it for systemd to report.
            out.push_str(&logical);
            out.push('\n');
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "Environment" => {
                let kept: Vec<String> = environment_words(value)
                    .into_iter()
                    .filter(|w| !w.starts_with("ACOUPI_HOME="))
                    .map(|w| quote_word(&w))
                    .collect();
                if !kept.is_empty() {
                    out.push_str(&format!("Environment={}\n", kept.join(" ")));
                }
            }
            "WantedBy" if section == "[Install]" => out.push_str("WantedBy=default.target\n"),
            k if k.starts_with("Exec") => {
                if let Some(line) = user_exec_line(k, value, exe) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            k if SYSTEM_ONLY_KEYS.contains(&k) => {}
            _ => {
                out.push_str(&logical);
                out.push('\n');
            }
        }
    }
    out
}

/// Joins backslash-continued lines so a dropped setting takes its continuations along.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let is_comment = current.is_empty() && line.trim_start().starts_with(['#', ';']);
        match line.strip_suffix('\\') {
            Some(head) if !is_comment => {
                current.push_str(head);
                current.push(' ');
            }
            _ => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// `ExecStart=/usr/bin/acoupi run` → `ExecStart=<exe> run`; privileged lines → `None`.
fn user_exec_line(key: &str, value: &str, exe: &Path) -> Option<String> {
    let prefix_len = value
        .find(|c: char| !matches!(c, '-' | '@' | ':' | '+' | '!'))
        .unwrap_or(value.len());
    let (prefix, command) = value.split_at(prefix_len);
    if prefix.contains(['+', '!']) {
        return None;
    }
    let (program, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let is_acoupi = Path::new(program)
        .file_name()
        .is_some_and(|n| n == "acoupi");
    let program = if is_acoupi {
        quote_word(&exe.display().to_string())
    } else {
        program.to_string()
    };
    let rest = rest.trim();
    let sep = if rest.is_empty() { "" } else { " " };
    Some(format!("{key}={prefix}{program}{sep}{rest}"))
}

/// Splits an `Environment=` value into assignments, honouring double quotes.
fn environment_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => word.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Escapes one word for a unit file: `%` specifiers and `$` expansion are disabled, and
/// the word is double-quoted when it holds whitespace or quotes.
fn quote_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == '\'') {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// Writes the user versions of `sources` into `dir` (created if missing), replacing any
/// previous ones atomically and durably ([`files::replace`]). Returns the files written,
/// in `sources` order.
pub fn write_user_units(
    dir: &Path,
    home: &Path,
    exe: &Path,
    sources: &[UnitSource],
) -> Result<Vec<PathBuf>, InstallError> {
    std::fs::create_dir_all(dir).map_err(|source| InstallError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for unit in sources {
        let path = dir.join(unit.name);
        // Replaced, never rewritten in place: systemd never reads half a unit, and a
        // power cut leaves the old unit or the new one.
        let text = user_unit_text(unit.text, home, exe);
        files::replace(
            &path,
            text.as_bytes(),
            files::Mode::Umask(0o644),
            DirSync::Required,
        )
        .map_err(|e| InstallError::Write {
            path: path.clone(),
            source: e.source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Both acoupi unit files exist: in the user unit folder in user mode, in
/// `/usr/lib/systemd/system` or `/etc/systemd/system` in system mode.
pub fn units_installed(layout: &Layout) -> bool {
    let dirs = match layout.mode {
        Mode::System => vec![
            PathBuf::from("/usr/lib/systemd/system"),
            PathBuf::from("/etc/systemd/system"),
        ],
        Mode::User => match user_unit_dir() {
            Ok(dir) => vec![dir],
            Err(_) => return false,
        },
    };
    UNITS
        .iter()
        .all(|unit| dirs.iter().any(|d| d.join(unit).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A system unit shaped like the image's (field-needs §4 hardening, sysusers trap).
    const SYSTEM_UNIT: &str = "\
[Unit]
Description=acoupi recorder
After=sound.target time-sync.target
StartLimitIntervalSec=0
# Reboot when the daemon cannot get going.
FailureAction=reboot

[Service]
Type=notify
User=acoupi
Group=audio
SupplementaryGroups=audio
ExecStartPre=+/usr/bin/systemd-sysusers acoupi.conf
ExecStart=/usr/bin/acoupi run
ExecStartPost=-/usr/bin/acoupi check --quiet
ExecReload=/bin/kill -HUP $MAINPID
Environment=ACOUPI_HOME=/var/lib/acoupi RUST_LOG=info
Environment=\"TZ=:/etc/localtime\"
WatchdogSec=30s
Restart=always
RestartSec=5s
TimeoutStopSec=90s
RuntimeDirectory=acoupi
RuntimeDirectoryMode=0750
StateDirectory=acoupi
DevicePolicy=strict
DeviceAllow=char-alsa rw
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
CapabilityBoundingSet=
SystemCallFilter=@system-service
SystemCallFilter=~@privileged \\
    @resources
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
";

    fn settings(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn user_unit_drops_system_only_settings_and_runs_this_binary() {
        let text = user_unit_text(
            SYSTEM_UNIT,
            Path::new("/home/pi/.acoupi"),
            Path::new("/home/pi/bin/acoupi"),
        );
        let expected = vec![
            "[Unit]",
            "Description=acoupi recorder",
            "After=sound.target time-sync.target",
            "StartLimitIntervalSec=0",
            "[Service]",
            "Environment=ACOUPI_HOME=/home/pi/.acoupi",
            "Type=notify",
            "ExecStart=/home/pi/bin/acoupi run",
            "ExecStartPost=-/home/pi/bin/acoupi check --quiet",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Environment=RUST_LOG=info",
            "Environment=TZ=:/etc/localtime",
            "WatchdogSec=30s",
            "Restart=always",
            "RestartSec=5s",
            "TimeoutStopSec=90s",
            "SystemCallFilter=@system-service",
            "SystemCallFilter=~@privileged      @resources",
            "NoNewPrivileges=yes",
            "[Install]",
            "WantedBy=default.target",
        ];
        assert_eq!(settings(&text), expected, "{text}");
        assert!(
            !text.contains("Reboot when"),
            "system comments are dropped: {text}"
        );
        assert!(!text.contains("\n\n\n"), "{text}");
    }

    /// The generated text must parse cleanly with the real systemd: `verify` prints a
    /// warning for every unknown key, bad value or missing executable.
    #[test]
    fn user_unit_passes_systemd_analyze_verify_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("runtime");
        std::fs::create_dir(&runtime).unwrap();
        // An executable that exists, as the real ExecStart= will.
        let exe = std::env::current_exe().unwrap();
        let unit = dir.path().join("acoupi.service");
        std::fs::write(&unit, user_unit_text(SYSTEM_UNIT, dir.path(), &exe)).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["--user", "verify", "--man=no"])
            .arg(&unit)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .expect("systemd-analyze (Debian package systemd) must be installed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stderr, "", "systemd warned about the generated unit");
    }

    #[test]
    fn paths_with_spaces_and_percent_are_quoted_for_systemd() {
        let text = user_unit_text(
            SYSTEM_UNIT,
            Path::new("/home/a b/100%"),
            Path::new("/opt/my apps/acoupi"),
        );
        assert!(
            text.contains("Environment=\"ACOUPI_HOME=/home/a b/100%%\"\n"),
            "{text}"
        );
        assert!(
            text.contains("ExecStart=\"/opt/my apps/acoupi\" run\n"),
            "{text}"
        );
    }

    #[test]
    fn units_are_written_atomically_into_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().join("systemd/user");
        let sources = [
            UnitSource {
                name: "acoupi.service",
                text: SYSTEM_UNIT,
            },
            UnitSource {
                name: "acoupi-beat.service",
                text: SYSTEM_UNIT,
            },
        ];
        let written =
            write_user_units(&units, Path::new("/h"), Path::new("/bin/acoupi"), &sources).unwrap();
        assert_eq!(
            written,
            vec![
                units.join("acoupi.service"),
                units.join("acoupi-beat.service")
            ]
        );
        let names: Vec<_> = std::fs::read_dir(&units)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
        let text = std::fs::read_to_string(&written[0]).unwrap();
        assert!(text.contains("Environment=ACOUPI_HOME=/h\n"));
    }
}
