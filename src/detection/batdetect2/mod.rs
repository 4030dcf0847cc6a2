//! BatDetect2 (`detection.kind: batdetect2`): the bat call detector and classifier of
//! batdetect2 1.3.1 (`Net2DFast_UK_same.pth.tar`, 17 UK species, non-commercial licence:
//! never in our repository or image), run with tract-onnx after a scripted conversion of
//! its network (`scripts/detection-reference/batdetect2_export.py`).
//!
//! Only the network is converted; everything around it is ours, following batdetect2's
//! `process_file`: the recording is resampled to 256 kHz and cut into 3-s chunks; each
//! chunk becomes a PCEN spectrogram resized to 128 rows (`frontend`); the network gives a
//! call-probability map, a size map and a class map; the peaks of the first are the calls
//! (`postprocess`). A call above the recording's Nyquist frequency is dropped, as
//! batdetect2 drops it. `tests/integration/detect_batdetect2.rs` compares the result with
//! batdetect2 itself.
//!
//! Each call is one detection, stored as upstream's acoupi-batdetect2 stores it: the
//! detection score is the call probability, the one tag is `species` = the most likely
//! class with the class probability as its confidence.

pub mod frontend;
pub mod postprocess;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use tract_onnx::prelude::*;

use super::audio::Mono;
use super::model::{read_onnx, Plan};
use super::DetectionError;
use frontend::HEIGHT;
use postprocess::{Call, Maps};

/// `model_output.model_name` as upstream's acoupi-batdetect2 writes it.
pub const MODEL_NAME: &str = "BatDetect2";
/// The key of upstream's BatDetect2 tags; the value is the species.
pub const TAG_KEY: &str = "species";
/// The columns one run of the network takes for the shortest chunk: its width must be a
/// multiple of 32, and batdetect2 pads a chunk to at least this.
const MIN_WIDTH: usize = 32;

/// The converted network: the graph with a symbolic width, and a plan optimised for each
/// of the last few widths it ran on (a deployment's recordings all have one length, so
/// one or two widths: the 3-s chunks and the tail).
#[derive(Debug, Clone)]
pub struct Network {
    graph: std::sync::Arc<TypedModel>,
    width: Symbol,
    plans: std::sync::Arc<Mutex<Vec<(usize, Plan)>>>,
}

/// Plans kept: widths seen last, each a copy of the optimised graph (~8 MB).
const PLANS_KEPT: usize = 3;

/// Turns the class logits (`[classes + 1][pixels]`, the last class background) into
/// probabilities in place, per pixel, as Net2DFast's `softmax(cls, 1)`; returns the
/// probability of a call per pixel, the sum over the classes but background (`pred_det`).
fn softmax_classes(logits: &mut [f32], pixels: usize) -> Vec<f32> {
    let classes = logits.len() / pixels;
    let mut detection = vec![0.0f32; pixels];
    for (p, det) in detection.iter_mut().enumerate() {
        let max = (0..classes)
            .map(|c| logits[c * pixels + p])
            .fold(f32::MIN, f32::max);
        let mut sum = 0.0f32;
        for c in 0..classes {
            let e = (logits[c * pixels + p] - max).exp();
            logits[c * pixels + p] = e;
            sum += e;
        }
        for c in 0..classes {
            logits[c * pixels + p] /= sum;
        }
        *det = (0..classes - 1).map(|c| logits[c * pixels + p]).sum();
    }
    detection
}

/// The network's three maps for one spectrogram of [`HEIGHT`] × `width`.
struct Outputs {
    width: usize,
    detection: Vec<f32>,
    size: Vec<f32>,
    class: Vec<f32>,
}

impl Network {
    /// Loads the ONNX file `batdetect2_export.py` makes; anything else is refused with
    /// the reason, naming `detection.model_file`.
    pub fn load(path: &Path) -> Result<Network, DetectionError> {
        let invalid = |reason: String| DetectionError::Model {
            path: path.to_owned(),
            reason,
        };
        let model = read_onnx(
            path,
            "kind batdetect2 takes the ONNX file scripts/detection-reference/batdetect2_export.py makes (make models)",
        )?
            .into_typed()
            .map_err(|e| invalid(format!("{e:#}")))?;
        let not_ours = || {
            invalid(format!(
                "it is not BatDetect2's network (one input [1, 1, {HEIGHT}, width], two outputs): convert Net2DFast_UK_same.pth.tar with scripts/detection-reference/batdetect2_export.py"
            ))
        };
        if model.inputs.len() != 1 || model.outputs.len() != 2 {
            return Err(not_ours());
        }
        let input = model.input_fact(0).map_err(|_| not_ours())?;
        let dims = input.shape.dims();
        if dims.len() != 4 || dims[..3] != [1.to_dim(), 1.to_dim(), HEIGHT.to_dim()] {
            return Err(not_ours());
        }
        let width = match &dims[3] {
            TDim::Sym(s) => s.clone(),
            _ => return Err(not_ours()),
        };
        let graph = model
            .into_decluttered()
            .map_err(|e| invalid(format!("{e:#}")))?;
        Ok(Network {
            graph: std::sync::Arc::new(graph),
            width,
            plans: Default::default(),
        })
    }

    /// The plan for spectrograms `width` columns wide: tract resolves the graph's
    /// upsampling sizes only for a known width, so each width gets its own optimised copy.
    fn plan_for(&self, width: usize) -> TractResult<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, plan)) = plans.iter().find(|(w, _)| *w == width) {
            return Ok(plan.clone());
        }
        let subs = HashMap::from([(self.width.clone(), width.to_dim())]);
        let plan = self
            .graph
            .set_symbols(&subs)?
            .into_optimized()?
            .into_runnable()?;
        if plans.len() == PLANS_KEPT {
            plans.remove(0);
        }
        plans.push((width, plan.clone()));
        Ok(plan)
    }

    /// The plan for the narrowest spectrogram, for `Model`'s own bookkeeping.
    pub(in crate::detection) fn plan(&self) -> Result<Plan, DetectionError> {
        self.plan_for(MIN_WIDTH)
            .map_err(|e| DetectionError::Inference {
                reason: format!("{e:#}"),
            })
    }

    /// Runs the network on one resized spectrogram of [`HEIGHT`] rows by `width`.
    fn run(&self, spec: &[f32], width: usize) -> Result<Outputs, DetectionError> {
        let run = || -> TractResult<Outputs> {
            let input = Tensor::from_shape(&[1, 1, HEIGHT, width], spec)?;
            let mut out = self.plan_for(width)?.run(tvec!(input.into()))?;
            // The maps are taken over, not copied: at 3-s chunks the class map alone is
            // 55 MB, and a copy would be the process's peak.
            let mut take = |i: usize| -> TractResult<Vec<f32>> {
                let tensor = std::mem::replace(&mut out[i], Tensor::default().into_tvalue());
                Ok(tensor
                    .into_tensor()
                    .into_plain_array::<f32>()?
                    .into_raw_vec_and_offset()
                    .0)
            };
            let size = take(0)?;
            let mut class = take(1)?;
            let detection = softmax_classes(&mut class, HEIGHT * width);
            Ok(Outputs {
                width,
                detection,
                size,
                class,
            })
        };
        run().map_err(|e| DetectionError::Inference {
            reason: format!("{e:#}"),
        })
    }

    /// The number of classes the network tells apart (its class map less the
    /// background), found by running it once on the narrowest silent spectrogram.
    pub fn classes(&self) -> Result<usize, DetectionError> {
        let out = self.run(&vec![0.0; HEIGHT * MIN_WIDTH], MIN_WIDTH)?;
        Ok((out.class.len() / (HEIGHT * out.width)).saturating_sub(1))
    }

    /// The calls in one spectrogram (`spec`, [`HEIGHT`] rows by `width`, row-major) of
    /// the chunk that starts `start_s` into the recording.
    pub fn calls(
        &self,
        spec: &[f32],
        width: usize,
        start_s: f64,
    ) -> Result<Vec<Call>, DetectionError> {
        let out = self.run(spec, width)?;
        let maps = Maps {
            height: HEIGHT,
            width: out.width,
            detection: &out.detection,
            size: &out.size,
            class: &out.class,
        };
        Ok(postprocess::calls(&maps, start_s as f32))
    }

    /// The calls in a recording, in time order, chunk by chunk; a call reaching above
    /// the recording's Nyquist frequency is dropped, as batdetect2 drops it.
    pub fn detect(&self, audio: &Mono) -> Result<Vec<Call>, DetectionError> {
        let nyquist = f64::from(audio.samplerate) / 2.0;
        let mut calls = Vec::new();
        for chunk in frontend::chunks(&audio.samples, audio.samplerate) {
            calls.extend(
                self.calls(&chunk.spec, chunk.width, chunk.start_s)?
                    .into_iter()
                    .filter(|c| c.high_freq_hz <= nyquist),
            );
        }
        Ok(calls)
    }
}
