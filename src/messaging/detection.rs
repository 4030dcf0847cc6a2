//! The detection message: one model output, as upstream acoupi's detection programs
//! send it (the whole `ModelOutput` as JSON, its recording with the deployment nested,
//! its detections with their tags).
//!
//! Unlike upstream, whose message builder mints a new id and time for the output it
//! sends, the message carries the stored output's own id and `created_on`, and is
//! queued under that id: a receiver can match a message to the rows in metadata.db and
//! drop a repeat.

use serde_json::{json, Value};

use crate::store::metadata::{Deployment, DetectionRow, ModelOutput, Recording};

/// The message payload (JSON text) for `output`, made on `recording` of `deployment`.
pub fn detection_payload(
    output: &ModelOutput,
    recording: &Recording,
    deployment: &Deployment,
) -> String {
    json!({
        "id": output.id.to_string(),
        "name_model": output.model_name,
        "created_on": output.created_on.to_string(),
        "recording": {
            "id": recording.id.to_string(),
            "path": recording.path,
            "created_on": recording.datetime.to_string(),
            "duration": recording.duration_s,
            "samplerate": recording.samplerate_hz,
            "audio_channels": recording.audio_channels,
            "time_expansion": recording.time_expansion.unwrap_or(1.0),
            "deployment": {
                "id": deployment.id.to_string(),
                "name": deployment.name,
                "latitude": deployment.latitude,
                "longitude": deployment.longitude,
                "started_on": deployment.started_on.to_string(),
                "ended_on": deployment.ended_on.map(|t| t.to_string()),
            },
        },
        "detections": output.detections.iter().map(detection).collect::<Vec<_>>(),
    })
    .to_string()
}

fn detection(d: &DetectionRow) -> Value {
    json!({
        "id": d.id.to_string(),
        "prediction_type": d.prediction_type.as_str(),
        "location": d.location.map(|b| json!({
            "type": "BoundingBox",
            "coordinates": [b.start_time_s, b.low_freq_hz, b.end_time_s, b.high_freq_hz],
        })),
        "detection_score": d.detection_score,
        "tags": d.tags.iter().map(|t| json!({
            "tag": {"key": t.key, "value": t.value},
            "confidence_score": t.confidence_score,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::{BoundingBox, PredictedTag, PredictionType};
    use uuid::Uuid;

    #[test]
    fn the_payload_has_upstreams_model_output_shape_with_the_stored_ids() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let deployment = Deployment {
            id: Uuid::from_u128(1),
            name: "hedge".into(),
            started_on: at("2026-12-01T00:00:00Z"),
            ended_on: None,
            latitude: Some(51.5),
            longitude: None,
        };
        let recording = Recording {
            id: Uuid::from_u128(2),
            path: Some("/var/lib/acoupi/storages/recordings/2026/12/06/a.wav".into()),
            datetime: at("2026-12-06T01:00:00.5Z"),
            duration_s: 10.0,
            samplerate_hz: 48_000,
            audio_channels: 1,
            deployment_id: deployment.id,
            state: None,
            clock_synced: Some(true),
            time_expansion: None,
            bit_depth: Some(16),
            frames: Some(480_000),
        };
        let output = ModelOutput {
            id: Uuid::from_u128(3),
            model_name: "BirdNET".into(),
            recording_id: recording.id,
            created_on: at("2026-12-06T01:00:12.25Z"),
            detections: vec![DetectionRow {
                id: Uuid::from_u128(4),
                prediction_type: PredictionType::Event,
                location: Some(BoundingBox {
                    start_time_s: 3.0,
                    low_freq_hz: 0.0,
                    end_time_s: 6.0,
                    high_freq_hz: 24_000.0,
                }),
                detection_score: 0.8,
                tags: vec![PredictedTag {
                    key: "species".into(),
                    value: "Turdus merula".into(),
                    confidence_score: 0.8,
                }],
            }],
        };
        let v: Value =
            serde_json::from_str(&detection_payload(&output, &recording, &deployment)).unwrap();
        assert_eq!(v["id"], Uuid::from_u128(3).to_string());
        assert_eq!(v["name_model"], "BirdNET");
        assert_eq!(v["created_on"], "2026-12-06T01:00:12.25Z");
        let r = &v["recording"];
        assert_eq!(r["id"], Uuid::from_u128(2).to_string());
        assert_eq!(r["created_on"], "2026-12-06T01:00:00.5Z");
        assert_eq!(
            (r["samplerate"].as_u64(), r["duration"].as_f64()),
            (Some(48_000), Some(10.0))
        );
        assert_eq!(r["time_expansion"], 1.0);
        assert_eq!(r["deployment"]["name"], "hedge");
        assert_eq!(r["deployment"]["latitude"], 51.5);
        assert!(r["deployment"]["longitude"].is_null() && r["deployment"]["ended_on"].is_null());
        let d = &v["detections"][0];
        assert_eq!(d["prediction_type"], "event");
        assert_eq!(d["location"]["type"], "BoundingBox");
        assert_eq!(
            d["location"]["coordinates"],
            json!([3.0, 0.0, 6.0, 24000.0])
        );
        assert_eq!(
            d["tags"][0]["tag"],
            json!({"key": "species", "value": "Turdus merula"})
        );
        assert_eq!(d["tags"][0]["confidence_score"], 0.8);
    }
}
