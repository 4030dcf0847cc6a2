//! Property tests of the configuration's ways in (issue 11): the RON loader and the
//! dotted get/set never panic, whatever text, bytes, field or value they are given, and
//! whatever they accept survives a save and a load unchanged.
//!
//! Case counts stay modest (256 per property) so `cargo test --lib config` stays fast;
//! the strategies lean towards inputs near the real ones (schema field names, numbers at
//! the edges, a saved file with one edit) rather than pure noise, which a parser
//! refuses at the first byte.

use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

use super::schema::Config;
use super::{decode, load, parse, save, to_ron, tree, validate};

/// A configuration that validates: the defaults with a microphone.
fn base() -> Config {
    let mut c = Config::default();
    c.microphone.device_name = "UltraMic".into();
    c
}

/// Every dotted path of the schema (sections, values, the first list entries), from the
/// defaults with every optional field filled in.
fn schema_paths() -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let here = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    walk(child, here, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{at}.{i}"), out);
                }
                out.push(format!("{at}.{}", items.len()));
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(
        &serde_json::to_value(tree::shape_config()).unwrap_or(Value::Null),
        String::new(),
        &mut out,
    );
    out
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(schema_paths()),
        1 => "[a-z_.0-9]{0,30}",
        1 => any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    let samples = [
        "true",
        "no",
        "none",
        "null",
        "NULL",
        "0",
        "-1",
        "1.5",
        "1e308",
        "-0",
        "NaN",
        "inf",
        "06:00",
        "24:00",
        "sunset-30m",
        "civil_dusk+1h15m",
        "UTC",
        "Europe/London",
        "S24_3LE",
        "2026-05-01",
        "connected",
        "default",
        "[]",
        "{}",
        "\"\"",
        "\"quoted\"",
        "/",
        "",
        " ",
        "recordings",
        "(start: \"06:00\", end: \"07:00\")",
        "[(start: \"sunset\", end: \"sunrise\")]",
        "(name: \"wood\", latitude: 51.5, longitude: -0.1)",
        "{\"name\": \"w\", \"latitude\": 1, \"longitude\": 2}",
    ];
    prop_oneof![
        3 => proptest::sample::select(samples.to_vec()).prop_map(str::to_string),
        2 => "-?[0-9]{1,25}",
        1 => any::<f64>().prop_map(|f| f.to_string()),
        2 => "[ -~]{0,24}",
        1 => any::<String>(),
    ]
}

/// The text that sets a field to `v` again: JSON for everything, a string quoted, so
/// that "none" stays the text "none" and not an unset value.
fn text_of(v: &Value) -> String {
    v.to_string()
}

/// Saves `config` in a new directory and loads it back.
fn save_and_load(config: &Config) -> Config {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("acoupi.ron");
    save(config, &path).expect("a valid configuration saves");
    load(&path).expect("a saved configuration loads")
}

/// A saved file with one edit: a range replaced by some text.
fn edited_file() -> impl Strategy<Value = String> {
    let mut c = tree::shape_config();
    c.microphone.device_name = "UltraMic".into();
    let text = to_ron(&c).unwrap_or_default();
    let len = text.len();
    (0..=len, 0..16usize, "[ -~\\n]{0,12}|\\PC{0,4}").prop_map(move |(at, cut, insert)| {
        let mut t = text.clone();
        let at = (0..=at).rev().find(|i| t.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(t.len());
        let end = (end..=t.len())
            .find(|i| t.is_char_boundary(*i))
            .unwrap_or(t.len());
        t.replace_range(at..end, &insert);
        t
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text: an error or a configuration, never a panic; a configuration that
    /// validates is saved and loaded back unchanged.
    #[test]
    fn ron_loader_never_panics_on_text(text in prop_oneof![any::<String>(), edited_file()]) {
        if let Ok(config) = parse(&text, Path::new("acoupi.ron")) {
            if validate(&config).is_ok() {
                prop_assert_eq!(save_and_load(&config), config);
            }
        }
    }

    /// Any bytes (a file from any editor or a damaged card): decoded and parsed, never a
    /// panic.
    #[test]
    fn ron_loader_never_panics_on_bytes(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        edited_file().prop_map(|t| t.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        edited_file().prop_map(|t| [b"\xEF\xBB\xBF".as_slice(), t.as_bytes()].concat()),
    ]) {
        if let Ok(text) = decode(bytes, Path::new("acoupi.ron")) {
            let _ = parse(&text, Path::new("acoupi.ron"));
        }
    }

    /// Any field and value: `set` refuses or returns a configuration whose `get` gives
    /// back what was set (setting that again changes nothing), and which, when valid,
    /// survives a save and a load. `get` never panics either.
    #[test]
    fn dotted_set_and_get_round_trip(field in field(), raw in value()) {
        let _ = tree::get(&base(), &field);
        if let Ok(changed) = tree::set(&base(), &field, &raw) {
            let got = tree::get(&changed, &field);
            prop_assert!(got.is_ok(), "set {:?} but get failed: {:?}", field, got);
            let got = got.unwrap_or(Value::Null);
            let again = tree::set(&changed, &field, &text_of(&got));
            prop_assert_eq!(again.as_ref().ok(), Some(&changed), "{:?} = {:?}: {:?}", field, raw, again);
            if validate(&changed).is_ok() {
                prop_assert_eq!(save_and_load(&changed), changed);
            }
        }
    }
}
