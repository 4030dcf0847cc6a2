//! BatDetect2 (`detection.kind: batdetect2`): the bat call detector and classifier of
//! batdetect2 1.3.1 (`Net2DFast_UK_same.pth.tar`, 17 UK species, non-commercial licence:
//! never in our repository or image), run with tract-onnx after a scripted conversion of
//! its network (`scripts/detection-reference/batdetect2_export.py`).
//!
//! Only the network is converted; everything around it is ours, following batdetect2's
//! `process_file`: the recording is resampled to 256 kHz and cut into 3-s chunks; each
//! chunk becomes a PCEN spectrogram resized to 128 rows (`frontend`); the network gives a
//! call-probability map, a size map and a class map, a few hundred columns at a time
//! (`tiles`, in the three parts of `part`), and the peaks of the first are the calls
//! (`postprocess`). A call above the recording's Nyquist frequency is dropped, as
//! batdetect2 drops it. `tests/integration/detect_batdetect2.rs` compares the result with
//! batdetect2 itself.
//!
//! Each call is one detection, stored as upstream's acoupi-batdetect2 stores it: the
//! detection score is the call probability, the one tag is `species` = the most likely
//! class with the class probability as its confidence.

pub mod frontend;
mod part;
pub mod postprocess;
pub mod tiles;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::tract_ndarray::{ArrayD, ArrayViewD, Axis, Slice};
use tract_onnx::prelude::*;

use super::audio::Mono;
use super::model::{read_onnx, Plan};
use super::DetectionError;
use frontend::HEIGHT;
use part::Part;
use postprocess::{Call, Maps, Peak};
use tiles::Tile;

/// `model_output.model_name` as upstream's acoupi-batdetect2 writes it.
pub const MODEL_NAME: &str = "BatDetect2";
/// The key of upstream's BatDetect2 tags; the value is the species.
pub const TAG_KEY: &str = "species";
/// The width the network is tried at when it is loaded: one tile, the width every chunk
/// of 3 s runs its encoder and decoder at, so the plans made for the trial serve the
/// recordings (each width's plans hold a packed copy of the weights, ~8 MB).
const TRIAL_WIDTH: usize = tiles::WIDTH;

/// The converted network, in the three parts `batdetect2_export.py` cuts it into: the
/// encoder and decoder run tile by tile ([`tiles`]), the self-attention between them on
/// the whole chunk.
#[derive(Debug, Clone)]
pub struct Network {
    parts: Arc<[Part; 3]>,
}

/// The encoder's outputs over a whole chunk: the skip connections at a quarter and an
/// eighth of the width, which the decoder's tiles take slices of, and the bottleneck the
/// attention reads.
struct Encoded {
    x2: ArrayD<f32>,
    x3: ArrayD<f32>,
    bottleneck: Tensor,
}

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

/// Columns `from..to` of a tensor whose last axis is `divisor` times narrower than the
/// spectrogram, `from` and `to` in spectrogram columns.
fn columns(array: &ArrayViewD<f32>, from: usize, to: usize, divisor: usize) -> TValue {
    let slice = Slice::from(from / divisor..to / divisor);
    Tensor::from(array.slice_axis(Axis(3), slice).to_owned()).into_tvalue()
}

/// Copies the core of `tile` from a tile's `output` into the chunk's `whole` (created,
/// zeroed, at the first tile), both `divisor` times narrower than the spectrogram.
fn put_core(
    whole: &mut Option<ArrayD<f32>>,
    output: &TValue,
    tile: &Tile,
    width: usize,
    divisor: usize,
) -> TractResult<()> {
    let output = output.to_plain_array_view::<f32>()?;
    let whole = whole.get_or_insert_with(|| {
        let mut shape = output.shape().to_vec();
        shape[3] = width / divisor;
        ArrayD::zeros(shape)
    });
    let core = tile.core_in_tile();
    let from = Slice::from(core.start / divisor..core.end / divisor);
    let to = Slice::from(tile.core.start / divisor..tile.core.end / divisor);
    whole
        .slice_axis_mut(Axis(3), to)
        .assign(&output.slice_axis(Axis(3), from));
    Ok(())
}

/// Takes output `i` over without copying it (a tile's class logits are 3 MB).
fn take(out: &mut TVec<TValue>, i: usize) -> TractResult<Vec<f32>> {
    let tensor = std::mem::replace(&mut out[i], Tensor::default().into_tvalue());
    Ok(tensor
        .into_tensor()
        .into_plain_array::<f32>()?
        .into_raw_vec_and_offset()
        .0)
}

impl Network {
    /// Loads the ONNX file `batdetect2_export.py` makes; anything else is refused with
    /// the reason, naming `detection.model_file`.
    pub fn load(path: &Path) -> Result<Network, DetectionError> {
        let model = read_onnx(
            path,
            "kind batdetect2 takes the ONNX file scripts/detection-reference/batdetect2_export.py makes (make models)",
        )?;
        let parts = part::cut(&model).map_err(|reason| DetectionError::Model {
            path: path.to_owned(),
            reason,
        })?;
        Ok(Network {
            parts: Arc::new(parts),
        })
    }

    fn encoder(&self) -> &Part {
        &self.parts[0]
    }

    fn attention(&self) -> &Part {
        &self.parts[1]
    }

    fn decoder(&self) -> &Part {
        &self.parts[2]
    }

    /// The decoder's plan for one tile, for `Model`'s own bookkeeping.
    pub(in crate::detection) fn plan(&self) -> Result<Plan, DetectionError> {
        self.decoder()
            .plan_for(TRIAL_WIDTH)
            .map_err(|e| DetectionError::Inference {
                reason: format!("{e:#}"),
            })
    }

    /// The encoder over the chunk's spectrogram (`[1, 1, HEIGHT, width]`), tile by tile.
    fn encode(&self, spec: &ArrayViewD<f32>, tiles: &[Tile], width: usize) -> TractResult<Encoded> {
        let (mut x2, mut x3, mut bottleneck) = (None, None, None);
        for tile in tiles {
            let out = self
                .encoder()
                .run(tile.width(), tvec![columns(spec, tile.start, tile.end, 1)])?;
            put_core(&mut x2, &out[0], tile, width, 4)?;
            put_core(&mut x3, &out[1], tile, width, 8)?;
            put_core(&mut bottleneck, &out[2], tile, width, 8)?;
        }
        let missing = || anyhow::anyhow!("a chunk without tiles");
        Ok(Encoded {
            x2: x2.ok_or_else(missing)?,
            x3: x3.ok_or_else(missing)?,
            bottleneck: Tensor::from(bottleneck.ok_or_else(missing)?),
        })
    }

    /// The decoder over one tile: its detection, size and class maps (the class logits
    /// turned into probabilities).
    fn decode(
        &self,
        spec: &ArrayViewD<f32>,
        encoded: &Encoded,
        attended: &ArrayViewD<f32>,
        tile: &Tile,
    ) -> TractResult<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (from, to) = (tile.start, tile.end);
        let inputs = tvec![
            columns(spec, from, to, 1),
            columns(attended, from, to, 8),
            columns(&encoded.x2.view(), from, to, 4),
            columns(&encoded.x3.view(), from, to, 8),
        ];
        let mut out = self.decoder().run(tile.width(), inputs)?;
        let size = take(&mut out, 0)?;
        let mut class = take(&mut out, 1)?;
        let detection = softmax_classes(&mut class, HEIGHT * tile.width());
        Ok((detection, size, class))
    }

    /// The peaks of one spectrogram (`spec`, [`HEIGHT`] rows by `width`, row-major).
    fn peaks(&self, spec: &[f32], width: usize) -> Result<Vec<Peak>, DetectionError> {
        let run = || -> TractResult<Vec<Peak>> {
            let spec = ArrayViewD::from_shape(vec![1, 1, HEIGHT, width], spec)?;
            let tiles = tiles::layout(width);
            let mut encoded = self.encode(&spec, &tiles, width)?;
            let bottleneck = std::mem::take(&mut encoded.bottleneck);
            let attended = self
                .attention()
                .run(width, tvec![bottleneck.into_tvalue()])?;
            let attended = attended[0].to_plain_array_view::<f32>()?;
            let top_k = postprocess::top_k(width);
            let mut peaks = Vec::new();
            for tile in &tiles {
                let (detection, size, class) = self.decode(&spec, &encoded, &attended, tile)?;
                let maps = Maps {
                    height: HEIGHT,
                    width: tile.width(),
                    detection: &detection,
                    size: &size,
                    class: &class,
                };
                peaks.extend(postprocess::peaks_in(
                    &maps,
                    tile.core_in_tile(),
                    tile.start,
                ));
                // Only the best can become calls: the list stays short on any recording.
                if peaks.len() > 2 * top_k {
                    postprocess::keep_best(&mut peaks, top_k, width);
                }
            }
            Ok(peaks)
        };
        run().map_err(|e| DetectionError::Inference {
            reason: format!("{e:#}"),
        })
    }

    /// The number of classes the network tells apart (its class map less the
    /// background), once it has run on a silent spectrogram one tile wide.
    pub fn classes(&self) -> Result<usize, DetectionError> {
        self.peaks(&vec![0.0; HEIGHT * TRIAL_WIDTH], TRIAL_WIDTH)?;
        Ok(self.decoder().output_channels(1).saturating_sub(1))
    }

    /// The calls in one spectrogram (`spec`, [`HEIGHT`] rows by `width`, row-major) of
    /// the chunk that starts `start_s` into the recording.
    pub fn calls(
        &self,
        spec: &[f32],
        width: usize,
        start_s: f64,
    ) -> Result<Vec<Call>, DetectionError> {
        let peaks = self.peaks(spec, width)?;
        Ok(postprocess::calls(peaks, HEIGHT, width, start_s as f32))
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
