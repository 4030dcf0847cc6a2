//! Detections as upstream's rows: one `model_output` per run over a recording, one
//! `detection` per class found in a window (an `event`: the window's time span and the
//! model's frequency range), one `predicted_tag` per detection: key `class` and the
//! label for a window model; for BirdNET (model name `BirdNET`) what upstream's
//! acoupi-birdnet writes, key `Scientific Taxon Name` and the label's scientific name;
//! for BatDetect2 what acoupi-batdetect2 writes: one detection per call, key `species`,
//! the call probability as the detection's score and the class probability as the tag's.
//!
//! A run that finds nothing is still stored, as an output without detections: upstream's
//! file management waits for every required model's output, and "ran, found nothing" is
//! what a detection-based saving filter needs to drop a recording.

use jiff::Timestamp;
use uuid::Uuid;

use crate::store::metadata::{
    BoundingBox, DetectionRow, ModelOutput, PredictedTag, PredictionType,
};

use super::{batdetect2, birdnet, Detection};

/// The key of every tag a window model writes; the value is the class label.
pub const TAG_KEY: &str = "class";

/// The tag (key, value) upstream writes for `label` found by `model_name`.
fn tag(model_name: &str, label: &str) -> (&'static str, String) {
    if model_name == birdnet::MODEL_NAME {
        (birdnet::TAG_KEY, birdnet::scientific_name(label).to_owned())
    } else if model_name == batdetect2::MODEL_NAME {
        (batdetect2::TAG_KEY, label.to_owned())
    } else {
        (TAG_KEY, label.to_owned())
    }
}

/// The model output of one run of `model_name` over recording `recording_id`.
pub fn model_output(
    model_name: &str,
    recording_id: Uuid,
    created_on: Timestamp,
    detections: &[Detection],
) -> ModelOutput {
    ModelOutput {
        id: Uuid::new_v4(),
        model_name: model_name.to_owned(),
        recording_id,
        created_on,
        detections: detections
            .iter()
            .map(|d| DetectionRow {
                id: Uuid::new_v4(),
                prediction_type: PredictionType::Event,
                location: Some(BoundingBox {
                    start_time_s: d.start_s,
                    low_freq_hz: d.low_freq_hz,
                    end_time_s: d.end_s,
                    high_freq_hz: d.high_freq_hz,
                }),
                detection_score: d.score,
                tags: {
                    let (key, value) = tag(model_name, &d.class);
                    vec![PredictedTag {
                        key: key.into(),
                        value,
                        confidence_score: d.class_score,
                    }]
                },
            })
            .collect(),
    }
}
