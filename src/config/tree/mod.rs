//! Dotted access to configuration fields (`microphone.samplerate`,
//! `recording.schedule.0.start`) through a generic value tree.
//!
//! The configuration is serialised to a `serde_json::Value`, navigated and changed
//! there, and deserialised back, so every typed check of the schema applies to a change
//! exactly as it does to a file. A "shape" tree (the defaults with every optional field
//! filled) supplies field names for suggestions and the type a text value is coerced to.
//! This module does not validate relations between fields: callers run
//! [`validate`](super::validate) (which [`save`](super::save) does).

use serde_json::{Map, Number, Value};

use crate::audio::format::SampleFormat;
use crate::detection::config::DetectionConfig;
use crate::messaging::config::{HttpConfig, MessagingConfig, MqttConfig};

use super::schema::{Config, Paths, RecordingSaving, Site};
use super::suggest;

/// Why a dotted field or a value given for it was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A name that is not a field of the section.
    #[error("unknown field `{name}` {}{}", place(section), hint(suggestion.as_deref(), valid))]
    UnknownField {
        /// The dotted section searched ("" for the top level).
        section: String,
        /// The name given.
        name: String,
        /// The nearest valid name, if one is close.
        suggestion: Option<String>,
        /// Every valid name of the section.
        valid: Vec<String>,
    },
    /// A dotted path with an empty name between two dots, or a leading or trailing dot.
    #[error("`{field}` has an empty field name (two dots in a row, or a dot at an end): {}", match fixed.as_str() { "" => "give a dotted field such as `microphone.samplerate`".to_string(), f => format!("did you mean `{f}`?") })]
    EmptySegment {
        /// The path as given.
        field: String,
        /// The path without its empty names ("" when nothing is left).
        fixed: String,
    },
    /// A number outside the range the field accepts (checked before the field's type,
    /// so the message states the real range, not the type's).
    #[error("{field} must be {accepted}, got {value}")]
    OutOfRange {
        /// The dotted field.
        field: String,
        /// The number as given.
        value: String,
        /// What the field accepts, e.g. "between 8000 and 384000 Hz".
        accepted: String,
    },
    /// A list index past the end.
    #[error("index {index} is out of range: {list} has {len} {}", if *len == 1 { "entry" } else { "entries" })]
    IndexOutOfRange {
        /// The dotted list.
        list: String,
        /// The index given.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A name where a list index is needed.
    #[error("{list} is a list: use an index such as `{list}.0`, not `{segment}`")]
    NotAnIndex {
        /// The dotted list.
        list: String,
        /// What was given instead of an index.
        segment: String,
    },
    /// A path that continues below a plain value.
    #[error("{field} is a value, not a section: it has no field `{segment}`")]
    NotASection {
        /// The dotted value.
        field: String,
        /// The name given below it.
        segment: String,
    },
    /// An unset optional section that has no defaults to create it from.
    #[error("{section} is not set: set the whole section, e.g. `acoupi config set {section} '{example}'`")]
    UnsetSection {
        /// The dotted section.
        section: String,
        /// A value that would be accepted.
        example: String,
    },
    /// A value that is not of the field's type.
    #[error("invalid value {value:?} for {field}: {expected}")]
    BadValue {
        /// The dotted field.
        field: String,
        /// The text given.
        value: String,
        /// What the field accepts.
        expected: String,
    },
    /// The schema rejected the changed tree (e.g. a number too large for the field).
    #[error("invalid value for {field}: {message}")]
    Rejected {
        /// The dotted field that was set.
        field: String,
        /// The schema's message.
        message: String,
    },
}

fn place(section: &str) -> String {
    if section.is_empty() {
        "at the top level".into()
    } else {
        format!("in {section}")
    }
}

fn hint(suggestion: Option<&str>, valid: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => format!("; valid fields are {}", valid.join(", ")),
    }
}

/// The configuration as a value tree.
fn to_tree(config: &Config) -> Value {
    // Serialising plain data structs with string keys to a JSON value cannot fail.
    serde_json::to_value(config).unwrap_or(Value::Null)
}

/// The defaults with every optional field present, so every field has a name and a
/// type even where the configuration has `None`.
fn shape() -> Value {
    to_tree(&shape_config())
}

/// The defaults with every optional field present (see [`shape`]).
pub(crate) fn shape_config() -> Config {
    let mut c = Config::default();
    c.microphone.sample_format = Some(SampleFormat::S16_LE);
    c.recording.start_date = Some(jiff::civil::date(2000, 1, 1));
    c.recording.end_date = Some(jiff::civil::date(2000, 1, 1));
    c.paths = Paths {
        tmp_audio: Some("tmp".into()),
        recordings: Some("recordings".into()),
        db_metadata: Some("metadata.db".into()),
    };
    c.recording_saving = Some(RecordingSaving::default());
    c.retention.max_age_days = Some(1);
    c.deployment = Some(Site {
        name: String::new(),
        latitude: 0.0,
        longitude: 0.0,
    });
    c.messaging = Some(MessagingConfig::shape());
    c.detection = Some(DetectionConfig::shape());
    c
}

/// An MQTT section with its defaults and no host yet (validation asks for one).
fn new_mqtt() -> MqttConfig {
    MqttConfig::new("")
}

/// An HTTP section with its defaults and no URL yet (validation asks for one).
fn new_http() -> HttpConfig {
    HttpConfig::new("")
}

/// What an unset optional section becomes when a field inside it is set.
fn create_section(section: &str) -> Result<Value, TreeError> {
    match section {
        "recording_saving" => {
            Ok(serde_json::to_value(RecordingSaving::default()).unwrap_or(Value::Null))
        }
        "messaging" => Ok(serde_json::to_value(MessagingConfig::default()).unwrap_or(Value::Null)),
        "messaging.mqtt" => Ok(serde_json::to_value(new_mqtt()).unwrap_or(Value::Null)),
        "messaging.http" => Ok(serde_json::to_value(new_http()).unwrap_or(Value::Null)),
        "detection" => Ok(serde_json::to_value(DetectionConfig::default()).unwrap_or(Value::Null)),
        "deployment" => Err(TreeError::UnsetSection {
            section: section.into(),
            example: "(name: \"hedgerow\", latitude: 51.5, longitude: -0.12)".into(),
        }),
        _ => Err(TreeError::UnsetSection {
            section: section.into(),
            example: "…".into(),
        }),
    }
}

fn join(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}.{segment}")
    }
}

/// Splits a dotted path; an empty path (or `.`) is the whole configuration. An empty
/// name anywhere else (`microphone..samplerate`) is refused rather than skipped: a path
/// that only works by accident would be copied into scripts and notes.
pub(crate) fn segments(field: &str) -> Result<Vec<&str>, TreeError> {
    let field = field.trim();
    if field.is_empty() || field == "." {
        return Ok(Vec::new());
    }
    let segs: Vec<&str> = field.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(TreeError::EmptySegment {
            field: field.into(),
            fixed: segs
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("."),
        });
    }
    Ok(segs)
}

fn unknown(section: &str, name: &str, map: &Map<String, Value>) -> TreeError {
    let valid: Vec<String> = map.keys().cloned().collect();
    TreeError::UnknownField {
        section: section.into(),
        name: name.into(),
        suggestion: suggest(name, valid.iter().map(String::as_str)).map(str::to_string),
        valid,
    }
}

/// The value at `field` (the whole configuration for ""). A path through an unset
/// optional section yields `null` after checking the rest of the path is valid.
pub fn get(config: &Config, field: &str) -> Result<Value, TreeError> {
    let shape = shape();
    let mut cur = to_tree(config);
    let mut shp = &shape;
    let mut at = String::new();
    for seg in segments(field)? {
        let here = join(&at, seg);
        match (&cur, shp) {
            (Value::Object(map), _) => {
                let next = map
                    .get(seg)
                    .cloned()
                    .ok_or_else(|| unknown(&at, seg, map))?;
                shp = shp.get(seg).unwrap_or(&Value::Null);
                cur = next;
            }
            (Value::Array(items), _) => {
                let index: usize = seg.parse().map_err(|_| TreeError::NotAnIndex {
                    list: at.clone(),
                    segment: seg.into(),
                })?;
                let next = items
                    .get(index)
                    .cloned()
                    .ok_or(TreeError::IndexOutOfRange {
                        list: at.clone(),
                        index,
                        len: items.len(),
                    })?;
                shp = shp.get(0).unwrap_or(&Value::Null);
                cur = next;
            }
            (Value::Null, Value::Object(map)) => {
                // An unset section: the name must still exist.
                if !map.contains_key(seg) {
                    return Err(unknown(&at, seg, map));
                }
                shp = &map[seg];
            }
            _ => {
                return Err(TreeError::NotASection {
                    field: at,
                    segment: seg.into(),
                })
            }
        }
        at = here;
    }
    Ok(cur)
}

/// A copy of `config` with `field` set from the text `value`, coerced to the field's type
/// (see [`coerce`]). Unset optional sections on the way are created with their defaults.
/// Relations between fields are not checked here.
pub fn set(config: &Config, field: &str, value: &str) -> Result<Config, TreeError> {
    let segs = segments(field)?;
    check_range(&segs.join("."), value)?;
    let mut tree = to_tree(config);
    set_in(&mut tree, &shape(), "", &segs, value)?;
    serde_json::from_value(tree).map_err(|e| TreeError::Rejected {
        field: if segs.is_empty() {
            "the configuration".into()
        } else {
            segs.join(".")
        },
        message: plain_types(&e.to_string()),
    })
}

/// Refuses a whole number outside the field's accepted range (see
/// [`int_range`](super::validate::int_range)) before the field's type sees it, so `-5`
/// or a number of 30 digits get the range the field really accepts.
fn check_range(field: &str, raw: &str) -> Result<(), TreeError> {
    let Some(range) = super::validate::int_range(field) else {
        return Ok(());
    };
    let text = raw.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(()); // not a whole number: the type's own message says so
    }
    // Too many digits for i128 is out of every range.
    let inside = text
        .parse::<i128>()
        .is_ok_and(|v| (range.min..=range.max).contains(&v));
    if inside {
        Ok(())
    } else {
        Err(TreeError::OutOfRange {
            field: field.into(),
            value: text.into(),
            accepted: range.phrase,
        })
    }
}

/// serde names Rust types ("expected u16"); say what they accept instead.
fn plain_types(message: &str) -> String {
    [
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number from 0"),
        ("expected f64", "expected a number"),
    ]
    .iter()
    .fold(message.to_string(), |m, (rust, plain)| {
        m.replace(rust, plain)
    })
}

fn set_in(
    cur: &mut Value,
    shape: &Value,
    at: &str,
    segs: &[&str],
    raw: &str,
) -> Result<(), TreeError> {
    let Some((&seg, rest)) = segs.split_first() else {
        let field = if at.is_empty() {
            "the configuration"
        } else {
            at
        };
        *cur = coerce(raw, shape, field)?;
        return Ok(());
    };
    if cur.is_null() && shape.is_object() {
        *cur = create_section(at)?;
    }
    let here = join(at, seg);
    match cur {
        Value::Object(map) => {
            let shape_child = shape.get(seg).unwrap_or(&Value::Null);
            match map.get_mut(seg) {
                Some(child) => set_in(child, shape_child, &here, rest, raw),
                None => Err(unknown(at, seg, map)),
            }
        }
        Value::Array(items) => {
            let index: usize = seg.parse().map_err(|_| TreeError::NotAnIndex {
                list: at.into(),
                segment: seg.into(),
            })?;
            let shape_item = shape.get(0).unwrap_or(&Value::Null);
            if index == items.len() && rest.is_empty() {
                // One past the end appends a whole entry: the way to add a window.
                items.push(coerce(raw, shape_item, &here)?);
                return Ok(());
            }
            let len = items.len();
            match items.get_mut(index) {
                Some(item) => set_in(item, shape_item, &here, rest, raw),
                None => Err(TreeError::IndexOutOfRange {
                    list: at.into(),
                    index,
                    len,
                }),
            }
        }
        _ => Err(TreeError::NotASection {
            field: at.into(),
            segment: seg.into(),
        }),
    }
}

/// Turns the text `raw` into a value of the kind `shape` has: numbers, booleans
/// (`true/false/yes/no/on/off`), strings as given (time bounds such as `06:00` or
/// `sunset-30m` stay strings and the schema parses them), and RON or JSON for sections
/// and lists. `none` or `null` is accepted everywhere; the schema rejects it where a field
/// is not optional.
pub fn coerce(raw: &str, shape: &Value, field: &str) -> Result<Value, TreeError> {
    let text = raw.trim();
    let bad = |expected: &str| TreeError::BadValue {
        field: field.into(),
        value: raw.into(),
        expected: expected.into(),
    };
    if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("null") {
        return Ok(Value::Null);
    }
    match shape {
        Value::Bool(_) => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(bad("expected true or false (yes/no)")),
        },
        Value::Number(n) if n.is_f64() => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("expected a number, e.g. 1.5")),
        Value::Number(_) => {
            if let Ok(u) = text.parse::<u64>() {
                Ok(Value::from(u))
            } else if let Ok(i) = text.parse::<i64>() {
                Ok(Value::from(i))
            } else {
                Err(bad("expected a whole number"))
            }
        }
        Value::String(_) => {
            if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
                serde_json::from_str::<String>(text)
                    .map(Value::String)
                    .map_err(|e| bad(&format!("a quoted string must be valid: {e}")))
            } else {
                Ok(Value::String(raw.to_string()))
            }
        }
        Value::Object(_) | Value::Array(_) => structured(text).map_err(|m| {
            bad(&format!(
                "expected a RON or JSON {} ({m})",
                if shape.is_array() { "list" } else { "section" }
            ))
        }),
        // No shape (cannot happen for schema fields): take a literal if it is one.
        Value::Null => Ok(structured(text).unwrap_or_else(|_| Value::String(raw.to_string()))),
    }
}

/// A JSON literal, or else a RON one converted to the same tree.
fn structured(text: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let ron_value: ron::Value = super::ron_options()
        .from_str(text)
        .map_err(|e| e.to_string())?;
    serde_json::to_value(ron_value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
