//! Tests of [`Schedule`]: plans, slots across windows, DST, polar seasons, date ranges.

use super::*;
use crate::schedule::spec::Window;
use jiff::civil::date;

fn at(text: &str) -> Timestamp {
    text.parse().expect(text)
}

fn window(start: &str, end: &str) -> Window {
    Window {
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
    }
}

fn recording(duration: u32, interval: u32, windows: &[(&str, &str)]) -> Recording {
    Recording {
        duration,
        interval,
        schedule: windows.iter().map(|(s, e)| window(s, e)).collect(),
        start_date: None,
        end_date: None,
    }
}

fn schedule(recording: &Recording, tz: &str, location: Option<Location>) -> Schedule {
    Schedule::new(recording, TimeZone::get(tz).unwrap(), location).unwrap()
}

/// Walks the plans from `from` to `to` the way the capture thread does and returns the
/// files it would write, as `[max(t, start), end)`.
fn files(schedule: &Schedule, from: &str, to: &str) -> Vec<(Timestamp, Timestamp)> {
    let (mut t, to) = (at(from), at(to));
    let mut out = Vec::new();
    while t < to {
        match schedule.plan_at(t) {
            Plan::Record { start, end } => {
                assert!(start <= t && t < end, "{t}: record {start}..{end}");
                out.push((start.max(t), end));
                t = end;
            }
            Plan::Listen { until } => {
                assert!(until > t, "{t}: listen until {until}");
                t = until;
            }
            Plan::Idle { until: Some(until) } => {
                assert!(until > t, "{t}: idle until {until}");
                t = until;
            }
            Plan::Idle { until: None } => break,
        }
    }
    out
}

/// The plan at each instant.
fn check(schedule: &Schedule, expected: &[(&str, Plan)]) {
    for (t, plan) in expected {
        assert_eq!(schedule.plan_at(at(t)), *plan, "at {t}");
    }
}

fn record(start: &str, end: &str) -> Plan {
    Plan::Record {
        start: at(start),
        end: at(end),
    }
}

fn listen(until: &str) -> Plan {
    Plan::Listen { until: at(until) }
}

fn idle(until: &str) -> Plan {
    Plan::Idle {
        until: Some(at(until)),
    }
}

#[test]
fn plans_for_three_seconds_every_ten_inside_the_default_window() {
    // 06:00–22:30 Europe/London in July is 05:00Z–21:30Z.
    let s = schedule(
        &recording(3, 10, &[("06:00", "22:30")]),
        "Europe/London",
        None,
    );
    check(
        &s,
        &[
            ("2026-07-01T04:59:59Z", idle("2026-07-01T05:00:00Z")),
            (
                "2026-07-01T05:00:00Z",
                record("2026-07-01T05:00:00Z", "2026-07-01T05:00:03Z"),
            ),
            (
                "2026-07-01T05:00:02.9Z",
                record("2026-07-01T05:00:00Z", "2026-07-01T05:00:03Z"),
            ),
            ("2026-07-01T05:00:03Z", listen("2026-07-01T05:00:10Z")),
            ("2026-07-01T05:00:09.5Z", listen("2026-07-01T05:00:10Z")),
            (
                "2026-07-01T05:00:10Z",
                record("2026-07-01T05:00:10Z", "2026-07-01T05:00:13Z"),
            ),
            ("2026-07-01T12:34:56Z", listen("2026-07-01T12:35:00Z")),
            (
                "2026-07-01T21:29:50Z",
                record("2026-07-01T21:29:50Z", "2026-07-01T21:29:53Z"),
            ),
            // The last file has been written: nothing more until tomorrow's window.
            ("2026-07-01T21:29:53Z", idle("2026-07-02T05:00:00Z")),
            ("2026-07-01T21:30:00Z", idle("2026-07-02T05:00:00Z")),
            ("2026-07-02T03:00:00Z", idle("2026-07-02T05:00:00Z")),
        ],
    );
    let day = files(&s, "2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z");
    assert_eq!(day.len(), 5940); // 16.5 h at 360 files an hour
    assert!(day.iter().all(|(a, b)| b.as_second() - a.as_second() == 3));
}

#[test]
fn recorder_started_mid_slot_records_at_once() {
    let s = schedule(&recording(3, 10, &[]), "UTC", None);
    // Started 1.5 s into a slot: the file runs from now to the slot's end.
    check(
        &s,
        &[(
            "2026-01-01T08:00:41.5Z",
            record("2026-01-01T08:00:40Z", "2026-01-01T08:00:43Z"),
        )],
    );
    let got = files(&s, "2026-01-01T08:00:41.5Z", "2026-01-01T08:00:55Z");
    assert_eq!(
        got,
        vec![
            (at("2026-01-01T08:00:41.5Z"), at("2026-01-01T08:00:43Z")),
            (at("2026-01-01T08:00:50Z"), at("2026-01-01T08:00:53Z")),
        ]
    );
}

#[test]
fn slot_that_started_before_the_window_opened_is_not_recorded() {
    // The window opens at 06:00:05, between slot starts: the first file is at 06:00:10,
    // and the last is clipped to the window's end at 07:00:05.
    let s = schedule(&recording(10, 10, &[("06:00:05", "07:00:05")]), "UTC", None);
    check(
        &s,
        &[
            ("2026-01-01T06:00:06Z", listen("2026-01-01T06:00:10Z")),
            (
                "2026-01-01T07:00:00Z",
                record("2026-01-01T07:00:00Z", "2026-01-01T07:00:05Z"),
            ),
            ("2026-01-01T07:00:05Z", idle("2026-01-02T06:00:05Z")),
        ],
    );
}

#[test]
fn equal_interval_and_duration_record_gaplessly_across_a_window() {
    let s = schedule(
        &recording(60, 60, &[("22:00", "02:00"), ("01:00", "03:30")]),
        "Europe/London",
        None,
    );
    let got = files(&s, "2026-01-10T21:00:00Z", "2026-01-11T05:00:00Z");
    // 22:00 to 03:30 (merged overlapping windows) is 330 one-minute files.
    assert_eq!(got.len(), 330);
    assert_eq!(got[0].0, at("2026-01-10T22:00:00Z"));
    assert_eq!(got[329].1, at("2026-01-11T03:30:00Z"));
    for pair in got.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].0,
            "gap between {:?} and {:?}",
            pair[0], pair[1]
        );
    }
    // Each Record plan ends exactly where the next begins.
    let t = at("2026-01-10T23:59:00Z");
    let Plan::Record { end, .. } = s.plan_at(t) else {
        panic!("not recording at {t}")
    };
    assert_eq!(
        s.plan_at(end),
        record("2026-01-11T00:00:00Z", "2026-01-11T00:01:00Z")
    );
}

/// Every 600 s slot between `from` and `to` exactly once, in absolute time.
fn assert_every_slot_once(got: &[(Timestamp, Timestamp)], from: &str, to: &str) {
    let (from, to) = (at(from).as_second(), at(to).as_second());
    let want: Vec<i64> = (from..to).step_by(600).collect();
    let starts: Vec<i64> = got.iter().map(|f| f.0.as_second()).collect();
    assert_eq!(starts, want);
}

#[test]
fn dst_changes_neither_skip_nor_repeat_a_file() {
    let r = recording(300, 600, &[("00:00", "04:00")]);
    let s = schedule(&r, "Europe/London", None);
    // Spring forward 2026-03-29 01:00 GMT → 02:00 BST: 00:00 GMT to 04:00 BST is 3 hours.
    let got = files(&s, "2026-03-28T23:00:00Z", "2026-03-29T06:00:00Z");
    assert_eq!(got.len(), 18);
    assert_every_slot_once(&got, "2026-03-29T00:00:00Z", "2026-03-29T03:00:00Z");
    // Fall back 2026-10-25 02:00 BST → 01:00 GMT: 00:00 BST to 04:00 GMT is 5 hours.
    let got = files(&s, "2026-10-24T22:00:00Z", "2026-10-25T06:00:00Z");
    assert_eq!(got.len(), 30);
    assert_every_slot_once(&got, "2026-10-24T23:00:00Z", "2026-10-25T04:00:00Z");
    // Around the clock through both changes: one file every 600 s, none twice.
    let s = schedule(&recording(300, 600, &[]), "Europe/London", None);
    let got = files(&s, "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z");
    assert_every_slot_once(&got, "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z");
    let got = files(&s, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z");
    assert_every_slot_once(&got, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z");
}

#[test]
fn polar_day_and_night_windows_follow_the_documented_rule() {
    let longyearbyen = Some(Location {
        latitude: 78.22,
        longitude: 15.65,
    });
    let tz = "Arctic/Longyearbyen";
    let day_window = recording(60, 60, &[("civil_dawn", "civil_dusk")]);
    let night_window = recording(60, 60, &[("civil_dusk", "civil_dawn")]);
    let day_s = schedule(&day_window, tz, longyearbyen);
    let night_s = schedule(&night_window, tz, longyearbyen);

    // June: the sun never goes 6° below the horizon. Dawn→dusk covers every day
    // (consecutive days merge), dusk→dawn never opens.
    let june = "2026-06-21T10:00:00Z";
    let (open, close) = day_s.next_window(at(june)).unwrap();
    // Civil twilight never ends at 78.2 N while the sun's declination exceeds about 5.8°,
    // from late April to early September; the window is clipped to the days searched.
    assert!(open <= at(june), "{open}");
    assert!(
        close > at("2026-08-25T00:00:00Z") && close < at("2026-09-15T00:00:00Z"),
        "{close}"
    );
    assert_eq!(
        files(&day_s, "2026-06-21T00:00:00Z", "2026-06-22T00:00:00Z").len(),
        1440
    );
    assert!(matches!(night_s.plan_at(at(june)), Plan::Idle { .. }));
    assert!(files(&night_s, "2026-06-20T00:00:00Z", "2026-06-23T00:00:00Z").is_empty());
    // The dusk→dawn window reopens on the evening the continuous dawn→dusk window ends.
    let (reopen, _) = night_s.next_window(at(june)).unwrap();
    assert_eq!(reopen, close);

    // December: the sun never climbs to 6° below the horizon. Dusk→dawn records all day,
    // dawn→dusk never opens.
    let got = files(&night_s, "2026-12-21T00:00:00Z", "2026-12-22T00:00:00Z");
    assert_eq!(got.len(), 1440);
    assert!(files(&day_s, "2026-12-20T00:00:00Z", "2026-12-23T00:00:00Z").is_empty());
}

#[test]
fn date_range_limits_recording_to_its_local_days() {
    let mut r = recording(60, 600, &[("22:00", "02:00")]);
    r.start_date = Some(date(2026, 5, 10));
    r.end_date = Some(date(2026, 5, 11));
    let s = schedule(&r, "Europe/London", None);
    // Before the range: idle until the first window (22:00 BST on the 10th).
    assert_eq!(
        s.plan_at(at("2026-05-01T12:00:00Z")),
        idle("2026-05-10T21:00:00Z")
    );
    // The window of the last day runs past midnight into the 12th.
    let got = files(&s, "2026-05-01T00:00:00Z", "2026-05-20T00:00:00Z");
    assert_eq!(got.len(), 2 * 24);
    assert_eq!(got.last().unwrap().0, at("2026-05-12T00:50:00Z"));
    // After it: idle for ever.
    assert_eq!(
        s.plan_at(at("2026-05-12T02:00:00Z")),
        Plan::Idle { until: None }
    );
    assert_eq!(s.next_window(at("2026-05-12T02:00:00Z")), None);

    // An empty schedule with a date range records whole local days.
    let mut r = recording(600, 600, &[]);
    r.start_date = Some(date(2026, 5, 10));
    r.end_date = Some(date(2026, 5, 10));
    let s = schedule(&r, "Europe/London", None);
    assert_eq!(
        s.next_window(at("2026-05-01T00:00:00Z")),
        Some((at("2026-05-09T23:00:00Z"), at("2026-05-10T23:00:00Z")))
    );
}

#[test]
fn next_window_is_the_current_or_the_next_one() {
    let s = schedule(
        &recording(3, 10, &[("06:00", "22:30")]),
        "Europe/London",
        None,
    );
    let today = (at("2026-01-10T06:00:00Z"), at("2026-01-10T22:30:00Z"));
    assert_eq!(s.next_window(at("2026-01-10T12:00:00Z")), Some(today));
    assert_eq!(s.next_window(at("2026-01-10T03:00:00Z")), Some(today));
    assert_eq!(
        s.next_window(at("2026-01-10T22:30:00Z")),
        Some((at("2026-01-11T06:00:00Z"), at("2026-01-11T22:30:00Z")))
    );
}

#[test]
fn bad_recording_settings_are_refused_with_the_field_named() {
    let utc = || TimeZone::get("UTC").unwrap();
    let err = |r: Recording, loc: Option<Location>| {
        Schedule::new(&r, utc(), loc).unwrap_err().to_string()
    };
    assert!(err(recording(0, 10, &[]), None).contains("recording.duration is 0"));
    assert!(err(recording(11, 10, &[]), None).contains("longer than recording.interval"));
    let e = err(recording(3, 10, &[("06:00", "sunset")]), None);
    assert!(
        e.contains("recording.schedule[0].end") && e.contains("--latitude"),
        "{e}"
    );
    let e = err(
        recording(3, 10, &[]),
        Some(Location {
            latitude: 91.0,
            longitude: 0.0,
        }),
    );
    assert!(e.contains("out of range"), "{e}");
    let mut r = recording(3, 10, &[]);
    r.start_date = Some(date(2026, 2, 1));
    r.end_date = Some(date(2026, 1, 1));
    assert!(err(r, None).contains("after recording.end_date"));
}

/// The last answer given again while it holds (module docs, "Cost") is the answer the
/// windows give: walked the way the capture thread asks (increasing instants, a few a
/// second apart, with stream-time nanoseconds), across a DST change, a window crossing
/// midnight, the end of a date range and solar windows.
#[test]
fn an_answer_given_again_is_the_one_the_windows_give() {
    let london = Some(Location {
        latitude: 51.5,
        longitude: -0.12,
    });
    let mut ranged = recording(60, 600, &[("22:00", "02:00")]);
    ranged.end_date = Some(date(2026, 3, 29));
    let cases = [
        (recording(3, 10, &[("06:00", "22:30")]), None),
        (ranged, None),
        (recording(60, 60, &[("sunset-30m", "sunrise+1h")]), london),
        (recording(20, 30, &[]), None),
    ];
    for (r, loc) in cases {
        let s = schedule(&r, "Europe/London", loc);
        let mut t = at("2026-03-28T20:00:00.123456789Z");
        let end = at("2026-03-30T08:00:00Z");
        let mut asked = 0;
        while t < end {
            assert_eq!(s.plan_at(t), s.plan_uncached(t), "at {t} for {r:?}");
            t += jiff::SignedDuration::from_nanos(17_300_000_007);
            asked += 1;
        }
        assert!(asked > 7000);
    }
}
