//! Schedules: when to record and which recordings to keep. Pure window arithmetic:
//! configuration + local date + place → absolute recording windows, file slots and
//! saving-filter decisions. No I/O; time comes only from a [`plan::Clock`] or from the
//! instants callers pass in.
//!
//! # Layout
//! - [`spec`]: the configuration vocabulary (`"06:00"`, `"civil_dusk-30m"`) and its text form.
//! - [`solar`]: solar events for a place and a local day, and the polar-day rule.
//! - [`window`]: one daily window resolved to an absolute `[start, end)` interval.
//! - [`duty`]: [`Schedule`], the duty cycle and its [`plan::Planner`] implementation.
//! - [`saving`]: [`SavingFilters`], the keep-or-delete predicates of `recording_saving`.
//! - [`plan`]: what the capture thread is told, and the injectable clock.
//!
//! All local times are read in the configured IANA time zone, never in UTC (upstream
//! compared saving windows in UTC). This module knows nothing of audio, files or databases.

pub mod duty;
pub mod plan;
pub mod saving;
pub mod solar;
pub mod spec;
pub mod window;

pub use duty::Schedule;
pub use saving::SavingFilters;
pub use solar::Location;

use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Why a schedule or a saving filter cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// `recording.duration` is zero.
    #[error("recording.duration is 0; set it to the length of each file in seconds")]
    ZeroDuration,
    /// Files would overlap.
    #[error(
        "recording.duration ({duration} s) is longer than recording.interval ({interval} s); \
         make the interval at least as long as the duration"
    )]
    DurationExceedsInterval {
        /// Configured file length, seconds.
        duration: u32,
        /// Configured period, seconds.
        interval: u32,
    },
    /// A solar bound or filter is configured but the deployment has no location.
    #[error(
        "{field} uses {what}, which needs the deployment's location; start the deployment \
         with --latitude and --longitude"
    )]
    MissingLocation {
        /// The configuration field, e.g. `recording.schedule[0].start`.
        field: String,
        /// What needs the location, e.g. `sunset+30m`.
        what: String,
    },
    /// Latitude or longitude out of range.
    #[error(
        "location {latitude}, {longitude} is out of range; latitude must be within -90..=90 \
         and longitude within -180..=180"
    )]
    InvalidLocation {
        /// The latitude given.
        latitude: f64,
        /// The longitude given.
        longitude: f64,
    },
    /// The date range is reversed.
    #[error(
        "recording.start_date {start} is after recording.end_date {end}; swap them or remove one"
    )]
    DateRange {
        /// `recording.start_date`.
        start: Date,
        /// `recording.end_date`.
        end: Date,
    },
    /// The time zone name is not in the time zone database.
    #[error(
        "timezone: unknown time zone {name:?}; use an IANA name such as Europe/London, \
         America/New_York or Etc/GMT-3"
    )]
    UnknownTimeZone {
        /// The name as configured.
        name: String,
        /// Why jiff could not load it.
        #[source]
        source: jiff::Error,
    },
}

/// Reads the configuration's `timezone` field into a [`TimeZone`].
pub fn parse_time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name.trim()).map_err(|source| ScheduleError::UnknownTimeZone {
        name: name.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        match parse_time_zone(name) {
            Ok(tz) => assert!(ok, "{name} accepted as {tz:?}"),
            Err(e) => {
                assert!(!ok, "{name}: {e}");
                let text = e.to_string();
                assert!(text.starts_with("timezone: "), "{text}");
                assert!(text.contains(name), "{text}");
            }
        }
    }

    #[test]
    fn time_zone_names_are_checked_and_errors_name_the_field() {
        check("Europe/London", true);
        check("Etc/GMT-3", true);
        check("UTC", true);
        check("Europe/Londn", false);
        check("", false);
    }
}
