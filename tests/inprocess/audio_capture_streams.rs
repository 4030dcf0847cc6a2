//! The capture stream across windows and restarts, through the real alsa-lib (the same
//! `file` plugin PCMs and helpers as `audio_capture`): the PCM closes while idle and a
//! new stream opens for the next window, and a capture started after another (a reload)
//! names no file before the audio the other kept ends.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use acoupi::audio::RecorderConfig;
use acoupi::schedule::plan::{Plan, Planner};
use jiff::{SignedDuration, Timestamp};

use crate::audio_capture::{config, counter_input, finished, record, samples_i32, Origin, Slots};

/// Record 0.5 s, go idle for a moment, record 0.5 s in a new stream, then end.
struct TwoWindows {
    phase: std::sync::Mutex<(u8, Origin)>,
}

impl Planner for TwoWindows {
    fn plan_at(&self, t: Timestamp) -> Plan {
        let mut p = self.phase.lock().unwrap();
        let half = SignedDuration::from_millis(500);
        // Phases: 0 first window, 1 idle, 2 second window (each window's first stream
        // question sets its origin), 3 done.
        if p.0 == 1 {
            *p = (2, Origin::default());
        }
        let Some(origin) = p.1.at(t) else {
            return Plan::Record {
                start: t,
                end: t + half,
            };
        };
        if t < origin + half && p.0 != 3 {
            return Plan::Record {
                start: origin,
                end: origin + half,
            };
        }
        if p.0 == 0 {
            *p = (1, Origin::default());
            return Plan::Idle {
                until: Some(Timestamp::now() + SignedDuration::from_millis(20)),
            };
        }
        p.0 = 3;
        Plan::Idle { until: None }
    }
}

#[test]
fn pcm_is_closed_while_idle_and_reopened_for_the_next_window() {
    let counter = counter_input("reopen8k", 8000);
    let tmp = tempfile::tempdir().unwrap();
    let events = record(
        config("reopen8k", tmp.path(), 8000, 1, 16),
        Arc::new(TwoWindows {
            phase: std::sync::Mutex::new((0, Origin::default())),
        }),
        Arc::new(AtomicBool::new(false)),
    );
    let files = finished(&events);
    assert_eq!(files.len(), 2, "events: {events:?}");
    // The file plugin replays its input from the start on every open: both files
    // beginning at sample 0 proves the PCM was closed and opened again.
    let want: Vec<i32> = counter[..4000].iter().map(|&v| i32::from(v)).collect();
    for f in &files {
        assert_eq!(samples_i32(&f.path), want);
    }
}

/// A capture started after another (a reload) names no file before the audio the other
/// kept ends, unless that end is so far ahead that the clock must have stepped back.
#[test]
fn a_restarted_capture_starts_after_the_audio_kept_before_it() {
    let rate = 8000;
    counter_input("keptuntil", rate as usize);
    let first_file = |kept_until: Timestamp| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = RecorderConfig {
            kept_until: Some(kept_until),
            ..config("keptuntil", tmp.path(), rate, 1, 16)
        };
        let events = record(
            cfg,
            Arc::new(Slots::new(500, 500, 1)),
            Arc::new(AtomicBool::new(false)),
        );
        let files = finished(&events);
        assert_eq!(files.len(), 1, "events: {events:?}");
        files[0].start
    };
    // Ahead by a little: a stream that ran ahead of the clock. The next one follows it.
    let ahead = Timestamp::now() + SignedDuration::from_millis(1500);
    assert_eq!(first_file(ahead), ahead);
    // Ahead by a minute: the clock stepped back. Files are named by the clock again.
    let stepped = Timestamp::now() + SignedDuration::from_secs(60);
    let start = first_file(stepped);
    assert!(
        start <= Timestamp::now(),
        "{start} follows a kept end the clock left behind"
    );
}
