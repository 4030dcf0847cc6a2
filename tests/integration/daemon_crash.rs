//! `acoupi run` after a crash: SIGKILL with a `.part` half written, finished files
//! without their rows, `.part` files too short or nameless. The restart keeps every
//! whole frame, files each recording in its day's folder and registers its row; nothing
//! is deleted behind the user's back. The same real binary, FIFO and `NOTIFY_SOCKET` as
//! `daemon_run`, whose helpers these tests share.

use crate::daemon_run::{assert_files_are_the_ramp, assert_rows_match_files, stop, READY_WITHIN};
use crate::support;

use std::time::{Duration, Instant};

use acoupi::store::{audit, MetadataStore};
use support::feeder::Feeder;
use support::{part_files, part_frames, ramp, wav_files, wav_samples, Install, Notify};
use support::{wait_until, Running, CHUNK, RATE};

/// Crashes can leave finished files without a row: after the rename but before the
/// insert (a `.wav` in tmp/), or during a retention delete (row gone, file still in
/// recordings/). A restart registers both again; nothing is deleted behind the user's back.
#[test]
fn finished_files_without_a_row_are_registered_again_on_restart() {
    let mut r = Running::start("orphans");
    assert!(r
        .feeder
        .wait_written(r.feeder.written() + 3 * RATE, Duration::from_secs(6)));
    let written = r.feeder.written();
    stop(&mut r);
    let files = wav_files(&r.install.recordings());
    assert!(files.len() >= 3, "{files:#?}");
    // Forget two rows; move one of the two files back into tmp/.
    let db = rusqlite::Connection::open(r.install.db()).unwrap();
    for f in &files[..2] {
        let n = db
            .execute(
                "DELETE FROM recording WHERE path = ?1",
                [f.to_string_lossy().as_ref()],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    drop(db);
    let in_tmp = r.install.tmp_audio().join(files[0].file_name().unwrap());
    std::fs::create_dir_all(r.install.tmp_audio()).unwrap();
    std::fs::rename(&files[0], &in_tmp).unwrap();
    let store = MetadataStore::open(&r.install.db()).unwrap();
    let before = audit(&store, &r.install.recordings(), &r.install.tmp_audio()).unwrap();
    assert_eq!(before.files_without_row.len(), 2, "{before:?}");
    drop(store);

    let feeder = Feeder::start(&r.install.fifo, written);
    let notify = Notify::bind(&r.install.root().join("second"));
    let t0 = Instant::now();
    let mut daemon = r.install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, READY_WITHIN, &daemon);
    assert_eq!(
        daemon
            .log_text()
            .matches("registering a finished recording that had no row")
            .count(),
        2,
        "{}",
        daemon.log_text()
    );
    assert!(files[0].exists(), "the file from tmp/ was kept again");
    assert!(files[1].exists(), "the file in recordings/ stays");
    drop(feeder);
    daemon.stop_cleanly(Duration::from_secs(5));
    assert_rows_match_files(&r.install);
}

/// Kills the recorder with SIGKILL once `files_before` files are finished and the next
/// `.part` holds `after_boundary` frames rounded up to a whole chunk, with capture
/// blocked so nothing moves. Returns the samples written and the frames in the `.part`.
fn crash_with_part(r: &mut Running, files_before: u64, after_boundary: u64) -> (u64, u64) {
    let tmp = r.install.tmp_audio();
    // A finished file leaves tmp/ at once: count it wherever it is, frames by name, read
    // again when one moved between the listing and the read.
    let read_finished = || {
        let mut files = wav_files(&tmp);
        files.extend(wav_files(&r.install.recordings()));
        let frames: Option<Vec<_>> = files
            .iter()
            .map(|f| {
                let reader = hound::WavReader::open(f).ok()?;
                Some((f.file_name()?.to_owned(), u64::from(reader.duration())))
            })
            .collect();
        frames.map(|mut frames| {
            frames.sort();
            frames
        })
    };
    let finished = || {
        for _ in 0..50 {
            if let Some(frames) = read_finished() {
                return frames;
            }
        }
        panic!("a finished file stayed unreadable in 50 readings");
    };
    assert!(
        wait_until(Duration::from_secs(4), || !finished().is_empty()),
        "no finished file; log:\n{}",
        r.daemon.log_text()
    );
    // The first file ends at the first whole second of stream time; the others are
    // 1 s long. Stop the audio `after_boundary` frames into file `files_before + 1`.
    let first = finished()[0].1;
    let boundary = first + (files_before - 1) * RATE;
    let limit = (boundary + after_boundary).div_ceil(CHUNK) * CHUNK;
    r.feeder.pause_at(limit);
    assert!(
        r.feeder.written() < limit,
        "the feeder ran past the boundary"
    );
    // Wait until capture has stored every sample written: the state is then still.
    let settled = wait_until(Duration::from_secs(6), || {
        let wavs = finished();
        let done: u64 = wavs.iter().map(|(_, frames)| frames).sum();
        let part: u64 = part_files(&tmp).iter().map(|p| part_frames(p)).sum();
        r.feeder.written() == limit && wavs.len() as u64 == files_before && done + part == limit
    });
    assert!(settled, "capture did not catch up with the writer");
    r.daemon.child.kill().expect("SIGKILL");
    r.daemon.child.wait().unwrap();
    // Stream time runs a chunk or two ahead of the wall clock here (the FIFO holds audio
    // before capture starts). A restart within the `.part`'s second would name a file
    // after that same second; wait it out so the files left by the crash are told apart.
    for part in part_files(&tmp) {
        let stem = part.file_name().unwrap().to_string_lossy()[..15].to_string();
        let start = jiff::civil::DateTime::strptime("%Y%m%d_%H%M%S", &stem)
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp();
        let end = start + jiff::SignedDuration::from_millis(1100);
        wait_until(Duration::from_secs(3), || jiff::Timestamp::now() > end);
    }
    (limit, limit - boundary)
}

#[test]
fn part_file_is_recovered_after_kill_9_and_registered_on_restart() {
    let mut r = Running::start("crash");
    let (written, in_part) = crash_with_part(&mut r, 1, 4000);
    let parts = part_files(&r.install.tmp_audio());
    assert_eq!(parts.len(), 1, "{parts:#?}");
    let part = parts[0].clone();
    assert_eq!(part_frames(&part), in_part);

    // Restart, as systemd would, with the audio continuing.
    let feeder = Feeder::start(&r.install.fifo, written);
    let notify = Notify::bind(&r.install.root().join("second"));
    let t0 = Instant::now();
    let mut daemon = r.install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, READY_WITHIN, &daemon);
    // Repaired before READY and moved by the start-up management pass.
    let stem = part
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".wav.part", ".wav");
    assert!(!part.exists(), "the .part is still there");
    let kept: Vec<_> = wav_files(&r.install.recordings())
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy() == stem)
        .collect();
    assert_eq!(kept.len(), 1, "recovered file not kept: {stem}");
    let samples = wav_samples(&kept[0]);
    assert_eq!(samples.len() as u64, in_part);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(*s, ramp(written - in_part + i as u64), "sample {i}");
    }
    let store = MetadataStore::open(&r.install.db()).unwrap();
    let row = store
        .find_by_path(&kept[0])
        .unwrap()
        .expect("recovered file has a row");
    assert_eq!(row.frames, Some(in_part));
    assert!(
        daemon
            .log_text()
            .contains("recovered an interrupted recording"),
        "{}",
        daemon.log_text()
    );
    drop(store);
    assert!(feeder.wait_written(written + RATE, Duration::from_secs(3)));
    daemon.stop_cleanly(Duration::from_secs(5));
    assert_rows_match_files(&r.install);
    // Before the crash and after the restart, the kept audio is the ramp without a hole.
    assert_files_are_the_ramp(&wav_files(&r.install.recordings()), 0);
}

/// The GUANO fields of a kept file, read back with the recorder's own reader.
fn guano_fields(path: &std::path::Path) -> Vec<(String, String)> {
    let text = acoupi::audio::repair::read_guano_text(path)
        .unwrap()
        .unwrap_or_else(|| panic!("no GUANO chunk in {}", path.display()));
    acoupi::audio::guano::parse(&text)
}

fn guano_field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `recordings/YYYY/MM/DD` of a UTC instant: where a kept file of that start belongs.
fn day_folder(install: &Install, t: jiff::Timestamp) -> std::path::PathBuf {
    install
        .recordings()
        .join(t.strftime("%Y/%m/%d").to_string())
}

// Issue 11: a `.part` shorter than one period (0.1 s) was discarded after a crash: real
// audio lost. Every whole frame is kept now, with its GUANO chunk, in its day's folder.
#[test]
fn issue_11_part_shorter_than_one_period_is_kept_after_kill_9() {
    let mut r = Running::start("short crash");
    // Cut the audio at most one chunk into the third file.
    let (written, in_part) = crash_with_part(&mut r, 2, 1);
    let parts = part_files(&r.install.tmp_audio());
    assert_eq!(parts.len(), 1, "{parts:#?}");
    assert_eq!(part_frames(&parts[0]), in_part);
    // Kept alive until the recorder exits: capture must not read a closed FIFO.
    let _feeder = Feeder::start(&r.install.fifo, written);
    let notify = Notify::bind(&r.install.root().join("second"));
    let t0 = Instant::now();
    let mut daemon = r.install.spawn_daemon("run", &notify);
    assert!(notify
        .wait_for(t0, READY_WITHIN, |l| l == "READY=1")
        .is_some());
    assert!(
        !parts[0].exists(),
        "{in_part} frames; log:\n{}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    assert!(log.contains("recovered an interrupted recording"), "{log}");
    daemon.stop_cleanly(Duration::from_secs(5));
    assert_rows_match_files(&r.install);
    let stem = parts[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".wav.part", ".wav");
    let kept: Vec<_> = wav_files(&r.install.recordings())
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy() == stem)
        .collect();
    assert_eq!(kept.len(), 1, "{in_part} frames lost: {stem}");
    let samples = wav_samples(&kept[0]);
    let want: Vec<i16> = (written - in_part..written).map(ramp).collect();
    assert_eq!(samples, want, "the short file's samples");
    let store = MetadataStore::open(&r.install.db()).unwrap();
    let row = store.find_by_path(&kept[0]).unwrap().expect("row");
    assert_eq!(
        kept[0].parent().unwrap(),
        day_folder(&r.install, row.datetime)
    );
    assert_eq!(
        stem,
        format!("{}.wav", row.datetime.strftime("%Y%m%d_%H%M%S_%3f"))
    );
    let g = guano_fields(&kept[0]);
    assert_eq!(
        guano_field(&g, "Length"),
        Some(format!("{:.6}", in_part as f64 / RATE as f64).as_str())
    );
    assert_eq!(
        guano_field(&g, "Timestamp"),
        Some(format!("{}+00:00", row.datetime.strftime("%Y-%m-%dT%H:%M:%S%.3f")).as_str())
    );
    assert_eq!(
        guano_field(&g, "Acoupi|Deployment Name"),
        Some("short crash")
    );
    // Nothing lost around the crash either.
    assert_files_are_the_ramp(&wav_files(&r.install.recordings()), 0);
}

// Issue 11: a `.part` whose name holds no time was filed under 1970/01/01, and an empty
// `.part` was never removed. The nameless one starts at its last write less its length,
// stored as not clock-synchronised; the empty one is removed and the removal logged.
#[test]
fn issue_11_nameless_part_is_filed_by_its_last_write_and_an_empty_part_is_removed() {
    let install = Install::new();
    install.setup(&[]);
    install.deploy("leftovers");
    let tmp = install.tmp_audio();
    std::fs::create_dir_all(&tmp).unwrap();
    // 1.5 s of ramp as the writer leaves it at a crash: header sizes still 0.
    let mut bytes = Vec::new();
    for chunk in [
        &b"RIFF"[..],
        &36u32.to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
    ] {
        bytes.extend_from_slice(chunk);
    }
    for field in [
        &1u16.to_le_bytes()[..],
        &1u16.to_le_bytes(),
        &8000u32.to_le_bytes(),
    ] {
        bytes.extend_from_slice(field);
    }
    bytes.extend_from_slice(&16000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&0u32.to_le_bytes());
    let frames = 12_000u64;
    bytes.extend((0..frames).flat_map(|i| ramp(i).to_le_bytes()));
    let nameless = tmp.join("copied from a card.wav.part");
    std::fs::write(&nameless, &bytes).unwrap();
    let last_write: jiff::Timestamp = "2026-03-01T00:00:01.200Z".parse().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&nameless)
        .unwrap()
        .set_modified(
            std::time::UNIX_EPOCH + Duration::from_millis(last_write.as_millisecond() as u64),
        )
        .unwrap();
    let empty = tmp.join("20260301_120000_000.wav.part");
    std::fs::write(&empty, b"").unwrap();

    let _feeder = Feeder::start(&install.fifo, 0);
    let notify = Notify::bind(install.root());
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, READY_WITHIN, &daemon);
    daemon.stop_cleanly(Duration::from_secs(5));
    let log = daemon.log_text();
    assert!(!empty.exists() && !nameless.exists(), "{log}");
    assert!(
        log.contains("removed an interrupted recording without a whole frame of audio"),
        "{log}"
    );
    // 1.5 s before its last write: the evening before, by UTC.
    let start: jiff::Timestamp = "2026-02-28T23:59:59.700Z".parse().unwrap();
    let kept = day_folder(&install, start).join("copied from a card.wav");
    assert!(
        kept.exists(),
        "not in its day's folder: {:#?}\n{log}",
        wav_files(&install.recordings())
    );
    assert!(!install.recordings().join("1970").exists());
    let want: Vec<i16> = (0..frames).map(ramp).collect();
    assert_eq!(wav_samples(&kept), want);
    let store = MetadataStore::open(&install.db()).unwrap();
    let row = store.find_by_path(&kept).unwrap().expect("row");
    assert_eq!((row.datetime, row.clock_synced), (start, Some(false)));
    let g = guano_fields(&kept);
    assert_eq!(
        guano_field(&g, "Timestamp"),
        Some("2026-02-28T23:59:59.700+00:00")
    );
    assert_eq!(guano_field(&g, "Length"), Some("1.500000"));
}

/// Killed (SIGKILL) between a finished file's row and its move — rows written, no file
/// moved yet — the restart finds every row, keeps every file, and registers none of them
/// twice. (Guards the order any cheaper commit of that row must keep.)
#[test]
fn rows_committed_before_their_move_survive_kill_9() {
    let install = Install::new();
    install.setup(&[]);
    install.deploy("between");
    // Moves fail while the year folder is a file: the day folder cannot be made. The
    // year a minute on too, should the test run across New Year.
    let recordings = install.recordings();
    std::fs::create_dir_all(&recordings).unwrap();
    let now = jiff::Timestamp::now();
    let mut blockers: Vec<_> = [now, now + jiff::SignedDuration::from_secs(60)]
        .iter()
        .map(|t| recordings.join(t.strftime("%Y").to_string()))
        .collect();
    blockers.dedup();
    for b in &blockers {
        std::fs::write(b, b"").unwrap();
    }
    let feeder = Feeder::start(&install.fifo, 0);
    let notify = Notify::bind(install.root());
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, READY_WITHIN, &daemon);
    let tmp = install.tmp_audio();
    let rows_in_tmp = || {
        let db = rusqlite::Connection::open(install.db()).unwrap();
        let mut stmt = db
            .prepare("SELECT path FROM recording WHERE state = 'tmp' ORDER BY datetime")
            .unwrap();
        let paths: Vec<std::path::PathBuf> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|p| p.unwrap().into())
            .collect();
        paths
    };
    let settled = wait_until(Duration::from_secs(8), || {
        let files = wav_files(&tmp);
        files.len() >= 3 && rows_in_tmp() == files
    });
    assert!(
        settled,
        "files {:#?} rows {:#?}; log:\n{}",
        wav_files(&tmp),
        rows_in_tmp(),
        daemon.log_text()
    );
    assert!(wav_files(&recordings).is_empty());
    daemon.child.kill().expect("SIGKILL");
    daemon.child.wait().unwrap();
    drop(feeder);
    let left = wav_files(&tmp);
    assert!(left.len() >= 3, "{left:#?}");
    let rows = rows_in_tmp();
    assert!(left.iter().all(|f| rows.contains(f)), "{left:#?} {rows:#?}");
    let audio: Vec<_> = left.iter().map(|f| wav_samples(f)).collect();

    // Restart with room for the moves, as after a fix.
    for b in &blockers {
        std::fs::remove_file(b).unwrap();
    }
    let _feeder = Feeder::start(&install.fifo, 0);
    let notify = Notify::bind(&install.root().join("second"));
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, READY_WITHIN, &daemon);
    daemon.stop_cleanly(Duration::from_secs(5));
    let log = daemon.log_text();
    assert!(
        !log.contains("registering a finished recording that had no row"),
        "{log}"
    );
    assert_rows_match_files(&install);
    let kept = wav_files(&recordings);
    for (file, samples) in left.iter().zip(&audio) {
        let name = file.file_name().unwrap();
        let moved: Vec<_> = kept
            .iter()
            .filter(|k| k.file_name() == Some(name))
            .collect();
        assert_eq!(
            moved.len(),
            1,
            "{} not kept once: {kept:#?}",
            file.display()
        );
        assert_eq!(&wav_samples(moved[0]), samples, "{}", file.display());
    }
}
