//! Loading a model with tract (pure Rust, linked into the one static binary) and running
//! it window by window.
//!
//! Everything a model file can get wrong is found at load time, where the error can name
//! `detection.model_file` or `detection.labels_file`: the input must be one window of
//! samples of a fixed length, the output one score per class, one label per score. The
//! model then runs once on silence, so a model that loads but cannot run fails here and
//! not on the first recording of a deployment.

use std::path::Path;

use tract_onnx::prelude::*;

use super::audio::{resample_linear, window_at, window_starts, Mono};
use super::birdnet_location::{LocationFilter, Place};
use super::config::{DetectionConfig, ModelKind};
use super::{batdetect2, birdnet, resample};
use super::{Detection, DetectionError};

/// A loaded, optimised model with its labels: ready to run on recordings.
#[derive(Debug)]
pub struct Model {
    plan: Plan,
    /// The model's name in `model_output.model_name`: the model file's stem.
    name: String,
    labels: Vec<String>,
    /// For each label, whether `detection.classes` lets it through.
    reported: Vec<bool>,
    window: usize,
    hop: usize,
    samplerate: u32,
    threshold: f64,
    /// Whether the input is `[1, samples]` (else `[samples]`).
    batched: bool,
    /// How windows are cut and outputs become scores.
    scoring: Scoring,
    /// BirdNET's location/week filter, when `detection.location_model_file` is set.
    location: Option<LocationFilter>,
}

/// An optimised tract model, ready to run (ONNX and TFLite models alike).
pub(super) type Plan = std::sync::Arc<TypedSimplePlan>;

/// How a kind cuts windows and turns the model's outputs into scores.
#[derive(Debug, Clone)]
enum Scoring {
    /// Windows `hop` apart, the tail padded; the outputs are the scores.
    Window,
    /// birdnetlib's windows and sigmoid (`detection::birdnet`).
    Birdnet {
        /// Seconds consecutive windows share (`detection.overlap`).
        overlap_s: f64,
        /// The sigmoid's slope from `detection.sensitivity`.
        slope: f32,
    },
    /// BatDetect2's chunks and calls (`detection::batdetect2`): no windows.
    Batdetect2(batdetect2::Network),
}

impl Model {
    /// Loads the model and labels `config` names, optimises the model once and runs it
    /// once on silence.
    pub fn load(config: &DetectionConfig) -> Result<Model, DetectionError> {
        let path = &config.model_file;
        let invalid = |reason: String| DetectionError::Model {
            path: path.clone(),
            reason,
        };
        let (plan, window, batched, name, samplerate, hop, scoring) = match config.kind {
            ModelKind::OnnxWindow => {
                let (plan, window, batched) = onnx_window(path)?;
                let overlap = config.overlap.clamp(0.0, 0.9);
                let hop = ((window as f64) * (1.0 - overlap)).round().max(1.0) as usize;
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rate = config.samplerate;
                (plan, window, batched, name, rate, hop, Scoring::Window)
            }
            ModelKind::Birdnet => (
                birdnet::load(path)?,
                birdnet::WINDOW,
                true,
                birdnet::MODEL_NAME.to_owned(),
                birdnet::SAMPLERATE,
                0,
                Scoring::Birdnet {
                    overlap_s: config.overlap,
                    slope: birdnet::slope(config.sensitivity),
                },
            ),
            ModelKind::Batdetect2 => {
                let network = batdetect2::Network::load(path)?;
                (
                    network.plan()?,
                    (batdetect2::frontend::SAMPLERATE * batdetect2::frontend::CHUNK_SECONDS)
                        as usize,
                    true,
                    batdetect2::MODEL_NAME.to_owned(),
                    batdetect2::frontend::SAMPLERATE,
                    0,
                    Scoring::Batdetect2(network),
                )
            }
        };
        let mut model = Model {
            plan,
            name,
            labels: Vec::new(),
            reported: Vec::new(),
            window,
            hop,
            samplerate,
            threshold: config.threshold(),
            batched,
            scoring,
            location: None,
        };
        let silent = |e: DetectionError| invalid(format!("it does not run on silence: {e}"));
        let scores = match &model.scoring {
            Scoring::Batdetect2(network) => network.classes().map_err(silent)?,
            _ => model.scores(&vec![0.0; window]).map_err(silent)?.len(),
        };
        if config.kind != ModelKind::OnnxWindow && config.labels_file.is_none() {
            return Err(DetectionError::Labels {
                path: "(not set)".into(),
                labels: 0,
                scores,
            });
        }
        model.labels = labels(config.labels_file.as_deref(), scores)?;
        model.reported = reported(&model.labels, &config.classes)?;
        // Validation refuses the field for other kinds; a file edited by hand is ignored.
        if let (ModelKind::Birdnet, Some(path)) = (config.kind, &config.location_model_file) {
            model.location = Some(LocationFilter::load(
                path,
                config.location_threshold(),
                config.week,
            )?);
        }
        Ok(model)
    }

    /// The name stored in `model_output.model_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The class names, in the model's output order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Samples per window, at [`Model::samplerate`].
    pub fn window(&self) -> usize {
        self.window
    }

    /// The sample rate the model takes.
    pub fn samplerate(&self) -> u32 {
        self.samplerate
    }

    /// One score per class for one window of exactly [`Model::window`] samples.
    pub fn scores(&self, window: &[f32]) -> Result<Vec<f32>, DetectionError> {
        let shape: &[usize] = if self.batched {
            &[1, window.len()]
        } else {
            &[window.len()]
        };
        let run = || -> TractResult<Vec<f32>> {
            let input = Tensor::from_shape(shape, window)?;
            let out = self.plan.run(tvec!(input.into()))?;
            let view = out[0].to_plain_array_view::<f32>()?;
            Ok(view.iter().copied().collect())
        };
        run().map_err(|e| DetectionError::Inference {
            reason: format!("{e:#}"),
        })
    }

    /// Whether `detection.location_model_file` is set: detections then depend on where
    /// and when the recording was made ([`Model::detect_at`]).
    pub fn filters_by_location(&self) -> bool {
        self.location.is_some()
    }

    /// The location filter, when one is configured (for listing expected species).
    pub fn location_filter(&self) -> Option<&LocationFilter> {
        self.location.as_ref()
    }

    /// Runs the model over a recording and returns its detections, ordered by start time
    /// then by falling score. No location filter applies: see [`Model::detect_at`].
    pub fn detect(&self, audio: &Mono) -> Result<Vec<Detection>, DetectionError> {
        self.detect_at(audio, None)
    }

    /// [`Model::detect`] for a recording made at `place`: with a location filter, only
    /// species expected there and then are reported. Without a place (a deployment with
    /// no latitude and longitude) nothing is filtered, as birdnetlib without `lat`/`lon`.
    pub fn detect_at(
        &self,
        audio: &Mono,
        place: Option<&Place>,
    ) -> Result<Vec<Detection>, DetectionError> {
        let expected = match (&self.location, place) {
            (Some(filter), Some(place)) => filter.expected(place)?,
            _ => None,
        };
        let expected = |class: usize| expected.as_ref().is_none_or(|e| e[class]);
        let samples = match self.scoring {
            Scoring::Window => resample_linear(&audio.samples, audio.samplerate, self.samplerate),
            Scoring::Birdnet { .. } => {
                resample::resample(&audio.samples, audio.samplerate, self.samplerate)
            }
            Scoring::Batdetect2(ref network) => return self.calls(network, audio),
        };
        let rate = f64::from(self.samplerate);
        let length_s = samples.len() as f64 / rate;
        // (first sample, start s, end s) of each window, and the top of the frequency range.
        let (windows, high_freq_hz): (Vec<(usize, f64, f64)>, f64) = match self.scoring {
            Scoring::Window => (
                window_starts(samples.len(), self.window, self.hop)
                    .into_iter()
                    .map(|start| {
                        let end = ((start + self.window) as f64 / rate).min(length_s);
                        (start, start as f64 / rate, end)
                    })
                    .collect(),
                rate / 2.0,
            ),
            // birdnetlib's times: starts add up `3 - overlap` seconds, ends are start + 3
            // (past the recording's end for a padded tail); upstream's band is the
            // recording's, 0 to half its sample rate.
            // Chunks, not windows: `Model::calls` answered above.
            Scoring::Batdetect2(_) => (Vec::new(), 0.0),
            Scoring::Birdnet { overlap_s, .. } => (
                birdnet::window_starts(samples.len(), overlap_s)
                    .into_iter()
                    .scan(0.0, |start_s, start| {
                        let w = (start, *start_s, *start_s + birdnet::WINDOW_S);
                        *start_s += birdnet::WINDOW_S - overlap_s;
                        Some(w)
                    })
                    .collect(),
                f64::from(audio.samplerate) / 2.0,
            ),
        };
        let mut detections = Vec::new();
        for (start, start_s, end_s) in windows {
            let mut scores = self.scores(&window_at(&samples, start, self.window))?;
            if let Scoring::Birdnet { slope, .. } = self.scoring {
                scores
                    .iter_mut()
                    .for_each(|s| *s = birdnet::score(*s, slope));
            }
            let mut found: Vec<Detection> = scores
                .iter()
                .zip(&self.labels)
                .zip(&self.reported)
                .enumerate()
                .filter(|(class, ((score, _), reported))| {
                    **reported && f64::from(**score) >= self.threshold && expected(*class)
                })
                .map(|(_, ((score, label), _))| Detection {
                    class: label.clone(),
                    score: f64::from(score.clamp(0.0, 1.0)),
                    class_score: f64::from(score.clamp(0.0, 1.0)),
                    start_s,
                    end_s,
                    low_freq_hz: 0.0,
                    high_freq_hz,
                })
                .collect();
            found.sort_by(|a, b| b.score.total_cmp(&a.score));
            detections.extend(found);
        }
        Ok(detections)
    }
}

impl Model {
    /// BatDetect2's calls as detections: a call whose probability reaches the threshold
    /// and whose most likely class is reported.
    fn calls(
        &self,
        network: &batdetect2::Network,
        audio: &Mono,
    ) -> Result<Vec<Detection>, DetectionError> {
        Ok(network
            .detect(audio)?
            .into_iter()
            .filter(|c| c.det_prob >= self.threshold && self.reported[c.class])
            .map(|c| Detection {
                class: self.labels[c.class].clone(),
                score: c.det_prob,
                class_score: c.class_prob,
                start_s: c.start_s,
                end_s: c.end_s,
                low_freq_hz: c.low_freq_hz,
                high_freq_hz: c.high_freq_hz,
            })
            .collect())
    }
}

/// The model file's bytes; a file that cannot be read names `detection.model_file`.
pub(super) fn read_model(path: &Path) -> Result<Vec<u8>, DetectionError> {
    std::fs::read(path).map_err(|e| DetectionError::Read {
        field: "detection.model_file",
        path: path.to_owned(),
        cause: e,
    })
}

/// Whether `bytes` are a TFLite flatbuffer: its file identifier "TFL3" at offset 4.
pub(super) fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3".as_slice())
}

/// Reads an ONNX file into tract; a TFLite file is refused with `if_tflite`, the fix for
/// the kind that was set.
pub(super) fn read_onnx(path: &Path, if_tflite: &str) -> Result<InferenceModel, DetectionError> {
    let invalid = |reason: String| DetectionError::Model {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_model(path)?;
    if is_tflite(&bytes) {
        return Err(invalid(format!("it is a TFLite file: {if_tflite}")));
    }
    tract_onnx::onnx()
        .model_for_read(&mut bytes.as_slice())
        .map_err(|e| invalid(format!("tract cannot read it as ONNX: {e:#}")))
}

/// Reads an ONNX window model: its plan, window length and whether its input is batched.
fn onnx_window(path: &Path) -> Result<(Plan, usize, bool), DetectionError> {
    let invalid = |reason: String| DetectionError::Model {
        path: path.to_owned(),
        reason,
    };
    let inference = read_onnx(path, "for BirdNET set detection.kind to birdnet")?;
    // An empty input (a dimension of 0) makes tract 0.23's analysis divide by zero
    // (a panic, an abort in the release build): refuse it before analysis.
    let declared = inference
        .input_fact(0)
        .ok()
        .and_then(|f| f.shape.as_concrete_finite().ok().flatten());
    if let Some(dims) = declared.filter(|d| d.contains(&0)) {
        return Err(invalid(format!(
            "its input is {dims:?}, a window model takes [1, samples] or [samples] of a fixed length: export it with a fixed input shape"
        )));
    }
    let typed = inference
        .into_typed()
        .map_err(|e| invalid(format!("{e:#}")))?;
    if typed.inputs.len() != 1 || typed.outputs.len() != 1 {
        return Err(invalid(format!(
            "it has {} inputs and {} outputs, a window model has one of each",
            typed.inputs.len(),
            typed.outputs.len()
        )));
    }
    let input = typed
        .input_fact(0)
        .map_err(|e| invalid(format!("{e:#}")))?
        .clone();
    let dims = input.shape.as_concrete().map(|d| d.to_vec());
    let (window, batched) = match dims.as_deref() {
        Some([1, n]) if *n > 0 => (*n, true),
        Some([n]) if *n > 0 => (*n, false),
        _ => {
            return Err(invalid(format!(
                "its input is {:?}, a window model takes [1, samples] or [samples] of a fixed length: export it with a fixed input shape",
                input.shape
            )))
        }
    };
    if input.datum_type != f32::datum_type() {
        return Err(invalid(format!(
            "its input is {:?}, a window model takes f32 samples",
            input.datum_type
        )));
    }
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| invalid(format!("{e:#}")))?;
    Ok((plan, window, batched))
}

/// The labels file's lines (trimmed, blank lines skipped), which must be one per score;
/// without a file, the classes are named by their index.
fn labels(path: Option<&Path>, scores: usize) -> Result<Vec<String>, DetectionError> {
    let Some(path) = path else {
        return Ok((0..scores).map(|i| i.to_string()).collect());
    };
    let text = std::fs::read_to_string(path).map_err(|e| DetectionError::Read {
        field: "detection.labels_file",
        path: path.to_owned(),
        cause: e,
    })?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if labels.len() != scores {
        return Err(DetectionError::Labels {
            path: path.to_owned(),
            labels: labels.len(),
            scores,
        });
    }
    Ok(labels)
}

/// Which labels `detection.classes` reports (all when it is empty); a class that is no
/// label is an error, with the closest label as a suggestion.
fn reported(labels: &[String], classes: &[String]) -> Result<Vec<bool>, DetectionError> {
    for class in classes {
        if !labels.contains(class) {
            let closest = labels
                .iter()
                .max_by(|a, b| {
                    strsim::jaro_winkler(class, a).total_cmp(&strsim::jaro_winkler(class, b))
                })
                .cloned()
                .unwrap_or_default();
            return Err(DetectionError::UnknownClass {
                class: class.clone(),
                closest,
            });
        }
    }
    Ok(labels
        .iter()
        .map(|l| classes.is_empty() || classes.contains(l))
        .collect())
}
