//! User-mode unit installation end to end, with `systemctl` chosen through
//! `ACOUPI_SYSTEMCTL` and the unit folder through `XDG_CONFIG_HOME`.
//!
//! This binary holds exactly one test because it sets its own process environment,
//! which would race with other tests' threads.

use acoupi::system::layout::Layout;
use acoupi::system::systemd::{
    self, InstallError, Systemctl, UnitSource, UnitState, BEAT_UNIT, MAIN_UNIT,
};

const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake-systemctl");

const MAIN: &str = "\
[Unit]
Description=acoupi recorder

[Service]
Type=notify
User=acoupi
ExecStart=/usr/bin/acoupi run
ProtectSystem=strict

[Install]
WantedBy=multi-user.target
";

const BEAT: &str = "\
[Unit]
Description=acoupi health and heartbeat

[Service]
Type=notify
User=acoupi
ExecStart=/usr/bin/acoupi beat

[Install]
WantedBy=multi-user.target
";

#[test]
fn install_user_units_writes_both_units_reloads_and_makes_them_known() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let unit_dir = config.join("systemd/user");
    let log = dir.path().join("log");
    // One test in this binary: nothing else reads the environment concurrently.
    std::env::set_var(systemd::SYSTEMCTL_ENV, FAKE);
    std::env::set_var("FAKE_SYSTEMCTL_STATE", dir.path().join("state"));
    std::env::set_var("FAKE_SYSTEMCTL_LOG", &log);
    std::env::set_var("FAKE_SYSTEMCTL_UNIT_PATH", &unit_dir);
    std::env::set_var("XDG_CONFIG_HOME", &config);

    let layout = Layout::user(dir.path().join("acoupi-home"));
    let sc = Systemctl::for_layout(&layout);
    assert!(!systemd::units_installed(&layout));
    assert_eq!(sc.is_active(MAIN_UNIT).unwrap(), UnitState::Uninstalled);

    let sources = [
        UnitSource {
            name: MAIN_UNIT,
            text: MAIN,
        },
        UnitSource {
            name: BEAT_UNIT,
            text: BEAT,
        },
    ];
    let written = sc.install_user_units(&layout, &sources).unwrap();
    assert_eq!(
        written,
        vec![unit_dir.join(MAIN_UNIT), unit_dir.join(BEAT_UNIT)]
    );
    assert!(systemd::units_installed(&layout));
    assert_eq!(sc.is_active(MAIN_UNIT).unwrap(), UnitState::Inactive);

    let exe = std::env::current_exe().unwrap();
    let beat = std::fs::read_to_string(&written[1]).unwrap();
    assert!(
        beat.contains(&format!("ExecStart={} beat\n", exe.display())),
        "{beat}"
    );
    assert!(beat.contains(&format!(
        "Environment=ACOUPI_HOME={}\n",
        layout.home.display()
    )));
    assert!(!beat.contains("User="), "{beat}");

    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.lines().any(|l| l == "--user daemon-reload"),
        "{calls}"
    );

    let system = Layout::system();
    let err = Systemctl::for_layout(&system)
        .install_user_units(&system, &sources)
        .unwrap_err();
    assert!(matches!(err, InstallError::NotUserMode), "{err:?}");
}
