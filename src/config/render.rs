//! Printing a configuration value tree for people (RON) and programs (JSON) with the
//! fields in the schema's order, not alphabetically.
//!
//! `serde_json::Value` keeps object keys sorted; the schema's declaration order is
//! recovered from the JSON text of the shape tree (serialisation writes fields in
//! declaration order) so `acoupi config get microphone` starts with `device_name`.

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::tree::{segments, shape_config};

/// The field names of every object in the shape, in declaration order.
#[derive(Debug, Default)]
struct Order {
    /// Field names in order, with the order below each.
    fields: Vec<(String, Order)>,
    /// The order inside list entries.
    item: Option<Box<Order>>,
}

impl<'de> Deserialize<'de> for Order {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Order;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Order, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Order>()? {
                    fields.push((k, v));
                }
                Ok(Order { fields, item: None })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Order, A::Error> {
                let mut item = None;
                while let Some(o) = seq.next_element::<Order>()? {
                    item.get_or_insert(Box::new(o));
                }
                Ok(Order {
                    fields: vec![],
                    item,
                })
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Order, E> {
                Ok(Order::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Order, E> {
                Ok(Order::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Order, E> {
                Ok(Order::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Order, E> {
                Ok(Order::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Order, E> {
                Ok(Order::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Order, E> {
                Ok(Order::default())
            }
        }
        d.deserialize_any(V)
    }
}

impl Order {
    /// The order of the whole configuration.
    fn of_config() -> Order {
        // Serialised straight from the struct (not via `Value`, which sorts keys); plain
        // data always serialises and its JSON text always parses back.
        serde_json::to_string(&shape_config())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The order of the value at the dotted `field`.
    fn at(self, field: &str) -> Order {
        let mut cur = self;
        // Only called after `get` accepted `field`, so its segments are valid.
        for seg in segments(field).unwrap_or_default() {
            cur = if let Some(item) = cur.item {
                *item
            } else {
                match cur.fields.into_iter().find(|(k, _)| k == seg) {
                    Some((_, o)) => o,
                    None => return Order::default(),
                }
            };
        }
        cur
    }

    /// The keys of `map` in schema order, unknown ones last.
    fn keys<'a>(
        &'a self,
        map: &'a serde_json::Map<String, Value>,
    ) -> Vec<(&'a str, Option<&'a Order>)> {
        let mut keys: Vec<(&str, Option<&Order>)> = self
            .fields
            .iter()
            .filter(|(k, _)| map.contains_key(k))
            .map(|(k, o)| (k.as_str(), Some(o)))
            .collect();
        keys.extend(
            map.keys()
                .filter(|k| !self.fields.iter().any(|(f, _)| f == *k))
                .map(|k| (k.as_str(), None)),
        );
        keys
    }
}

/// The value found at `field` as RON text: sections as `(field: value, …)`, unset values
/// as `None`, one entry per line.
pub fn ron_text(value: &Value, field: &str) -> String {
    let mut out = String::new();
    write_ron(value, &Order::of_config().at(field), 0, &mut out);
    out
}

/// The value found at `field` as pretty JSON in schema order.
pub fn json_text(value: &Value, field: &str) -> String {
    let mut out = String::new();
    write_json(value, &Order::of_config().at(field), 0, &mut out);
    out
}

static EMPTY: Order = Order {
    fields: Vec::new(),
    item: None,
};

fn pad(depth: usize, unit: &str) -> String {
    unit.repeat(depth)
}

/// How RON and JSON differ where a list or a struct is laid out, one item a line.
struct Layout {
    /// One level of indentation.
    indent: &'static str,
    /// RON ends every item with a comma; JSON only the ones before another.
    trailing_comma: bool,
}

const RON: Layout = Layout {
    indent: "    ",
    trailing_comma: true,
};
const JSON: Layout = Layout {
    indent: "  ",
    trailing_comma: false,
};

/// Writes `open`, then `count` items one a line at `depth + 1` (each written by `item`
/// after its indentation), then `close` at `depth`.
fn write_block(
    out: &mut String,
    layout: &Layout,
    depth: usize,
    (open, close): (char, char),
    count: usize,
    mut item: impl FnMut(usize, &mut String),
) {
    out.push(open);
    out.push('\n');
    for i in 0..count {
        out.push_str(&pad(depth + 1, layout.indent));
        item(i, out);
        if layout.trailing_comma || i + 1 < count {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str(&pad(depth, layout.indent));
    out.push(close);
}

fn write_ron(value: &Value, order: &Order, depth: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Number(n) if n.is_f64() && !n.to_string().contains(['.', 'e', 'E']) => {
            // RON reads `1` as an integer: keep the decimal point a float had.
            let _ = write!(out, "{n}.0");
        }
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            let o = order.item.as_deref().unwrap_or(&EMPTY);
            write_block(out, &RON, depth, ('[', ']'), items.len(), |i, out| {
                write_ron(&items[i], o, depth + 1, out)
            });
        }
        Value::Object(map) => {
            let keys = order.keys(map);
            write_block(out, &RON, depth, ('(', ')'), keys.len(), |i, out| {
                let (k, o) = keys[i];
                let _ = write!(out, "{k}: ");
                write_ron(&map[k], o.unwrap_or(&EMPTY), depth + 1, out);
            });
        }
        // Booleans, other numbers and strings are written the same in RON and JSON.
        other => out.push_str(&other.to_string()),
    }
}

fn write_json(value: &Value, order: &Order, depth: usize, out: &mut String) {
    match value {
        Value::Array(items) if !items.is_empty() => {
            let o = order.item.as_deref().unwrap_or(&EMPTY);
            write_block(out, &JSON, depth, ('[', ']'), items.len(), |i, out| {
                write_json(&items[i], o, depth + 1, out)
            });
        }
        Value::Object(map) if !map.is_empty() => {
            let keys = order.keys(map);
            write_block(out, &JSON, depth, ('{', '}'), keys.len(), |i, out| {
                let (k, o) = keys[i];
                let _ = write!(out, "{}: ", Value::from(k));
                write_json(&map[k], o.unwrap_or(&EMPTY), depth + 1, out);
            });
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{Config, RecordingSaving};
    use crate::config::tree::{get, set};

    fn config() -> Config {
        let mut c = Config::default();
        c.microphone.device_name = "UltraMic".into();
        c.recording_saving = Some(RecordingSaving::default());
        c
    }

    #[test]
    fn sections_print_in_schema_order() {
        let c = config();
        let text = ron_text(&get(&c, "microphone").unwrap(), "microphone");
        assert!(
            text.starts_with("(\n    device_name: \"UltraMic\",\n    samplerate: 48000,\n"),
            "{text}"
        );
        assert!(text.contains("time_expansion: 1.0,"), "{text}");
        let text = ron_text(
            &get(&c, "recording.schedule.0").unwrap(),
            "recording.schedule.0",
        );
        assert_eq!(text, "(\n    start: \"06:00\",\n    end: \"22:30\",\n)");
        let json = json_text(&get(&c, "recording").unwrap(), "recording");
        assert!(json.starts_with("{\n  \"duration\": 3,\n  \"interval\": 10,\n  \"schedule\": [\n    {\n      \"start\""), "{json}");
    }

    #[test]
    fn printed_texts_parse_back_to_the_same_config() {
        let c = config();
        let whole = get(&c, "").unwrap();
        assert_eq!(
            set(&Config::default(), "", &ron_text(&whole, "")).unwrap(),
            c
        );
        let json = json_text(&whole, "");
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), whole);
        assert_eq!(ron_text(&Value::Null, "x"), "None");
        assert_eq!(
            ron_text(&Value::from(1.0), "microphone.time_expansion"),
            "1.0"
        );
    }
}
