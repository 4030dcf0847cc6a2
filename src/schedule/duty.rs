//! [`Schedule`]: the configured windows, date range and duty cycle, answering "what should
//! the recorder do at instant t" ([`Planner::plan_at`]) and "when is the next window"
//! ([`Schedule::next_window`]).
//!
//! # Duty cycle
//!
//! File slots are `[k·interval, k·interval + duration)` in Unix seconds, aligned to the
//! epoch: interval 10 gives files at :00, :10, … and, because every UTC offset in use is a
//! whole number of quarter hours, the same local alignment for intervals dividing 900 s.
//! A slot exists only if its start lies inside a window; its end is clipped to the window's
//! end. Slots are absolute, so DST changes neither skip nor repeat a file. With
//! `interval == duration` consecutive slots touch, and the capture thread records gaplessly.
//!
//! A recorder started in the middle of a slot gets `Record { start: slot start, end }` and
//! starts its file at once, at `max(t, start)`.
//!
//! Windows of every local date in `[start_date, end_date]` count (each window belongs to the
//! date it starts on); an empty window list records around the clock. Overlapping or
//! touching windows are one window.
//!
//! # Cost
//!
//! The capture thread asks [`Planner::plan_at`] at every read, and an answer costs the
//! resolution of five days of windows (time-zone arithmetic, solar events). Every answer
//! at `t` holds for every later instant before the end it names (a file's end, the next
//! file, the next window), so the last one is kept and given again while it holds.

use std::sync::Mutex;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::plan::{Plan, Planner};
use super::solar::{start_of_day, Location};
use super::spec::{Bound, Recording, Window};
use super::window::{merge, resolve_window, Interval};
use super::ScheduleError;

/// How far [`Schedule::next_window`] looks ahead, in days.
const HORIZON_DAYS: i64 = 400;

/// The recording schedule in absolute time for one time zone and place.
#[derive(Debug)]
pub struct Schedule {
    windows: Vec<Window>,
    tz: TimeZone,
    location: Option<Location>,
    duration: i64,
    interval: i64,
    start_date: Option<Date>,
    end_date: Option<Date>,
    /// The last answer of [`Planner::plan_at`] and the instants it holds for (see the
    /// module's "Cost"). A `Mutex`: the planner is shared with the capture thread.
    last: Mutex<Option<Held>>,
}

/// A plan and the span `[from, until)` over which [`Schedule::plan_at`] gives it.
#[derive(Debug, Clone, Copy)]
struct Held {
    from: Timestamp,
    until: Timestamp,
    plan: Plan,
}

impl Clone for Schedule {
    fn clone(&self) -> Schedule {
        Schedule {
            windows: self.windows.clone(),
            tz: self.tz.clone(),
            location: self.location,
            duration: self.duration,
            interval: self.interval,
            start_date: self.start_date,
            end_date: self.end_date,
            last: Mutex::new(None),
        }
    }
}

impl Schedule {
    /// Checks `recording` and builds the schedule. Solar bounds need `location`.
    pub fn new(
        recording: &Recording,
        tz: TimeZone,
        location: Option<Location>,
    ) -> Result<Schedule, ScheduleError> {
        if recording.duration == 0 {
            return Err(ScheduleError::ZeroDuration);
        }
        if recording.duration > recording.interval {
            return Err(ScheduleError::DurationExceedsInterval {
                duration: recording.duration,
                interval: recording.interval,
            });
        }
        if let (Some(start), Some(end)) = (recording.start_date, recording.end_date) {
            if start > end {
                return Err(ScheduleError::DateRange { start, end });
            }
        }
        check_location(location)?;
        if location.is_none() {
            for (i, w) in recording.schedule.iter().enumerate() {
                for (name, bound) in [("start", w.start), ("end", w.end)] {
                    if matches!(bound, Bound::Solar { .. }) {
                        return Err(ScheduleError::MissingLocation {
                            field: format!("recording.schedule[{i}].{name}"),
                            what: bound.to_string(),
                        });
                    }
                }
            }
        }
        Ok(Schedule {
            windows: recording.schedule.clone(),
            tz,
            location,
            duration: i64::from(recording.duration),
            interval: i64::from(recording.interval),
            start_date: recording.start_date,
            end_date: recording.end_date,
            last: Mutex::new(None),
        })
    }

    /// The time zone local times are read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The window containing `t`, or else the next one to open, looking at most about 400
    /// days ahead. For around-the-clock schedules the returned bounds are clipped to the
    /// span searched.
    pub fn next_window(&self, t: Timestamp) -> Option<Interval> {
        let first = self.local_date(t).checked_sub(2.days()).ok()?;
        // Most answers lie within a few days; only a long gap (date range, polar season)
        // needs the whole horizon. A window near the edge of the short search may continue
        // into days it did not resolve, so it is only trusted well inside that span.
        let short = 10;
        let trusted_until = start_of_day(first.checked_add((short - 2).days()).ok()?, &self.tz)?;
        let near = self.intervals(first, short);
        if let Some(&w) = near.iter().find(|w| w.1 > t) {
            if w.1 < trusted_until {
                return Some(w);
            }
        }
        self.intervals(first, HORIZON_DAYS + 2)
            .into_iter()
            .find(|w| w.1 > t)
    }

    fn local_date(&self, t: Timestamp) -> Date {
        self.tz.to_datetime(t).date()
    }

    fn in_range(&self, day: Date) -> bool {
        self.start_date.is_none_or(|s| day >= s) && self.end_date.is_none_or(|e| day <= e)
    }

    /// The merged windows of the `days` local dates from `first`.
    fn intervals(&self, first: Date, days: i64) -> Vec<Interval> {
        let mut out = Vec::new();
        let mut day = first;
        for _ in 0..days {
            if self.in_range(day) {
                if self.windows.is_empty() {
                    let next = day.checked_add(1.day()).ok();
                    if let (Some(s), Some(e)) = (
                        start_of_day(day, &self.tz),
                        next.and_then(|n| start_of_day(n, &self.tz)),
                    ) {
                        out.push((s, e));
                    }
                }
                for w in &self.windows {
                    out.extend(resolve_window(w, day, &self.tz, self.location));
                }
            }
            match day.checked_add(1.day()) {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        merge(out)
    }

    /// The plan inside the window `[open, close)` that contains `t`.
    fn duty(&self, t: Timestamp, (open, close): Interval) -> Plan {
        let slot = t.as_second().div_euclid(self.interval) * self.interval;
        let at = |s: i64| Timestamp::from_second(s).ok();
        let (Some(start), Some(end), Some(next)) =
            (at(slot), at(slot + self.duration), at(slot + self.interval))
        else {
            return Plan::Idle { until: None };
        };
        if start >= open && t < end {
            return Plan::Record {
                start,
                end: end.min(close),
            };
        }
        if next < close {
            return Plan::Listen { until: next };
        }
        // No further file starts before this window closes.
        Plan::Idle {
            until: self.next_window(close).map(|w| w.0),
        }
    }
}

impl Planner for Schedule {
    fn plan_at(&self, t: Timestamp) -> Plan {
        // A poisoned lock only ever holds a whole answer (it is written in one statement).
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = *last {
            if h.from <= t && t < h.until {
                return h.plan;
            }
        }
        let plan = self.plan_uncached(t);
        let until = match plan {
            Plan::Record { end, .. } => Some(end),
            Plan::Listen { until } => Some(until),
            Plan::Idle { until } => until,
        };
        *last = until.map(|until| Held {
            from: t,
            until,
            plan,
        });
        plan
    }
}

impl Schedule {
    /// [`Planner::plan_at`] worked out from the windows, without the last answer.
    fn plan_uncached(&self, t: Timestamp) -> Plan {
        let around = self
            .local_date(t)
            .checked_sub(2.days())
            .ok()
            .map(|first| self.intervals(first, 5))
            .unwrap_or_default();
        match around.into_iter().find(|w| w.0 <= t && t < w.1) {
            Some(window) => self.duty(t, window),
            None => Plan::Idle {
                until: self.next_window(t).map(|w| w.0),
            },
        }
    }
}

pub(crate) fn check_location(location: Option<Location>) -> Result<(), ScheduleError> {
    match location {
        Some(l) if !l.is_valid() => Err(ScheduleError::InvalidLocation {
            latitude: l.latitude,
            longitude: l.longitude,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
