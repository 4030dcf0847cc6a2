//! Bad input for `acoupi config inspect FILE`: a report is printed even for a file that is
//! refused (exit 2, the loader's reason as the error line), and inspecting never touches
//! the installation, whatever FILE is.

use std::fs;

use super::harness::Case;
use crate::support::Install;

/// A site file with a value out of range: exit 2, the report on stdout, the installation
/// (configuration, backup, storages) byte-identical.
#[test]
fn inspect_of_an_invalid_file_reports_it_and_changes_nothing() {
    let install = Install::new();
    install.setup(&[]);
    let dir = tempfile::tempdir().expect("temporary directory");
    let site = dir.path().join("site.ron");
    fs::write(
        &site,
        "(microphone: (device_name: \"USB\", samplerate: 1),\n messaging: (mqtt: (host: \"b\", username: \"u\", password: r\"p\")))",
    )
    .expect("site file");
    let path = site.to_str().expect("utf-8 path");
    let o = Case::new(&install).refused(
        &["config", "inspect", "--json", path],
        2,
        &format!("error: invalid configuration in {path}:"),
    );
    assert!(o.stdout.contains("\"valid\":false"), "{o:#?}");
    assert!(o.stdout.contains("\"holds_secrets\":true"), "{o:#?}");
}

/// A path with no file says so, without the loader's `acoupi setup` advice (which is for
/// the installation's own configuration, not a file a script names).
#[test]
fn inspect_of_a_missing_file_names_it() {
    let install = Install::new();
    install.setup(&[]);
    Case::new(&install).refused(
        &["config", "inspect", "/nonexistent/site.ron"],
        2,
        "error: no file at /nonexistent/site.ron: give the path of a configuration file",
    );
}

/// A directory is not a configuration: the error names it and says what to give instead.
#[test]
fn inspect_of_a_directory_names_it_and_the_cause() {
    let install = Install::new();
    install.setup(&[]);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().to_str().expect("utf-8 path");
    Case::new(&install).refused(
        &["config", "inspect", "--json", path],
        2,
        &format!("error: {path} is a directory, not a regular file: give the path of a configuration file"),
    );
}

/// No FILE: a usage error from the parser.
#[test]
fn inspect_without_a_file_is_a_usage_error() {
    let install = Install::new();
    install.setup(&[]);
    Case::new(&install).refused(
        &["config", "inspect", "--json"],
        2,
        "error: the following required arguments were not provided:",
    );
}
