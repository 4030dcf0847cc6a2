//! The capture engine through the real alsa-lib: the `file` plugin replays raw samples
//! from a file over a `null` PCM, so every byte that reaches a WAV file went through
//! `snd_pcm_readi`.
//!
//! All ALSA tests live in this one binary: `ALSA_CONFIG_PATH` is process-wide, so it is
//! set once, for a config that defines one PCM (and one input file) per test. Inputs are
//! counters, so any lost, repeated or reordered sample shows as a mismatch.
//! The file plugin returns stale data past the end of its input: every planner here ends
//! with `Idle { until: None }` before the input runs out.
//! Windows that close and reopen, and a capture restarted after another, are
//! `audio_capture_streams`, on these helpers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use acoupi::audio::device::{self, CaptureParams};
use acoupi::audio::format::SampleFormat;
use acoupi::audio::status::RecorderState;
use acoupi::audio::{guano, FinishedFile, RecorderConfig, RecorderEvent};
use acoupi::schedule::plan::{Plan, Planner};
use jiff::{SignedDuration, Timestamp};

/// PCMs defined in the test config, one per test so tests can run in parallel.
const PCMS: [&str; 10] = [
    "reopen8k",
    "idle8k",
    "gapless8k",
    "gapless48k",
    "duty8k",
    "shutdown8k",
    "probe",
    "testcap",
    "s32to16",
    "keptuntil",
];

/// The directory holding `asound.conf` and the `<pcm>.raw` inputs.
fn alsa_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = String::from("pcm.nullpcm { type null }\n");
        for p in PCMS {
            conf.push_str(&format!(
                "pcm.{p} {{ type file slave.pcm \"nullpcm\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n",
                dir.path().join(format!("{p}.raw")).display()
            ));
        }
        std::fs::write(dir.path().join("asound.conf"), conf).unwrap();
        // Every test calls this before touching ALSA, so no thread reads the environment
        // while it changes.
        std::env::set_var("ALSA_CONFIG_PATH", dir.path().join("asound.conf"));
        dir
    })
    .path()
}

fn input(pcm: &str, bytes: &[u8]) {
    std::fs::write(alsa_dir().join(format!("{pcm}.raw")), bytes).unwrap();
}

/// Makes `frames` frames of the 16-bit mono counter 0, 1, 2, … (wrapping) `pcm`'s input
/// and returns them, for comparing with what the recorder kept.
pub(crate) fn counter_input(pcm: &str, frames: usize) -> Vec<i16> {
    let counter: Vec<i16> = (0..frames).map(|i| i as i16).collect();
    let bytes: Vec<u8> = counter.iter().flat_map(|s| s.to_le_bytes()).collect();
    input(pcm, &bytes);
    counter
}

/// Where a planner here puts its first slot. The recorder asks once before it opens the
/// PCM ("is a window open now?") and then at the stream time of every period; slots
/// start at the first stream-time question, so files hold whole seconds of the input.
/// The opening question gets `None` (answer "record") and fixes nothing.
#[derive(Default)]
pub(crate) struct Origin {
    at: Option<Timestamp>,
    asked_before_open: bool,
}

impl Origin {
    pub(crate) fn at(&mut self, t: Timestamp) -> Option<Timestamp> {
        if self.at.is_none() && !std::mem::replace(&mut self.asked_before_open, true) {
            return None;
        }
        Some(*self.at.get_or_insert(t))
    }
}

/// Slots relative to the stream time of the first frame: `count` files of `duration`
/// every `interval`, then never again.
pub(crate) struct Slots {
    origin: std::sync::Mutex<Origin>,
    duration: SignedDuration,
    interval: SignedDuration,
    count: i64,
    /// Raise this flag once stream time passes `origin + at`.
    stop: Option<(SignedDuration, Arc<AtomicBool>)>,
}

impl Slots {
    pub(crate) fn new(duration_ms: i64, interval_ms: i64, count: i64) -> Slots {
        Slots {
            origin: std::sync::Mutex::new(Origin::default()),
            duration: SignedDuration::from_millis(duration_ms),
            interval: SignedDuration::from_millis(interval_ms),
            count,
            stop: None,
        }
    }
}

impl Planner for Slots {
    fn plan_at(&self, t: Timestamp) -> Plan {
        let Some(origin) = self.origin.lock().unwrap().at(t) else {
            return Plan::Record {
                start: t,
                end: t + self.duration,
            };
        };
        let since = t.duration_since(origin);
        if let Some((at, flag)) = &self.stop {
            if since >= *at {
                flag.store(true, Ordering::Relaxed);
            }
        }
        let k = since.as_nanos() / self.interval.as_nanos();
        if k >= i128::from(self.count) {
            return Plan::Idle { until: None };
        }
        let slot = origin + self.interval * (k as i32);
        if t < slot + self.duration {
            Plan::Record {
                start: slot,
                end: slot + self.duration,
            }
        } else {
            Plan::Listen {
                until: slot + self.interval,
            }
        }
    }
}

pub(crate) fn config(pcm: &str, tmp: &Path, rate: u32, channels: u16, bits: u16) -> RecorderConfig {
    RecorderConfig {
        device_name: pcm.into(),
        samplerate: rate,
        channels,
        format: None,
        bit_depth: bits,
        time_expansion: 1.0,
        tmp_dir: tmp.to_path_buf(),
        deployment_name: Some("test site".into()),
        position: Some((52.1, -1.5)),
        serial: Some("unit-7".into()),
        kept_until: None,
    }
}

/// Runs the recorder until it ends by itself (or by the planner's stop flag) and
/// returns every event.
pub(crate) fn record(
    cfg: RecorderConfig,
    planner: Arc<dyn Planner>,
    shutdown: Arc<AtomicBool>,
) -> Vec<RecorderEvent> {
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = move |e| drop(tx.send(e));
    let handle = acoupi::audio::spawn_recorder(cfg, planner, sink, shutdown).unwrap();
    let progress = handle.progress.clone();
    handle.join().unwrap();
    assert_eq!(progress.state(), RecorderState::Stopped);
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    events
}

pub(crate) fn finished(events: &[RecorderEvent]) -> Vec<FinishedFile> {
    events
        .iter()
        .filter_map(|e| match e {
            RecorderEvent::FileFinished(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn samples_i32(path: &PathBuf) -> Vec<i32> {
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i32>().map(|s| s.unwrap()).collect()
}

#[test]
fn five_gapless_files_hold_every_input_sample_once() {
    let rate = 8000;
    let n = 5 * rate as usize;
    let counter = counter_input("gapless8k", n);
    let tmp = tempfile::tempdir().unwrap();
    let events = record(
        config("gapless8k", tmp.path(), rate, 1, 16),
        Arc::new(Slots::new(1000, 1000, 5)),
        Arc::new(AtomicBool::new(false)),
    );
    let files = finished(&events);
    assert_eq!(files.len(), 5, "events: {events:?}");
    assert!(matches!(events.last(), Some(RecorderEvent::ScheduleEnded)));
    let mut all = Vec::new();
    for (k, f) in files.iter().enumerate() {
        assert_eq!(f.frames, u64::from(rate), "file {k} length");
        let s = samples_i32(&f.path);
        assert_eq!(s.len(), rate as usize);
        all.extend(s);
        if k > 0 {
            // Consecutive files start exactly one second of stream time apart.
            assert_eq!(
                f.start.duration_since(files[k - 1].start),
                SignedDuration::from_secs(1)
            );
        }
    }
    let want: Vec<i32> = counter.iter().map(|&s| i32::from(s)).collect();
    assert_eq!(all, want);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn gapless_48k_stereo_24_bit_matches_input_exactly() {
    let rate = 48_000;
    let samples = 5 * rate as usize * 2;
    // A 24-bit counter per interleaved sample, delivered as S24_3LE.
    let counter: Vec<i32> = (0..samples).map(|i| ((i as i32) << 8) >> 8).collect();
    let raw: Vec<u8> = counter
        .iter()
        .flat_map(|s| s.to_le_bytes()[..3].to_vec())
        .collect();
    input("gapless48k", &raw);
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config("gapless48k", tmp.path(), rate, 2, 24);
    cfg.format = Some(SampleFormat::S24_3LE);
    let events = record(
        cfg,
        Arc::new(Slots::new(1000, 1000, 5)),
        Arc::new(AtomicBool::new(false)),
    );
    let files = finished(&events);
    assert_eq!(files.len(), 5, "events: {events:?}");
    let mut all = Vec::new();
    for f in &files {
        assert_eq!(f.frames, u64::from(rate));
        let r = hound::WavReader::open(&f.path).unwrap();
        assert_eq!(
            (
                r.spec().channels,
                r.spec().bits_per_sample,
                r.spec().sample_rate
            ),
            (2, 24, rate)
        );
        all.extend(samples_i32(&f.path));
    }
    assert_eq!(all, counter);
}

#[test]
fn duty_cycle_files_start_at_their_slot_offsets() {
    let rate = 8000;
    // 1 s every 2 s, three files: the input covers six seconds.
    let counter = counter_input("duty8k", 6 * rate as usize);
    let tmp = tempfile::tempdir().unwrap();
    let events = record(
        config("duty8k", tmp.path(), rate, 1, 16),
        Arc::new(Slots::new(1000, 2000, 3)),
        Arc::new(AtomicBool::new(false)),
    );
    let files = finished(&events);
    assert_eq!(files.len(), 3);
    for (k, f) in files.iter().enumerate() {
        let s = samples_i32(&f.path);
        let first = 2 * k * rate as usize;
        let want: Vec<i32> = counter[first..first + rate as usize]
            .iter()
            .map(|&v| i32::from(v))
            .collect();
        assert_eq!(s, want, "file {k}");
    }
    assert_eq!(
        files[2].start.duration_since(files[0].start),
        SignedDuration::from_secs(4)
    );
}

#[test]
fn finished_file_carries_a_parseable_guano_chunk_after_the_data() {
    let rate = 8000;
    let counter: Vec<i16> = (0..2 * rate as usize).map(|i| i as i16).collect();
    input(
        "s32to16",
        &counter
            .iter()
            .flat_map(|s| (i32::from(*s) << 16).to_le_bytes())
            .collect::<Vec<_>>(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config("s32to16", tmp.path(), rate, 1, 16);
    cfg.format = Some(SampleFormat::S32_LE);
    let events = record(
        cfg,
        Arc::new(Slots::new(1000, 1000, 2)),
        Arc::new(AtomicBool::new(false)),
    );
    let files = finished(&events);
    assert_eq!(files.len(), 2);
    let f = &files[0];
    // S32_LE from the device, stored as 16 bits: the counter comes back.
    let want: Vec<i32> = counter[..rate as usize]
        .iter()
        .map(|&v| i32::from(v))
        .collect();
    assert_eq!(samples_i32(&f.path), want);

    let bytes = std::fs::read(&f.path).unwrap();
    let data_end = 44 + 2 * rate as usize;
    assert_eq!(&bytes[data_end..data_end + 4], b"guan");
    let len = u32::from_le_bytes(bytes[data_end + 4..data_end + 8].try_into().unwrap()) as usize;
    let text = std::str::from_utf8(&bytes[data_end + 8..data_end + 8 + len]).unwrap();
    let kv = guano::parse(text);
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    assert!(text.starts_with("GUANO|Version: 1.0\n"));
    assert_eq!(get("Samplerate"), "8000");
    assert_eq!(get("Length"), "1.000000");
    assert_eq!(get("Model"), "s32to16");
    assert_eq!(get("Serial"), "unit-7");
    assert_eq!(get("Loc Position"), "52.1 -1.5");
    assert_eq!(get("Acoupi|Deployment Name"), "test site");
    assert_eq!(
        get("Original Filename"),
        f.path.file_name().unwrap().to_str().unwrap()
    );
    let stamp: Timestamp = get("Timestamp").parse().unwrap();
    // Milliseconds, truncated like the file name.
    let ms = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Millisecond)
        .mode(jiff::RoundMode::Trunc);
    assert_eq!(stamp, f.start.round(ms).unwrap());
    let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff + 8, bytes.len());
}

#[test]
fn shutdown_mid_file_finishes_it_cleanly() {
    let rate = 8000;
    let counter = counter_input("shutdown8k", 3 * rate as usize);
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Arc::new(AtomicBool::new(false));
    let mut slots = Slots::new(60_000, 60_000, 1);
    slots.stop = Some((SignedDuration::from_millis(1500), shutdown.clone()));
    let events = record(
        config("shutdown8k", tmp.path(), rate, 1, 16),
        Arc::new(slots),
        shutdown,
    );
    let files = finished(&events);
    assert_eq!(files.len(), 1, "events: {events:?}");
    let s = samples_i32(&files[0].path);
    assert!(
        s.len() >= 12_000 && s.len() < 3 * rate as usize,
        "{} frames",
        s.len()
    );
    let want: Vec<i32> = counter[..s.len()].iter().map(|&v| i32::from(v)).collect();
    assert_eq!(s, want);
    assert!(!events
        .iter()
        .any(|e| matches!(e, RecorderEvent::ScheduleEnded)));
}

#[test]
fn missing_device_is_reported_and_retried_until_shutdown() {
    alsa_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let shutdown = Arc::new(AtomicBool::new(false));
    let handle = acoupi::audio::spawn_recorder(
        config("NoSuchMic", tmp.path(), 8000, 1, 16),
        Arc::new(Slots::new(1000, 1000, 1000)),
        move |e| drop(tx.send(e)),
        shutdown.clone(),
    )
    .unwrap();
    let first = rx.recv().unwrap();
    match &first {
        RecorderEvent::DeviceLost { device, error } => {
            assert_eq!(device, "NoSuchMic");
            assert!(
                error
                    .to_string()
                    .starts_with("no capture device matches \"NoSuchMic\""),
                "{error}"
            );
        }
        other => panic!("expected DeviceLost, got {other:?}"),
    }
    assert_eq!(handle.progress.state(), RecorderState::DeviceMissing);
    shutdown.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

/// Idle until one second after the first question, then done: a window never opens.
struct NeverOpen {
    origin: OnceLock<Timestamp>,
}

impl Planner for NeverOpen {
    fn plan_at(&self, t: Timestamp) -> Plan {
        let origin = *self.origin.get_or_init(|| t);
        let until = origin + SignedDuration::from_secs(1);
        Plan::Idle {
            until: (t < until).then_some(until),
        }
    }
}

/// The PCM is open only while a window is open: outside one the recorder asks the
/// planner before it opens the microphone, so not one period is read (it used to open
/// it, read a period, ask, and throw the period away).
#[test]
fn outside_a_window_the_microphone_is_never_read() {
    input("idle8k", &[0; 8000 * 2 * 4]);
    let tmp = tempfile::tempdir().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = acoupi::audio::spawn_recorder(
        config("idle8k", tmp.path(), 8000, 1, 16),
        Arc::new(NeverOpen {
            origin: OnceLock::new(),
        }),
        move |e| drop(tx.send(e)),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let progress = handle.progress.clone();
    handle.join().unwrap();
    assert_eq!(progress.frames(), 0, "audio was read outside every window");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert!(
        matches!(events.as_slice(), [RecorderEvent::ScheduleEnded]),
        "{events:?}"
    );
}

#[test]
fn device_lookup_errors_name_the_problem() {
    alsa_dir();
    assert_eq!(device::resolve_device("probe").unwrap(), "probe");
    assert_eq!(
        device::resolve_device("plughw:CARD=X,DEV=0").unwrap(),
        "plughw:CARD=X,DEV=0"
    );
    let e = device::resolve_device("UltraMic").unwrap_err().to_string();
    assert!(
        e.starts_with("no capture device matches \"UltraMic\"; cards: "),
        "{e}"
    );
    let e = device::resolve_device("1").unwrap_err().to_string();
    assert!(e.contains("is a card number"), "{e}");
    let e = device::resolve_device(" ").unwrap_err().to_string();
    assert!(e.starts_with("no microphone configured"), "{e}");
}

#[test]
fn out_of_range_rate_is_refused_with_the_valid_range() {
    alsa_dir();
    let e = device::open_capture(
        "probe",
        &CaptureParams {
            samplerate: 1000,
            channels: 1,
            format: None,
            bit_depth: 16,
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "sample rate 1000 Hz is out of range; use 8000..=384000"
    );
}

#[test]
fn probe_lists_rates_channels_and_formats() {
    input("probe", &[0; 64]);
    let info = device::probe_pcm("probe");
    let caps = info.capabilities.expect("probe succeeds");
    assert_eq!(caps.rates, device::STANDARD_RATES.to_vec());
    assert_eq!(caps.formats, SampleFormat::ALL.to_vec());
    assert_eq!(caps.channels_min, 1);
    let missing = device::probe_pcm("nosuchpcm");
    assert!(missing.capabilities.is_none());
    assert!(missing
        .probe_error
        .unwrap()
        .starts_with("opening PCM \"nosuchpcm\""));
}

/// The capture thread wakes once per few periods (issue 14: each wakeup has a fixed
/// cost), and the PCM agrees: its `avail_min` is the read size, so a wait ends when a
/// whole read is there.
#[test]
fn the_capture_reads_whole_periods_several_at_a_time() {
    input("probe", &[0; 64]);
    let params = CaptureParams {
        samplerate: 8000,
        channels: 1,
        format: Some(SampleFormat::S16_LE),
        bit_depth: 16,
    };
    let cap = device::open_capture("probe", &params).unwrap();
    assert_eq!((cap.period_frames, cap.buffer_frames), (800, 8000));
    assert_eq!(cap.read_frames, 1600);
    let swp = cap.pcm.sw_params_current().unwrap();
    assert_eq!(swp.get_avail_min().unwrap(), 1600);
}

#[test]
fn test_capture_reads_frames_and_measures_the_peak() {
    // A full-scale negative sample makes the peak exactly 0 dBFS.
    let mut raw: Vec<u8> = (0..1600i16).flat_map(|s| s.to_le_bytes()).collect();
    raw[100..102].copy_from_slice(&i16::MIN.to_le_bytes());
    input("testcap", &raw);
    let r = device::test_capture("testcap", 8000, 1, Some(SampleFormat::S16_LE), 0.1).unwrap();
    assert_eq!(r.frames, 800);
    assert_eq!(r.format, SampleFormat::S16_LE);
    assert_eq!(r.peak_dbfs, 0.0);
}

#[test]
fn devices_report_marks_the_configured_pcm() {
    input("probe", &[0; 64]);
    let r = acoupi::cli::devices::report(Some("probe"));
    let marked: Vec<_> = r.devices.iter().filter(|d| d.configured).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].info.pcm, "probe");
    let text = acoupi::cli::devices::render_text(&r);
    assert!(text.contains("* probe  [configured]"), "{text}");
    assert!(
        text.contains("formats: S16_LE, S24_LE, S24_3LE, S32_LE"),
        "{text}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["devices"][marked_index(&r)]["configured"], true);

    let r = acoupi::cli::devices::report(Some("UltraMic"));
    let text = acoupi::cli::devices::render_text(&r);
    assert!(
        text.contains("configured device \"UltraMic\" not usable: no capture device matches"),
        "{text}"
    );
}

fn marked_index(r: &acoupi::cli::devices::DevicesReport) -> usize {
    r.devices.iter().position(|d| d.configured).unwrap()
}
