//! Semantic validation: the checks serde cannot express (ranges, relations between
//! fields, a time zone that exists), each failure naming the dotted field and the fix.
//!
//! Validation is pure: it never touches devices or the file system, so an unplugged
//! microphone is not a configuration error (it is a health state the recorder reports).

use std::fmt;

use crate::audio::device::RATE_RANGE;
use crate::audio::wav::{self, BIT_DEPTHS};
use crate::schedule::spec::Bound;

use super::schema::{Config, Site};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `microphone.samplerate`.
    pub field: String,
    /// What is wrong and how to fix it, read after the field name.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// The most channels accepted.
pub const MAX_CHANNELS: u16 = 32;
/// The shortest heartbeat interval, in seconds; faster would only wear the SD card.
pub const MIN_HEARTBEAT_S: u32 = 10;

/// The accepted range of an integer field that is checked on its own, for messages
/// about values the field's type cannot even hold (`microphone.samplerate -5`): the
/// message states the range [`validate`] accepts, not the type's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntRange {
    /// The smallest accepted value.
    pub min: i128,
    /// The largest accepted value.
    pub max: i128,
    /// What the field accepts, read after "must be", e.g. "between 8000 and 384000 Hz".
    pub phrase: String,
}

/// The accepted range of the integer field `field` (dotted), if it has one of its own.
/// Every entry agrees with [`validate`] (a test checks both ends of each).
pub fn int_range(field: &str) -> Option<IntRange> {
    const U32: i128 = u32::MAX as i128;
    let (min, max, unit): (i128, i128, &str) = match field {
        "microphone.samplerate" => (
            (*RATE_RANGE.start()).into(),
            (*RATE_RANGE.end()).into(),
            " Hz",
        ),
        "microphone.audio_channels" => (1, MAX_CHANNELS.into(), ""),
        "microphone.bit_depth" => {
            return Some(IntRange {
                min: BIT_DEPTHS[0].into(),
                max: BIT_DEPTHS[BIT_DEPTHS.len() - 1].into(),
                phrase: wav::bit_depths_phrase(),
            })
        }
        "recording.duration" | "recording.interval" => (1, 86_400, " seconds"),
        "recording_saving.before_dawndusk_duration"
        | "recording_saving.after_dawndusk_duration" => (0, 720, " minutes"),
        "recording_saving.frequency_interval" => (0, 1440, " minutes"),
        "retention.max_age_days" => (1, U32, " days"),
        "heartbeat.interval" | "messaging.heartbeat_interval" => {
            (MIN_HEARTBEAT_S.into(), U32, " seconds")
        }
        "messaging.message_send_interval" | "messaging.mqtt.timeout" | "messaging.http.timeout" => {
            (1, U32, " seconds")
        }
        "messaging.mqtt.keep_alive" => (5, U32, " seconds"),
        "messaging.mqtt.port" => (1, 65_535, ""),
        "detection.samplerate" => (
            (*RATE_RANGE.start()).into(),
            (*RATE_RANGE.end()).into(),
            " Hz",
        ),
        _ => return None,
    };
    Some(IntRange {
        min,
        max,
        phrase: format!("between {min} and {max}{unit}"),
    })
}

/// Checks every field and every relation between fields; returns all problems at once.
pub fn validate(config: &Config) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut push = |field: &str, message: String| errors.push(FieldError::new(field, message));

    if let Err(m) = validate_timezone(&config.timezone) {
        push("timezone", m);
    }

    let mic = &config.microphone;
    if mic.device_name.trim().is_empty() {
        push(
            "microphone.device_name",
            "is not set: run `acoupi devices` and `acoupi config set microphone.device_name <name>`"
                .into(),
        );
    }
    if !RATE_RANGE.contains(&mic.samplerate) {
        push(
            "microphone.samplerate",
            format!(
                "must be between {} and {} Hz, got {}",
                RATE_RANGE.start(),
                RATE_RANGE.end(),
                mic.samplerate
            ),
        );
    }
    if !(1..=MAX_CHANNELS).contains(&mic.audio_channels) {
        push(
            "microphone.audio_channels",
            format!(
                "must be between 1 and {MAX_CHANNELS}, got {}",
                mic.audio_channels
            ),
        );
    }
    if !(mic.time_expansion.is_finite() && mic.time_expansion > 0.0) {
        push(
            "microphone.time_expansion",
            format!(
                "must be a number above 0 (1 for none), got {}",
                mic.time_expansion
            ),
        );
    }
    if !wav::valid_bit_depth(mic.bit_depth) {
        push(
            "microphone.bit_depth",
            format!(
                "must be {}, got {}",
                wav::bit_depths_phrase(),
                mic.bit_depth
            ),
        );
    } else if let Some(format) = mic.sample_format {
        if format.significant_bits() < mic.bit_depth {
            push(
                "microphone.sample_format",
                format!(
                    "{format} holds {} bits, fewer than microphone.bit_depth {}: lower bit_depth or choose a wider format",
                    format.significant_bits(),
                    mic.bit_depth
                ),
            );
        }
    }

    let rec = &config.recording;
    if rec.interval == 0 || rec.interval > 86_400 {
        push(
            "recording.interval",
            format!("must be between 1 and 86400 seconds, got {}", rec.interval),
        );
    }
    if rec.duration == 0 {
        push(
            "recording.duration",
            "must be at least 1 second, got 0".into(),
        );
    } else if rec.duration > rec.interval {
        push(
            "recording.duration",
            format!(
                "({} s) is longer than recording.interval ({} s): files would overlap; make interval at least duration (equal means gapless)",
                rec.duration, rec.interval
            ),
        );
    }
    for (i, w) in rec.schedule.iter().enumerate() {
        if matches!(w.start, Bound::Clock { seconds: 86_400 }) {
            push(
                &format!("recording.schedule.{i}.start"),
                "is 24:00, which is only valid as an end; use 00:00".into(),
            );
        }
        if w.start == w.end {
            push(
                &format!("recording.schedule.{i}"),
                format!(
                    "starts and ends at {}, which records nothing; for round-the-clock recording use an empty schedule `[]`",
                    w.start
                ),
            );
        }
    }
    if let (Some(start), Some(end)) = (rec.start_date, rec.end_date) {
        if start > end {
            push(
                "recording.start_date",
                format!("({start}) is after recording.end_date ({end})"),
            );
        }
    }

    if let Some(saving) = &config.recording_saving {
        match (saving.starttime, saving.endtime) {
            (Some(_), None) => push(
                "recording_saving.endtime",
                "is not set but starttime is: set both or neither".into(),
            ),
            (None, Some(_)) => push(
                "recording_saving.starttime",
                "is not set but endtime is: set both or neither".into(),
            ),
            _ => {}
        }
        for (field, minutes) in [
            ("before_dawndusk_duration", saving.before_dawndusk_duration),
            ("after_dawndusk_duration", saving.after_dawndusk_duration),
        ] {
            if minutes > 720 {
                push(
                    &format!("recording_saving.{field}"),
                    format!("must be at most 720 minutes (0 disables), got {minutes}"),
                );
            }
        }
        let (d, i) = (saving.frequency_duration, saving.frequency_interval);
        if i > 1440 {
            push(
                "recording_saving.frequency_interval",
                format!("must be at most 1440 minutes (0 disables), got {i}"),
            );
        }
        if d > 0 && i > 0 && d > i {
            push(
                "recording_saving.frequency_duration",
                format!("({d} min) is longer than recording_saving.frequency_interval ({i} min)"),
            );
        }
    }

    for e in super::validate_paths::path_errors(&config.paths) {
        push(&e.field, e.message);
    }

    if config.retention.max_age_days == Some(0) {
        push(
            "retention.max_age_days",
            "must be at least 1 day, or none to keep recordings forever".into(),
        );
    }

    if config.heartbeat.interval < MIN_HEARTBEAT_S {
        push(
            "heartbeat.interval",
            format!(
                "must be at least {MIN_HEARTBEAT_S} seconds, got {}",
                config.heartbeat.interval
            ),
        );
    }

    for (field, message) in super::validate_messaging::messaging_errors(config) {
        push(&field, message);
    }
    for (field, message) in super::validate_detection::detection_errors(config) {
        push(&field, message);
    }

    if let Some(site) = &config.deployment {
        for e in validate_site(site) {
            errors.push(FieldError::new(
                format!("deployment.{}", e.field),
                e.message,
            ));
        }
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks a deployment site; fields are named relative to the site (`name`, `latitude`).
pub fn validate_site(site: &Site) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Err(m) = validate_deployment_name(&site.name) {
        errors.push(FieldError::new("name", m));
    }
    if let Err(m) = validate_latitude(site.latitude) {
        errors.push(FieldError::new("latitude", m));
    }
    if let Err(m) = validate_longitude(site.longitude) {
        errors.push(FieldError::new("longitude", m));
    }
    errors
}

/// A deployment name: not empty, and printable: no control character (line break, tab,
/// escape) and no invisible formatting character (zero-width space, direction override),
/// which would break the status display, log lines and the metadata.db reader's view.
/// The message reads after the field name.
pub fn validate_deployment_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    match name.chars().find(|c| !is_printable(*c)) {
        Some(c) => Err(format!(
            "contains the unprintable character U+{:04X}: use letters, digits, spaces and punctuation only",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// False for control characters and the invisible Unicode formatting characters
/// (soft hyphen, zero-width and direction marks, line/paragraph separators, BOM).
fn is_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c,
            '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'))
}

/// A latitude in degrees: -90..=90. The message reads after the field name.
pub fn validate_latitude(latitude: f64) -> Result<(), String> {
    if (-90.0..=90.0).contains(&latitude) {
        Ok(())
    } else {
        Err(format!(
            "must be between -90 and 90 degrees, got {latitude}"
        ))
    }
}

/// A longitude in degrees: -180..=180. The message reads after the field name.
pub fn validate_longitude(longitude: f64) -> Result<(), String> {
    if (-180.0..=180.0).contains(&longitude) {
        Ok(())
    } else {
        Err(format!(
            "must be between -180 and 180 degrees, got {longitude}"
        ))
    }
}

/// An IANA time zone name known to this system's time zone database.
pub fn validate_timezone(name: &str) -> Result<(), String> {
    match jiff::tz::TimeZone::get(name) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{name:?} is not a known IANA time zone: use a name such as Europe/London, America/New_York or UTC"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::spec::Window;

    fn valid() -> Config {
        let mut c = Config::default();
        c.microphone.device_name = "UltraMic".into();
        c
    }

    /// Applies `change` to a valid config and returns the rendered errors.
    fn check(change: impl FnOnce(&mut Config)) -> Vec<String> {
        let mut c = valid();
        change(&mut c);
        match validate(&c) {
            Ok(()) => vec![],
            Err(es) => es.iter().map(ToString::to_string).collect(),
        }
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn default_with_a_device_is_valid() {
        assert_eq!(check(|_| {}), Vec::<String>::new());
    }

    #[test]
    fn empty_device_name_says_how_to_set_it() {
        let e = check(|c| c.microphone.device_name.clear());
        assert_eq!(
            e,
            vec!["microphone.device_name is not set: run `acoupi devices` and `acoupi config set microphone.device_name <name>`"]
        );
    }

    #[test]
    fn ranges_name_their_field() {
        let e = check(|c| {
            c.timezone = "Mars/Olympus".into();
            c.microphone.samplerate = 1_000_000;
            c.microphone.audio_channels = 0;
            c.microphone.time_expansion = 0.0;
            c.microphone.bit_depth = 20;
            c.heartbeat.interval = 5;
            c.retention.max_age_days = Some(0);
        });
        for needle in [
            "timezone \"Mars/Olympus\" is not a known IANA time zone",
            "microphone.samplerate must be between 8000 and 384000 Hz, got 1000000",
            "microphone.audio_channels must be between 1 and 32",
            "microphone.time_expansion must be a number above 0",
            "microphone.bit_depth must be 16, 24 or 32",
            "heartbeat.interval must be at least 10 seconds",
            "retention.max_age_days must be at least 1 day",
        ] {
            assert!(has(&e, needle), "{needle} not in {e:#?}");
        }
        assert_eq!(e.len(), 7);
    }

    #[test]
    fn duration_longer_than_interval_is_rejected_equal_is_gapless() {
        assert!(has(
            &check(|c| c.recording.duration = 11),
            "recording.duration (11 s) is longer than recording.interval (10 s)"
        ));
        assert!(check(|c| c.recording.duration = 10).is_empty());
        assert!(has(
            &check(|c| c.recording.interval = 86_401),
            "recording.interval must be between 1 and 86400"
        ));
    }

    #[test]
    fn schedule_and_dates_are_checked() {
        let e = check(|c| {
            let six = Bound::Clock { seconds: 21_600 };
            c.recording.schedule.push(Window {
                start: six,
                end: six,
            });
            c.recording.start_date = Some(jiff::civil::date(2026, 6, 2));
            c.recording.end_date = Some(jiff::civil::date(2026, 6, 1));
        });
        assert!(
            has(&e, "recording.schedule.1 starts and ends at 06:00"),
            "{e:?}"
        );
        assert!(
            has(&e, "recording.start_date (2026-06-02) is after"),
            "{e:?}"
        );
    }

    #[test]
    fn saving_window_needs_both_ends_and_sane_frequency() {
        let e = check(|c| {
            c.recording_saving = Some(super::super::schema::RecordingSaving {
                endtime: None,
                frequency_duration: 40,
                frequency_interval: 30,
                ..Default::default()
            })
        });
        assert!(has(
            &e,
            "recording_saving.endtime is not set but starttime is"
        ));
        assert!(has(
            &e,
            "recording_saving.frequency_duration (40 min) is longer"
        ));
    }

    #[test]
    fn deployment_site_is_checked_with_dotted_names() {
        let e = check(|c| {
            c.deployment = Some(Site {
                name: " ".into(),
                latitude: 91.0,
                longitude: -181.0,
            })
        });
        assert!(has(&e, "deployment.name must not be empty"));
        assert!(has(
            &e,
            "deployment.latitude must be between -90 and 90 degrees, got 91"
        ));
        assert!(has(
            &e,
            "deployment.longitude must be between -180 and 180 degrees"
        ));
        assert!(validate_latitude(f64::NAN).is_err());
        assert!(validate_longitude(180.0).is_ok());
    }

    /// Issue 11: a line break or an invisible character in a deployment name broke the
    /// status display and log lines.
    #[test]
    fn deployment_name_must_be_printable() {
        for (name, code) in [
            ("a\nb", "000A"),
            ("a\tb", "0009"),
            ("\u{1b}[31m", "001B"),
            ("a\u{202E}b", "202E"),
            ("a\u{200B}", "200B"),
        ] {
            assert_eq!(
                validate_deployment_name(name),
                Err(format!("contains the unprintable character U+{code}: use letters, digits, spaces and punctuation only")),
                "{name:?}"
            );
        }
        assert!(validate_deployment_name("Hérault hedgerow #2 (north)").is_ok());
        assert!(validate_deployment_name("森林").is_ok());
        let e = check(|c| {
            c.deployment = Some(Site {
                name: "wood\r".into(),
                latitude: 1.0,
                longitude: 2.0,
            })
        });
        assert!(
            has(
                &e,
                "deployment.name contains the unprintable character U+000D"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn sample_format_must_hold_bit_depth() {
        let e = check(|c| {
            c.microphone.bit_depth = 24;
            c.microphone.sample_format = Some(crate::audio::format::SampleFormat::S16_LE);
        });
        assert!(
            has(&e, "microphone.sample_format S16_LE holds 16 bits"),
            "{e:?}"
        );
    }
}
