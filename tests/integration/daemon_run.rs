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
use support::{part_files, ramp, wav_files, wav_samples, Install, Notify};
use support::{wait_until, Running, CHUNK, RATE};

pub(crate) const READY_WITHIN: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(1);
const STALL_AFTER: Duration = Duration::from_millis(1500);

/// Every kept file, in order, must be the ramp from sample `first` on, back to back;
/// returns the number of samples.
pub(crate) fn assert_files_are_the_ramp(files: &[std::path::PathBuf], first: u64) -> u64 {
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
pub(crate) fn assert_rows_match_files(install: &Install) {
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

pub(crate) fn stop(r: &mut Running) {
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
