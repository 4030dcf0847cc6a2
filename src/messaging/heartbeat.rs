//! Heartbeats and summaries: what the beat collects ([`HeartbeatPayload`], stored in
//! metadata.db as it is) and the upstream-shaped JSON messages built from it.
//!
//! The heartbeat message keeps upstream's fields (`sent_on` in UTC with `Z`, `device_id`,
//! `status`, `metrics` as `{name, value, captured_on, unit}`), but `status` is real
//! (`OK`, `DEGRADED` with the problems listed, `ERROR`) and the metrics say what a field
//! visit would check: free space, recordings today, last recording, CPU temperature,
//! throttling, uptime, clock synchronisation, the workers' state and the outbox backlog.
//! The caller (the `beat` daemon) fills the payload from the system and store modules;
//! this module reads nothing itself. The workers' part is the control socket's answer
//! (`health`, a leaf module of plain types).

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::health::{DaemonStatus, RecorderStatus, WorkerHealth};
use crate::store::metadata::TagScores;
use crate::store::outbox::OutboxStats;
use crate::system::metrics::Metrics;

word_enum! {
    /// Overall health as the heartbeat message reports it (upstream's words).
    #[derive(Default)]
    pub enum HealthStatus {
        /// Everything works.
        #[default]
        Ok => "OK",
        /// Recording works but something needs attention (see `problems`).
        Degraded => "DEGRADED",
        /// Recording does not work.
        Error => "ERROR",
    }
}

/// One heartbeat, as stored in metadata.db (and, for the connected program, sent as a
/// message by [`heartbeat_message`]).
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatPayload {
    /// `ok` when both workers are ok, else `unhealthy`, or `down` when the recorder
    /// does not answer.
    pub status: RecorderStatus,
    /// The recorder's answer, if it gave one.
    pub workers: Option<DaemonStatus>,
    /// Free space, temperature, throttling, uptime, memory, load.
    pub metrics: Metrics,
    /// Whether the system clock is synchronised.
    pub clock_synchronised: Option<bool>,
    /// Recordings started since local midnight (configured time zone).
    pub recordings_today: Option<u64>,
    /// Start of the newest recording.
    pub last_recording: Option<Timestamp>,
}

impl HeartbeatPayload {
    /// Why the heartbeat is not `OK`, in the words the message lists them.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.workers {
            None => problems.push("the recorder does not answer on its control socket".to_owned()),
            Some(s) => {
                if s.recording.health != WorkerHealth::Ok {
                    problems.push(format!("recording: {}", s.recording.detail));
                }
                if s.default.health != WorkerHealth::Ok {
                    let why = s
                        .default
                        .last_error
                        .as_deref()
                        .unwrap_or("no recent management pass");
                    problems.push(format!("default worker: {why}"));
                }
            }
        }
        if self.clock_synchronised == Some(false) {
            problems.push("clock not synchronised".to_owned());
        }
        problems
    }

    /// The message's overall status: `ERROR` when the recorder is down, `DEGRADED`
    /// when `problems` is not empty.
    fn health(&self, problems: &[String]) -> HealthStatus {
        match self.status {
            RecorderStatus::Down => HealthStatus::Error,
            _ if problems.is_empty() => HealthStatus::Ok,
            _ => HealthStatus::Degraded,
        }
    }
}

fn metric(name: &str, value: f64, captured_on: Timestamp, unit: &str) -> Value {
    json!({"name": name, "value": value, "captured_on": captured_on.to_string(), "unit": unit})
}

/// The heartbeat message (JSON text) for `beat`, sent on `sent_on` by `device_id`.
/// `outbox` is what the outbox held when it was queued (after an outage, how much was
/// held back); without it the backlog metrics are left out.
pub fn heartbeat_message(
    beat: &HeartbeatPayload,
    device_id: &str,
    sent_on: Timestamp,
    outbox: Option<&OutboxStats>,
) -> String {
    let at = sent_on;
    let m = &beat.metrics;
    let mut metrics = Vec::new();
    if let Some(disk) = &m.disk {
        // Upstream's name for free space.
        metrics.push(metric(
            "remaining_storage",
            disk.free_bytes as f64,
            at,
            "bytes",
        ));
    }
    if let Some(n) = beat.recordings_today {
        metrics.push(metric("recordings_today", n as f64, at, "count"));
    }
    if let Some(last) = beat.last_recording {
        let age = at.duration_since(last).as_secs_f64().max(0.0);
        metrics.push(metric("seconds_since_last_recording", age, at, "s"));
    }
    if let Some(t) = m.cpu_temperature_c {
        metrics.push(metric("cpu_temperature", t, at, "celsius"));
    }
    if let Some(t) = &m.throttling {
        metrics.push(metric("throttled_flags", f64::from(t.raw), at, "flags"));
    }
    // A NaN or negative uptime (an unreadable /proc/uptime) is left out, not sent.
    let uptime = m.uptime_s.filter(|s| s.is_finite() && *s >= 0.0);
    if let Some(up) = uptime.map(Duration::from_secs_f64) {
        metrics.push(metric("uptime", up.as_secs_f64(), at, "s"));
    }
    if let Some(stats) = outbox {
        metrics.push(metric("messages_queued", stats.queued as f64, at, "count"));
        let rejected = stats.failed_permanent as f64;
        metrics.push(metric("messages_rejected", rejected, at, "count"));
    }
    if let Some(synced) = beat.clock_synchronised {
        metrics.push(metric(
            "clock_synchronised",
            if synced { 1.0 } else { 0.0 },
            at,
            "bool",
        ));
    }
    let problems = beat.problems();
    let mut payload = Map::new();
    payload.insert("sent_on".into(), Value::String(at.to_string()));
    payload.insert("device_id".into(), Value::String(device_id.to_owned()));
    payload.insert("status".into(), json!(beat.health(&problems)));
    // Upstream sends `metrics` only when there are some.
    if !metrics.is_empty() {
        payload.insert("metrics".into(), Value::Array(metrics));
    }
    if !problems.is_empty() {
        payload.insert("problems".into(), json!(problems));
    }
    if let Some(last) = beat.last_recording {
        payload.insert("last_recording".into(), Value::String(last.to_string()));
    }
    if let Some(s) = &beat.workers {
        let workers = json!({"recording": s.recording.state, "default": s.default.health});
        payload.insert("workers".into(), workers);
    }
    Value::Object(payload).to_string()
}

/// What a summary covers: recording activity, errors and detections over `[start, end)`.
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
    /// Detections of the model outputs made in the interval, per tag value.
    pub detections: Vec<TagScores>,
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
        "detections": detection_statistics(&input.detections),
        "timeinterval": {"starttime": input.start.to_string(), "endtime": input.end.to_string()},
    })
    .to_string()
}

/// Upstream's statistics summary: `{"<tag value>": {"mean", "min", "max", "count"}}`,
/// the mean rounded to 3 places as upstream rounds it.
fn detection_statistics(scores: &[TagScores]) -> Map<String, Value> {
    scores
        .iter()
        .map(|s| {
            let mean = (s.mean * 1000.0).round() / 1000.0;
            let stats = json!({"mean": mean, "min": s.min, "max": s.max, "count": s.count});
            (s.value.clone(), stats)
        })
        .collect()
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

    fn quiet_metrics() -> Metrics {
        Metrics {
            disk: None,
            cpu_temperature_c: None,
            throttling: None,
            uptime_s: None,
            memory: None,
            load: None,
        }
    }

    fn workers(recording: WorkerHealth, state: &str) -> DaemonStatus {
        serde_json::from_value(json!({
            "protocol": 1, "pid": 1, "started_at": "2026-01-01T00:00:00Z",
            "recording": {"health": recording, "state": state, "detail": "recording 1/3 s",
                "device": "mic", "frames": 0, "xruns": 0, "files": 0},
            "default": {"health": "ok", "last_pass_age_s": 3, "last_error": null}
        }))
        .unwrap()
    }

    fn beat(status: RecorderStatus, workers: Option<DaemonStatus>) -> HeartbeatPayload {
        HeartbeatPayload {
            status,
            workers,
            metrics: quiet_metrics(),
            clock_synchronised: None,
            recordings_today: None,
            last_recording: None,
        }
    }

    #[test]
    fn healthy_bare_heartbeat_is_upstream_shape_byte_for_byte() {
        let ok = beat(
            RecorderStatus::Ok,
            Some(workers(WorkerHealth::Ok, "recording")),
        );
        let text = heartbeat_message(&ok, "10000000abcdef01", at("2024-01-01T00:00:00Z"), None);
        // Byte-identical to what upstream acoupi and the deployed subscribers read.
        assert_eq!(
            text,
            r#"{"device_id":"10000000abcdef01","sent_on":"2024-01-01T00:00:00Z","status":"OK","workers":{"default":"ok","recording":"recording"}}"#
        );
    }

    #[test]
    fn heartbeat_carries_metrics_problems_and_workers() {
        let mut b = beat(
            RecorderStatus::Unhealthy,
            Some(workers(WorkerHealth::Notok, "disk-full")),
        );
        b.metrics.disk = Some(crate::system::metrics::DiskSpace {
            total_bytes: 4096,
            free_bytes: 1024,
        });
        b.metrics.cpu_temperature_c = Some(51.5);
        b.last_recording = Some(at("2024-01-01T00:59:00Z"));
        b.clock_synchronised = Some(false);
        let stats = OutboxStats {
            queued: 7,
            ..OutboxStats::default()
        };
        let text = heartbeat_message(&b, "d", at("2024-01-01T01:00:00Z"), Some(&stats));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "DEGRADED");
        assert_eq!(v["problems"][0], "recording: recording 1/3 s");
        assert_eq!(v["problems"][1], "clock not synchronised");
        assert_eq!(v["workers"]["recording"], "disk-full");
        assert_eq!(v["workers"]["default"], "ok");
        let metrics = v["metrics"].as_array().unwrap();
        let find = |n: &str| metrics.iter().find(|m| m["name"] == n).unwrap().clone();
        assert_eq!(find("remaining_storage")["value"], 1024.0);
        assert_eq!(find("seconds_since_last_recording")["value"], 60.0);
        assert_eq!(find("clock_synchronised")["value"], 0.0);
        assert_eq!(find("messages_queued")["value"], 7.0);
        assert_eq!(find("messages_rejected")["value"], 0.0);
        assert!(
            !metrics.iter().any(|m| m["name"] == "uptime"),
            "no figure, no metric"
        );
        assert_eq!(
            find("cpu_temperature")["captured_on"],
            "2024-01-01T01:00:00Z"
        );
    }

    #[test]
    fn a_recorder_that_does_not_answer_is_an_error_heartbeat() {
        let mut down = beat(RecorderStatus::Down, None);
        down.metrics.uptime_s = Some(f64::NAN);
        let text = heartbeat_message(&down, "dev", at("2026-06-01T00:00:00Z"), None);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "ERROR");
        assert_eq!(
            v["problems"],
            json!(["the recorder does not answer on its control socket"])
        );
        assert!(
            v.get("metrics").is_none(),
            "a NaN uptime is dropped, not a panic"
        );
        assert!(v.get("workers").is_none());
    }

    #[test]
    fn the_stored_heartbeat_keeps_its_status_words() {
        let stored = serde_json::to_value(beat(RecorderStatus::Down, None)).unwrap();
        assert_eq!(stored["status"], "down");
        assert_eq!(
            RecorderStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["ok", "unhealthy", "down"]
        );
        assert_eq!(
            HealthStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["OK", "DEGRADED", "ERROR"]
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
            detections: vec![TagScores {
                value: "Turdus merula".into(),
                count: 3,
                mean: 0.71234,
                min: 0.5,
                max: 0.9,
            }],
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
        assert_eq!(
            v["detections"]["Turdus merula"],
            json!({"mean": 0.712, "min": 0.5, "max": 0.9, "count": 3})
        );
    }
}
