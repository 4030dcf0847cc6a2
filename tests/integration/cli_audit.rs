//! `acoupi audit` on real installations (issue 11, "A CLI audit"): the real binary, real
//! SQLite files and WAV files the real recorder wrote, then moved, copied or cut by hand
//! the way a user or a failing card does.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rusqlite::Connection;
use support::{part_files, wav_files, Install, Outcome, Running, RATE};

/// A deployed installation whose recorder ran with audio for about `seconds` and
/// stopped: its kept WAV files (with their rows) are in `recordings/YYYY/MM/DD/`.
fn recorded(seconds: u64) -> Install {
    let Running {
        install,
        notify,
        feeder,
        mut daemon,
        ..
    } = Running::start("audit");
    assert!(feeder.wait_written(seconds * RATE + RATE / 2, Duration::from_secs(seconds + 5)));
    daemon.stop_cleanly(Duration::from_secs(5));
    drop((daemon, feeder, notify));
    assert!(wav_files(&install.recordings()).len() >= 2);
    install
}

/// Every WAV file under the installation's home, with its bytes.
fn audio(install: &Install) -> BTreeMap<PathBuf, Vec<u8>> {
    wav_files(&install.home)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn rows(install: &Install) -> i64 {
    Connection::open(install.db())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM recording", [], |r| r.get(0))
        .unwrap()
}

fn missing_mark(install: &Install, path: &Path) -> Option<String> {
    Connection::open(install.db())
        .unwrap()
        .query_row(
            "SELECT file_missing_since FROM recording WHERE path = ?1",
            [path.to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap()
}

fn first_error(o: &Outcome) -> &str {
    o.stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
}

fn audit_json(install: &Install, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let o = install.run(args);
    let v = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:#?}"));
    (o.code, v)
}

#[test]
fn a_fresh_installation_audits_clean() {
    let install = Install::new();
    install.setup(&[]);
    let o = install.ok(&["audit"]);
    assert!(o.stdout.contains("does not exist yet"), "{o:#?}");
    assert!(o.stdout.contains("Audit clean"), "{o:#?}");
    install.deploy("fresh");
    let o = install.ok(&["audit"]);
    assert!(
        o.stdout.contains("0 recording row(s), 0 WAV file(s)"),
        "{o:#?}"
    );
    assert!(o.stdout.contains("Audit clean"), "{o:#?}");
}

#[test]
fn what_the_recorder_wrote_audits_clean_and_repair_changes_nothing() {
    let install = recorded(2);
    let before = audio(&install);
    let db_before = std::fs::read(install.db()).unwrap();
    let o = install.ok(&["audit"]);
    assert!(o.stdout.contains("Audit clean"), "{o:#?}");
    install.ok(&["audit", "--repair"]);
    assert_eq!(audio(&install), before);
    assert_eq!(std::fs::read(install.db()).unwrap(), db_before);
}

/// Runs `acoupi audit` and asserts it found one problem, of `kind`, that `--repair` fixes
/// (exit 1 and the summary line); returns the run for the details.
fn audit_finds_one(install: &Install, kind: &str) -> Outcome {
    let o = install.run(&["audit"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert_eq!(
        first_error(&o),
        format!("error: audit found 1 problem(s) (1 {kind}); run `acoupi audit --repair`, see the fixes above")
    );
    o
}

#[test]
fn a_kept_wav_moved_away_is_found_and_repair_marks_its_row_without_touching_files() {
    let install = recorded(2);
    let gone = wav_files(&install.recordings())[0].clone();
    let aside = install.root().join("aside.wav");
    std::fs::rename(&gone, &aside).unwrap();
    let n_rows = rows(&install);
    let before = audio(&install);

    let o = audit_finds_one(&install, "missing_file");
    assert!(
        o.stdout
            .contains("missing_file: 1 recording row(s) whose file is gone"),
        "{o:#?}"
    );
    assert!(o.stdout.contains(&gone.display().to_string()), "{o:#?}");
    assert_eq!(
        missing_mark(&install, &gone),
        None,
        "audit without --repair wrote"
    );

    let o = install.ok(&["audit", "--repair"]);
    assert!(
        o.stdout
            .contains("0 file(s) registered, 1 row(s) marked missing"),
        "{o:#?}"
    );
    assert!(
        o.stdout
            .contains("1 row(s) marked missing by an earlier repair"),
        "{o:#?}"
    );
    assert!(missing_mark(&install, &gone).is_some());
    assert_eq!(rows(&install), n_rows, "a row was deleted");
    assert_eq!(audio(&install), before, "audio changed");

    // A known loss is not a finding again.
    let o = install.ok(&["audit"]);
    assert!(o.stdout.contains("Audit clean"), "{o:#?}");

    // The file comes back: the mark is wrong now, and --repair clears it.
    std::fs::rename(&aside, &gone).unwrap();
    let o = install.run(&["audit"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(o.stdout.contains("file_back: 1"), "{o:#?}");
    install.ok(&["audit", "--repair"]);
    assert_eq!(missing_mark(&install, &gone), None);
    install.ok(&["audit"]);
}

#[test]
fn an_extra_wav_in_recordings_is_an_orphan_and_repair_registers_it() {
    let install = recorded(2);
    let source = wav_files(&install.recordings())[0].clone();
    let extra = install
        .recordings()
        .join("2030/01/02/20300102_030405_600.wav");
    std::fs::create_dir_all(extra.parent().unwrap()).unwrap();
    std::fs::copy(&source, &extra).unwrap();
    let n_rows = rows(&install);
    let before = audio(&install);

    audit_finds_one(&install, "orphan_file");
    assert_eq!(rows(&install), n_rows);

    let o = install.ok(&["audit", "--repair"]);
    assert!(o.stdout.contains("1 file(s) registered"), "{o:#?}");
    assert_eq!(rows(&install), n_rows + 1);
    let (state, frames, datetime): (String, i64, String) = Connection::open(install.db())
        .unwrap()
        .query_row(
            "SELECT state, frames, datetime FROM recording WHERE path = ?1",
            [extra.to_str().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let header_frames = hound::WavReader::open(&extra).unwrap().duration();
    assert_eq!((state.as_str(), frames), ("kept", i64::from(header_frames)));
    assert_eq!(datetime, "2030-01-02T03:04:05.600000+00:00");
    assert_eq!(audio(&install), before, "audio changed");
    let o = install.ok(&["audit"]);
    assert!(o.stdout.contains("Audit clean"), "{o:#?}");
}

#[test]
fn a_truncated_wav_is_a_header_finding_that_repair_leaves_alone() {
    let install = recorded(2);
    // The longest file: cut in half, a file shorter than its GUANO chunk (the first and
    // last files can be a few milliseconds) would lose only part of that chunk.
    let cut = wav_files(&install.recordings())
        .into_iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let before = audio(&install);
    for args in [&["audit"][..], &["audit", "--repair"]] {
        let o = install.run(args);
        assert_eq!(o.code, Some(1), "{args:?}: {o:#?}");
        assert_eq!(
            first_error(&o),
            "error: audit found 1 problem(s) (1 truncated); see the fixes above",
            "{args:?}"
        );
        assert!(o.stdout.contains(&cut.display().to_string()), "{o:#?}");
        assert_eq!(audio(&install), before, "{args:?} changed audio");
    }
}

#[test]
fn audit_json_has_counts_paths_per_kind_and_repaired_counts() {
    let install = recorded(2);
    let gone = wav_files(&install.recordings())[0].clone();
    std::fs::remove_file(&gone).unwrap();
    let (code, v) = audit_json(&install, &["audit", "--json"]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["clean"], false);
    assert_eq!(v["metadata_db"], install.db().to_str().unwrap());
    assert_eq!(v["counts"]["missing_file"], 1);
    assert_eq!(v["counts"]["orphan_file"], 0);
    assert_eq!(v["paths"]["missing_file"][0], gone.to_str().unwrap());
    assert_eq!(v["paths"]["orphan_file"], serde_json::json!([]));
    assert_eq!(v["findings"][0]["kind"], "missing_file");
    assert!(v["repaired"].is_null());
    for key in [
        "damaged_database",
        "missing_file",
        "file_back",
        "orphan_file",
        "unreadable_wav",
        "truncated",
        "header_mismatch",
        "no_guano",
    ] {
        assert!(v["counts"][key].is_u64(), "counts.{key}: {v:#}");
        assert!(v["paths"][key].is_array(), "paths.{key}: {v:#}");
    }
    let (code, v) = audit_json(&install, &["audit", "--repair", "--json"]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["clean"], true);
    assert_eq!(v["repaired"]["marked_missing"], 1);
    assert_eq!(v["repaired"]["registered"], 0);
    assert_eq!(v["marked_missing"], 1);
}

#[test]
fn check_shows_a_missing_file_with_the_audit_fix() {
    let install = recorded(2);
    install.mic_from_file();
    let gone = wav_files(&install.recordings())[0].clone();
    std::fs::remove_file(&gone).unwrap();
    let o = install.run(&["check"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    let line = format!(
        "error: 1 recording row(s) whose file is gone: {}; put the file back, or run `acoupi audit --repair` to mark the loss (the row is kept)",
        gone.display()
    );
    assert!(o.stderr.lines().any(|l| l == line), "{line}\n{o:#?}");
    install.ok(&["audit", "--repair"]);
    let o = install.run(&["check"]);
    assert!(!o.stderr.contains("whose file is gone"), "{o:#?}");
}

#[test]
fn audit_while_the_recorder_records_finds_nothing() {
    let Running {
        install,
        notify: _notify,
        feeder,
        mut daemon,
        ..
    } = Running::start("live");
    // Audit continuously over three seconds of audio, while files finish and are moved
    // into the recordings root (at once, by a management pass): captures in progress,
    // rows being written and files being moved must never show as findings.
    let mut saw_part = false;
    let mut rounds_after_move = 0;
    let deadline = Instant::now() + Duration::from_secs(25);
    while rounds_after_move < 5 || feeder.written() <= 3 * RATE {
        assert!(
            Instant::now() < deadline,
            "no file was moved to the recordings root"
        );
        saw_part |= !part_files(&install.tmp_audio()).is_empty();
        if !wav_files(&install.recordings()).is_empty() {
            rounds_after_move += 1;
        }
        let o = install.run(&["audit", "--json"]);
        assert_eq!(o.code, Some(0), "{o:#?}\nlog:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(saw_part, "the recorder never had a capture in progress");
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    install.ok(&["audit"]);
}

#[test]
fn a_damaged_messages_db_is_a_finding() {
    let install = Install::new();
    install.setup(&[]);
    install.deploy("outbox");
    let messages = install.home.join("storages/messages.db");
    std::fs::write(&messages, b"this is not an SQLite file\n".repeat(300)).unwrap();
    let o = install.run(&["audit"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert_eq!(
        first_error(&o),
        "error: audit found 1 problem(s) (1 damaged_database); see the fixes above"
    );
    assert!(o.stdout.contains(&messages.display().to_string()), "{o:#?}");
}
