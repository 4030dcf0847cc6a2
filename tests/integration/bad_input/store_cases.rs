//! Bad input for the store area: free-space thresholds the disk cannot meet, foreign
//! or empty metadata.db files.

use std::path::Path;

use super::harness::Case;
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
        super::harness::first_error_line(&o.stderr),
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

/// Another application's database where metadata.db should be: a `users` table.
fn plant_foreign_db(install: &Install) -> std::path::PathBuf {
    let db = install.db();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO users (name) VALUES ('alice');",
    )
    .unwrap();
    db
}

fn foreign_db_error(db: &Path) -> String {
    format!(
        "error: {} is not an acoupi metadata database: it holds other tables (users) and none of acoupi's; nothing was written to it; point paths.db_metadata at another file (`acoupi config set paths.db_metadata /path/to/metadata.db`) or move this one away",
        db.display()
    )
}

/// Issue 11: a foreign SQLite file as metadata.db passed `check` and got our tables
/// added. `check` now fails naming it, and the file stays byte-identical (the Case
/// snapshot covers it).
#[test]
fn issue_11_foreign_metadata_db_fails_check_and_is_left_alone() {
    let install = Install::new();
    install.setup(&[]);
    install.mic_from_file();
    let db = plant_foreign_db(&install);
    Case::new(&install).refused(&["check"], 1, &foreign_db_error(&db));
}

/// Starting a deployment into a foreign metadata.db is refused before anything is
/// written to it or to the systemd units.
#[test]
fn foreign_metadata_db_refuses_deployment_start() {
    let install = Install::new();
    install.setup(&[]);
    let db = plant_foreign_db(&install);
    Case::new(&install).refused(&Install::deploy_args("site"), 2, &foreign_db_error(&db));
}

/// A zero-length metadata.db is reported by `check` as a warning and left as it is:
/// `check` does not decide to start a new store in it.
#[test]
fn empty_metadata_db_is_reported_by_check_and_left_empty() {
    let install = Install::new();
    install.setup(&[]);
    install.mic_from_file();
    let db = install.db();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, b"").unwrap();
    let o = install.run(&["check"]);
    let expected = format!(
        "warning: {} is an empty file (0 bytes): the recorder will start a new, empty store in it; if it held deployments and recordings, restore it from a backup first (the recordings on disk are untouched)",
        db.display()
    );
    assert!(o.stderr.lines().any(|l| l == expected), "{o:#?}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
}

/// The recorder refuses to start on a foreign metadata.db, and writes nothing to it.
#[test]
fn foreign_metadata_db_stops_the_recorder_at_start_up() {
    let install = Install::new();
    install.setup(&[]);
    let db = plant_foreign_db(&install);
    Case::new(&install).refused(&["run"], 2, &foreign_db_error(&db));
}

/// A metadata.db truncated to 0 bytes after a deployment started: the recorder
/// initialises it but says so in its log (here: then stops, as the deployment it
/// held is gone).
#[test]
fn empty_metadata_db_is_initialised_by_the_recorder_with_a_warning() {
    let install = Install::new();
    install.setup(&[]);
    install.deploy("site");
    let db = install.db();
    std::fs::write(&db, b"").unwrap();
    let o = install.run(&["run"]);
    assert!(
        o.stderr
            .contains("metadata.db was an empty file (0 bytes): initialised as a new, empty store"),
        "{o:#?}"
    );
    assert_eq!(
        super::harness::first_error_line(&o.stderr),
        Some(
            format!(
                "error: no active deployment in {}: run `acoupi deployment start`",
                db.display()
            )
            .as_str()
        ),
        "{o:#?}"
    );
}

/// A threshold beyond half the disk written into the file by hand reaches the
/// recorder: it clamps it with an error naming the field, the value and the file
/// system's size, and keeps every recording (issue 11: it used to delete them all).
#[test]
fn issue_11_the_recorder_clamps_min_free_and_keeps_every_recording() {
    use crate::support::feeder::Feeder;
    use crate::support::{wav_files, Notify};
    use nix::sys::signal::Signal;
    use std::time::{Duration, Instant};

    let install = Install::new();
    install.setup(&[]);
    install.deploy("site");
    let notify = Notify::bind(install.root());
    // A first run records a few files and keeps them (the stop runs a last pass).
    let feeder = Feeder::start(&install.fifo, 0);
    let mut first = install.spawn_daemon("run", &notify);
    assert!(
        notify
            .wait_for(Instant::now(), Duration::from_secs(10), |l| l == "READY=1")
            .is_some(),
        "{}",
        first.log_text()
    );
    assert!(feeder.wait_written(4 * crate::support::RATE, Duration::from_secs(10)));
    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(10)).is_some());
    drop(feeder);
    let kept = wav_files(&install.recordings());
    assert!(kept.len() >= 2, "{kept:?}\n{}", first.log_text());

    let config = install.config_file();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("min_free_space_mb: 512,", "min_free_space_mb: 5120000,"),
    )
    .unwrap();
    // Fed again: a recorder stopped while its microphone never opened waits for it.
    let _feeder = Feeder::start(&install.fifo, 0);
    let t = Instant::now();
    let mut second = install.spawn_daemon("run", &notify);
    notify.expect_ready(t, Duration::from_secs(10), &second);
    second.signal(Signal::SIGTERM);
    assert!(second.wait_exit(Duration::from_secs(10)).is_some());
    let log = second.log_text();
    let st = nix::sys::statvfs::statvfs(&install.recordings()).unwrap();
    #[allow(clippy::useless_conversion)]
    let total_mib = u64::from(st.blocks()) * u64::from(st.fragment_size()) / (1024 * 1024);
    assert!(
        log.contains("retention.min_free_space_mb asks for more than half of the file system")
            && log.contains("value=5120000")
            && log.contains(&format!("file_system_mib={total_mib}")),
        "{log}"
    );
    // Two passes ran (start and stop); an unreachable threshold is said once.
    assert!(
        log.matches("nothing deleted, recording paused").count() <= 1,
        "{log}"
    );
    for f in &kept {
        assert!(f.exists(), "{} deleted\n{log}", f.display());
    }
}

/// Issue 11: another application's database where the connected program's messages.db
/// should be was migrated into an outbox. `check` now refuses it by name, and the file
/// stays byte-identical.
#[test]
fn foreign_messages_db_fails_check_and_is_left_alone() {
    let install = Install::new();
    install.setup_program(
        "connected",
        &["messaging.http.base_url=http://127.0.0.1:9/messages"],
    );
    install.mic_from_file();
    let messages = install.db().with_file_name("messages.db");
    std::fs::create_dir_all(messages.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&messages).unwrap();
    conn.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&messages).unwrap();
    let m = messages.display();
    Case::new(&install).refused(
        &["check"],
        1,
        &format!("error: {m} is not an acoupi message outbox: it holds other tables (notes) and none of acoupi's; nothing was written to it; point messaging.messages_db at another file (`acoupi config set messaging.messages_db /path/to/messages.db`) or move this one away"),
    );
    assert_eq!(std::fs::read(&messages).unwrap(), bytes);
}
