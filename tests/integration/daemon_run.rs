//! `acoupi run` as systemd runs it: the real binary, a `NOTIFY_SOCKET` this test listens
//! on, `WATCHDOG_USEC`, real alsa-lib reading a FIFO through the `file` plugin, a real
//! metadata.db.
//!
//! The FIFO is fed a counter ramp at real-time pace (8 kHz mono, 0.2 s per write: the
//! recorder's read size), so every sample in every file can be checked against what went
//! in, and pausing the writer with the FIFO held open is a true capture stall. `WATCHDOG_USEC=3000000` gives pings
//! every second and a stall threshold of 1.5 s.

use crate::support;

use std::time::{Duration, Instant};

use acoupi::store::{audit, MetadataStore, RecordingState};
use nix::sys::signal::Signal;
use support::feeder::Feeder;
use support::{part_files, part_frames, ramp, wav_files, wav_samples, Install, Notify};
use support::{wait_until, Running, CHUNK, RATE};

const READY_WITHIN: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(1);
const STALL_AFTER: Duration = Duration::from_millis(1500);

/// Every kept file, in order, must be the ramp from sample `first` on, back to back;
/// returns the number of samples.
fn assert_files_are_the_ramp(files: &[std::path::PathBuf], first: u64) -> u64 {
    let mut next = first;
    for f in files {
        let samples = wav_samples(f);
        assert!(!samples.is_empty(), "{} is empty", f.display());
        for (i, s) in samples.iter().enumerate() {
            let want = ramp(next + i as u64);
            assert_eq!(
                *s,
                want,
                "{} sample {i}: got {s}, want {want} (ramp sample {})",
                f.display(),
                next + i as u64
            );
        }
        next += samples.len() as u64;
    }
    next - first
}

/// Rows and files agree both ways, and each row's frame count is its file's.
fn assert_rows_match_files(install: &Install) {
    let store = MetadataStore::open(&install.db()).unwrap();
    let a = audit(&store, &install.recordings(), &install.tmp_audio()).unwrap();
    assert!(a.is_clean(), "rows and files disagree: {a:#?}");
    let files = wav_files(&install.recordings());
    let rows = store.recordings_since(jiff::Timestamp::MIN).unwrap();
    assert_eq!(rows.len(), files.len(), "rows {rows:#?}\nfiles {files:#?}");
    for f in &files {
        let row = store.find_by_path(f).unwrap().expect("row");
        assert_eq!(row.state, Some(RecordingState::Kept));
        let frames = hound::WavReader::open(f).unwrap().duration();
        assert_eq!(row.frames, Some(u64::from(frames)), "{}", f.display());
    }
}

fn stop(r: &mut Running) {
    let t = Instant::now();
    r.daemon.signal(Signal::SIGTERM);
    let status = r
        .daemon
        .wait_exit(Duration::from_secs(5))
        .expect("the recorder did not exit within 5 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", r.daemon.log_text());
    assert!(
        r.notify
            .wait_for(t, Duration::from_secs(1), |l| l == "STOPPING=1")
            .is_some(),
        "no STOPPING=1"
    );
}

#[test]
fn watchdog_is_withheld_while_capture_stalls_and_resumes_with_audio() {
    let mut r = Running::start("watchdog");
    // Audio flows: pings at the cadence, and STATUS= says it records.
    assert!(
        r.notify
            .wait_for(
                r.ready_at + Duration::from_millis(3500),
                READY_WITHIN,
                |l| { l == "WATCHDOG=1" }
            )
            .is_some(),
        "pings stopped while audio flows; log:\n{}",
        r.daemon.log_text()
    );
    let pings: Vec<Instant> = r.notify.times_of("WATCHDOG=1");
    assert!(pings.len() >= 4, "{} pings", pings.len());
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("watchdog cadence while recording: {gaps:?}");
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(800) && *g <= Duration::from_millis(1300),
            "ping gap {g:?} is off the 1 s cadence: {gaps:?}"
        );
    }
    let statuses: Vec<String> = r
        .notify
        .messages()
        .into_iter()
        .filter_map(|(_, l)| l.strip_prefix("STATUS=").map(str::to_string))
        .collect();
    assert!(
        statuses.iter().any(|s| s.starts_with("recording (")),
        "{statuses:?}"
    );

    // The writer pauses with the FIFO open: capture blocks in its read.
    r.feeder.pause();
    // A write already past its limit check may still land: let it.
    std::thread::sleep(Duration::from_millis(150));
    let last_audio = r.feeder.last_write().expect("audio was written");
    let (stalled_at, _) = r
        .notify
        .wait_for(last_audio, Duration::from_secs(4), |l| {
            l == "STATUS=capture stalled: no audio from the microphone"
        })
        .expect("STATUS never reported the stall");
    let json = r.install.control_status();
    assert_eq!(json["recording"]["health"], "notok", "{json:#}");
    assert_eq!(json["recording"]["state"], "stalled", "{json:#}");
    assert_eq!(json["default"]["health"], "ok", "{json:#}");
    // The CLI tells the operator the same.
    let status: serde_json::Value =
        serde_json::from_str(&r.install.ok(&["deployment", "status", "--json"]).stdout).unwrap();
    assert_eq!(status["workers"]["status"], "available", "{status:#}");
    assert_eq!(status["workers"]["recording"], "notok", "{status:#}");
    assert_eq!(
        status["workers"]["detail"], "capture stalled: no audio from the microphone",
        "{status:#}"
    );
    // Watch one more interval: no ping may come once the stall is judged.
    std::thread::sleep(PING_EVERY + Duration::from_millis(300));
    let last_ping = *r.notify.times_of("WATCHDOG=1").last().unwrap();
    let latency = stalled_at - last_audio;
    eprintln!(
        "stall: last audio → STATUS stalled {latency:?}; last audio → last ping {:?}",
        last_ping - last_audio
    );
    assert!(
        last_ping < stalled_at,
        "a ping came after the stall was reported"
    );
    assert!(
        last_ping - last_audio <= STALL_AFTER + PING_EVERY + Duration::from_millis(200),
        "pings went on {:?} after the last audio",
        last_ping - last_audio
    );
    assert!(
        latency <= STALL_AFTER + PING_EVERY + Duration::from_millis(200),
        "stall noticed only after {latency:?}"
    );

    // Hold the stall past the re-anchoring threshold (3 s) so stream time must restart.
    let hold_until = last_audio + Duration::from_millis(4500);
    if let Some(left) = hold_until.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    // Audio again: pings resume within one interval of the first read.
    let resumed = Instant::now();
    r.feeder.resume();
    let (ping, _) = r
        .notify
        .wait_for(resumed, PING_EVERY + Duration::from_millis(500), |l| {
            l == "WATCHDOG=1"
        })
        .expect("pings did not resume with the audio");
    eprintln!("pings resumed {:?} after the audio", ping - resumed);
    let json = r.install.control_status();
    assert_eq!(json["recording"]["health"], "ok", "{json:#}");
    assert_eq!(json["recording"]["state"], "recording", "{json:#}");
    let stopped_at = jiff::Timestamp::now();
    stop(&mut r);
    // After a stall that ends without an overrun, stream time restarts at the wall clock:
    // the stall is a recorded gap and later files carry the right time.
    let store = MetadataStore::open(&r.install.db()).unwrap();
    let last = store
        .recordings_since(jiff::Timestamp::MIN)
        .unwrap()
        .pop()
        .expect("recordings after the stall");
    let end = last.datetime + jiff::SignedDuration::from_secs_f64(last.duration_s);
    let behind = stopped_at.duration_since(end);
    eprintln!("stream time behind the wall clock at SIGTERM: {behind:?}");
    assert!(
        behind.abs() < jiff::SignedDuration::from_millis(1500),
        "files after the stall are off the wall clock by {behind:?}"
    );
    let gaps = store.gaps_since(jiff::Timestamp::MIN).unwrap();
    let stall = gaps
        .iter()
        .find(|g| g.reason == "stall")
        .unwrap_or_else(|| panic!("no stall gap recorded: {gaps:?}"));
    let length = stall.ended_on.duration_since(stall.started_on);
    assert!(
        length > jiff::SignedDuration::from_secs(3) && length < jiff::SignedDuration::from_secs(8),
        "stall gap of {length:?}"
    );
    drop(store);
    // The stall lost nothing: the files are the ramp, whole.
    let n = assert_files_are_the_ramp(&wav_files(&r.install.recordings()), 0);
    assert!(n >= r.feeder.written() - 3 * CHUNK, "{n} samples kept");
    assert_rows_match_files(&r.install);
}

#[test]
fn sigterm_finishes_the_current_file_and_every_file_has_its_row() {
    let mut r = Running::start("sigterm");
    assert!(r.feeder.wait_written(
        r.feeder.written() + 2 * RATE + RATE / 2,
        Duration::from_secs(5)
    ));
    let before = r.feeder.written();
    let t = Instant::now();
    stop(&mut r);
    eprintln!("SIGTERM → exit in {:?}", t.elapsed());
    let after = r.feeder.written();
    assert!(part_files(&r.install.tmp_audio()).is_empty());
    assert!(wav_files(&r.install.tmp_audio()).is_empty(), "left in tmp");
    let files = wav_files(&r.install.recordings());
    assert!(files.len() >= 3, "{files:#?}");
    let n = assert_files_are_the_ramp(&files, 0);
    // Everything read before the signal is in a file; the last file was cut, not lost.
    assert!(
        n + CHUNK >= before && n <= after,
        "{n} samples kept, {before} written before SIGTERM, {after} in all"
    );
    // Files between the first and the last are whole seconds; the last was cut short
    // (or ended on its boundary) and is still a valid file.
    let lengths: Vec<u64> = files.iter().map(|f| wav_samples(f).len() as u64).collect();
    assert!(
        lengths[1..lengths.len() - 1].iter().all(|&n| n == RATE),
        "{lengths:?}"
    );
    assert!(
        (1..=RATE).contains(&lengths[lengths.len() - 1]),
        "{lengths:?}"
    );
    assert_rows_match_files(&r.install);
    assert!(r
        .daemon
        .log_text()
        .contains("stopping: finishing the current file"));
}

/// `acoupi config set` makes a running recorder reload (SIGHUP, as `ExecReload` does);
/// a configuration broken by hand is refused and the recorder goes on with the old one.
#[test]
fn sighup_reloads_a_valid_configuration_and_refuses_a_broken_one() {
    let mut r = Running::start("reload");
    let t = Instant::now();
    let out = r
        .install
        .ok(&["config", "set", "retention.min_free_space_mb", "1"]);
    assert!(out.stdout.contains("reloaded running recorder"), "{out:#?}");
    r.notify.expect_ready(t, Duration::from_secs(5), &r.daemon);
    assert!(
        r.notify.times_of("RELOADING=1").len() == 1,
        "{:?}",
        r.notify.messages()
    );
    assert!(wait_until(Duration::from_secs(3), || r
        .daemon
        .log_text()
        .contains("configuration reloaded")));

    // Broken by hand, then SIGHUP: refused, and the recorder keeps recording.
    std::fs::write(
        r.install.config_file(),
        "(microphone: (samplerate: \"fast\"))\n",
    )
    .unwrap();
    let files_before =
        wav_files(&r.install.recordings()).len() + wav_files(&r.install.tmp_audio()).len();
    r.daemon.signal(Signal::SIGHUP);
    assert!(wait_until(Duration::from_secs(3), || r
        .daemon
        .log_text()
        .contains("reload refused: keeping the running configuration")));
    assert!(r
        .feeder
        .wait_written(r.feeder.written() + 2 * RATE, Duration::from_secs(4)));
    assert!(
        wait_until(Duration::from_secs(3), || wav_files(
            &r.install.recordings()
        )
        .len()
            + wav_files(&r.install.tmp_audio()).len()
            > files_before),
        "recording stopped after a refused reload"
    );
    let json = r.install.control_status();
    assert_eq!(json["recording"]["health"], "ok", "{json:#}");
    stop(&mut r);
}

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
    // A finished file leaves tmp/ at once: count it wherever it is.
    let finished = || {
        let mut files = wav_files(&tmp);
        files.extend(wav_files(&r.install.recordings()));
        files.sort_by_key(|f| f.file_name().map(|n| n.to_owned()));
        files
    };
    assert!(
        wait_until(Duration::from_secs(4), || !finished().is_empty()),
        "no finished file; log:\n{}",
        r.daemon.log_text()
    );
    // The first file ends at the first whole second of stream time; the others are
    // 1 s long. Stop the audio `after_boundary` frames into file `files_before + 1`.
    let first = wav_samples(&finished()[0]).len() as u64;
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
        let done: u64 = wavs.iter().map(|f| wav_samples(f).len() as u64).sum();
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

#[test]
fn run_without_a_deployment_refuses_to_start_and_says_what_to_do() {
    let install = Install::new();
    install.setup(&[]);
    let notify = Notify::bind(install.root());
    let mut daemon = install.spawn_daemon("run", &notify);
    let status = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("the recorder kept running without a deployment");
    assert_eq!(status.code(), Some(2));
    let log = daemon.log_text();
    let want = format!(
        "error: no active deployment in {}: run `acoupi deployment start`",
        install.db().display()
    );
    assert!(log.contains(&want), "{log}");
    assert!(
        notify.times_of("READY=1").is_empty(),
        "READY without a deployment"
    );
}

/// The recorder stores its start-up integrity check; `deployment status` and `check`
/// report the last one stored (text and JSON), and a failed one is an error in both.
#[test]
fn status_and_check_report_the_recorders_last_integrity_check() {
    let before = jiff::Timestamp::now();
    let mut r = Running::start("integrity");
    let json: serde_json::Value =
        serde_json::from_str(&r.install.ok(&["deployment", "status", "--json"]).stdout).unwrap();
    let integrity = &json["deployment"]["integrity"];
    assert_eq!(integrity["status"], "ok", "{json:#}");
    // The start-up check is the quick one; the deep one runs daily in the background.
    assert_eq!(integrity["check"], "quick_check", "{json:#}");
    let checked_on: jiff::Timestamp = integrity["checked_on"].as_str().unwrap().parse().unwrap();
    assert!(
        checked_on >= before,
        "{checked_on} before the start at {before}"
    );
    assert_eq!(json["program"]["status"], "ok", "{json:#}");
    let text = r.install.ok(&["deployment", "status"]).stdout;
    assert!(
        text.contains("database check : ok (quick_check at "),
        "{text}"
    );

    // What the daily integrity_check stores when SQLite reports damage.
    let report = "*** in database main ***\nPage 42: btreeInitPage() returns error code 11";
    rusqlite::Connection::open(r.install.db())
        .unwrap()
        .execute(
            "UPDATE acoupi_integrity SET kind = 'integrity_check', problems = ?1",
            [report],
        )
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&r.install.ok(&["deployment", "status", "--json"]).stdout).unwrap();
    assert_eq!(
        json["deployment"]["integrity"]["status"], "failed",
        "{json:#}"
    );
    assert_eq!(json["program"]["status"], "unhealthy", "{json:#}");
    let problem = json["program"]["problem"].as_str().unwrap();
    assert!(
        problem.starts_with("metadata.db failed SQLite's integrity_check at ")
            && problem.contains("Page 42"),
        "{problem}"
    );
    let text = r.install.ok(&["deployment", "status"]).stdout;
    assert!(text.contains("database check : "), "{text}");
    assert!(
        text.contains("FAILED: metadata.db failed SQLite's integrity_check"),
        "{text}"
    );
    let check = r.install.run(&["check"]);
    assert_eq!(check.code, Some(1), "{check:#?}");
    assert!(
        check
            .stderr
            .contains("metadata.db failed SQLite's integrity_check at ")
            && check.stderr.contains("move the file aside"),
        "{}",
        check.stderr
    );
    stop(&mut r);
}
