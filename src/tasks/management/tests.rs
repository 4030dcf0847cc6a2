//! Tests of the management task on real files and a real metadata.db.

use super::*;
use crate::store::metadata::{NewRecording, RecordingState};
use crate::store::{audit, Audit};
use jiff::SignedDuration;
use uuid::Uuid;

/// A metadata.db, a temporary directory and a recordings root, with one deployment.
struct Fixture {
    _dir: tempfile::TempDir,
    store: MetadataStore,
    tmp: PathBuf,
    root: PathBuf,
    deployment: Uuid,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    let root = dir.path().join("recordings");
    fs::create_dir_all(&tmp).unwrap();
    let mut store = MetadataStore::open(&dir.path().join("metadata.db")).unwrap();
    let deployment = store
        .start_deployment("test", Some(51.5), Some(-0.1), at("2026-01-01T00:00:00Z"))
        .unwrap()
        .id;
    Fixture {
        _dir: dir,
        store,
        tmp,
        root,
        deployment,
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

impl Fixture {
    /// What the recorder leaves: a finished file of `bytes` in the temporary
    /// directory, named after its start, and its `tmp` row.
    fn record(&mut self, start: Timestamp, bytes: usize) -> Recording {
        let path = self
            .tmp
            .join(format!("{}.wav", crate::audio::name::file_stem(start)));
        fs::write(&path, vec![start.subsec_millisecond() as u8; bytes]).unwrap();
        self.register(&path, start, bytes)
    }

    /// A recording already kept in the recordings root (written there directly:
    /// large files need no copy and fsync to test retention).
    fn kept(&mut self, start: Timestamp, bytes: usize) -> Recording {
        let rec = self.record(start, bytes);
        let tmp_path = rec.path.clone().unwrap();
        let dest = self.root.join(tmp_path.file_name().unwrap());
        fs::create_dir_all(&self.root).unwrap();
        fs::rename(&tmp_path, &dest).unwrap();
        self.store.mark_kept(rec.id, &dest).unwrap()
    }

    fn register(&mut self, path: &Path, start: Timestamp, bytes: usize) -> Recording {
        self.store
            .insert_recording(&NewRecording {
                id: Uuid::new_v4(),
                path: path.to_path_buf(),
                datetime: start,
                duration_s: 1.0,
                samplerate_hz: 8000,
                audio_channels: 1,
                deployment_id: self.deployment,
                clock_synced: true,
                time_expansion: 1.0,
                bit_depth: 16,
                frames: bytes as u64 / 2,
            })
            .unwrap()
    }

    fn management(&self) -> Management {
        Management::new(self.root.clone(), 0)
    }

    fn pass(&mut self, m: &Management, now: Timestamp) -> PassReport {
        m.pass(&mut self.store, now).unwrap()
    }

    fn audit(&self) -> Audit {
        audit(&self.store, &self.root, &self.tmp).unwrap()
    }

    fn row(&self, id: Uuid) -> Option<Recording> {
        self.store.recording(id).unwrap()
    }

    /// What start-up does after a crash: finished files with no row get one again.
    fn restart(&mut self) {
        let orphans = audit(&self.store, &self.root, &self.tmp)
            .unwrap()
            .files_without_row;
        let tmp = self.tmp.clone();
        for path in orphans.into_iter().filter(|p| p.starts_with(&tmp)) {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let start = crate::audio::name::start_of(&stem).unwrap();
            let bytes = fs::metadata(&path).unwrap().len() as usize;
            self.register(&path, start, bytes);
        }
    }
}

#[test]
fn kept_recording_moves_to_a_zero_padded_utc_day_folder_and_its_row_follows() {
    let mut f = fixture();
    // 23:30 UTC on 5 March: the next day in Asia, the same day in UTC.
    let rec = f.record(at("2026-03-05T23:30:00.250Z"), 1000);
    let before = fs::read(rec.path.as_ref().unwrap()).unwrap();
    let report = f.pass(&f.management(), at("2026-03-05T23:31:00Z"));
    assert_eq!(
        report,
        PassReport {
            kept: 1,
            ..PassReport::default()
        }
    );
    let dest = f.root.join("2026/03/05/20260305_233000_250.wav");
    assert_eq!(fs::read(&dest).unwrap(), before);
    assert!(!rec.path.unwrap().exists(), "the temporary file is left");
    let row = f.row(rec.id).unwrap();
    assert_eq!(row.path.as_deref(), Some(dest.as_path()));
    assert_eq!(row.state, Some(RecordingState::Kept));
    assert!(f.audit().is_clean());
    // Nothing left half-moved.
    assert!(!f
        .root
        .join("2026/03/05/20260305_233000_250.wav.moving")
        .exists());
}

#[test]
fn a_move_on_the_same_file_system_is_a_link_not_a_copy() {
    use std::os::unix::fs::MetadataExt;
    let mut f = fixture();
    let rec = f.record(at("2026-03-06T10:00:00Z"), 1000);
    let inode = fs::metadata(rec.path.as_ref().unwrap()).unwrap().ino();
    f.pass(&f.management(), at("2026-03-06T10:01:00Z"));
    // The same inode: no data was copied, so a full disk cannot stop the move.
    let kept = f.row(rec.id).unwrap().path.unwrap();
    assert_eq!(fs::metadata(&kept).unwrap().ino(), inode);
    assert_eq!(fs::metadata(&kept).unwrap().nlink(), 1);
    assert!(f.audit().is_clean());
}

#[test]
fn a_tmp_row_whose_file_already_lies_in_its_place_is_only_marked_kept() {
    // Start-up registered a file it found in the recordings root but could not mark
    // it kept (a full disk): moving it onto itself would delete it.
    let mut f = fixture();
    let start = at("2026-03-07T10:00:00Z");
    let dest = f.root.join("2026/03/07/20260307_100000_000.wav");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::write(&dest, b"audio").unwrap();
    let rec = f.register(&dest, start, 5);
    assert_eq!(rec.state, Some(RecordingState::Tmp));
    let report = f.pass(&f.management(), start);
    assert_eq!(report.kept, 1);
    assert_eq!(fs::read(&dest).unwrap(), b"audio");
    let row = f.row(rec.id).unwrap();
    assert_eq!(row.state, Some(RecordingState::Kept));
    assert_eq!(row.path.as_deref(), Some(dest.as_path()));
    assert!(f.audit().is_clean());
}

#[test]
fn filtered_out_recording_loses_row_and_file() {
    let mut f = fixture();
    let kept = f.record(at("2026-06-01T05:00:00Z"), 100);
    let dropped = f.record(at("2026-06-01T12:00:00Z"), 100);
    let mut m = f.management();
    let noon = at("2026-06-01T11:00:00Z");
    m.keep = Some(Box::new(move |t| t < noon));
    let report = f.pass(&m, at("2026-06-01T13:00:00Z"));
    assert_eq!((report.kept, report.filtered_out), (1, 1));
    assert!(f.row(dropped.id).is_none());
    assert!(!dropped.path.unwrap().exists());
    assert_eq!(f.row(kept.id).unwrap().state, Some(RecordingState::Kept));
    assert!(f.audit().is_clean());
}

#[test]
fn free_space_retires_the_oldest_kept_recordings_and_no_more() {
    let mut f = fixture();
    // Large enough that other processes writing to the same disk during the pass do
    // not change which files must go: the margin is half a file (8 MiB).
    const SIZE: usize = 16 << 20;
    let old = f.kept(at("2026-01-02T00:00:00Z"), SIZE);
    let middle = f.kept(at("2026-01-03T00:00:00Z"), SIZE);
    let young = f.kept(at("2026-01-04T00:00:00Z"), SIZE);
    let mut m = f.management();
    m.min_free_bytes = available_bytes(&f.root).unwrap() + (SIZE as u64) * 3 / 2;
    let report = f.pass(&m, at("2026-01-05T00:00:00Z"));
    assert_eq!((report.retired, report.disk_full), (2, false), "{report:?}");
    assert!(f.row(old.id).is_none() && f.row(middle.id).is_none());
    let survivor = f.row(young.id).expect("the youngest is kept");
    assert!(survivor.path.unwrap().exists());
    assert!(f.audit().is_clean(), "{:?}", f.audit());
}

/// Issue 11: `retention.min_free_space_mb 5120000` deleted every kept recording on a
/// disk with 76 GB free. A threshold that deleting every kept recording could not meet
/// deletes none of them; the recorder pauses instead.
#[test]
fn issue_11_an_unreachable_min_free_deletes_nothing_and_pauses() {
    let mut f = fixture();
    let mut kept = Vec::new();
    for day in 2..=6 {
        kept.push(f.kept(at(&format!("2026-01-0{day}T00:00:00Z")), 4096));
    }
    let mut m = f.management();
    // A gibibyte beyond what is free: five small files cannot give that back.
    m.min_free_bytes = available_bytes(&f.root).unwrap() + (1 << 30);
    for pass in 0..2 {
        let report = f.pass(&m, at("2026-01-07T00:00:00Z"));
        assert_eq!(
            (
                report.retired,
                report.disk_full,
                report.min_free_out_of_reach
            ),
            (0, true, true),
            "pass {pass}: {report:?}"
        );
    }
    for rec in &kept {
        assert!(f.row(rec.id).is_some(), "row of {rec:?} deleted");
        assert!(rec.path.as_ref().unwrap().exists(), "{rec:?} deleted");
    }
    assert!(f.audit().is_clean());
}

#[test]
fn disk_full_is_reported_once_nothing_is_left_to_delete() {
    let mut f = fixture();
    fs::create_dir_all(&f.root).unwrap();
    let mut m = f.management();
    m.min_free_bytes = u64::MAX / 2;
    let report = f.pass(&m, at("2026-01-07T00:00:00Z"));
    assert_eq!((report.retired, report.disk_full), (0, true), "{report:?}");
    // Still full on the next pass, with nothing more to do.
    let again = f.pass(&m, at("2026-01-07T00:00:10Z"));
    assert_eq!((again.retired, again.disk_full), (0, true));
}

/// A file with a second hard link frees nothing when its recording goes: retention
/// skips it and deletes the next oldest, which does help.
#[test]
fn free_space_skips_recordings_whose_deletion_frees_nothing() {
    let mut f = fixture();
    const SIZE: usize = 16 << 20;
    let linked = f.kept(at("2026-01-02T00:00:00Z"), SIZE);
    let linked_path = linked.path.clone().unwrap();
    let other_name = f.root.join("linked-elsewhere.bin");
    fs::hard_link(&linked_path, &other_name).unwrap();
    let next = f.kept(at("2026-01-03T00:00:00Z"), SIZE);
    let young = f.kept(at("2026-01-04T00:00:00Z"), SIZE);
    let mut m = f.management();
    m.min_free_bytes = available_bytes(&f.root).unwrap() + (SIZE as u64) / 2;
    let report = f.pass(&m, at("2026-01-05T00:00:00Z"));
    assert_eq!((report.retired, report.disk_full), (1, false), "{report:?}");
    assert!(f.row(linked.id).is_some() && linked_path.exists());
    assert!(f.row(next.id).is_none());
    assert!(f.row(young.id).is_some());
}

#[test]
fn min_free_beyond_half_the_file_system_is_refused_and_clamped() {
    let f = fixture();
    let (limit, _) = retention::min_free_limit(&f.root).unwrap();
    assert!(limit.max_mib > 0 && limit.max_mib == limit.fs_total_mib / 2);
    retention::check_min_free(&f.root, limit.max_mib).unwrap();
    let e = retention::check_min_free(&f.root, 5_120_000_000).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("retention.min_free_space_mb is 5120000000 MiB, more than half of the"),
        "{text}"
    );
    assert!(
        text.contains(&format!("set it to at most {}", limit.max_mib)),
        "{text}"
    );
    assert_eq!(
        retention::clamp_min_free(&f.root, 5_120_000_000),
        limit.max_mib * retention::MIB
    );
    assert_eq!(retention::clamp_min_free(&f.root, 1), retention::MIB);
}

#[test]
fn recordings_past_the_maximum_age_are_retired() {
    let mut f = fixture();
    let now = at("2026-02-20T00:00:00Z");
    let stale = f.record(now - SignedDuration::from_hours(24 * 10), 10);
    let fresh = f.record(now - SignedDuration::from_hours(24), 10);
    let mut m = f.management();
    m.max_age = Some(SignedDuration::from_hours(24 * 7));
    let report = f.pass(&m, now);
    assert_eq!((report.kept, report.retired), (2, 1), "{report:?}");
    assert!(f.row(stale.id).is_none());
    assert!(f.row(fresh.id).is_some());
    assert_eq!(f.store.oldest_kept(10).unwrap().len(), 1);
    assert!(f.audit().is_clean());
}

#[test]
fn a_row_whose_file_vanished_is_removed() {
    let mut f = fixture();
    let gone = f.record(at("2026-04-01T10:00:00Z"), 10);
    let here = f.record(at("2026-04-01T10:00:01Z"), 10);
    fs::remove_file(gone.path.as_ref().unwrap()).unwrap();
    let report = f.pass(&f.management(), at("2026-04-01T11:00:00Z"));
    assert_eq!((report.missing_files, report.kept), (1, 1));
    assert!(f.row(gone.id).is_none());
    assert!(f.row(here.id).is_some());
    assert!(f.audit().is_clean());
}

#[test]
fn a_name_another_recording_holds_gets_a_suffix_and_nothing_is_overwritten() {
    let mut f = fixture();
    let start = at("2026-05-01T08:00:00Z");
    let first = f.record(start, 10);
    f.pass(&f.management(), start);
    // The clock stepped back: a new file with the same name, one microsecond apart.
    let path = f
        .tmp
        .join(format!("{}.wav", crate::audio::name::file_stem(start)));
    fs::write(&path, b"second").unwrap();
    let second = f.register(&path, start + SignedDuration::from_micros(1), 6);
    f.pass(&f.management(), start);
    let first_path = f.row(first.id).unwrap().path.unwrap();
    let second_path = f.row(second.id).unwrap().path.unwrap();
    assert_ne!(first_path, second_path);
    assert_eq!(
        fs::read(&first_path).unwrap().len(),
        10,
        "first overwritten"
    );
    assert_eq!(fs::read(&second_path).unwrap(), b"second");
    assert!(second_path.ends_with("2026/05/01/20260501_080000_000_1.wav"));
    assert!(f.audit().is_clean());
}

#[test]
fn records_keeps_deletions_and_crashes_leave_rows_and_files_in_step() {
    let mut f = fixture();
    let mut m = f.management();
    // Keep recordings that start on an even second.
    m.keep = Some(Box::new(|t: Timestamp| t.as_second() % 2 == 0));
    let base = at("2026-07-01T00:00:00Z");
    let second = |n: i64| base + SignedDuration::from_secs(n);
    for n in 0..6 {
        f.record(second(n), 50);
    }
    assert!(f.audit().is_clean());
    f.pass(&m, second(10));
    assert!(f.audit().is_clean());

    // Crash after a kept file was copied into place, before its row moved.
    let a = f.record(second(20), 50);
    let dest = f.root.join("2026/07/01/20260701_000020_000.wav");
    move_file(a.path.as_ref().unwrap(), &dest, true).unwrap();
    assert_eq!(f.audit().files_without_row, vec![dest.clone()]);
    f.restart();
    f.pass(&m, second(30));
    assert!(f.audit().is_clean(), "{:?}", f.audit());
    assert_eq!(f.row(a.id).unwrap().path.as_deref(), Some(dest.as_path()));

    // Crash mid-copy: a `.moving` leftover next to where the file goes.
    let b = f.record(second(22), 50);
    let moving = f.root.join("2026/07/01/20260701_000022_000.wav.moving");
    fs::write(&moving, b"torn").unwrap();
    f.restart();
    f.pass(&m, second(30));
    assert!(f.audit().is_clean(), "{:?}", f.audit());
    assert!(!moving.exists(), "the torn copy is left behind");
    let kept_b = f.row(b.id).unwrap().path.unwrap();
    assert_eq!(fs::read(kept_b).unwrap().len(), 50);

    // Crash after a filtered-out row was deleted, before its file was removed.
    let c = f.record(second(23), 50);
    f.store.delete_recording(c.id).unwrap();
    assert_eq!(f.audit().files_without_row, vec![c.path.clone().unwrap()]);
    f.restart();
    let report = f.pass(&m, second(30));
    assert_eq!(report.filtered_out, 1);
    assert!(f.audit().is_clean(), "{:?}", f.audit());
    assert!(!c.path.unwrap().exists());

    // A file removed behind the task's back, then retention.
    let d = f.record(second(24), 50);
    fs::remove_file(d.path.as_ref().unwrap()).unwrap();
    m.max_age = Some(SignedDuration::from_secs(10));
    let report = f.pass(&m, second(30));
    assert_eq!(report.missing_files, 1);
    assert!(f.audit().is_clean(), "{:?}", f.audit());
    let left: Vec<Timestamp> = f
        .store
        .oldest_kept(100)
        .unwrap()
        .into_iter()
        .map(|r| r.datetime)
        .collect();
    assert_eq!(left, vec![second(20), second(22)]);
}

/// Stores a model output for `rec` with one detection per class in `classes`.
fn output(f: &mut Fixture, rec: &Recording, classes: &[&str]) {
    let found: Vec<crate::detection::Detection> = classes
        .iter()
        .map(|c| crate::detection::Detection {
            class: c.to_string(),
            score: 0.9,
            class_score: 0.9,
            start_s: 0.0,
            end_s: 1.0,
            low_freq_hz: 0.0,
            high_freq_hz: 4000.0,
        })
        .collect();
    let o = crate::detection::rows::model_output("tiny", rec.id, rec.datetime, &found);
    f.store.insert_model_output(&o).unwrap();
}

#[test]
fn keep_only_detected_keeps_the_queued_at_once_and_deletes_it_once_the_model_found_nothing() {
    let mut f = fixture();
    let detected = f.record(at("2026-06-01T05:00:00Z"), 100);
    let nothing = f.record(at("2026-06-01T05:00:01Z"), 100);
    let unanalysed = f.record(at("2026-06-01T05:00:02Z"), 100);
    let queued = f.record(at("2026-06-01T05:00:03Z"), 100);
    output(&mut f, &detected, &["loud"]);
    output(&mut f, &nothing, &[]);
    let mut m = f.management();
    m.keep_detected = true;
    let report = f.pass(&m, at("2026-06-01T06:00:00Z"));
    // The queued one has no output yet: it leaves the temporary directory (RAM) now.
    assert_eq!((report.kept, report.filtered_out), (3, 1));
    for rec in [&detected, &unanalysed, &queued] {
        assert_eq!(f.row(rec.id).unwrap().state, Some(RecordingState::Kept));
        assert!(!rec.path.as_ref().unwrap().exists(), "moved out of tmp");
    }
    assert!(f.row(nothing.id).is_none() && !nothing.path.unwrap().exists());

    // The model's verdict arrives: nothing found, so the kept recording goes, row first.
    let kept_path = f.row(queued.id).unwrap().path.unwrap();
    assert!(kept_path.exists());
    output(&mut f, &queued, &[]);
    assert!(m.decide_after_detection(&mut f.store, queued.id).unwrap());
    assert!(f.row(queued.id).is_none() && !kept_path.exists());
    // A recording with a detection, one never analysed, one already gone: left alone.
    for id in [detected.id, unanalysed.id, queued.id] {
        assert!(!m.decide_after_detection(&mut f.store, id).unwrap());
    }
    assert!(f.row(detected.id).unwrap().path.unwrap().exists());
    assert!(f.audit().is_clean());
}

#[test]
fn without_keep_only_detected_the_model_never_deletes_a_recording() {
    let mut f = fixture();
    let rec = f.record(at("2026-06-01T05:00:00Z"), 100);
    let m = f.management();
    f.pass(&m, at("2026-06-01T06:00:00Z"));
    output(&mut f, &rec, &[]);
    assert!(!m.decide_after_detection(&mut f.store, rec.id).unwrap());
    assert!(f.row(rec.id).unwrap().path.unwrap().exists());
}

#[test]
fn a_time_filter_still_keeps_what_the_model_found_nothing_in() {
    let mut f = fixture();
    let morning = f.record(at("2026-06-01T05:00:00Z"), 100);
    let noon = f.record(at("2026-06-01T12:00:00Z"), 100);
    output(&mut f, &morning, &[]);
    output(&mut f, &noon, &[]);
    let mut m = f.management();
    let eleven = at("2026-06-01T11:00:00Z");
    m.keep = Some(Box::new(move |t| t < eleven));
    m.keep_detected = true;
    let report = f.pass(&m, at("2026-06-01T13:00:00Z"));
    assert_eq!((report.kept, report.filtered_out), (1, 1));
    assert_eq!(f.row(morning.id).unwrap().state, Some(RecordingState::Kept));
    assert!(f.row(noon.id).is_none());
    assert!(!m.decide_after_detection(&mut f.store, morning.id).unwrap());
    assert!(f.row(morning.id).unwrap().path.unwrap().exists());
}

#[test]
fn keep_negatives_keeps_about_that_fraction_of_the_empty_ones_and_decides_the_same_twice() {
    use super::kept_as_negative;

    let ids: Vec<Uuid> = (0..4000).map(|_| Uuid::new_v4()).collect();
    let kept = ids.iter().filter(|id| kept_as_negative(**id, 0.25)).count();
    // Binomial(4000, 0.25): mean 1000, sd 27; 6 sd either way.
    assert!((840..=1160).contains(&kept), "{kept} of 4000");
    assert!(ids.iter().all(|id| !kept_as_negative(*id, 0.0)));
    assert!(ids.iter().all(|id| kept_as_negative(*id, 1.0)));

    // In the pass and after the model's verdict alike.
    let mut f = fixture();
    let mut m = f.management();
    m.keep_detected = true;
    m.keep_negatives = 0.5;
    let recs: Vec<_> = (0..20)
        .map(|i| {
            f.record(
                at("2026-06-01T05:00:00Z") + jiff::SignedDuration::from_secs(i),
                100,
            )
        })
        .collect();
    f.pass(&m, at("2026-06-01T06:00:00Z"));
    for rec in &recs {
        output(&mut f, rec, &[]);
        let deleted = m.decide_after_detection(&mut f.store, rec.id).unwrap();
        assert_eq!(deleted, !kept_as_negative(rec.id, 0.5));
        assert_eq!(f.row(rec.id).is_some(), kept_as_negative(rec.id, 0.5));
    }
    assert!(f.audit().is_clean());
}

/// A move links on one file system and copies when told the two are apart (the hint
/// `same_file_system` gives once per configuration); either way the file arrives whole
/// and the source stays until the row has moved.
#[test]
fn a_move_links_on_one_file_system_and_copies_across() {
    use std::os::unix::fs::MetadataExt;
    let f = fixture();
    fs::create_dir_all(&f.root).unwrap();
    assert!(same_file_system(&f.tmp, &f.root));
    let src = f.tmp.join("a.wav");
    fs::write(&src, b"audio").unwrap();
    let linked = f.root.join("2026/07/01/linked.wav");
    move_file(&src, &linked, true).unwrap();
    assert_eq!(
        fs::metadata(&src).unwrap().ino(),
        fs::metadata(&linked).unwrap().ino()
    );
    let copied = f.root.join("2026/07/01/copied.wav");
    move_file(&src, &copied, false).unwrap();
    assert_ne!(
        fs::metadata(&src).unwrap().ino(),
        fs::metadata(&copied).unwrap().ino()
    );
    assert_eq!(fs::read(&copied).unwrap(), b"audio");
    assert!(!copied.with_extension("wav.moving").exists());
    // /proc is never the temporary directory's file system.
    assert!(!same_file_system(Path::new("/proc"), &f.root));
}
