//! `Systemctl` driven against `tests/support/fake-systemctl`, a real process standing in
//! for systemd (which cannot be PID 1 in a test).
//!
//! Each test gets its own state folder and log: the fake is reached through a symlink
//! in a temporary folder, next to a `fake-systemctl.env` it reads, so tests never change
//! this process's environment. (No test writes an executable: exec'ing a file another
//! thread's fork still holds open for writing fails with ETXTBSY.)

use std::path::PathBuf;

use acoupi::system::layout::Mode;
use acoupi::system::systemd::{
    Systemctl, SystemctlError, UnitFileState, UnitState, Wait, BEAT_UNIT, MAIN_UNIT, UNITS,
};

const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake-systemctl");

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// A fresh fake whose extra environment is `env` (e.g. `FAKE_SYSTEMCTL_FAIL`); every
    /// unit counts as installed.
    fn new(env: &[(&str, &str)]) -> Fake {
        Fake::build(env, false)
    }

    /// A fresh fake that knows only the units written into [`Fake::units_dir`].
    fn with_unit_path() -> Fake {
        Fake::build(&[], true)
    }

    fn build(env: &[(&str, &str)], unit_path: bool) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = format!(
            "FAKE_SYSTEMCTL_STATE='{}'\nFAKE_SYSTEMCTL_LOG='{}'\n",
            dir.path().join("state").display(),
            dir.path().join("log").display(),
        );
        if unit_path {
            let units = dir.path().join("units");
            std::fs::create_dir(&units).unwrap();
            conf.push_str(&format!("FAKE_SYSTEMCTL_UNIT_PATH='{}'\n", units.display()));
        }
        for (k, v) in env {
            conf.push_str(&format!("{k}='{v}'\n"));
        }
        std::fs::write(dir.path().join("fake-systemctl.env"), conf).unwrap();
        std::os::unix::fs::symlink(FAKE, dir.path().join("systemctl")).unwrap();
        Fake { dir }
    }

    fn systemctl(&self, mode: Mode) -> Systemctl {
        Systemctl::with_program(self.dir.path().join("systemctl"), mode)
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn state_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("state").join(name)
    }

    fn units_dir(&self) -> PathBuf {
        self.dir.path().join("units")
    }
}

#[test]
fn enable_and_start_make_both_units_active_and_enabled() {
    let fake = Fake::new(&[]);
    let sc = fake.systemctl(Mode::User);
    assert_eq!(sc.is_active(MAIN_UNIT).unwrap(), UnitState::Inactive);
    sc.enable(&UNITS).unwrap();
    sc.start(&UNITS, Wait::NoBlock).unwrap();
    for unit in UNITS {
        assert_eq!(sc.is_active(unit).unwrap(), UnitState::Active);
        assert_eq!(sc.is_enabled(unit).unwrap(), UnitFileState::Enabled);
    }
    let log = fake.log();
    assert!(log.contains(&"--user enable acoupi.service acoupi-beat.service".to_string()));
    assert!(
        log.contains(&"--user start --no-block acoupi.service acoupi-beat.service".to_string()),
        "{log:?}"
    );
}

#[test]
fn stop_and_disable_return_units_to_inactive_and_disabled() {
    let fake = Fake::new(&[]);
    let sc = fake.systemctl(Mode::User);
    sc.enable(&UNITS).unwrap();
    sc.start(&UNITS, Wait::Block).unwrap();
    sc.restart(&[BEAT_UNIT]).unwrap();
    sc.stop(&UNITS).unwrap();
    sc.disable(&UNITS).unwrap();
    sc.daemon_reload().unwrap();
    assert_eq!(sc.is_active(BEAT_UNIT).unwrap(), UnitState::Inactive);
    assert_eq!(sc.is_enabled(BEAT_UNIT).unwrap(), UnitFileState::Disabled);
    let log = fake.log();
    let tail: Vec<&str> = log.iter().map(String::as_str).skip(2).take(4).collect();
    assert_eq!(
        tail,
        [
            "--user restart acoupi-beat.service",
            "--user stop acoupi.service acoupi-beat.service",
            "--user disable acoupi.service acoupi-beat.service",
            "--user daemon-reload",
        ]
    );
}

#[test]
fn system_mode_calls_carry_no_user_flag() {
    let fake = Fake::new(&[]);
    let sc = fake.systemctl(Mode::System);
    sc.start(&[MAIN_UNIT], Wait::Block).unwrap();
    assert_eq!(sc.is_active(MAIN_UNIT).unwrap(), UnitState::Active);
    assert_eq!(
        fake.log(),
        ["start acoupi.service", "is-active acoupi.service"]
    );
}

#[test]
fn unit_without_a_unit_file_is_uninstalled_not_inactive() {
    let fake = Fake::with_unit_path();
    let units = fake.units_dir();
    let sc = fake.systemctl(Mode::User);
    assert_eq!(sc.is_active(MAIN_UNIT).unwrap(), UnitState::Uninstalled);
    assert_eq!(sc.is_enabled(MAIN_UNIT).unwrap(), UnitFileState::NotFound);
    assert_eq!(sc.status(MAIN_UNIT).unwrap().state, UnitState::Uninstalled);

    std::fs::write(units.join(MAIN_UNIT), "[Service]\nExecStart=/bin/true\n").unwrap();
    assert_eq!(sc.is_active(MAIN_UNIT).unwrap(), UnitState::Inactive);
    assert_eq!(sc.is_enabled(MAIN_UNIT).unwrap(), UnitFileState::Disabled);
}

#[test]
fn failing_start_is_an_error_with_the_command_line_and_stderr() {
    let fake = Fake::new(&[("FAKE_SYSTEMCTL_FAIL", "start")]);
    let sc = fake.systemctl(Mode::User);
    let err = sc.start(&UNITS, Wait::Block).unwrap_err();
    match &err {
        SystemctlError::Failed {
            command,
            status,
            stderr,
        } => {
            assert!(
                command.ends_with("--user start acoupi.service acoupi-beat.service"),
                "{command}"
            );
            assert_eq!(status.code(), Some(1));
            assert!(stderr.contains("injected failure"), "{stderr}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(err.to_string().contains("injected failure"), "{err}");
    // The failed call changed nothing.
    assert_eq!(sc.is_active(MAIN_UNIT).unwrap(), UnitState::Inactive);
}

#[test]
fn starting_a_unit_systemd_does_not_know_reports_its_message() {
    let fake = Fake::with_unit_path();
    let err = fake
        .systemctl(Mode::System)
        .start(&[MAIN_UNIT], Wait::Block)
        .unwrap_err();
    let SystemctlError::Failed { status, stderr, .. } = err else {
        panic!("expected Failed, got {err:?}");
    };
    assert_eq!(status.code(), Some(5));
    assert_eq!(
        stderr,
        "Failed to start acoupi.service: Unit acoupi.service not found."
    );
}

#[test]
fn status_reads_restarts_status_text_and_failure_result() {
    let fake = Fake::new(&[]);
    let sc = fake.systemctl(Mode::System);
    sc.start(&[MAIN_UNIT], Wait::Block).unwrap();
    std::fs::write(fake.state_file("acoupi.service.prop.NRestarts"), "3\n").unwrap();
    std::fs::write(
        fake.state_file("acoupi.service.prop.StatusText"),
        "recording 12/60 s\n",
    )
    .unwrap();
    std::fs::write(
        fake.state_file("acoupi.service.prop.ActiveEnterTimestamp"),
        "Thu 2026-11-26 02:10:00 UTC\n",
    )
    .unwrap();
    let st = sc.status(MAIN_UNIT).unwrap();
    assert_eq!(st.state, UnitState::Active);
    assert_eq!(st.sub_state, "running");
    assert_eq!(st.restarts, Some(3));
    assert_eq!(st.status_text.as_deref(), Some("recording 12/60 s"));
    assert_eq!(
        st.active_since.as_deref(),
        Some("Thu 2026-11-26 02:10:00 UTC")
    );

    std::fs::write(fake.state_file("acoupi-beat.service.active"), "failed\n").unwrap();
    assert_eq!(sc.is_active(BEAT_UNIT).unwrap(), UnitState::Failed);
    let beat = sc.status(BEAT_UNIT).unwrap();
    assert_eq!(
        (beat.state, beat.result.as_str()),
        (UnitState::Failed, "exit-code")
    );
    assert_eq!(beat.status_text, None);

    let props = sc.show(MAIN_UNIT, &["NRestarts", "LoadState"]).unwrap();
    assert_eq!(props.get("NRestarts").map(String::as_str), Some("3"));
    assert_eq!(props.get("LoadState").map(String::as_str), Some("loaded"));
    assert_eq!(
        fake.log().last().unwrap(),
        "show --property=NRestarts,LoadState acoupi.service"
    );
}

#[test]
fn missing_systemctl_program_is_a_spawn_error_naming_the_override() {
    let sc = Systemctl::with_program("/nonexistent/systemctl", Mode::User);
    let err = sc.is_active(MAIN_UNIT).unwrap_err();
    assert!(matches!(err, SystemctlError::Spawn { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/systemctl --user is-active acoupi.service"),
        "{text}"
    );
    assert!(text.contains("ACOUPI_SYSTEMCTL"), "{text}");
}

/// Upstream showed `unknown` when the user bus was missing; the cause must surface.
#[test]
fn is_active_without_an_answer_is_an_error_not_unknown() {
    // Like `systemctl --user` without a bus: nothing on stdout, a reason on stderr.
    let fake = Fake::new(&[("FAKE_SYSTEMCTL_FAIL", "is-active")]);
    let err = fake.systemctl(Mode::User).is_active(MAIN_UNIT).unwrap_err();
    assert!(matches!(err, SystemctlError::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("injected failure"), "{err}");
}
