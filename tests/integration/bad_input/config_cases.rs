//! Bad input for the config area: `acoupi config set/import`, `setup` and the
//! deployment name, each refused with the field or file and the fix, exit code 2, and
//! nothing changed on disk.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::harness::Case;
use crate::support::Install;

/// An installation set up as the other cases expect.
fn installed() -> Install {
    let install = Install::new();
    install.setup(&[]);
    install
}

/// `text` written beside (not inside) the installation's home, as a file a user brings.
fn user_file(install: &Install, name: &str, bytes: &[u8]) -> PathBuf {
    let path = install.root().join(name);
    std::fs::write(&path, bytes).expect("writing the user's file");
    path
}

/// A valid configuration for the `filecap` microphone, with `extra` inside the top
/// level parentheses.
fn site_config(extra: &str) -> String {
    format!("(\n    microphone: (device_name: \"filecap\", samplerate: 8000),\n    {extra}\n)\n")
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mark: &[u8] = if bom { b"\xFF\xFE" } else { b"" };
    let body: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    [mark, &body].concat()
}

const SAVE_AS_UTF8: &str = "save it as UTF-8 (in Notepad: File, Save as, Encoding: UTF-8)";

/// A typo in a field name is refused with a suggestion; the file stays as it was.
#[test]
fn misspelt_field_is_refused_with_a_suggestion() {
    let install = Install::new();
    install.setup(&[]);
    Case::new(&install).refused(
        &["config", "set", "recording.durration", "5"],
        2,
        "error: unknown field `durration` in recording; did you mean `duration`?",
    );
}

/// Issue 11: Notepad's "Unicode" (UTF-16, with or without its mark) is refused in one
/// line that says to save as UTF-8, not as a parse error at a column.
#[test]
fn utf16_file_is_refused_with_save_it_as_utf8() {
    let install = installed();
    for bom in [true, false] {
        let file = user_file(&install, "site.ron", &utf16le(&site_config(""), bom));
        Case::new(&install).refused(
            &["config", "import", file.to_str().unwrap()],
            2,
            &format!(
                "error: {} is UTF-16 text, not UTF-8: {SAVE_AS_UTF8}",
                file.display()
            ),
        );
    }
}

/// Issue 11: a Latin-1 file (é as one byte) names the line of the first bad byte.
#[test]
fn latin1_file_is_refused_with_save_it_as_utf8() {
    let install = installed();
    let text = site_config("deployment: (name: \"H\u{e9}rault\", latitude: 43.6, longitude: 3.9),");
    let latin1: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    let file = user_file(&install, "site.ron", &latin1);
    Case::new(&install).refused(
        &["config", "validate", file.to_str().unwrap()],
        2,
        &format!(
            "error: {} is not UTF-8 text (byte 0xE9 on line 3): {SAVE_AS_UTF8}",
            file.display()
        ),
    );
}

/// Issue 11: the installed configuration itself saved as UTF-16 (edited on the card):
/// `config set` refuses it the same way and writes nothing.
#[test]
fn utf16_configuration_in_place_is_refused_by_config_set() {
    let install = installed();
    let text = std::fs::read_to_string(install.config_file()).unwrap();
    std::fs::write(install.config_file(), utf16le(&text, true)).unwrap();
    Case::new(&install).refused(
        &["config", "set", "recording.duration", "1"],
        2,
        &format!(
            "error: {} is UTF-16 text, not UTF-8: {SAVE_AS_UTF8}",
            install.config_file().display()
        ),
    );
}

/// A configuration a power cut left zero-filled on the card: named as damaged, with the
/// backups to restore from, not a parse error at 1:1.
#[test]
fn zero_filled_configuration_is_named_damaged_with_the_backups() {
    let install = installed();
    let len = std::fs::metadata(install.config_file()).unwrap().len() as usize;
    std::fs::write(install.config_file(), vec![0u8; len]).unwrap();
    let c = install.config_file().display().to_string();
    Case::new(&install).refused(
        &["config", "set", "recording.duration", "1"],
        2,
        &format!("error: {c} is damaged (it holds zero bytes, which no text file has): restore it from {c}.bak or {c}.last-good, or write it again with `acoupi setup --force`"),
    );
}

/// Issue 11: an empty recordings path was accepted.
#[test]
fn empty_recordings_path_is_refused() {
    let install = installed();
    Case::new(&install).refused(
        &["config", "set", "paths.recordings", ""],
        2,
        "error: paths.recordings is empty: remove it to use the default, or give a path, e.g. \"/var/lib/acoupi/storages/recordings\"; nothing was written",
    );
}

/// Issue 11: the database path "/" (a directory) was accepted.
#[test]
fn database_path_naming_a_directory_is_refused() {
    let install = installed();
    for dir in ["/", "/var/lib/"] {
        Case::new(&install).refused(
            &["config", "set", "paths.db_metadata", dir],
            2,
            &format!("error: paths.db_metadata {dir:?} names a directory, not a database file: give a file, e.g. \"/var/lib/acoupi/storages/metadata.db\"; nothing was written"),
        );
    }
}

/// Issue 11: temporary audio in the recordings directory (here: a relative path that
/// resolves to the default recordings directory) was accepted.
#[test]
fn tmp_audio_equal_to_recordings_is_refused() {
    let install = installed();
    Case::new(&install).refused(
        &["config", "set", "paths.tmp_audio", "storages/recordings"],
        2,
        &format!(
            "error: paths.tmp_audio ({}) is the same directory as paths.recordings: temporary files are not recordings; give each its own directory; nothing was written",
            install.recordings().display()
        ),
    );
}

/// Issue 11: the same in an imported file, with temporary audio inside the recordings.
#[test]
fn imported_tmp_audio_inside_recordings_is_refused() {
    let install = installed();
    let file = user_file(
        &install,
        "site.ron",
        site_config("paths: (tmp_audio: \"/data/rec/tmp\", recordings: \"/data/rec\"),").as_bytes(),
    );
    let o = Case::new(&install).refused(
        &["config", "import", file.to_str().unwrap()],
        2,
        &format!("error: invalid configuration in {}:", file.display()),
    );
    assert!(
        o.stderr.contains("  - paths.tmp_audio (/data/rec/tmp) is inside paths.recordings (/data/rec): give each its own directory, neither inside the other"),
        "{o:#?}"
    );
}

/// Issue 11: `microphone..samplerate` set microphone.samplerate.
#[test]
fn empty_name_in_a_dotted_field_is_refused() {
    let install = installed();
    Case::new(&install).refused(
        &["config", "set", "microphone..samplerate", "16000"],
        2,
        "error: `microphone..samplerate` has an empty field name (two dots in a row, or a dot at an end): did you mean `microphone.samplerate`?",
    );
    Case::new(&install).refused(
        &["setup", "--no-prompt", "--force", "--set", "microphone.device_name=filecap", "--set", "microphone.samplerate.=16000"],
        2,
        "error: --set microphone.samplerate.=16000: `microphone.samplerate.` has an empty field name (two dots in a row, or a dot at an end): did you mean `microphone.samplerate`?",
    );
}

/// Issue 11: `samplerate -5` said "0 to 4294967295"; the real range is the field's.
#[test]
fn out_of_range_numbers_state_the_fields_range() {
    let install = installed();
    Case::new(&install).refused(
        &["config", "set", "microphone.samplerate", "-5"],
        2,
        "error: microphone.samplerate must be between 8000 and 384000 Hz, got -5",
    );
    Case::new(&install).refused(
        &[
            "config",
            "set",
            "microphone.audio_channels",
            "99999999999999999999",
        ],
        2,
        "error: microphone.audio_channels must be between 1 and 32, got 99999999999999999999",
    );
}

/// Issue 11: a schedule offset too large for any integer names the problem and bound.
#[test]
fn huge_schedule_offset_names_the_bound() {
    let install = installed();
    Case::new(&install).refused(
        &["config", "set", "recording.schedule", "[(start: \"sunset+99999999999999999999m\", end: \"sunrise\")]"],
        2,
        "error: invalid value for recording.schedule: invalid time \"sunset+99999999999999999999m\": the offset +99999999999999999999m is too large: an offset is at most 12h (720m, 43200s) either way; use HH:MM[:SS] or an event such as sunrise, sunset, civil_dawn, civil_dusk, nautical_dawn, nautical_dusk, astronomical_dawn, astronomical_dusk, with an optional offset like -30m or +1h15m",
    );
}

/// Issue 11: control characters in a deployment name, from the command line and from
/// the configuration's `deployment` section.
#[test]
fn unprintable_deployment_name_is_refused() {
    let install = installed();
    Case::new(&install).refused(
        &["deployment", "start", "--name", "wood\nland", "--latitude", "51.5", "--longitude", "-0.1", "--no-check", "--no-block"],
        2,
        "error: --name \"wood\\nland\": the name contains the unprintable character U+000A: use letters, digits, spaces and punctuation only",
    );
    Case::new(&install).refused(
        &["config", "set", "deployment", "(name: \"wood\\tland\", latitude: 51.5, longitude: -0.1)"],
        2,
        "error: deployment.name contains the unprintable character U+0009: use letters, digits, spaces and punctuation only; nothing was written",
    );
}

/// The node at `path` is still of the kind `is_kind` checks.
fn still(path: &Path, is_kind: fn(&std::fs::FileType) -> bool) {
    let meta = std::fs::symlink_metadata(path).expect("the node is still there");
    assert!(
        is_kind(&meta.file_type()),
        "{} was replaced: {meta:?}",
        path.display()
    );
}

/// Issue 11: as root, `config import FILE --to /dev/null` replaced the device node with
/// a regular file. A fifo, a directory and a symbolic link are refused the same way.
#[test]
fn import_to_a_device_fifo_or_symlink_is_refused() {
    let install = installed();
    let file = user_file(&install, "site.ron", site_config("").as_bytes());
    let args = |to: &Path| {
        vec![
            "config".to_string(),
            "import".into(),
            file.display().to_string(),
            "--to".into(),
            to.display().to_string(),
        ]
    };
    let run = |to: &Path, kind: &str| {
        let a = args(to);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        Case::new(&install).refused(
            &a,
            2,
            &format!("error: --to: {} is {kind}, not a regular file: give the path of a configuration file or of a new file in an existing directory", to.display()),
        );
    };
    run(Path::new("/dev/null"), "a character device");
    still(Path::new("/dev/null"), |t| t.is_char_device());
    assert!(!Path::new("/dev/null.lock").exists());
    assert!(!Path::new("/dev/null.last-good").exists());

    let fifo = install.root().join("config.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    run(&fifo, "a fifo");
    still(&fifo, |t| t.is_fifo());

    let target = install.root().join("elsewhere.ron");
    let link = install.root().join("link.ron");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    run(&link, "a symbolic link");
    still(&link, |t| t.is_symlink());
    assert!(!target.exists());

    run(install.root(), "a directory");

    let missing = install.root().join("no/such/dir/acoupi.ron");
    let a = args(&missing);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    Case::new(&install).refused(
        &a,
        2,
        &format!(
            "error: --to: {} cannot be created: its directory {} does not exist; create it first or give another path",
            missing.display(),
            missing.parent().unwrap().display()
        ),
    );
    assert!(!install.root().join("no").exists());
}

/// A file to import that is a fifo or `/dev/zero` would block forever or fill memory;
/// a file far larger than any configuration is refused too.
#[test]
fn import_from_a_fifo_device_or_huge_file_is_refused() {
    let install = installed();
    let fifo = install.root().join("site.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for (src, kind) in [
        (fifo.as_path(), "a fifo"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        Case::new(&install).refused(
            &["config", "import", src.to_str().unwrap()],
            2,
            &format!(
                "error: {} is {kind}, not a regular file: give the path of a configuration file",
                src.display()
            ),
        );
    }
    let huge = user_file(&install, "huge.ron", &vec![b' '; 2 * 1024 * 1024]);
    Case::new(&install).refused(
        &["config", "import", huge.to_str().unwrap()],
        2,
        &format!("error: {} is larger than 1024 KiB, far more than any configuration: is it the right file?", huge.display()),
    );
}
