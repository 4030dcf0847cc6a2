//! Tests of the dotted get/set: navigation, coercion and the messages of refusals.

use super::*;
use crate::schedule::spec::Bound;

fn base() -> Config {
    let mut c = Config::default();
    c.microphone.device_name = "UltraMic".into();
    c
}

fn set_ok(field: &str, value: &str) -> Config {
    set(&base(), field, value).unwrap_or_else(|e| panic!("{field}={value}: {e}"))
}

fn set_err(field: &str, value: &str) -> String {
    set(&base(), field, value).unwrap_err().to_string()
}

#[test]
fn get_navigates_sections_and_list_indices() {
    let c = base();
    assert_eq!(
        get(&c, "microphone.samplerate").unwrap(),
        Value::from(48_000)
    );
    assert_eq!(
        get(&c, "recording.schedule.0.start").unwrap(),
        Value::from("06:00")
    );
    assert_eq!(get(&c, "").unwrap(), to_tree(&c));
    assert_eq!(get(&c, "recording_saving.starttime").unwrap(), Value::Null);
}

#[test]
fn get_errors_say_what_exists() {
    let c = base();
    assert_eq!(
        get(&c, "microphone.samplerat").unwrap_err().to_string(),
        "unknown field `samplerat` in microphone; did you mean `samplerate`?"
    );
    assert_eq!(
        get(&c, "recording.schedule.3").unwrap_err().to_string(),
        "index 3 is out of range: recording.schedule has 1 entry"
    );
    assert_eq!(
        get(&c, "recording.schedule.start").unwrap_err().to_string(),
        "recording.schedule is a list: use an index such as `recording.schedule.0`, not `start`"
    );
    assert_eq!(
        get(&c, "timezone.x").unwrap_err().to_string(),
        "timezone is a value, not a section: it has no field `x`"
    );
    assert!(get(&c, "recording_saving.startime")
        .unwrap_err()
        .to_string()
        .contains("did you mean `starttime`?"));
    assert!(get(&c, "zzz")
        .unwrap_err()
        .to_string()
        .contains("valid fields are deployment, detection, heartbeat, messaging, microphone"));
}

#[test]
fn numbers_and_bools_are_coerced_from_text() {
    assert_eq!(
        set_ok("microphone.samplerate", "96000")
            .microphone
            .samplerate,
        96_000
    );
    assert_eq!(
        set_ok("microphone.time_expansion", "10")
            .microphone
            .time_expansion,
        10.0
    );
    assert_eq!(
        set_ok("microphone.time_expansion", "0.5")
            .microphone
            .time_expansion,
        0.5
    );
    assert_eq!(
        coerce("yes", &Value::Bool(false), "x").unwrap(),
        Value::Bool(true)
    );
    assert_eq!(
        coerce("No", &Value::Bool(true), "x").unwrap(),
        Value::Bool(false)
    );
    assert!(coerce("maybe", &Value::Bool(true), "x").is_err());
}

#[test]
fn bad_values_name_the_field() {
    assert_eq!(
        set_err("microphone.samplerate", "abc"),
        "invalid value \"abc\" for microphone.samplerate: expected a whole number"
    );
    // Issue 11: the message states the range the field accepts, not its type's.
    assert_eq!(
        set_err("microphone.audio_channels", "70000"),
        "microphone.audio_channels must be between 1 and 32, got 70000"
    );
    assert_eq!(
        set_err("microphone.audio_channels", "-1"),
        "microphone.audio_channels must be between 1 and 32, got -1"
    );
    assert_eq!(
        set_err("microphone.samplerate", "-5"),
        "microphone.samplerate must be between 8000 and 384000 Hz, got -5"
    );
    assert_eq!(
        set_err("heartbeat.interval", "99999999999999999999999999999999999999999"),
        "heartbeat.interval must be between 10 and 4294967295 seconds, got 99999999999999999999999999999999999999999"
    );
    assert_eq!(
        set_err("microphone.bit_depth", "-16"),
        "microphone.bit_depth must be 16, 24 or 32, got -16"
    );
    // A field without a range of its own: its type's range is the real one.
    assert_eq!(
        set_err("retention.min_free_space_mb", "-1"),
        "invalid value for retention.min_free_space_mb: invalid value: integer `-1`, expected a whole number from 0"
    );
    let e = set_err("recording.schedule.0.start", "25:00");
    assert!(
        e.contains("recording.schedule.0.start") && e.contains("hours must be"),
        "{e}"
    );
    let e = set_err("microphone.samplerate", "none");
    assert!(
        e.starts_with("invalid value for microphone.samplerate"),
        "{e}"
    );
}

#[test]
fn bounds_and_dates_are_strings_the_schema_parses() {
    let c = set_ok("recording.schedule.0.end", "sunset-30m");
    assert_eq!(c.recording.schedule[0].end.to_string(), "sunset-30m");
    let c = set_ok("recording.start_date", "2026-05-01");
    assert_eq!(c.recording.start_date, Some(jiff::civil::date(2026, 5, 1)));
    let c = set(&c, "recording.start_date", "none").unwrap();
    assert_eq!(c.recording.start_date, None);
    assert_eq!(
        set_ok("microphone.sample_format", "S24_3LE")
            .microphone
            .sample_format,
        Some(SampleFormat::S24_3LE)
    );
    assert_eq!(
        set_ok("microphone.device_name", "\"hw:CARD=X\"")
            .microphone
            .device_name,
        "hw:CARD=X"
    );
}

#[test]
fn setting_inside_an_unset_section_creates_it_with_defaults() {
    let c = set_ok("recording_saving.starttime", "18:30");
    let s = c.recording_saving.unwrap();
    assert_eq!(s.starttime, Some(Bound::Clock { seconds: 66_600 }));
    assert_eq!(s.frequency_interval, 30);
    let e = set_err("deployment.name", "x");
    assert!(
        e.starts_with("deployment is not set: set the whole section"),
        "{e}"
    );
}

#[test]
fn sections_and_lists_take_ron_or_json() {
    let c = set_ok(
        "recording.schedule",
        "[(start: \"sunset-1h\", end: \"sunrise+1h\"), (start: \"12:00\", end: \"13:00\")]",
    );
    assert_eq!(c.recording.schedule.len(), 2);
    assert_eq!(c.recording.schedule[0].start.to_string(), "sunset-1h");
    let c = set_ok("recording.schedule", "[]");
    assert!(c.recording.schedule.is_empty());
    let c = set_ok(
        "deployment",
        "{\"name\": \"w\", \"latitude\": 1.5, \"longitude\": 2}",
    );
    assert_eq!(c.deployment.unwrap().longitude, 2.0);
    let c = set_ok("recording.schedule.1", "(start: \"20:00\", end: \"04:00\")");
    assert_eq!(c.recording.schedule[1].end.to_string(), "04:00");
    assert!(
        set_err("recording.schedule.2", "(start: \"20:00\", end: \"04:00\")")
            .contains("index 2 is out of range: recording.schedule has 1 entry")
    );
    let e = set_err("microphone", "(samplerat: 1)");
    assert!(e.contains("unknown field `samplerat`"), "{e}");
}

#[test]
fn empty_names_in_a_dotted_path_are_refused() {
    // Issue 11: `microphone..samplerate` used to set microphone.samplerate.
    assert_eq!(
        set_err("microphone..samplerate", "96000"),
        "`microphone..samplerate` has an empty field name (two dots in a row, or a dot at an end): did you mean `microphone.samplerate`?"
    );
    for field in [".microphone.samplerate", "microphone.samplerate.", ".."] {
        assert!(
            matches!(get(&base(), field), Err(TreeError::EmptySegment { .. })),
            "{field}"
        );
    }
    assert_eq!(get(&base(), ".").unwrap(), get(&base(), "").unwrap());
}

#[test]
fn every_int_range_agrees_with_validation() {
    use crate::config::validate::{int_range, validate};
    let fields = [
        "microphone.samplerate",
        "microphone.audio_channels",
        "recording.interval",
        "recording_saving.before_dawndusk_duration",
        "recording_saving.after_dawndusk_duration",
        "recording_saving.frequency_interval",
        "retention.max_age_days",
        "heartbeat.interval",
    ];
    // A base where each field can take its extremes: the longest interval, and
    // a frequency filter whose duration is 0 (no relation to its interval).
    let mut c = base();
    c.recording.interval = 86_400;
    c.recording.duration = 1;
    c = set(&c, "recording_saving.frequency_duration", "0").unwrap();
    for field in fields {
        let r = int_range(field).unwrap();
        for (v, ok) in [
            (r.min, true),
            (r.max, true),
            (r.min - 1, false),
            (r.max + 1, false),
        ] {
            let accepted = set(&c, field, &v.to_string())
                .map_err(|e| e.to_string())
                .and_then(|changed| validate(&changed).map_err(|e| format!("{e:?}")));
            assert_eq!(accepted.is_ok(), ok, "{field} = {v}: {accepted:?}");
        }
    }
}

/// Every field of the shape has a value: a `null` would leave `config set` without the
/// field's type (and, below a section, without its fields). Adding an optional field
/// anywhere, the messaging section included, without filling it in the owner's shape
/// fails here.
#[test]
fn the_shape_leaves_no_field_unset() {
    fn nulls(at: &str, v: &Value, found: &mut Vec<String>) {
        match v {
            Value::Null => found.push(at.to_string()),
            Value::Object(map) => map.iter().for_each(|(k, v)| nulls(&join(at, k), v, found)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| nulls(&join(at, &i.to_string()), v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    nulls("", &shape(), &mut found);
    assert!(found.is_empty(), "unset in the shape: {found:?}");
}
