//! The commented example configuration shipped on the boot partition and printed by
//! `acoupi config example`: every field with what it means and what it accepts.
//!
//! The text lives in `example.ron` next to this file so it reads as the real thing; a
//! test keeps it parseable and valid, so it cannot drift from the schema.

/// The commented example `acoupi.ron`.
pub fn example_ron() -> &'static str {
    include_str!("example.ron")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::Config;
    use crate::config::{parse, validate};

    #[test]
    fn example_parses_and_validates() {
        let c = parse(example_ron(), Path::new("example.ron")).unwrap();
        validate(&c).unwrap();
        assert_eq!(c.microphone.device_name, "USB");
        assert!(c.deployment.is_none());
    }

    #[test]
    fn commented_messaging_example_is_a_valid_connected_config() {
        let lines: Vec<&str> = example_ron()
            .lines()
            .map(str::trim)
            .skip_while(|l| !l.starts_with("//   messaging: ("))
            .take_while(|l| l.starts_with("//"))
            .map(|l| l.trim_start_matches('/').trim())
            .collect();
        let body = lines.join("\n");
        let text = format!("(program: connected, microphone: (device_name: \"USB\"), {body})");
        let c = parse(&text, Path::new("example.ron")).unwrap();
        validate(&c).unwrap();
        let m = c.messaging.unwrap();
        assert!(m.mqtt.is_some() && m.http.is_some());
    }

    #[test]
    fn every_commented_detection_example_is_a_valid_section() {
        let lines: Vec<&str> = example_ron()
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("//"))
            .map(|l| l.trim_start_matches('/'))
            .collect();
        let mut kinds = Vec::new();
        for (start, _) in lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim() == "detection: (")
        {
            let end = start
                + lines[start..]
                    .iter()
                    .position(|l| l.trim() == "),")
                    .unwrap();
            let body = lines[start..=end].join("\n");
            let text = format!("(microphone: (device_name: \"USB\"), {body})");
            let c = parse(&text, Path::new("example.ron")).unwrap();
            validate(&c).unwrap_or_else(|e| panic!("{body}\n{e:?}"));
            kinds.push(c.detection.unwrap().kind);
        }
        use crate::detection::ModelKind;
        assert_eq!(
            kinds,
            [
                ModelKind::OnnxWindow,
                ModelKind::Birdnet,
                ModelKind::Batdetect2
            ]
        );
    }

    #[test]
    fn example_mentions_every_field_of_the_schema() {
        let c = Config {
            recording_saving: Some(Default::default()),
            ..Default::default()
        };
        let tree = serde_json::to_value(&c).unwrap();
        let mut missing = vec![];
        let serde_json::Value::Object(top) = tree else {
            panic!("config is a struct")
        };
        for (k, v) in &top {
            if !example_ron().contains(&format!("{k}:")) {
                missing.push(k.clone());
            }
            if let serde_json::Value::Object(section) = v {
                for f in section.keys() {
                    if !example_ron().contains(&format!("{f}:")) {
                        missing.push(format!("{k}.{f}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }
}
