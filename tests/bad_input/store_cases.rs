//! Bad input for the store area: free-space thresholds the disk cannot meet, foreign
//! or empty metadata.db files.

use std::path::Path;

use crate::harness::Case;
use crate::support::Install;

/// What `acoupi config set` says when `retention.min_free_space_mb` asks for more than
/// half of the file system holding `recordings`: measured here as the binary does, at
/// the nearest existing folder.
fn too_large_min_free(recordings: &Path, value: u64) -> String {
    let measured = recordings.ancestors().find(|p| p.is_dir()).unwrap();
    let st = nix::sys::statvfs::statvfs(measured).unwrap();
    #[allow(clippy::useless_conversion)]
    let total_mib = u64::from(st.blocks()) * u64::from(st.fragment_size()) / (1024 * 1024);
    let max = total_mib / 2;
    format!(
        "error: retention.min_free_space_mb is {value} MiB, more than half of the {total_mib} MiB file system holding {}; set it to at most {max} (e.g. `acoupi config set retention.min_free_space_mb {}`); nothing was written",
        measured.display(),
        max.min(512)
    )
}

/// Issue 11: `config set retention.min_free_space_mb 5120000` (5 TB) was accepted, and
/// the next management pass deleted every kept recording on a disk with 76 GB free.
#[test]
fn issue_11_min_free_beyond_half_the_disk_is_refused_by_config_set() {
    let install = Install::new();
    install.setup(&[]);
    let expected = too_large_min_free(&install.recordings(), 5_120_000);
    Case::new(&install).refused(
        &["config", "set", "retention.min_free_space_mb", "5120000"],
        2,
        &expected,
    );
    // A sane threshold is still accepted.
    install.ok(&["config", "set", "retention.min_free_space_mb", "1024"]);
}

/// The limit follows the recordings folder the same command would configure: a
/// threshold is judged against the file system it will apply to.
#[test]
fn min_free_beyond_half_the_disk_is_refused_by_setup() {
    let install = Install::new();
    let o = install.run(&[
        "setup",
        "--no-prompt",
        "--set",
        "microphone.device_name=filecap",
        "--set",
        "retention.min_free_space_mb=18446744073709551615",
    ]);
    let expected = too_large_min_free(&install.recordings(), u64::MAX);
    assert_eq!(o.code, Some(2), "{o:#?}");
    assert_eq!(
        crate::harness::first_error_line(&o.stderr),
        Some(expected.as_str()),
        "{o:#?}"
    );
    assert!(!install.config_file().exists(), "setup wrote the file");
}

/// A threshold written into the file by hand (an SD card edited on a laptop) is an
/// `acoupi check` error with the fix; the file is left as it is.
#[test]
fn min_free_beyond_half_the_disk_fails_check_with_the_fix() {
    let install = Install::new();
    install.setup(&[]);
    install.mic_from_file();
    let config = install.config_file();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("min_free_space_mb: 512,"), "{text}");
    let edited = text.replace("min_free_space_mb: 512,", "min_free_space_mb: 5120000,");
    std::fs::write(&config, &edited).unwrap();
    let o = install.run(&["check"]);
    let expected = too_large_min_free(&install.recordings(), 5_120_000);
    let expected = expected.trim_end_matches("; nothing was written");
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(
        o.stderr.lines().any(|l| l == expected),
        "want {expected:?} in {o:#?}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
}
