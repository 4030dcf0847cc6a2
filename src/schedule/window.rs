//! One daily window resolved, for one local date, into an absolute `[start, end)` interval,
//! and the merging of such intervals.
//!
//! A window that crosses midnight is ONE interval: it starts on its date and ends on the
//! next (upstream split it into `[start, 23:59:59] ∪ [00:00, end]`, which made every
//! daytime window record 24 hours). When a window crosses midnight:
//! - evening event → morning event (`sunset → sunrise`, `civil_dusk → civil_dawn`): always;
//! - morning event → evening event (`sunrise → sunset`): never (an offset that puts the end
//!   before the start makes the window empty that day);
//! - anything else (clock times, mixed bounds, same-kind events): when the end resolved on
//!   the window's date is not after the start. Equal clock times (`06:00 → 06:00`) are a
//!   full 24-hour window.
//!
//! Clock bounds are wall-clock times in the configured zone, resolved with jiff's
//! *compatible* disambiguation: a time skipped by a spring-forward change resolves to the
//! same distance after the change (01:30 on the UK's spring-forward day is 02:30 BST), and
//! a time repeated by a fall-back change resolves to its first occurrence. Windows are
//! absolute intervals, so neither change creates duplicate or missing files.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::solar::{event_time, start_of_day, Location};
use super::spec::{Bound, Window};

/// An absolute interval `[start, end)`.
pub type Interval = (Timestamp, Timestamp);

/// The instant `bound` stands for on the local day `date`. `None` for a solar bound
/// without a location, or a date outside the supported range.
pub fn resolve_bound(
    bound: Bound,
    date: Date,
    tz: &TimeZone,
    location: Option<Location>,
) -> Option<Timestamp> {
    match bound {
        Bound::Clock { seconds } if seconds >= 86_400 => {
            start_of_day(date.checked_add(1.day()).ok()?, tz)
        }
        Bound::Clock { seconds } => {
            let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
            let dt = date.at(
                i8::try_from(h).ok()?,
                i8::try_from(m).ok()?,
                i8::try_from(s).ok()?,
                0,
            );
            tz.to_timestamp(dt).ok()
        }
        Bound::Solar { event, offset_s } => {
            let t = event_time(location?, date, tz, event)?;
            Timestamp::from_second(t.as_second().checked_add(i64::from(offset_s))?).ok()
        }
    }
}

/// The window of the local day `date` as an absolute interval; `None` when it is empty
/// that day (or cannot be resolved).
pub fn resolve_window(
    window: &Window,
    date: Date,
    tz: &TimeZone,
    location: Option<Location>,
) -> Option<Interval> {
    let start = resolve_bound(window.start, date, tz, location)?;
    let same_day_end = resolve_bound(window.end, date, tz, location)?;
    let crosses = match (window.start, window.end) {
        (Bound::Solar { event: a, .. }, Bound::Solar { event: b, .. })
            if a.is_morning() != b.is_morning() =>
        {
            !a.is_morning()
        }
        _ => same_day_end <= start,
    };
    let end = if crosses {
        resolve_bound(window.end, date.checked_add(1.day()).ok()?, tz, location)?
    } else {
        same_day_end
    };
    (start < end).then_some((start, end))
}

/// Sorts intervals and joins those that overlap or touch, so back-to-back windows (and the
/// days of an around-the-clock schedule) become one continuous interval.
pub fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort();
    let mut out: Vec<Interval> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(text: &str) -> Timestamp {
        text.parse().expect(text)
    }

    /// `start`/`end` in configuration text; `expected` as UTC instants or `None` for empty.
    fn check(
        tz: &str,
        location: Option<Location>,
        (start, end): (&str, &str),
        day: Date,
        expected: Option<(&str, &str)>,
    ) {
        let tz = TimeZone::get(tz).unwrap();
        let window = Window {
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
        };
        let got = resolve_window(&window, day, &tz, location);
        assert_eq!(
            got,
            expected.map(|(s, e)| (at(s), at(e))),
            "{start}→{end} on {day}"
        );
    }

    #[test]
    fn window_crossing_midnight_is_one_interval() {
        check(
            "Europe/London",
            None,
            ("22:00", "04:00"),
            date(2026, 1, 10),
            Some(("2026-01-10T22:00Z", "2026-01-11T04:00Z")),
        );
        check(
            "Europe/London",
            None,
            ("06:00", "06:00"),
            date(2026, 1, 10),
            Some(("2026-01-10T06:00Z", "2026-01-11T06:00Z")),
        );
        check(
            "Europe/London",
            None,
            ("00:00", "24:00"),
            date(2026, 1, 10),
            Some(("2026-01-10T00:00Z", "2026-01-11T00:00Z")),
        );
    }

    /// Upstream defect 1: `[start, 23:59:59] ∪ [00:00, end]` made 06:00–22:30 cover 24 h.
    #[test]
    fn issue_upstream_1_daytime_window_does_not_cover_the_night() {
        check(
            "Europe/London",
            None,
            ("06:00", "22:30"),
            date(2026, 7, 1),
            Some(("2026-07-01T05:00Z", "2026-07-01T21:30Z")),
        );
    }

    #[test]
    fn solar_windows_cross_midnight_by_event_kind() {
        let london = Some(Location {
            latitude: 51.5074,
            longitude: -0.1278,
        });
        let tz = TimeZone::get("Europe/London").unwrap();
        let day = date(2026, 6, 21);
        let w = |s: &str, e: &str| Window {
            start: s.parse().unwrap(),
            end: e.parse().unwrap(),
        };
        let night = resolve_window(&w("sunset", "sunrise"), day, &tz, london).unwrap();
        assert_eq!(tz.to_datetime(night.0).date(), day);
        assert_eq!(tz.to_datetime(night.1).date(), date(2026, 6, 22));
        let hours = (night.1.as_second() - night.0.as_second()) / 3600;
        assert!((7..9).contains(&hours), "short night {hours} h");

        let dawn_chorus = resolve_window(&w("sunrise-1h", "sunrise+2h"), day, &tz, london).unwrap();
        assert_eq!(
            dawn_chorus.1.as_second() - dawn_chorus.0.as_second(),
            3 * 3600
        );

        // An offset that inverts a morning→evening window empties it for that day.
        assert_eq!(
            resolve_window(&w("sunrise+12h", "sunset-12h"), day, &tz, london),
            None
        );
        // Without a location a solar bound cannot resolve.
        assert_eq!(
            resolve_window(&w("sunset", "sunrise"), day, &tz, None),
            None
        );
    }

    #[test]
    fn spring_forward_gap_resolves_to_the_same_distance_after_the_change() {
        // UK clocks go 01:00 GMT → 02:00 BST on 2026-03-29: 01:30 does not exist and
        // resolves to 02:30 BST (01:30Z), jiff's compatible disambiguation.
        check(
            "Europe/London",
            None,
            ("01:30", "04:00"),
            date(2026, 3, 29),
            Some(("2026-03-29T01:30Z", "2026-03-29T03:00Z")),
        );
        // US clocks go 02:00 EST → 03:00 EDT on 2026-03-08: 02:30 resolves to 03:30 EDT.
        check(
            "America/New_York",
            None,
            ("02:30", "05:00"),
            date(2026, 3, 8),
            Some(("2026-03-08T07:30Z", "2026-03-08T09:00Z")),
        );
        // Fall back (2026-10-25, 02:00 BST → 01:00 GMT): 01:30 is its first occurrence.
        check(
            "Europe/London",
            None,
            ("01:30", "03:00"),
            date(2026, 10, 25),
            Some(("2026-10-25T00:30Z", "2026-10-25T03:00Z")),
        );
    }

    #[test]
    fn overlapping_and_touching_intervals_merge() {
        let i = |s: &str, e: &str| (at(s), at(e));
        assert_eq!(
            merge(vec![
                i("2026-01-01T10:00Z", "2026-01-01T12:00Z"),
                i("2026-01-01T05:00Z", "2026-01-01T07:00Z"),
                i("2026-01-01T11:00Z", "2026-01-01T13:00Z"),
                i("2026-01-01T13:00Z", "2026-01-01T14:00Z"),
            ]),
            vec![
                i("2026-01-01T05:00Z", "2026-01-01T07:00Z"),
                i("2026-01-01T10:00Z", "2026-01-01T14:00Z"),
            ]
        );
    }
}
