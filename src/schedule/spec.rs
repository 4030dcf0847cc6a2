//! The schedule vocabulary as it appears in the configuration: window bounds that are
//! either a clock time or a solar event with an offset.
//!
//! These types are pure data with a text form (`"06:00"`, `"sunrise"`, `"civil_dusk-30m"`,
//! `"sunset+1h30m"`). They parse and print, nothing more: turning them into instants for a
//! given day and place is the job of the rest of the `schedule` module. The configuration's
//! `recording` and `recording_saving` sections ([`Recording`], [`RecordingSaving`]) are
//! declared here too, with their defaults: the schedule owns its input and
//! `config::schema` refers to it, never the other way round.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A solar event whose time depends on the date and the deployment's location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SolarEvent {
    /// Upper limb of the sun on the horizon, morning (with standard refraction).
    Sunrise,
    /// Upper limb of the sun on the horizon, evening.
    Sunset,
    /// Sun 6° below the horizon, morning.
    CivilDawn,
    /// Sun 6° below the horizon, evening.
    CivilDusk,
    /// Sun 12° below the horizon, morning.
    NauticalDawn,
    /// Sun 12° below the horizon, evening.
    NauticalDusk,
    /// Sun 18° below the horizon, morning.
    AstronomicalDawn,
    /// Sun 18° below the horizon, evening.
    AstronomicalDusk,
}

impl SolarEvent {
    /// Every event with its configuration name, in the order shown to users.
    pub const ALL: [(SolarEvent, &'static str); 8] = [
        (SolarEvent::Sunrise, "sunrise"),
        (SolarEvent::Sunset, "sunset"),
        (SolarEvent::CivilDawn, "civil_dawn"),
        (SolarEvent::CivilDusk, "civil_dusk"),
        (SolarEvent::NauticalDawn, "nautical_dawn"),
        (SolarEvent::NauticalDusk, "nautical_dusk"),
        (SolarEvent::AstronomicalDawn, "astronomical_dawn"),
        (SolarEvent::AstronomicalDusk, "astronomical_dusk"),
    ];

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, n)| *n)
            .unwrap_or("sunrise") // unreachable: ALL lists every variant
    }

    /// True for the morning events (sunrise and the dawns).
    pub fn is_morning(self) -> bool {
        matches!(
            self,
            SolarEvent::Sunrise
                | SolarEvent::CivilDawn
                | SolarEvent::NauticalDawn
                | SolarEvent::AstronomicalDawn
        )
    }
}

/// One end of a daily recording window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bound {
    /// A local clock time in the configured time zone, as seconds after midnight (0..86400).
    Clock {
        /// Seconds after local midnight, below 86400.
        seconds: u32,
    },
    /// A solar event shifted by a signed offset in seconds.
    Solar {
        /// The event at the deployment's position, computed for each day.
        event: SolarEvent,
        /// Seconds after the event (negative: before it).
        offset_s: i32,
    },
}

/// A daily window `[start, end)`; when `end` falls before `start` the window crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// When recording starts each day.
    pub start: Bound,
    /// When recording ends (the window is open up to, not including, this time).
    pub end: Bound,
}

/// The recording schedule. `duration`/`interval` are upstream's; `schedule` replaces
/// upstream's single `schedule_start`/`schedule_end` pair with a list of windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    /// Length of each file in seconds.
    pub duration: u32,
    /// Seconds from the start of one file to the start of the next, aligned to the wall
    /// clock (interval 10 → files start at :00, :10, …). Equal to `duration` → gapless.
    pub interval: u32,
    /// Daily windows in which recording happens; empty means around the clock.
    pub schedule: Vec<Window>,
    /// Optional first day of recording (YYYY-MM-DD, in `timezone`).
    pub start_date: Option<jiff::civil::Date>,
    /// Optional last day of recording (inclusive).
    pub end_date: Option<jiff::civil::Date>,
}

/// Saving filters (upstream `recording_saving`). A recording is kept when any enabled
/// filter keeps it. Times are local to `timezone` (upstream compares in UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSaving {
    /// Keep recordings that start inside `[starttime, endtime)`; `None` disables.
    pub starttime: Option<Bound>,
    /// End of the kept time window.
    pub endtime: Option<Bound>,
    /// Keep recordings up to this many minutes before dawn or dusk (0 disables).
    pub before_dawndusk_duration: u32,
    /// Keep recordings up to this many minutes after dawn or dusk (0 disables).
    pub after_dawndusk_duration: u32,
    /// Keep the first `frequency_duration` minutes of every `frequency_interval` (either 0 disables).
    pub frequency_duration: u32,
    /// Period of the frequency filter, in minutes.
    pub frequency_interval: u32,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            duration: 3,
            interval: 10,
            schedule: vec![Window {
                start: Bound::Clock { seconds: 6 * 3600 },
                end: Bound::Clock {
                    seconds: 22 * 3600 + 30 * 60,
                },
            }],
            start_date: None,
            end_date: None,
        }
    }
}

impl Default for RecordingSaving {
    /// Upstream's defaults: 18:00–20:00, 10 min around dawn/dusk, 5 min every 30.
    fn default() -> Self {
        RecordingSaving {
            starttime: Some(Bound::Clock { seconds: 18 * 3600 }),
            endtime: Some(Bound::Clock { seconds: 20 * 3600 }),
            before_dawndusk_duration: 10,
            after_dawndusk_duration: 10,
            frequency_duration: 5,
            frequency_interval: 30,
        }
    }
}

/// Why a bound's text could not be read; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {text:?}: {reason}; use HH:MM[:SS] or an event such as sunrise, sunset, civil_dawn, civil_dusk, nautical_dawn, nautical_dusk, astronomical_dawn, astronomical_dusk, with an optional offset like -30m or +1h15m")]
pub struct BoundParseError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for Bound {
    type Err = BoundParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| BoundParseError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(err("it is empty"));
        }
        if t.starts_with(|c: char| c.is_ascii_digit()) {
            return parse_clock(t).map_err(|r| err(&r));
        }
        let split = t.find(['+', '-']).unwrap_or(t.len());
        let (name, offset) = t.split_at(split);
        let event = SolarEvent::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(e, _)| *e)
            .ok_or_else(|| {
                err(&format!(
                    "{:?} is not a clock time or a solar event",
                    name.trim()
                ))
            })?;
        let offset_s = if offset.is_empty() {
            0
        } else {
            parse_offset(offset).map_err(|r| err(&r))?
        };
        Ok(Bound::Solar { event, offset_s })
    }
}

/// `HH:MM` or `HH:MM:SS`, 24-hour clock; `24:00` is accepted as the end of the day.
fn parse_clock(t: &str) -> Result<Bound, String> {
    let parts: Vec<&str> = t.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return Err("a clock time is written HH:MM or HH:MM:SS".into());
    }
    let num = |p: &str| {
        p.parse::<u32>()
            .map_err(|_| format!("{p:?} is not a number"))
    };
    let (h, m) = (num(parts[0])?, num(parts[1])?);
    let s = if parts.len() == 3 { num(parts[2])? } else { 0 };
    if m > 59 || s > 59 {
        return Err("minutes and seconds must be between 0 and 59".into());
    }
    if h > 24 || (h == 24 && (m, s) != (0, 0)) {
        return Err("hours must be between 0 and 23 (24:00 means the end of the day)".into());
    }
    Ok(Bound::Clock {
        seconds: h * 3600 + m * 60 + s,
    })
}

/// The largest offset from a solar event, either way: half a day.
const MAX_OFFSET_S: u64 = 12 * 3600;

/// `+30m`, `-1h`, `+1h15m`, `-90s`; at most 12 hours either way. Numbers of any length
/// are read without overflow: too large is reported as too large, with the bound.
fn parse_offset(t: &str) -> Result<i32, String> {
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err("an offset starts with + or -".into()),
    };
    // Saturating: anything past the bound is out of range however large it is.
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in rest.trim().chars() {
        if let Some(d) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(n.saturating_mul(10).saturating_add(d.into()));
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("unknown unit {c:?} in offset (use h, m or s)")),
        };
        let n =
            number.ok_or_else(|| "each unit in an offset needs a number before it".to_string())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number = None;
    }
    if number.is_some() || rest.trim().is_empty() {
        return Err("an offset needs a unit, e.g. +30m".into());
    }
    if total > MAX_OFFSET_S {
        return Err(format!(
            "the offset {} is too large: an offset is at most 12h (720m, 43200s) either way",
            t.trim()
        ));
    }
    // At most 43200: fits an i32.
    Ok(sign * total as i32)
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Bound::Clock { seconds } => {
                let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
                if s == 0 {
                    write!(f, "{h:02}:{m:02}")
                } else {
                    write!(f, "{h:02}:{m:02}:{s:02}")
                }
            }
            Bound::Solar { event, offset_s } => {
                f.write_str(event.name())?;
                if offset_s == 0 {
                    return Ok(());
                }
                let sign = if offset_s < 0 { '-' } else { '+' };
                let a = offset_s.unsigned_abs();
                let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
                write!(f, "{sign}")?;
                if h > 0 {
                    write!(f, "{h}h")?;
                }
                if m > 0 {
                    write!(f, "{m}m")?;
                }
                if s > 0 {
                    write!(f, "{s}s")?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for Bound {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Bound, printed: &str) {
        let b: Bound = text.parse().expect(text);
        assert_eq!(b, expected, "{text}");
        assert_eq!(b.to_string(), printed);
        assert_eq!(printed.parse::<Bound>().unwrap(), expected);
    }

    #[test]
    fn clock_and_solar_bounds_round_trip() {
        check("06:00", Bound::Clock { seconds: 21600 }, "06:00");
        check("22:30:15", Bound::Clock { seconds: 81015 }, "22:30:15");
        check("24:00", Bound::Clock { seconds: 86400 }, "24:00");
        check(
            "sunrise",
            Bound::Solar {
                event: SolarEvent::Sunrise,
                offset_s: 0,
            },
            "sunrise",
        );
        check(
            "civil_dusk-30m",
            Bound::Solar {
                event: SolarEvent::CivilDusk,
                offset_s: -1800,
            },
            "civil_dusk-30m",
        );
        check(
            "Sunset + 1h15m",
            Bound::Solar {
                event: SolarEvent::Sunset,
                offset_s: 4500,
            },
            "sunset+1h15m",
        );
    }

    #[test]
    fn bad_bounds_say_what_is_wrong() {
        for (text, needle) in [
            ("25:00", "hours must be between 0 and 23"),
            ("7", "HH:MM"),
            ("06:60", "minutes and seconds"),
            ("abc7", "not a clock time or a solar event"),
            ("sunrise+30", "needs a unit"),
            ("sunrise+30x", "unknown unit"),
            ("sunset+13h", "at most 12h"),
            // Issue 11: numbers too large for any integer name the bound, not overflow.
            (
                "sunset+99999999999999999999m",
                "the offset +99999999999999999999m is too large: an offset is at most 12h (720m, 43200s) either way",
            ),
            ("sunrise-9999999999999999h", "is too large"),
            ("sunrise+12h1s", "is too large"),
            ("", "empty"),
        ] {
            let e = text.parse::<Bound>().unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    /// Text near the real grammar: clock times with odd widths, event names in any case,
    /// offsets with long numbers and several units, stray signs and spaces.
    fn bound_like() -> impl proptest::strategy::Strategy<Value = String> {
        "( ?[0-9]{0,3}(:[0-9]{0,3}){0,3} ?)|(( ?(sunrise|SUNSET|civil_dawn|civil_dusk|nautical_dawn|nautical_dusk|astronomical_dawn|astronomical_dusk|noon) ?)([+-] ?([0-9]{0,25}[hmsx ]?){0,4})?)"
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Issue 11: any text parses or is refused, never a panic or an overflow; what
        /// is accepted prints back to text that parses to the same bound.
        #[test]
        fn any_text_parses_or_is_refused_and_accepted_bounds_round_trip(
            text in proptest::prop_oneof![proptest::arbitrary::any::<String>(), bound_like()]
        ) {
            if let Ok(bound) = text.parse::<Bound>() {
                let printed = bound.to_string();
                proptest::prop_assert_eq!(printed.parse::<Bound>(), Ok(bound), "{:?} printed as {:?}", text, printed);
            }
        }
    }
}
