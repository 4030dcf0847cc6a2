//! Saving filters (`recording_saving`): which finished recordings the management task keeps.
//!
//! A recording is kept when any enabled filter keeps it (OR); with no filter enabled, or
//! no `recording_saving` at all, every recording is kept (upstream's rule). All times are
//! local to the configured zone and solar events use the deployment's real location
//! (upstream compared in UTC and computed dawn and dusk at Greenwich).
//!
//! | filter | enabled when | keeps a recording starting at t when |
//! |---|---|---|
//! | time window | `starttime` and `endtime` set | t in `[starttime, endtime)`, wrap-aware, bounds may be solar |
//! | frequency | `frequency_duration` and `frequency_interval` > 0 | the local time of day, in seconds since midnight, modulo the interval is below the duration |
//! | before dawn/dusk | `before_dawndusk_duration` > 0 | `event − d ≤ t ≤ event` for civil dawn or dusk |
//! | after dawn/dusk | `after_dawndusk_duration` > 0 | `event ≤ t ≤ event + d` for civil dawn or dusk |
//!
//! On a day civil dawn or dusk does not happen (polar summer or winter) the dawn/dusk
//! filters keep nothing for that event. The frequency filter uses the wall-clock time of
//! day, so its minutes are the ones a person reads on a clock, also on DST days.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::duty::check_location;
use super::solar::{occurrence, Location, Occurrence};
use super::spec::{Bound, RecordingSaving, SolarEvent, Window};
use super::window::resolve_window;
use super::ScheduleError;

/// The enabled saving filters, ready to judge recordings by their start time.
#[derive(Debug, Clone)]
pub struct SavingFilters {
    tz: TimeZone,
    location: Option<Location>,
    time_window: Option<Window>,
    /// `(duration, interval)` in seconds.
    frequency: Option<(i64, i64)>,
    /// Seconds before dawn or dusk.
    before: Option<i64>,
    /// Seconds after dawn or dusk.
    after: Option<i64>,
}

impl SavingFilters {
    /// Builds the filters; `saving: None` keeps everything. Solar bounds and the dawn/dusk
    /// filters need `location`.
    pub fn new(
        saving: Option<&RecordingSaving>,
        tz: TimeZone,
        location: Option<Location>,
    ) -> Result<SavingFilters, ScheduleError> {
        check_location(location)?;
        let mut filters = SavingFilters {
            tz,
            location,
            time_window: None,
            frequency: None,
            before: None,
            after: None,
        };
        let Some(s) = saving else {
            return Ok(filters);
        };
        let missing = |field: &str, what: String| ScheduleError::MissingLocation {
            field: format!("recording_saving.{field}"),
            what,
        };
        if let (Some(start), Some(end)) = (s.starttime, s.endtime) {
            if location.is_none() {
                for (field, bound) in [("starttime", start), ("endtime", end)] {
                    if matches!(bound, Bound::Solar { .. }) {
                        return Err(missing(field, bound.to_string()));
                    }
                }
            }
            filters.time_window = Some(Window { start, end });
        }
        if s.frequency_duration > 0 && s.frequency_interval > 0 {
            filters.frequency = Some((
                i64::from(s.frequency_duration) * 60,
                i64::from(s.frequency_interval) * 60,
            ));
        }
        for (field, minutes, slot) in [
            (
                "before_dawndusk_duration",
                s.before_dawndusk_duration,
                &mut filters.before,
            ),
            (
                "after_dawndusk_duration",
                s.after_dawndusk_duration,
                &mut filters.after,
            ),
        ] {
            if minutes > 0 {
                if location.is_none() {
                    return Err(missing(field, "civil dawn and dusk".into()));
                }
                *slot = Some(i64::from(minutes) * 60);
            }
        }
        Ok(filters)
    }

    /// True when the recording that started at `start` is to be kept.
    pub fn keeps(&self, start: Timestamp) -> bool {
        let enabled = self.time_window.is_some()
            || self.frequency.is_some()
            || self.before.is_some()
            || self.after.is_some();
        !enabled
            || self.in_time_window(start)
            || self.in_frequency(start)
            || self.near_dawn_or_dusk(start)
    }

    fn in_time_window(&self, t: Timestamp) -> bool {
        let Some(window) = &self.time_window else {
            return false;
        };
        let today = self.tz.to_datetime(t).date();
        // Yesterday's window may still be open (it crosses midnight).
        [today.checked_sub(1.day()).ok(), Some(today)]
            .into_iter()
            .flatten()
            .filter_map(|day| resolve_window(window, day, &self.tz, self.location))
            .any(|(s, e)| s <= t && t < e)
    }

    fn in_frequency(&self, t: Timestamp) -> bool {
        let Some((duration, interval)) = self.frequency else {
            return false;
        };
        let time = self.tz.to_datetime(t).time();
        let seconds = i64::from(time.hour()) * 3600
            + i64::from(time.minute()) * 60
            + i64::from(time.second());
        seconds % interval < duration
    }

    fn near_dawn_or_dusk(&self, t: Timestamp) -> bool {
        let Some(location) = self.location else {
            return false;
        };
        if self.before.is_none() && self.after.is_none() {
            return false;
        }
        let today = self.tz.to_datetime(t).date();
        let days = [
            today.checked_sub(1.day()).ok(),
            Some(today),
            today.checked_add(1.day()).ok(),
        ];
        let secs = t.as_second();
        days.into_iter().flatten().any(|day| {
            [SolarEvent::CivilDawn, SolarEvent::CivilDusk]
                .into_iter()
                .any(|event| match occurrence(location, day, &self.tz, event) {
                    Some(Occurrence::At(e)) => {
                        let e = e.as_second();
                        self.before.is_some_and(|d| e - d <= secs && secs <= e)
                            || self.after.is_some_and(|d| e <= secs && secs <= e + d)
                    }
                    _ => false,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> RecordingSaving {
        RecordingSaving {
            starttime: None,
            endtime: None,
            before_dawndusk_duration: 0,
            after_dawndusk_duration: 0,
            frequency_duration: 0,
            frequency_interval: 0,
        }
    }

    fn filters(saving: RecordingSaving, tz: &str, location: Option<Location>) -> SavingFilters {
        SavingFilters::new(Some(&saving), TimeZone::get(tz).unwrap(), location).unwrap()
    }

    /// Each `(instant, kept?)` pair.
    fn check(filters: &SavingFilters, cases: &[(&str, bool)]) {
        for (t, kept) in cases {
            let t: Timestamp = t.parse().unwrap();
            assert_eq!(filters.keeps(t), *kept, "at {t}");
        }
    }

    #[test]
    fn time_window_is_read_in_local_time_and_wraps_midnight() {
        let mut s = none();
        s.starttime = Some("18:00".parse().unwrap());
        s.endtime = Some("20:00".parse().unwrap());
        // July in London is BST: 18:00–20:00 local is 17:00Z–19:00Z (upstream used UTC).
        check(
            &filters(s, "Europe/London", None),
            &[
                ("2026-07-01T16:59:59Z", false),
                ("2026-07-01T17:00:00Z", true),
                ("2026-07-01T18:59:59Z", true),
                ("2026-07-01T19:00:00Z", false),
                ("2026-07-01T19:30:00Z", false),
            ],
        );
        let mut s = none();
        s.starttime = Some("22:00".parse().unwrap());
        s.endtime = Some("02:00".parse().unwrap());
        check(
            &filters(s, "Europe/London", None),
            &[
                ("2026-01-10T21:59:00Z", false),
                ("2026-01-10T23:30:00Z", true),
                ("2026-01-11T01:59:00Z", true),
                ("2026-01-11T02:00:00Z", false),
                ("2026-01-11T12:00:00Z", false),
            ],
        );
    }

    #[test]
    fn frequency_keeps_the_first_minutes_of_each_period_from_local_midnight() {
        let mut s = none();
        s.frequency_duration = 5;
        s.frequency_interval = 30;
        // Kathmandu is UTC+05:45: local 00:00 is 18:15Z, so minutes 0–4 and 30–34 of each
        // local hour are :15–:19 and :45–:49 UTC.
        check(
            &filters(s, "Asia/Kathmandu", None),
            &[
                ("2026-01-10T18:15:00Z", true),
                ("2026-01-10T18:19:59Z", true),
                ("2026-01-10T18:20:00Z", false),
                ("2026-01-10T18:44:59Z", false),
                ("2026-01-10T18:45:00Z", true),
                ("2026-01-10T19:00:00Z", false),
            ],
        );
    }

    #[test]
    fn dawn_and_dusk_filters_use_the_real_location() {
        // USNO, Reykjavik 64.15 N 21.94 W, 2026-03-20: End Civil Twilight 20:31 UTC
        // (Atlantic/Reykjavik is UTC all year). Instants stay 4 min clear of the edges.
        let reykjavik = Some(Location {
            latitude: 64.15,
            longitude: -21.94,
        });
        let mut s = none();
        s.before_dawndusk_duration = 10;
        let before = filters(s, "Atlantic/Reykjavik", reykjavik);
        let mut s = none();
        s.after_dawndusk_duration = 10;
        let after = filters(s, "Atlantic/Reykjavik", reykjavik);
        check(
            &before,
            &[
                ("2026-03-20T20:16:00Z", false),
                ("2026-03-20T20:26:00Z", true),
                ("2026-03-20T20:36:00Z", false),
                ("2026-03-20T12:00:00Z", false),
            ],
        );
        check(
            &after,
            &[
                ("2026-03-20T20:26:00Z", false),
                ("2026-03-20T20:36:00Z", true),
                ("2026-03-20T20:46:00Z", false),
            ],
        );
        // Upstream computed dusk at Greenwich, about 18:20 UTC that day: not kept here.
        check(&after, &[("2026-03-20T18:25:00Z", false)]);

        // Polar summer: no civil dusk, so the filter keeps nothing around it.
        let longyearbyen = Some(Location {
            latitude: 78.22,
            longitude: 15.65,
        });
        let mut s = none();
        s.before_dawndusk_duration = 30;
        s.after_dawndusk_duration = 30;
        let polar = filters(s, "Arctic/Longyearbyen", longyearbyen);
        for hour in 0..24 {
            let t = format!("2026-06-21T{hour:02}:00:00Z");
            check(&polar, &[(t.as_str(), false)]);
        }
    }

    #[test]
    fn no_enabled_filter_keeps_everything_and_location_is_required_for_solar_filters() {
        let utc = || TimeZone::get("UTC").unwrap();
        check(
            &filters(none(), "UTC", None),
            &[("2026-01-01T03:07:00Z", true)],
        );
        let all = SavingFilters::new(None, utc(), None).unwrap();
        check(&all, &[("2026-01-01T03:07:00Z", true)]);

        let e = SavingFilters::new(Some(&RecordingSaving::default()), utc(), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("recording_saving.before_dawndusk_duration"),
            "{e}"
        );
        assert!(e.contains("--latitude"), "{e}");
        let mut s = none();
        s.starttime = Some("sunset".parse().unwrap());
        s.endtime = Some("23:00".parse().unwrap());
        let e = SavingFilters::new(Some(&s), utc(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("recording_saving.starttime uses sunset"), "{e}");
    }

    #[test]
    fn filters_are_or_combined() {
        let mut s = none();
        s.starttime = Some("18:00".parse().unwrap());
        s.endtime = Some("20:00".parse().unwrap());
        s.frequency_duration = 5;
        s.frequency_interval = 30;
        check(
            &filters(s, "UTC", None),
            &[
                ("2026-01-10T18:17:00Z", true),  // window only
                ("2026-01-10T03:02:00Z", true),  // frequency only
                ("2026-01-10T03:17:00Z", false), // neither
            ],
        );
    }
}
