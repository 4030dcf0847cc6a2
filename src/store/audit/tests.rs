//! The audit on real SQLite files and real WAV files written by the recorder's writer:
//! what counts as a finding, what is transient, and what repair does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::Connection;

use super::*;
use crate::audio::guano::Guano;
use crate::audio::wav::{WavSpec, WavWriter};
use crate::audio::FinishedFile;
use crate::store::tests::{at, fresh};
use crate::store::{Deployment, NewRecording};

struct Site {
    dir: tempfile::TempDir,
    store: MetadataStore,
    deployment: Deployment,
}

impl Site {
    fn new() -> Site {
        let (dir, store, deployment) = fresh();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        Site {
            dir,
            store,
            deployment,
        }
    }
    fn opts(&self) -> AuditOptions {
        let p = self.dir.path();
        AuditOptions::new(p.join("metadata.db"), p.join("recordings"), p.join("tmp"))
    }
    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// A finished 8 kHz mono file of `frames` in tmp, with or without GUANO, and
    /// (when `row`) its row as the recorder stores it.
    fn record(&mut self, start: &str, frames: usize, guano: bool, row: bool) -> PathBuf {
        let spec = WavSpec {
            samplerate: 8000,
            channels: 1,
            bit_depth: 16,
            time_expansion: 1.0,
        };
        let start = at(start);
        let mut w = WavWriter::create(&self.tmp(), start, spec).unwrap();
        w.write(&vec![0u8; frames * 2]).unwrap();
        let (path, n) = w.finish(|name, n| Guano::for_test(name, n, start)).unwrap();
        if !guano {
            let data_end = 44 + 2 * n;
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(data_end).unwrap();
        }
        if row {
            let file = FinishedFile {
                path: path.clone(),
                start,
                frames: n,
                samplerate: 8000,
                channels: 1,
                bit_depth: 16,
                time_expansion: 1.0,
                start_approximate: false,
            };
            let new = NewRecording::from_file(&file, self.deployment.id, true);
            self.store.register_recording(&new, false).unwrap();
        }
        path
    }
}

fn kinds(report: &AuditReport) -> Vec<(FindingKind, PathBuf)> {
    report
        .findings
        .iter()
        .map(|f| (f.kind, f.path.clone()))
        .collect()
}

#[test]
fn files_the_recorder_wrote_with_their_rows_are_clean() {
    let mut site = Site::new();
    site.record("2026-11-26T03:00:00Z", 8000, true, true);
    site.record("2026-11-26T03:00:01Z", 4000, true, true);
    let report = run_audit(&site.opts()).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!((report.rows, report.files), (2, 2));
}

#[test]
fn a_fresh_tmp_file_without_a_row_is_not_judged_until_the_grace_has_passed() {
    let mut site = Site::new();
    let path = site.record("2026-11-26T03:00:00Z", 800, true, false);
    std::fs::write(site.tmp().join("20261126_030001_000.wav.part"), b"RIFF").unwrap();
    let report = run_audit(&site.opts()).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.recent_skipped, 1);

    let mut opts = site.opts();
    opts.tmp_grace = Duration::ZERO;
    let report = run_audit(&opts).unwrap();
    assert_eq!(kinds(&report), [(FindingKind::OrphanFile, path)]);
}

#[test]
fn a_header_that_disagrees_with_its_row_and_a_missing_guano_are_findings() {
    let mut site = Site::new();
    let edited = site.record("2026-11-26T03:00:00Z", 8000, true, true);
    let bare = site.record("2026-11-26T03:00:01Z", 8000, false, true);
    Connection::open(site.dir.path().join("metadata.db"))
        .unwrap()
        .execute(
            "UPDATE recording SET frames = 16000, samplerate_hz = 16000 WHERE path = ?1",
            [edited.to_str().unwrap()],
        )
        .unwrap();
    let report = run_audit(&site.opts()).unwrap();
    assert_eq!(
        kinds(&report),
        [
            (FindingKind::HeaderMismatch, edited.clone()),
            (FindingKind::NoGuano, bare)
        ]
    );
    let detail = &report.findings[0].detail;
    assert!(
        detail.contains("header has 8000 frames, row 16000")
            && detail.contains("header rate is 8000 Hz, the row's 16000 Hz implies 16000 Hz")
            && detail.contains("header holds 0.500 s, row 1.000 s"),
        "{detail}"
    );
}

#[test]
fn repair_registers_and_marks_but_never_deletes() {
    let mut site = Site::new();
    let orphan = site.record("2026-11-26T03:00:00Z", 800, true, false);
    let gone = site.record("2026-11-26T03:00:01Z", 800, true, true);
    std::fs::remove_file(&gone).unwrap();
    let mut opts = site.opts();
    opts.tmp_grace = Duration::ZERO;
    let report = run_audit(&opts).unwrap();
    assert_eq!(
        kinds(&report),
        [
            (FindingKind::MissingFile, gone.clone()),
            (FindingKind::OrphanFile, orphan.clone())
        ]
    );
    let done = repair(&opts, &report).unwrap();
    assert_eq!(
        (done.registered.clone(), done.marked_missing),
        (vec![orphan.clone()], 1)
    );
    let row = site
        .store
        .find_by_path(&orphan)
        .unwrap()
        .expect("registered");
    assert_eq!(
        (row.frames, row.deployment_id),
        (Some(800), site.deployment.id)
    );
    assert_eq!(row.state, Some(crate::store::RecordingState::Tmp));
    assert!(
        site.store.find_by_path(&gone).unwrap().is_some(),
        "row deleted"
    );
    assert!(orphan.exists());

    let after = run_audit(&opts).unwrap();
    assert!(after.is_clean(), "{after:#?}");
    assert_eq!(after.marked_missing, 1);
    // Repairing a clean report changes nothing.
    assert_eq!(repair(&opts, &after).unwrap(), RepairReport::default());
}

#[test]
fn an_orphan_is_attached_to_the_deployment_running_when_it_started() {
    let mut site = Site::new();
    site.store
        .end_active_deployment(at("2026-11-27T00:00:00Z"))
        .unwrap();
    let later = site
        .store
        .start_deployment("site B", None, None, at("2026-12-01T00:00:00Z"))
        .unwrap();
    let early = site.record("2026-11-26T03:00:00Z", 800, true, false);
    let late = site.record("2026-12-02T03:00:00Z", 800, true, false);
    let mut opts = site.opts();
    opts.tmp_grace = Duration::ZERO;
    let report = run_audit(&opts).unwrap();
    repair(&opts, &report).unwrap();
    let deployment_of = |p: &Path| site.store.find_by_path(p).unwrap().unwrap().deployment_id;
    assert_eq!(deployment_of(&early), site.deployment.id);
    assert_eq!(deployment_of(&late), later.id);
}

#[test]
fn the_audit_neither_migrates_nor_locks_the_database() {
    let site = Site::new();
    let db = site.dir.path().join("metadata.db");
    // Another process holds the write lock, as the recorder does mid-transaction.
    let writer = Connection::open(&db).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Timestamp::now();
    let report = run_audit(&site.opts()).unwrap();
    assert!(report.is_clean());
    assert!(
        Timestamp::now().duration_since(started).as_secs() < 2,
        "the audit waited for the write lock"
    );
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_database_from_before_the_missing_mark_is_audited_without_being_migrated() {
    let mut site = Site::new();
    let gone = site.record("2026-11-26T03:00:00Z", 800, true, true);
    std::fs::remove_file(&gone).unwrap();
    let db = site.dir.path().join("metadata.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "ALTER TABLE recording DROP COLUMN file_missing_since;
         DELETE FROM acoupi_schema_version WHERE version >= 3;",
    )
    .unwrap();
    let report = run_audit(&site.opts()).unwrap();
    assert_eq!(kinds(&report), [(FindingKind::MissingFile, gone)]);
    let version: i64 = conn
        .query_row("SELECT MAX(version) FROM acoupi_schema_version", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, 2, "the audit migrated the file");
}

#[test]
fn a_file_being_moved_into_the_recordings_root_is_not_an_orphan() {
    let mut site = Site::new();
    let tmp = site.record("2026-11-26T03:00:00Z", 800, true, true);
    let day = site.dir.path().join("recordings/2026/11/26");
    std::fs::create_dir_all(&day).unwrap();
    // The move's link is in place, the row still points at the temporary file.
    let dest = day.join(tmp.file_name().unwrap());
    std::fs::hard_link(&tmp, &dest).unwrap();
    let mut opts = site.opts();
    opts.settle = Duration::ZERO;
    let report = run_audit(&opts).unwrap();
    assert!(report.is_clean(), "{report:#?}");

    // Once the temporary file is gone without the row following, it is an orphan.
    std::fs::remove_file(&tmp).unwrap();
    let report = run_audit(&opts).unwrap();
    assert_eq!(
        kinds(&report),
        [
            (FindingKind::MissingFile, tmp),
            (FindingKind::OrphanFile, dest)
        ]
    );
}

#[test]
fn a_bounded_audit_reads_only_recent_rows_and_day_folders() {
    let mut site = Site::new();
    let now = Timestamp::now();
    let recent = (now - jiff::SignedDuration::from_hours(1)).to_string();
    let old_gone = site.record("2026-01-10T03:00:00Z", 800, true, true);
    let recent_gone = site.record(&recent, 800, true, true);
    std::fs::remove_file(&old_gone).unwrap();
    std::fs::remove_file(&recent_gone).unwrap();
    // Orphans in an old and in today's day folder of the kept recordings.
    let source = site.record("2026-01-11T03:00:00Z", 800, true, false);
    let utc = jiff::tz::TimeZone::UTC;
    let folder = |day: jiff::civil::Date| {
        let dir = site
            .dir
            .path()
            .join("recordings")
            .join(day.strftime("%Y/%m/%d").to_string());
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let old_orphan = folder(jiff::civil::date(2026, 1, 11)).join("old.wav");
    let new_orphan = folder(utc.to_datetime(now).date()).join("new.wav");
    std::fs::copy(&source, &old_orphan).unwrap();
    std::fs::rename(&source, &new_orphan).unwrap();
    // In today's folder but last written three days ago: it ended, so started, before
    // the window, and a bounded audit does not look it up.
    let stale_orphan = folder(utc.to_datetime(now).date()).join("stale.wav");
    std::fs::copy(&old_orphan, &stale_orphan).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale_orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(72 * 3600))
        .unwrap();

    let mut opts = site.opts();
    opts.since = Some(now - jiff::SignedDuration::from_hours(48));
    let bounded = run_audit(&opts).unwrap();
    assert_eq!(
        kinds(&bounded),
        [
            (FindingKind::MissingFile, recent_gone.clone()),
            (FindingKind::OrphanFile, new_orphan.clone())
        ]
    );
    opts.since = None;
    let full = run_audit(&opts).unwrap();
    let mut want = vec![
        (FindingKind::MissingFile, old_gone),
        (FindingKind::MissingFile, recent_gone),
        (FindingKind::OrphanFile, new_orphan),
        (FindingKind::OrphanFile, old_orphan),
        (FindingKind::OrphanFile, stale_orphan),
    ];
    want.sort();
    let mut got = kinds(&full);
    got.sort();
    assert_eq!(got, want);
}
