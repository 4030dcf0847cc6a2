//! GUANO metadata: the `guan` chunk bat and bioacoustics tools read to learn when, where
//! and with what a WAV file was recorded.
//!
//! Only the fields upstream acoupi writes (plus `Model`, `Length` and `Original Filename`)
//! are produced. This module formats text; it does not know where the chunk goes.

use jiff::Timestamp;

/// The four-byte chunk id GUANO uses inside a RIFF file.
pub const CHUNK_ID: &[u8; 4] = b"guan";

/// What one recording's GUANO chunk says.
#[derive(Debug, Clone, PartialEq)]
pub struct Guano {
    /// Instant of the first sample (written with a `+00:00` UTC offset).
    pub timestamp: Timestamp,
    /// Latitude and longitude in degrees, when the deployment has both.
    pub position: Option<(f64, f64)>,
    /// The real (not time-expanded) sample rate in Hz.
    pub samplerate: u32,
    /// Length of the recording in seconds of real time.
    pub length_seconds: f64,
    /// The capture device (the PCM name).
    pub model: String,
    /// The recorder's own id (upstream writes the device id here).
    pub serial: Option<String>,
    /// The file name as first written, e.g. `20261126_034907_123.wav`.
    pub original_filename: String,
    /// Time expansion factor; written only when it is not 1.
    pub time_expansion: f64,
    /// The deployment the recording belongs to.
    pub deployment_name: Option<String>,
}

impl Guano {
    /// The chunk body: UTF-8 `Key: value` lines, the first being `GUANO|Version: 1.0`.
    pub fn to_text(&self) -> String {
        let mut lines = vec!["GUANO|Version: 1.0".to_string()];
        lines.push(format!("Firmware Version: {}", env!("CARGO_PKG_VERSION")));
        lines.push(format!("Length: {:.6}", self.length_seconds));
        if let Some((lat, lon)) = self.position {
            lines.push(format!("Loc Position: {lat} {lon}"));
        }
        lines.push("Make: acoupi".to_string());
        lines.push(format!("Model: {}", one_line(&self.model)));
        lines.push(format!(
            "Original Filename: {}",
            one_line(&self.original_filename)
        ));
        lines.push(format!("Samplerate: {}", self.samplerate));
        if let Some(serial) = &self.serial {
            lines.push(format!("Serial: {}", one_line(serial)));
        }
        if self.time_expansion != 1.0 {
            lines.push(format!("TE: {}", self.time_expansion));
        }
        lines.push(format!(
            "Timestamp: {}+00:00",
            self.timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3f")
        ));
        if let Some(name) = &self.deployment_name {
            lines.push(format!("Acoupi|Deployment Name: {}", one_line(name)));
        }
        lines.join("\n")
    }
}

/// GUANO values end at the line break; a newline inside a value would start a new field.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Splits a GUANO body into `(key, value)` pairs, for readers (and tests) of the chunk.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
impl Guano {
    /// The chunk a test writes with a file of `frames` frames at 8 kHz named `name`,
    /// starting at `start`: no position, serial or deployment, model `test`. Tests that
    /// need another field override it (`Guano { time_expansion: 2.0, ..for_test(..) }`).
    pub(crate) fn for_test(name: &str, frames: u64, start: Timestamp) -> Guano {
        Guano {
            timestamp: start,
            position: None,
            samplerate: 8000,
            length_seconds: frames as f64 / 8000.0,
            model: "test".into(),
            serial: None,
            original_filename: name.into(),
            time_expansion: 1.0,
            deployment_name: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Guano {
        Guano {
            timestamp: "2026-11-26T03:49:07.123Z".parse().unwrap(),
            position: Some((51.5, -0.12)),
            samplerate: 384_000,
            length_seconds: 3.0,
            model: "hw:CARD=UltraMic,DEV=0".into(),
            serial: Some("pi-1234".into()),
            original_filename: "20261126_034907_123.wav".into(),
            time_expansion: 10.0,
            deployment_name: Some("wood\nnorth".into()),
        }
    }

    #[test]
    fn guano_text_carries_upstream_fields_and_round_trips() {
        let text = sample().to_text();
        assert!(text.starts_with("GUANO|Version: 1.0\n"));
        let kv = parse(&text);
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("Timestamp").as_deref(),
            Some("2026-11-26T03:49:07.123+00:00")
        );
        assert_eq!(get("Loc Position").as_deref(), Some("51.5 -0.12"));
        assert_eq!(get("TE").as_deref(), Some("10"));
        assert_eq!(get("Samplerate").as_deref(), Some("384000"));
        assert_eq!(get("Make").as_deref(), Some("acoupi"));
        assert_eq!(get("Acoupi|Deployment Name").as_deref(), Some("wood north"));
    }

    #[test]
    fn te_of_one_and_unknown_position_are_omitted() {
        let mut g = sample();
        g.time_expansion = 1.0;
        g.position = None;
        let text = g.to_text();
        assert!(!text.contains("TE:"));
        assert!(!text.contains("Loc Position"));
    }
}
