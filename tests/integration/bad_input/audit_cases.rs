//! Bad input for `acoupi audit`: it refuses without a configuration, reports without
//! writing, and `--repair` never deletes or rewrites what it cannot register.

use super::harness::Case;
use crate::support::Install;

/// A configured, deployed installation with `bad.wav` (not audio) in the recordings.
fn with_unreadable_orphan() -> (Install, std::path::PathBuf) {
    let install = Install::new();
    install.setup(&[]);
    install.deploy("audit");
    let day = install.recordings().join("2026/01/01");
    std::fs::create_dir_all(&day).unwrap();
    let bad = day.join("bad.wav");
    std::fs::write(&bad, b"saved by a text editor").unwrap();
    (install, bad)
}

/// Without a configuration there are no storages to audit: exit 2, saying what to run.
#[test]
fn audit_without_a_configuration_says_to_run_setup() {
    let install = Install::new();
    let config = install.config_file();
    Case::new(&install).refused(
        &["audit"],
        2,
        &format!(
            "error: no configuration at {}: run `acoupi setup`",
            config.display()
        ),
    );
}

/// A misspelt flag is a usage error, not an audit.
#[test]
fn audit_with_a_misspelt_flag_is_a_usage_error() {
    let install = Install::new();
    install.setup(&[]);
    Case::new(&install).refused(
        &["audit", "--repiar"],
        2,
        "error: unexpected argument '--repiar' found",
    );
}

/// Findings without `--repair`: exit 1 with the next step, and nothing is written.
#[test]
fn audit_reports_an_orphan_without_registering_it() {
    let (install, _) = with_unreadable_orphan();
    Case::new(&install).refused(
        &["audit"],
        1,
        "error: audit found 2 problem(s) (1 orphan_file, 1 unreadable_wav); run `acoupi audit --repair`, see the fixes above",
    );
}

/// A file that is not audio cannot be registered; `--repair` leaves it and metadata.db
/// exactly as they were.
#[test]
fn repair_leaves_an_unreadable_wav_and_the_database_alone() {
    let (install, bad) = with_unreadable_orphan();
    let o = Case::new(&install).refused(
        &["audit", "--repair"],
        1,
        "error: audit found 2 problem(s) (1 orphan_file, 1 unreadable_wav); see the fixes above",
    );
    assert!(o.stdout.contains("not registered:"), "{o:#?}");
    assert!(bad.exists());
}

/// A metadata.db that is not a database is a finding, and `--repair` refuses to write to
/// it (or to create a new one in its place).
#[test]
fn repair_refuses_a_damaged_metadata_db() {
    let (install, _) = with_unreadable_orphan();
    std::fs::write(install.db(), b"not a database, just text\n".repeat(200)).unwrap();
    for f in ["metadata.db-wal", "metadata.db-shm"] {
        let _ = std::fs::remove_file(install.home.join("storages").join(f));
    }
    Case::new(&install).refused(
        &["audit", "--repair"],
        1,
        &format!(
            "error: {} is damaged, so nothing was repaired: stop acoupi, move the file aside and run `acoupi check`; recordings on disk are kept",
            install.db().display()
        ),
    );
}
