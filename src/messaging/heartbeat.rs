//! Heartbeat and summary payloads: plain structs in, upstream-shaped JSON out.
//!
//! The heartbeat keeps upstream's fields (`sent_on` in UTC with `Z`, `device_id`,
//! `status`, `metrics` as `{name, value, captured_on, unit}`), but `status` is real
//! (`OK`, `DEGRADED` with the problems listed, `ERROR`) and the metrics say what a field
//! visit would check: free space, recordings today, last recording, CPU temperature,
//! throttling, uptime, clock synchronisation, the workers' state and the outbox backlog. The caller (the
//! `beat` daemon) fills the input from the system and store modules; this module reads
//! nothing itself.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

/// Overall health as the heartbeat reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthStatus {
    /// Everything works.
    #[default]
    Ok,
    /// Recording works but something needs attention (see `problems`).
    Degraded,
    /// Recording does not work.
    Error,
}

impl HealthStatus {
    /// The `status` text of the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "OK",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Error => "ERROR",
        }
    }
}

/// One worker's state (`recording`, `default`, …) as the control socket reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    /// Worker name.
    pub name: String,
    /// Its state (`ok`, `stalled`, `idle`, …).
    pub state: String,
}

/// What the heartbeat says; every measurement is optional (absent → no metric).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeartbeatInput {
    /// The device id (Pi serial number).
    pub device_id: String,
    /// When the heartbeat was built.
    pub sent_on: Timestamp,
    /// Overall health.
    pub status: HealthStatus,
    /// Why the status is not `OK`.
    pub problems: Vec<String>,
    /// Free bytes on the recordings file system.
    pub free_space_bytes: Option<u64>,
    /// Recordings made since local midnight.
    pub recordings_today: Option<u64>,
    /// Start of the newest recording.
    pub last_recording: Option<Timestamp>,
    /// SoC temperature in °C.
    pub cpu_temperature_celsius: Option<f64>,
    /// The firmware's throttling flags (`get_throttled`; 0 = never throttled).
    pub throttled_flags: Option<u32>,
    /// Time since boot.
    pub uptime: Option<Duration>,
    /// Whether the system clock is synchronised (NTP); a Pi has no RTC.
    pub clock_synchronised: Option<bool>,
    /// The workers' states.
    pub workers: Vec<WorkerState>,
    /// Messages waiting in the outbox when the heartbeat was queued: after an outage,
    /// how much was held back.
    pub messages_queued: Option<u64>,
    /// Messages a receiver rejected for good (the reason is in the device's journal).
    pub messages_rejected: Option<u64>,
}

fn metric(name: &str, value: f64, captured_on: Timestamp, unit: &str) -> Value {
    json!({"name": name, "value": value, "captured_on": captured_on.to_string(), "unit": unit})
}

/// The heartbeat message payload (JSON text).
pub fn heartbeat_payload(input: &HeartbeatInput) -> String {
    let at = input.sent_on;
    let mut metrics = Vec::new();
    if let Some(bytes) = input.free_space_bytes {
        // Upstream's name for free space.
        metrics.push(metric("remaining_storage", bytes as f64, at, "bytes"));
    }
    if let Some(n) = input.recordings_today {
        metrics.push(metric("recordings_today", n as f64, at, "count"));
    }
    if let Some(last) = input.last_recording {
        let age = at.duration_since(last).as_secs_f64().max(0.0);
        metrics.push(metric("seconds_since_last_recording", age, at, "s"));
    }
    if let Some(t) = input.cpu_temperature_celsius {
        metrics.push(metric("cpu_temperature", t, at, "celsius"));
    }
    if let Some(flags) = input.throttled_flags {
        metrics.push(metric("throttled_flags", f64::from(flags), at, "flags"));
    }
    if let Some(up) = input.uptime {
        metrics.push(metric("uptime", up.as_secs_f64(), at, "s"));
    }
    if let Some(n) = input.messages_queued {
        metrics.push(metric("messages_queued", n as f64, at, "count"));
    }
    if let Some(n) = input.messages_rejected {
        metrics.push(metric("messages_rejected", n as f64, at, "count"));
    }
    if let Some(synced) = input.clock_synchronised {
        metrics.push(metric(
            "clock_synchronised",
            if synced { 1.0 } else { 0.0 },
            at,
            "bool",
        ));
    }
    let mut payload = Map::new();
    payload.insert("sent_on".into(), Value::String(at.to_string()));
    payload.insert("device_id".into(), Value::String(input.device_id.clone()));
    payload.insert(
        "status".into(),
        Value::String(input.status.as_str().to_owned()),
    );
    // Upstream sends `metrics` only when there are some.
    if !metrics.is_empty() {
        payload.insert("metrics".into(), Value::Array(metrics));
    }
    if !input.problems.is_empty() {
        payload.insert("problems".into(), json!(input.problems));
    }
    if let Some(last) = input.last_recording {
        payload.insert("last_recording".into(), Value::String(last.to_string()));
    }
    if !input.workers.is_empty() {
        let workers: Map<String, Value> = input
            .workers
            .iter()
            .map(|w| (w.name.clone(), Value::String(w.state.clone())))
            .collect();
        payload.insert("workers".into(), Value::Object(workers));
    }
    Value::Object(payload).to_string()
}

/// What a summary covers: recording activity and errors over `[start, end)`.
///
/// Counted from the recording rows still in metadata.db: recordings the saving filters
/// deleted have no row any more, so `recordings` is what was kept or still waits for the
/// management task, not every file captured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SummaryInput {
    /// The device id.
    pub device_id: String,
    /// Start of the interval.
    pub start: Timestamp,
    /// End of the interval.
    pub end: Timestamp,
    /// Recordings that started in the interval and still have a row.
    pub recordings: u64,
    /// Of those, moved to the recordings directory.
    pub kept: u64,
    /// Of those, still waiting in the temporary directory.
    pub pending: u64,
    /// Seconds of audio in those recordings.
    pub recorded_seconds: f64,
    /// Capture gaps that ended in the interval, counted by reason (`xrun`, `device_missing`, …).
    pub gaps: Vec<(String, u64)>,
    /// Seconds of audio missing in those gaps.
    pub gap_seconds: f64,
    /// Errors the recorder met in the interval, counted by kind (`device_lost`, …).
    pub errors: Vec<(String, u64)>,
}

/// The summary message payload (JSON text), with upstream's `timeinterval` object.
pub fn summary_payload(input: &SummaryInput) -> String {
    let (gap_count, reasons) = counts(&input.gaps);
    let (error_count, kinds) = counts(&input.errors);
    json!({
        "device_id": input.device_id,
        "recordings": {"count": input.recordings, "kept": input.kept, "pending": input.pending,
                       "seconds": input.recorded_seconds,
                       "minutes": (input.recorded_seconds / 60.0 * 100.0).round() / 100.0},
        "gaps": {"count": gap_count, "seconds": input.gap_seconds, "reasons": reasons},
        "errors": {"count": error_count, "kinds": kinds},
        "timeinterval": {"starttime": input.start.to_string(), "endtime": input.end.to_string()},
    })
    .to_string()
}

/// The total of `by_name` and the same counts as a JSON object.
fn counts(by_name: &[(String, u64)]) -> (u64, Map<String, Value>) {
    let total = by_name.iter().map(|(_, n)| n).sum();
    let object = by_name
        .iter()
        .map(|(name, n)| (name.clone(), json!(n)))
        .collect();
    (total, object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn bare_heartbeat_matches_upstream_shape() {
        let input = HeartbeatInput {
            device_id: "10000000abcdef01".into(),
            sent_on: at("2024-01-01T00:00:00Z"),
            ..HeartbeatInput::default()
        };
        let got: Value = serde_json::from_str(&heartbeat_payload(&input)).unwrap();
        let want = json!({"sent_on": "2024-01-01T00:00:00Z", "device_id": "10000000abcdef01", "status": "OK"});
        assert_eq!(got, want);
    }

    #[test]
    fn heartbeat_carries_metrics_problems_and_workers() {
        let input = HeartbeatInput {
            device_id: "d".into(),
            sent_on: at("2024-01-01T01:00:00Z"),
            status: HealthStatus::Degraded,
            problems: vec!["clock not synchronised".into()],
            free_space_bytes: Some(1024),
            last_recording: Some(at("2024-01-01T00:59:00Z")),
            cpu_temperature_celsius: Some(51.5),
            clock_synchronised: Some(false),
            messages_queued: Some(7),
            workers: vec![WorkerState {
                name: "recording".into(),
                state: "ok".into(),
            }],
            ..HeartbeatInput::default()
        };
        let v: Value = serde_json::from_str(&heartbeat_payload(&input)).unwrap();
        assert_eq!(v["status"], "DEGRADED");
        assert_eq!(v["problems"][0], "clock not synchronised");
        assert_eq!(v["workers"]["recording"], "ok");
        let metrics = v["metrics"].as_array().unwrap();
        let find = |n: &str| metrics.iter().find(|m| m["name"] == n).unwrap().clone();
        assert_eq!(find("remaining_storage")["value"], 1024.0);
        assert_eq!(find("seconds_since_last_recording")["value"], 60.0);
        assert_eq!(find("clock_synchronised")["value"], 0.0);
        assert_eq!(find("messages_queued")["value"], 7.0);
        assert!(
            !metrics.iter().any(|m| m["name"] == "messages_rejected"),
            "no figure, no metric"
        );
        assert_eq!(
            find("cpu_temperature")["captured_on"],
            "2024-01-01T01:00:00Z"
        );
    }

    #[test]
    fn summary_has_upstream_timeinterval() {
        let v: Value = serde_json::from_str(&summary_payload(&SummaryInput {
            start: at("2024-01-01T00:00:00Z"),
            end: at("2024-01-01T01:00:00Z"),
            recordings: 3,
            recorded_seconds: 90.0,
            gaps: vec![("xrun".into(), 2), ("device_missing".into(), 1)],
            errors: vec![("device_lost".into(), 1), ("disk_full".into(), 4)],
            ..SummaryInput::default()
        }))
        .unwrap();
        assert_eq!(v["timeinterval"]["starttime"], "2024-01-01T00:00:00Z");
        assert_eq!(v["recordings"]["count"], 3);
        assert_eq!(v["recordings"]["minutes"], 1.5);
        assert_eq!(v["gaps"]["count"], 3);
        assert_eq!(v["gaps"]["reasons"]["xrun"], 2);
        assert_eq!(v["errors"]["count"], 5);
        assert_eq!(v["errors"]["kinds"]["disk_full"], 4);
    }
}
