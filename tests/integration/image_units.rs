//! The system files baked into the image (`overlay/`), checked with the real systemd tools:
//! `systemd-analyze verify` and `security --offline=yes` on the units, `systemd-sysusers`
//! and `systemd-tmpfiles` against a scratch root, and the shipped RON files against the
//! configuration schema. Also `scripts/check-deps.sh`: the host programs and data files
//! the scripts use all come from `make deps`.
//!
//! `systemd-analyze verify` insists that `ExecStart=` names an existing executable, and
//! `/usr/bin/acoupi` is not installed on a build host. The units are therefore verified as a
//! temporary copy whose `/usr/bin/acoupi` is replaced by this crate's own host build of the
//! binary; nothing else in the unit changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::run_ok;

use acoupi::config::schema::Config;

/// Highest exposure `systemd-analyze security` may report for a long-running acoupi unit.
const MAX_EXPOSURE: f64 = 2.0;

const UNITS: [&str; 3] = [
    "acoupi.service",
    "acoupi-beat.service",
    "acoupi-boot-import.service",
];

fn overlay() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("overlay")
}

/// Copies the units into a temporary directory with `ExecStart` on an existing binary.
fn units_for_verify() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for unit in UNITS {
        let text = fs::read_to_string(overlay().join("usr/lib/systemd/system").join(unit))
            .expect("unit file in overlay");
        assert!(
            text.contains("/usr/bin/acoupi "),
            "{unit} runs /usr/bin/acoupi"
        );
        let text = text.replace("/usr/bin/acoupi", env!("CARGO_BIN_EXE_acoupi"));
        fs::write(dir.path().join(unit), text).expect("write unit copy");
    }
    dir
}

/// The number in `→ Overall exposure level for X: 1.6 OK`.
fn exposure(unit: &str) -> f64 {
    let dir = units_for_verify();
    let out = run_ok(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(dir.path().join(unit)),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{text}"));
    let value = line
        .rsplit(':')
        .next()
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"));
    eprintln!("{unit}: exposure {value}");
    value
}

#[test]
fn units_pass_systemd_analyze_verify_without_warnings() {
    let dir = units_for_verify();
    let out = run_ok(
        Command::new("systemd-analyze")
            .arg("verify")
            .args(UNITS.iter().map(|u| dir.path().join(u))),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "verify warned:\n{stderr}");
}

#[test]
fn recorder_unit_exposure_is_at_most_two() {
    assert!(exposure("acoupi.service") <= MAX_EXPOSURE);
}

#[test]
fn beat_unit_exposure_is_at_most_two() {
    assert!(exposure("acoupi-beat.service") <= MAX_EXPOSURE);
}

/// The boot-time import parses a file anyone can write from any computer, as root: it is
/// held to the same bound as the daemons (it was 7.6 before issue 11).
#[test]
fn boot_import_unit_exposure_is_at_most_two() {
    assert!(exposure("acoupi-boot-import.service") <= MAX_EXPOSURE);
}

/// Issue 11: the import may write only where an import writes, keeps only the
/// capabilities it uses, and has no network.
#[test]
fn boot_import_unit_writes_only_its_paths_and_keeps_chown_and_dac_override() {
    let text =
        fs::read_to_string(overlay().join("usr/lib/systemd/system/acoupi-boot-import.service"))
            .expect("unit file");
    for line in [
        "ProtectSystem=strict",
        "ReadWritePaths=/etc/acoupi /boot/firmware -/var/lib/acoupi -/run/acoupi",
        "CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE",
        "PrivateNetwork=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=@chown",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "boot import lacks `{line}`"
        );
    }
    // A root unit's StateDirectory= would chown /var/lib/acoupi to root.
    assert!(!text.lines().any(|l| l.starts_with("StateDirectory=")));
}

#[test]
fn units_are_watchdogged_notify_services_that_never_stop_restarting() {
    for (unit, watchdog) in [("acoupi.service", "30"), ("acoupi-beat.service", "180")] {
        let text = fs::read_to_string(overlay().join("usr/lib/systemd/system").join(unit))
            .expect("unit file");
        for line in [
            "Type=notify".to_string(),
            format!("WatchdogSec={watchdog}"),
            "Restart=always".into(),
            "StartLimitIntervalSec=0".into(),
            "User=acoupi".into(),
            "WantedBy=multi-user.target".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "{unit} lacks `{line}`");
        }
    }
}

/// A scratch root with Debian's base accounts, after `systemd-sysusers` applied acoupi's
/// sysusers.d file to it (as at boot, before tmpfiles).
fn root_with_acoupi_user() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temporary directory");
    let etc = root.path().join("etc");
    fs::create_dir_all(&etc).expect("etc");
    fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").expect("passwd");
    fs::write(etc.join("group"), "root:x:0:\naudio:x:29:\n").expect("group");
    fs::write(etc.join("shadow"), "").expect("shadow");
    fs::write(etc.join("gshadow"), "").expect("gshadow");
    run_ok(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", root.path().display()))
            .arg(overlay().join("usr/lib/sysusers.d/acoupi.conf")),
    );
    root
}

#[test]
fn sysusers_creates_acoupi_in_audio_with_its_state_home() {
    let root = root_with_acoupi_user();
    let passwd = fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("acoupi:"))
        .unwrap_or_else(|| panic!("no acoupi user in:\n{passwd}"));
    let fields: Vec<&str> = line.split(':').collect();
    let uid: u32 = fields[2].parse().expect("numeric uid");
    assert!((1..1000).contains(&uid), "system uid, got {uid}");
    assert_eq!(fields[3], "29", "primary group audio");
    assert_eq!(fields[5], "/var/lib/acoupi");
    assert_eq!(fields[6], "/usr/sbin/nologin");
}

#[test]
fn tmpfiles_creates_storages_tree_owned_by_acoupi_closed_to_others() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = root_with_acoupi_user();
    run_ok(
        Command::new("systemd-tmpfiles")
            .arg(format!("--root={}", root.path().display()))
            .arg("--create")
            .arg(overlay().join("usr/lib/tmpfiles.d/acoupi.conf")),
    );
    for dir in ["", "storages", "storages/recordings"] {
        let path = root.path().join("var/lib/acoupi").join(dir);
        let meta =
            fs::metadata(&path).unwrap_or_else(|e| panic!("{} missing: {e}", path.display()));
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o750,
            "{}",
            path.display()
        );
        assert_eq!(meta.gid(), 29, "{} group audio", path.display());
        assert_ne!(meta.uid(), 0, "{} owned by acoupi", path.display());
    }
    // The boot import's ReadWritePaths=-/run/acoupi needs it before acoupi.service runs.
    let run = fs::metadata(root.path().join("run/acoupi")).expect("/run/acoupi created");
    assert_eq!(run.permissions().mode() & 0o7777, 0o750);
    assert_ne!(run.uid(), 0, "/run/acoupi owned by acoupi");
}

fn parse_config(path: &Path) -> Config {
    let text = fs::read_to_string(path).expect("config file");
    ron::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn default_program_config_parses_and_starts_no_deployment() {
    let config = parse_config(&overlay().join("etc/acoupi/acoupi.ron"));
    assert_eq!(config.microphone.device_name, "USB");
    assert!(config.deployment.is_none());
}

#[test]
fn boot_partition_example_parses_and_its_commented_deployment_works_when_enabled() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/boot/acoupi.ron.example");
    assert!(parse_config(&path).deployment.is_none());
    let text = fs::read_to_string(&path).expect("example");
    let enabled = text.replace("// deployment: Some(", "deployment: Some(");
    assert_ne!(
        enabled, text,
        "the example carries a commented deployment line"
    );
    let config: Config = ron::from_str(&enabled).expect("example with deployment");
    let site = config.deployment.expect("deployment after uncommenting");
    assert_eq!(site.name, "site-01");
}

#[test]
fn hardware_watchdog_fits_the_bcm2835_limit() {
    let text = fs::read_to_string(overlay().join("etc/systemd/system.conf.d/acoupi-watchdog.conf"))
        .expect("watchdog drop-in");
    let secs: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("RuntimeWatchdogSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("RuntimeWatchdogSec in seconds");
    // bcm2835_wdt cannot time out later than about 15 s.
    assert!((1..=15).contains(&secs), "RuntimeWatchdogSec={secs}");
}

/// Runs `scripts/check-deps.sh` in `root` (the repository, or a copy of its scripts).
fn check_deps(root: &Path) -> Output {
    Command::new(root.join("scripts/check-deps.sh"))
        .output()
        .expect("run scripts/check-deps.sh")
}

/// A copy of the files check-deps.sh reads (scripts/, .ci/, the Makefile) to break.
fn repo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    run_ok(
        Command::new("cp")
            .arg("-r")
            .args(["scripts", ".ci", "Makefile"].map(|p| repo.join(p)))
            .arg(dir.path()),
    );
    dir
}

/// Issue 11: every program and data file the scripts use comes from a package `make deps`
/// installs (the e2e run failed on a fresh machine for want of ipxe-qemu's ROM).
#[test]
fn every_program_and_data_file_the_scripts_use_comes_from_make_deps() {
    let out = check_deps(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn issue_11_check_deps_fails_without_ipxe_qemu_naming_the_rom() {
    let copy = repo_copy();
    let makefile = copy.path().join("Makefile");
    let text = fs::read_to_string(&makefile).expect("Makefile");
    assert!(text.contains(" ipxe-qemu "), "APT_PACKAGES has ipxe-qemu");
    fs::write(&makefile, text.replacen(" ipxe-qemu ", " ", 1)).expect("write Makefile");
    let out = check_deps(copy.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: /usr/lib/ipxe/qemu/efi-virtio.rom")
            && stderr.contains("comes from ipxe-qemu, which make deps does not install"),
        "{stderr}"
    );
}

#[test]
fn check_deps_fails_on_a_program_missing_from_its_list() {
    let copy = repo_copy();
    let script = copy.path().join("scripts/fetch-base.sh");
    let mut text = fs::read_to_string(&script).expect("script");
    let line = text.lines().count() + 1;
    text.push_str("out=$(frobnicate-tool --fast \"$x\" | sort)\n");
    fs::write(&script, text).expect("write script");
    let out = check_deps(copy.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "scripts/fetch-base.sh:{line} uses `frobnicate-tool`, which is not in scripts/check-deps.sh"
        )),
        "{stderr}"
    );
}
