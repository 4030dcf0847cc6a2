//! Talking to systemd: `systemctl` for the two acoupi units, and the user-mode unit
//! files.
//!
//! Every operation runs the program named by `ACOUPI_SYSTEMCTL` (default `systemctl`),
//! with `--user` in user mode. That program is the one test-double boundary of this
//! module: tests cannot have systemd as PID 1, so they point it at
//! `tests/support/fake-systemctl`. This module does not decide when to start or stop;
//! the deployment commands do.

mod units;

pub use units::{
    units_installed, user_unit_dir, user_unit_text, write_user_units, InstallError, UnitSource,
};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::{Command, Output};

use super::layout::{Layout, Mode};

/// The worker daemon's unit (`acoupi run`).
pub const MAIN_UNIT: &str = "acoupi.service";
/// The health and heartbeat daemon's unit (`acoupi beat`).
pub const BEAT_UNIT: &str = "acoupi-beat.service";
/// Both units, main first.
pub const UNITS: [&str; 2] = [MAIN_UNIT, BEAT_UNIT];

/// The system units as baked into the image; user mode derives its units from them.
pub const SYSTEM_UNITS: [UnitSource; 2] = [
    UnitSource {
        name: MAIN_UNIT,
        text: include_str!("../../../overlay/usr/lib/systemd/system/acoupi.service"),
    },
    UnitSource {
        name: BEAT_UNIT,
        text: include_str!("../../../overlay/usr/lib/systemd/system/acoupi-beat.service"),
    },
];

/// Environment variable naming the `systemctl` program to run.
pub const SYSTEMCTL_ENV: &str = "ACOUPI_SYSTEMCTL";

/// A `systemctl` call that did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SystemctlError {
    /// The program could not be started.
    #[error("running `{command}`: {source}; is systemd installed (or {SYSTEMCTL_ENV} set)?")]
    Spawn {
        /// The command line.
        command: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote to stderr (trimmed).
        stderr: String,
    },
    /// It printed something this module cannot read.
    #[error("`{command}` printed unexpected output: {output:?}")]
    Output {
        /// The command line.
        command: String,
        /// The offending text.
        output: String,
    },
}

word_enum! {
    /// A unit's activity, as `systemctl is-active` reports it (plus `Uninstalled`); the
    /// words are also `deployment status`'s.
    pub enum UnitState {
        /// No unit file is loaded under that name.
        Uninstalled => "uninstalled",
        /// Running.
        Active => "active",
        /// Stopped.
        Inactive => "inactive",
        /// Stopped after a failure (exit code, signal, watchdog, start limit).
        Failed => "failed",
        /// Starting.
        Activating => "activating",
        /// Stopping.
        Deactivating => "deactivating",
        /// Reloading its configuration.
        Reloading => "reloading",
        /// Any other answer (newer systemd states such as `maintenance`).
        Unknown => "unknown",
    }
}

impl UnitState {
    /// Parses `is-active`/`ActiveState` text; unrecognised text is `Unknown`.
    /// (`uninstalled` is ours, not systemctl's: it comes from the load state.)
    pub fn parse(text: &str) -> UnitState {
        let text = text.trim();
        UnitState::ALL
            .iter()
            .copied()
            .filter(|s| *s != UnitState::Uninstalled)
            .find(|s| s.as_str() == text)
            .unwrap_or(UnitState::Unknown)
    }
}

/// A unit file's enablement, as `systemctl is-enabled` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitFileState {
    /// Enabled (also `enabled-runtime`): starts at boot.
    Enabled,
    /// Installed, not enabled.
    Disabled,
    /// Has no `[Install]` section; started only as a dependency.
    Static,
    /// Masked: cannot be started (also `masked-runtime`).
    Masked,
    /// No such unit file.
    NotFound,
    /// Another answer (`linked`, `alias`, `indirect`, `generated`, …), verbatim.
    Other(String),
}

impl UnitFileState {
    /// Parses `is-enabled`/`UnitFileState` text.
    pub fn parse(text: &str) -> UnitFileState {
        match text.trim() {
            "enabled" | "enabled-runtime" => UnitFileState::Enabled,
            "disabled" => UnitFileState::Disabled,
            "static" => UnitFileState::Static,
            "masked" | "masked-runtime" => UnitFileState::Masked,
            "not-found" => UnitFileState::NotFound,
            other => UnitFileState::Other(other.to_string()),
        }
    }
}

/// Whether `start` waits for the start job to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait: a unit that fails to start makes `start` fail (`Type=notify` waits for
    /// `READY=1`).
    Block,
    /// Queue the job and return (`--no-block`), e.g. when called from inside a unit.
    NoBlock,
}

/// The properties `status` reads, in one `systemctl show` call.
const STATUS_PROPERTIES: [&str; 7] = [
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "StatusText",
    "ActiveEnterTimestamp",
];

/// What `deployment status` wants to know about one unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitStatus {
    /// Activity (or `Uninstalled`).
    pub state: UnitState,
    /// systemd's finer state (`running`, `dead`, `auto-restart`, …).
    pub sub_state: String,
    /// Why it last stopped (`success`, `exit-code`, `watchdog`, `start-limit-hit`, …).
    pub result: String,
    /// Automatic restarts since the unit was last started by hand.
    pub restarts: Option<u32>,
    /// The daemon's last `STATUS=` line, if any.
    pub status_text: Option<String>,
    /// When it last became active, as systemd prints it.
    pub active_since: Option<String>,
}

/// `systemctl`, in system or user mode.
#[derive(Debug, Clone)]
pub struct Systemctl {
    program: OsString,
    mode: Mode,
}

impl Systemctl {
    /// The program from `ACOUPI_SYSTEMCTL` (default `systemctl`) for `mode`.
    pub fn new(mode: Mode) -> Systemctl {
        let program = std::env::var_os(SYSTEMCTL_ENV)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "systemctl".into());
        Systemctl::with_program(program, mode)
    }

    /// [`Systemctl::new`] for the layout's mode.
    pub fn for_layout(layout: &Layout) -> Systemctl {
        Systemctl::new(layout.mode)
    }

    /// An explicit program (a path or a name on `PATH`).
    pub fn with_program(program: impl Into<OsString>, mode: Mode) -> Systemctl {
        Systemctl {
            program: program.into(),
            mode,
        }
    }

    /// The mode this talks to.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn command_line(&self, args: &[&str]) -> String {
        let mut words = vec![self.program.to_string_lossy().into_owned()];
        if self.mode == Mode::User {
            words.push("--user".into());
        }
        words.extend(args.iter().map(|a| a.to_string()));
        words.join(" ")
    }

    /// Runs and returns the output whatever the exit status.
    fn output(&self, args: &[&str]) -> Result<Output, SystemctlError> {
        let mut cmd = Command::new(&self.program);
        if self.mode == Mode::User {
            cmd.arg("--user");
        }
        cmd.args(args);
        tracing::debug!(command = %self.command_line(args), "systemctl");
        cmd.output().map_err(|source| SystemctlError::Spawn {
            command: self.command_line(args),
            source,
        })
    }

    /// Runs and requires success.
    fn run(&self, args: &[&str]) -> Result<Output, SystemctlError> {
        let out = self.output(args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(args, &out))
        }
    }

    fn failed(&self, args: &[&str], out: &Output) -> SystemctlError {
        SystemctlError::Failed {
            command: self.command_line(args),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
    }

    fn with_units<'a>(verb: &'a str, flags: &[&'a str], units: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![verb];
        args.extend_from_slice(flags);
        args.extend_from_slice(units);
        args
    }

    /// The unit's activity. A unit with no unit file is `Uninstalled` (upstream reported
    /// such units as `inactive`, hiding a missing installation).
    pub fn is_active(&self, unit: &str) -> Result<UnitState, SystemctlError> {
        let args = ["is-active", unit];
        let out = self.output(&args)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(first) = stdout.lines().next().filter(|l| !l.trim().is_empty()) else {
            // Non-zero is how is-active says "not active", but with nothing on stdout it
            // did not get an answer (e.g. no user bus): that is an error, not "unknown".
            return Err(self.failed(&args, &out));
        };
        let state = UnitState::parse(first);
        // systemd answers `inactive` for units it has never heard of too.
        if state == UnitState::Inactive && self.load_state(unit)? == "not-found" {
            return Ok(UnitState::Uninstalled);
        }
        Ok(state)
    }

    fn load_state(&self, unit: &str) -> Result<String, SystemctlError> {
        let props = self.show(unit, &["LoadState"])?;
        Ok(props.get("LoadState").cloned().unwrap_or_default())
    }

    /// The unit file's enablement; a missing unit file is `NotFound`.
    pub fn is_enabled(&self, unit: &str) -> Result<UnitFileState, SystemctlError> {
        let args = ["is-enabled", unit];
        let out = self.output(&args)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if let Some(first) = stdout.lines().next().filter(|l| !l.trim().is_empty()) {
            return Ok(UnitFileState::parse(first));
        }
        // systemd ≤ 253 reports a missing unit file only on stderr.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(UnitFileState::NotFound);
        }
        Err(self.failed(&args, &out))
    }

    /// Enables the units (start at boot).
    pub fn enable(&self, units: &[&str]) -> Result<(), SystemctlError> {
        self.run(&Self::with_units("enable", &[], units)).map(drop)
    }

    /// Disables the units.
    pub fn disable(&self, units: &[&str]) -> Result<(), SystemctlError> {
        self.run(&Self::with_units("disable", &[], units)).map(drop)
    }

    /// Starts the units, waiting for the start jobs or not.
    pub fn start(&self, units: &[&str], wait: Wait) -> Result<(), SystemctlError> {
        let flags: &[&str] = match wait {
            Wait::Block => &[],
            Wait::NoBlock => &["--no-block"],
        };
        self.run(&Self::with_units("start", flags, units)).map(drop)
    }

    /// Stops the units.
    pub fn stop(&self, units: &[&str]) -> Result<(), SystemctlError> {
        self.run(&Self::with_units("stop", &[], units)).map(drop)
    }

    /// Restarts the units.
    pub fn restart(&self, units: &[&str]) -> Result<(), SystemctlError> {
        self.run(&Self::with_units("restart", &[], units)).map(drop)
    }

    /// Sends `signal` (e.g. `SIGKILL`) to the main process of each unit only; systemd
    /// knows that pid for certain, where a pid file may be stale.
    pub fn kill_main(&self, units: &[&str], signal: &str) -> Result<(), SystemctlError> {
        let signal = format!("--signal={signal}");
        self.run(&Self::with_units(
            "kill",
            &["--kill-whom=main", signal.as_str()],
            units,
        ))
        .map(drop)
    }

    /// The unit's main pid (`MainPID`), `None` when it has none (not running) or systemd
    /// did not say.
    pub fn main_pid(&self, unit: &str) -> Result<Option<i32>, SystemctlError> {
        let p = self.show(unit, &["MainPID"])?;
        Ok(p.get("MainPID")
            .and_then(|v| v.trim().parse().ok())
            .filter(|pid| *pid > 0))
    }

    /// Makes systemd re-read unit files (after writing or changing them).
    pub fn daemon_reload(&self) -> Result<(), SystemctlError> {
        self.run(&["daemon-reload"]).map(drop)
    }

    /// The named properties of a unit (`systemctl show --property=…`). Properties systemd
    /// does not know are absent from the map.
    pub fn show(
        &self,
        unit: &str,
        properties: &[&str],
    ) -> Result<BTreeMap<String, String>, SystemctlError> {
        let list = format!("--property={}", properties.join(","));
        let args = ["show", list.as_str(), unit];
        let out = self.run(&args)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut map = BTreeMap::new();
        for line in stdout.lines().filter(|l| !l.is_empty()) {
            let Some((key, value)) = line.split_once('=') else {
                return Err(SystemctlError::Output {
                    command: self.command_line(&args),
                    output: line.to_string(),
                });
            };
            map.insert(key.to_string(), value.to_string());
        }
        Ok(map)
    }

    /// Activity, restart count, last `STATUS=` text and more, in one call.
    pub fn status(&self, unit: &str) -> Result<UnitStatus, SystemctlError> {
        let p = self.show(unit, &STATUS_PROPERTIES)?;
        let text = |k: &str| p.get(k).cloned().unwrap_or_default();
        let non_empty = |k: &str| p.get(k).filter(|v| !v.is_empty()).cloned();
        let state = if text("LoadState") == "not-found" {
            UnitState::Uninstalled
        } else {
            UnitState::parse(&text("ActiveState"))
        };
        Ok(UnitStatus {
            state,
            sub_state: text("SubState"),
            result: text("Result"),
            restarts: p.get("NRestarts").and_then(|n| n.parse().ok()),
            status_text: non_empty("StatusText"),
            active_since: non_empty("ActiveEnterTimestamp"),
        })
    }

    /// Writes the user units from the system units' text (see [`user_unit_text`]) into
    /// [`user_unit_dir`], with `ExecStart=` pointing at this executable, then reloads the
    /// user manager. Returns the files written.
    pub fn install_user_units(
        &self,
        layout: &Layout,
        sources: &[UnitSource],
    ) -> Result<Vec<std::path::PathBuf>, InstallError> {
        if layout.mode != Mode::User || self.mode != Mode::User {
            return Err(InstallError::NotUserMode);
        }
        let dir = user_unit_dir()?;
        let exe = std::env::current_exe().map_err(InstallError::CurrentExe)?;
        // The unit runs with its own working directory: a relative home would move.
        let home = std::path::absolute(&layout.home).map_err(|source| InstallError::Home {
            path: layout.home.clone(),
            source,
        })?;
        let written = write_user_units(&dir, &home, &exe, sources)?;
        self.daemon_reload().map_err(InstallError::Reload)?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_state_words_round_trip_and_unknown_words_are_unknown() {
        for s in [
            UnitState::Active,
            UnitState::Inactive,
            UnitState::Failed,
            UnitState::Activating,
            UnitState::Deactivating,
            UnitState::Reloading,
        ] {
            assert_eq!(UnitState::parse(s.as_str()), s);
        }
        assert_eq!(UnitState::parse("maintenance\n"), UnitState::Unknown);
        assert_eq!(UnitState::parse("uninstalled"), UnitState::Unknown);
        assert_eq!(
            UnitFileState::parse("enabled-runtime"),
            UnitFileState::Enabled
        );
        assert_eq!(
            UnitFileState::parse("indirect"),
            UnitFileState::Other("indirect".into())
        );
    }

    #[test]
    fn command_line_shows_user_flag_only_in_user_mode() {
        let user = Systemctl::with_program("systemctl", Mode::User);
        let system = Systemctl::with_program("systemctl", Mode::System);
        assert_eq!(
            user.command_line(&["start", MAIN_UNIT]),
            "systemctl --user start acoupi.service"
        );
        assert_eq!(
            system.command_line(&["start", MAIN_UNIT]),
            "systemctl start acoupi.service"
        );
    }
}
