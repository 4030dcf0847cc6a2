//! On-device detection: a model runs over each recording and says what called, when.
//!
//! - `config`: the `detection` section (model kind and file, labels, threshold, classes).
//! - `audio`: preprocessing, a WAV file to mono windows at the model's rate.
//! - `model`: loading with tract (pure Rust, static for musl) and running window by window.
//! - `batdetect2`: BatDetect2 1.3.1 (an ONNX export of its network): batdetect2's
//!   spectrogram chunks and detections.
//! - `birdnet`: BirdNET V2.4 (a TFLite model, tract-tflite): birdnetlib's windows and scores.
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

/// One class found in one window of a recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The class (a label of the model).
    pub class: String,
    /// The model's score for the class in this window, 0 to 1.
    pub score: f32,
    /// Start of the window, seconds from the start of the recording.
    pub start_s: f64,
    /// End of the window (the recording's end for a window that runs past it), seconds.
    pub end_s: f64,
    /// Lowest frequency the window model listens to: 0 Hz.
    pub low_freq_hz: f64,
    /// Highest frequency the window model listens to: half its sample rate.
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

/// [`detect_file`] on a file already open (see [`audio::read_open_wav`]).
pub fn detect_open_file(
    model: &Model,
    file: std::fs::File,
    path: &Path,
) -> Result<Vec<Detection>, DetectionError> {
    model.detect(&audio::read_open_wav(file, path)?)
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
