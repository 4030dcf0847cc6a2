//! BatDetect2's spectrogram front-end: a recording becomes the tensors batdetect2 1.3.1
//! feeds its network, one per 3-second chunk, computed the way its Python computes them.
//!
//! The steps follow `batdetect2.api.process_file` with the api's default configuration:
//!
//! 1. [`resample_poly`]: the whole recording to 256 kHz as `librosa.resample(...,
//!    res_type="polyphase")` does it, i.e. scipy 1.10's `resample_poly` (a Kaiser-windowed
//!    FIR, float32 like scipy given float32 samples) then librosa's length fix.
//! 2. [`chunks`]: `iterate_over_chunks`, 3 s each, the last one shorter.
//! 3. [`spectrogram`], per chunk (`compute_spectrogram`): `pad_audio` (zeros, so the
//!    width divides by the network's downsampling), the STFT magnitude (512-sample
//!    periodic Hann, hop 128, not centred, as librosa), rows 10 to 120 kHz (220 of them,
//!    highest frequency first), PCEN (librosa's, on the magnitude times 2^31), minus each
//!    row's mean and clipped at 0, then PyTorch's bilinear resize to 128 rows and half
//!    the width.
//!
//! Each step keeps the reference's precision where it shows: float32 where numpy and
//! torch work in float32 (the FIR accumulation, magnitudes, row means, the resize),
//! float64 where they work in float64 (the FFT, PCEN). Sums run in the reference's order
//! (scipy's upfirdn loop, numpy's pairwise summation). On the reference machine the
//! resampled audio and everything up to the resize agree with batdetect2 to the last
//! bit; the resize does not reproduce torch's float order (vectorised and FMA-contracted
//! differently per CPU), so about one value in nine differs by one ulp
//! (`tests/integration/detect_batdetect2_frontend.rs` has the figures).
//!
//! Only the default configuration is implemented (no time expansion, no raw-audio
//! scaling, no maximum duration): those are the values the exported network was
//! trained with and that the exporter checks.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::detection::resample::bessel_i0;

/// The sample rate the network works at (`target_samp_rate`), Hz.
pub const SAMPLERATE: u32 = 256_000;
/// Length of a chunk (`chunk_size`), seconds.
pub const CHUNK_SECONDS: u32 = 3;
/// FFT length: `fft_win_length` 0.002 s at 256 kHz.
pub const N_FFT: usize = 512;
/// Hop between STFT frames: `fft_overlap` 0.75 leaves a quarter of [`N_FFT`].
pub const HOP: usize = 128;
/// Rows of the spectrogram the network receives: `spec_height` 256 times
/// `resize_factor` 0.5.
pub const HEIGHT: usize = 128;
/// The network downsamples the width by this much, so padded widths are multiples
/// of it (`spec_divide_factor`).
pub const DIVIDE_FACTOR: usize = 32;

/// Samples the STFT frames overlap by (`n_overlap` in `pad_audio`).
const N_OVERLAP: usize = N_FFT - HOP;
/// Highest FFT bin kept: `max_freq` 120 kHz times `fft_win_length` (row 0).
const TOP_BIN: usize = 240;
/// Rows between `min_freq` 10 kHz and `max_freq`: bins 240 down to 21.
const CROPPED_ROWS: usize = 220;
/// librosa.pcen's `sr` as batdetect2 passes it (the sample rate over 10; its hop is
/// left at librosa's default, a known oddity of batdetect2, kept for equal scores).
const PCEN_SR: f64 = SAMPLERATE as f64 / 10.0;
/// librosa.pcen's default `hop_length`.
const PCEN_HOP: f64 = 512.0;
/// librosa.pcen's defaults: gain, bias, power, time constant (s), eps.
const PCEN_GAIN: f64 = 0.98;
const PCEN_BIAS: f64 = 2.0;
const PCEN_POWER: f64 = 0.5;
const PCEN_TIME_CONSTANT: f64 = 0.4;
const PCEN_EPS: f64 = 1e-6;
/// batdetect2 scales the magnitude by 2^31 before PCEN (`pcen` in `audio_utils`).
const PCEN_INPUT_SCALE: f32 = 2_147_483_648.0;

/// One chunk of a recording as the network receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Start of the chunk, seconds from the start of the recording.
    pub start_s: f64,
    /// Duration of the chunk's audio before padding, seconds (batdetect2 drops
    /// detections past it only through its own post-processing, not here).
    pub duration_s: f64,
    /// Columns of [`Chunk::spec`]: half the STFT frames of the padded chunk, a multiple
    /// of [`DIVIDE_FACTOR`].
    pub width: usize,
    /// The spectrogram, [`HEIGHT`] rows (highest frequency first) of `width` columns,
    /// row-major: the tensor `[1, 1, HEIGHT, width]` after `F.interpolate`.
    pub spec: Vec<f32>,
}

/// The recording at `samplerate` cut into chunks and turned into the network's input,
/// as batdetect2's `process_file` does: resampled to [`SAMPLERATE`] (as a whole, though
/// computed a chunk at a time: [`Resampler`]), then [`CHUNK_SECONDS`] chunks (the last
/// shorter), each through [`spectrogram`] when the iterator reaches it, so one chunk's
/// audio and spectrogram are in memory at a time. No chunk for no samples.
pub fn chunks(samples: &[f32], samplerate: u32) -> impl Iterator<Item = Chunk> + '_ {
    let audio = Resampler::new(samples, samplerate, SAMPLERATE);
    let rate = f64::from(SAMPLERATE);
    let chunk_len = (SAMPLERATE * CHUNK_SECONDS) as usize;
    // np.ceil(nsamples / samplerate / chunk_size), in the same float steps.
    let count = (audio.output_len() as f64 / rate / f64::from(CHUNK_SECONDS)).ceil() as usize;
    (0..count).map(move |i| {
        let start = (i * chunk_len).min(audio.output_len());
        let end = ((i + 1) * chunk_len).min(audio.output_len());
        let (width, spec) = spectrogram(&audio.range(start..end));
        Chunk {
            start_s: f64::from(CHUNK_SECONDS) * i as f64,
            duration_s: (end - start) as f64 / rate,
            width,
            spec,
        }
    })
}

/// One chunk at [`SAMPLERATE`] to the network's input (`compute_spectrogram`): the
/// width and the [`HEIGHT`] × width values, row-major.
pub fn spectrogram(audio: &[f32]) -> (usize, Vec<f32>) {
    let padded = padded_len(audio.len());
    let mut x = audio.to_vec();
    x.resize(padded, 0.0);
    let frames = 1 + (padded - N_FFT) / HOP;
    let mut spec = magnitude(&x, frames);
    pcen(&mut spec, frames);
    denoise(&mut spec, frames);
    let width = frames / 2;
    let out = resize_bilinear(&spec, CROPPED_ROWS, frames, HEIGHT, width);
    (width, out)
}

/// The length `pad_audio` pads a chunk of `len` samples to: enough STFT frames for at
/// least 2 × 64 columns, and a resized width that is a multiple of [`DIVIDE_FACTOR`].
pub fn padded_len(len: usize) -> usize {
    // compute_spectrogram_width: Python's floor division, then int() of a float.
    let frames = (len as i64 - N_OVERLAP as i64).div_euclid(HOP as i64);
    let width = (frames as f64 * 0.5) as i64;
    let divide = DIVIDE_FACTOR as i64;
    let target_width = if width < 2 * divide {
        2 * divide
    } else if width % divide == 0 {
        return len;
    } else {
        (width + divide - 1) / divide * divide
    };
    // x_coord_to_sample: back to frames (over resize_factor), then samples.
    let target = (2 * target_width) as usize * HOP + N_OVERLAP;
    target.max(len)
}

/// `samples` at `from` Hz brought to `to` Hz as `librosa.resample(res_type="polyphase")`
/// does it: scipy's `resample_poly` with `up` and `down` reduced by their gcd, then
/// zero-padded or cut to `ceil(len * to / from)` computed in floats, like librosa.
///
/// scipy designs `firwin(2 * 10 * max(up, down) + 1, 1 / max(up, down),
/// window=("kaiser", 5.0))` in float64, casts it to the samples' float32, multiplies by
/// `up` and runs `upfirdn` in float32. Only the outputs `resample_poly` keeps are
/// computed, each from the few inputs its filter phase touches (about 21 products), so
/// 44.1 kHz (up 2560, down 441: a 51,201-tap filter) costs no more than 250 kHz.
pub fn resample_poly(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    let resampler = Resampler::new(samples, from, to);
    resampler.range(0..resampler.output_len())
}

/// [`resample_poly`] one stretch of the output at a time: each output sample is computed
/// from the inputs its filter phase touches, so any range of them comes out exactly as
/// from the whole, and a recording's chunks need not be resampled all at once.
pub struct Resampler<'a> {
    x: &'a [f32],
    /// `None` when the rates agree: the samples as they are.
    filter: Option<Filter>,
    /// Output samples, after librosa's `fix_length`.
    len: usize,
}

/// The polyphase filter of one rate change (up and down coprime, not both 1).
struct Filter {
    up: usize,
    down: usize,
    /// upfirdn's transposed, flipped filter: phase t's taps, oldest input first.
    flipped: Vec<f32>,
    per_phase: usize,
    /// Output samples upfirdn computes before the first `resample_poly` keeps.
    n_pre_remove: usize,
    /// Output samples `resample_poly` keeps before `fix_length`.
    n_out: usize,
}

impl<'a> Resampler<'a> {
    /// Resamples `x` from `from` Hz to `to` Hz.
    pub fn new(x: &'a [f32], from: u32, to: u32) -> Resampler<'a> {
        if from == to || from == 0 || to == 0 {
            return Resampler {
                x,
                filter: None,
                len: x.len(),
            };
        }
        let g = gcd(from, to);
        let (up, down) = ((to / g) as usize, (from / g) as usize);
        // librosa's fix_length to ceil(len * ratio), the ratio a float.
        let ratio = f64::from(to) / f64::from(from);
        Resampler {
            x,
            filter: Some(Filter::new(x.len(), up, down)),
            len: (x.len() as f64 * ratio).ceil() as usize,
        }
    }

    /// Output samples in all.
    pub fn output_len(&self) -> usize {
        self.len
    }

    /// Output samples `range` (within `0..output_len()`).
    pub fn range(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let Some(f) = &self.filter else {
            return self.x[range].to_vec();
        };
        let x = self.x;
        range
            .map(|i| {
                if i >= f.n_out {
                    return 0.0;
                }
                let total = (i + f.n_pre_remove) * f.down;
                let (x_idx, phase) = (total / f.up, total % f.up);
                let taps = &f.flipped[phase * f.per_phase..(phase + 1) * f.per_phase];
                // Inputs x_idx - per_phase + 1 ..= x_idx; those outside x are zeros, which
                // upfirdn adds without changing the sum.
                let first = (x_idx + 1).saturating_sub(f.per_phase);
                let last = x_idx.min(x.len().saturating_sub(1));
                let mut acc = 0.0f32;
                if x.is_empty() || first > last {
                    return acc;
                }
                let offset = first + f.per_phase - 1 - x_idx;
                for (xv, hv) in x[first..=last].iter().zip(&taps[offset..]) {
                    // One multiply and one add per tap, in upfirdn's order (no FMA).
                    acc += xv * hv;
                }
                acc
            })
            .collect()
    }
}

impl Filter {
    /// scipy's `resample_poly(x, up, down)` filter for `x_len` samples, float32.
    fn new(x_len: usize, up: usize, down: usize) -> Filter {
        let n_out = (x_len * up).div_ceil(down);
        let max_rate = up.max(down);
        let half_len = 10 * max_rate;
        let taps = firwin_kaiser(2 * half_len + 1, 1.0 / max_rate as f64, 5.0);
        // Zero-pad the filter in front so output samples fall on its centre (resample_poly).
        let n_pre_pad = down - half_len % down;
        let n_pre_remove = (half_len + n_pre_pad) / down;
        let mut h = vec![0.0f32; n_pre_pad];
        // h.astype(x.dtype) then `h *= up`, both float32.
        h.extend(taps.iter().map(|&t| t as f32 * up as f32));
        // resample_poly's post-padding loop; it only ever needs a few zeros.
        let output_len = |len_h: usize| ((x_len.max(1) - 1) * up + len_h - 1) / down + 1;
        while output_len(h.len()) < n_out + n_pre_remove {
            h.push(0.0);
        }
        let per_phase = h.len().div_ceil(up);
        let mut flipped = vec![0.0f32; per_phase * up];
        for (i, &v) in h.iter().enumerate() {
            let (row, phase) = (i / up, i % up);
            flipped[phase * per_phase + per_phase - 1 - row] = v;
        }
        Filter {
            up,
            down,
            flipped,
            per_phase,
            n_pre_remove,
            n_out,
        }
    }
}

/// scipy's `firwin(numtaps, cutoff, window=("kaiser", beta))`: a low-pass, linear-phase
/// FIR with a Kaiser window, scaled to unit gain at DC, float64.
pub(super) fn firwin_kaiser(numtaps: usize, cutoff: f64, beta: f64) -> Vec<f64> {
    let alpha = 0.5 * (numtaps - 1) as f64;
    let i0_beta = bessel_i0(beta);
    let h: Vec<f64> = (0..numtaps)
        .map(|i| {
            let m = i as f64 - alpha;
            // numpy's sinc: sin(pi x) / (pi x), with x = 1e-20 at 0.
            let x = cutoff * m;
            let y = std::f64::consts::PI * if x == 0.0 { 1e-20 } else { x };
            let sinc = y.sin() / y;
            // scipy's kaiser (symmetric): i0(beta sqrt(1 - ((n - a) / a)^2)) / i0(beta).
            let r = (i as f64 - alpha) / alpha;
            let win = bessel_i0(beta * (1.0 - r * r).sqrt()) / i0_beta;
            cutoff * sinc * win
        })
        .collect();
    // scale=True: unit gain at DC, the sum taken as numpy takes it.
    let s = pairwise_sum(&h);
    h.into_iter().map(|v| v / s).collect()
}

/// The STFT magnitude rows batdetect2 keeps (`gen_mag_spectrogram`, then the crop):
/// [`CROPPED_ROWS`] rows of `frames` columns, row 0 the highest bin ([`TOP_BIN`]).
///
/// librosa windows in float64 (its window is float64), numpy's FFT is float64, the
/// result is stored as complex64 and `np.abs` takes its float32 modulus
/// ([`abs_complex64`]).
fn magnitude(x: &[f32], frames: usize) -> Vec<f32> {
    let fft: Arc<dyn Fft<f64>> = FftPlanner::new().plan_fft_forward(N_FFT);
    let window = hann_periodic(N_FFT);
    let mut spec = vec![0.0f32; CROPPED_ROWS * frames];
    let mut buf = vec![Complex::new(0.0, 0.0); N_FFT];
    let mut scratch = vec![Complex::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    for t in 0..frames {
        let frame = &x[t * HOP..t * HOP + N_FFT];
        for ((b, &s), &w) in buf.iter_mut().zip(frame).zip(&window) {
            *b = Complex::new(w * f64::from(s), 0.0);
        }
        fft.process_with_scratch(&mut buf, &mut scratch);
        for row in 0..CROPPED_ROWS {
            let bin = buf[TOP_BIN - row];
            spec[row * frames + t] = abs_complex64(bin.re as f32, bin.im as f32);
        }
    }
    spec
}

/// `np.abs` of a complex64 as numpy 1.24 computes it on AVX-512 CPUs (the reference
/// machine's): `big * sqrt(fma(r, r, 1))` with `r = small / big`, all float32. Without
/// AVX-512 numpy calls `hypotf` instead; the two differ by at most one ulp, this one
/// made the reference's magnitudes bit for bit. `r * r + 1` in float64, then rounded
/// once to float32, is that fma without needing one in hardware (r² is exact in
/// float64).
fn abs_complex64(re: f32, im: f32) -> f32 {
    let (re, im) = (re.abs(), im.abs());
    let (big, small) = if re >= im { (re, im) } else { (im, re) };
    if big == 0.0 {
        return 0.0;
    }
    let r = f64::from(small / big);
    big * ((r * r + 1.0) as f32).sqrt()
}

/// scipy's `get_window("hann", n, fftbins=True)` (periodic), computed as scipy's
/// `general_cosine` does: `0.5 + 0.5 cos(linspace(-pi, pi, n + 1))`, the last point
/// dropped.
fn hann_periodic(n: usize) -> Vec<f64> {
    use std::f64::consts::PI;
    let step = (PI - -PI) / n as f64;
    (0..n)
        .map(|i| 0.5 + 0.5 * (i as f64 * step + -PI).cos())
        .collect()
}

/// librosa.pcen with its defaults as batdetect2 calls it, in place on `rows` × `frames`
/// magnitudes: per row, a first-order low-pass along time started at lfilter_zi's
/// steady state, then gain control and compression, float64, stored as float32.
pub(super) fn pcen(spec: &mut [f32], frames: usize) {
    let t_frames = PCEN_TIME_CONSTANT * PCEN_SR / PCEN_HOP;
    let b = ((1.0 + 4.0 * (t_frames * t_frames)).sqrt() - 1.0) / (2.0 * (t_frames * t_frames));
    // lfilter([b], [1, b - 1]): a1 = b - 1; lfilter_zi solves zi = (0 - a1 b) / (1 + a1).
    let a1 = b - 1.0;
    let zi = (0.0 - a1 * b) / (1.0 + a1);
    let log_eps = PCEN_EPS.ln();
    let bias_power = PCEN_BIAS.powf(PCEN_POWER);
    for row in spec.chunks_exact_mut(frames) {
        let mut z = zi;
        for v in row.iter_mut() {
            let s = f64::from(*v * PCEN_INPUT_SCALE);
            // scipy's direct form II transposed: y = z + b x; z = x * 0 - y * a1.
            let s_smooth = z + b * s;
            z = 0.0 - s_smooth * a1;
            let smooth = (-PCEN_GAIN * (log_eps + (s_smooth / PCEN_EPS).ln_1p())).exp();
            let out = bias_power * (PCEN_POWER * (s * smooth / PCEN_BIAS).ln_1p()).exp_m1();
            *v = out as f32;
        }
    }
}

/// `denoise_spec_avg`: each row minus its float32 mean (numpy's pairwise sum), clipped
/// at 0.
fn denoise(spec: &mut [f32], frames: usize) {
    for row in spec.chunks_exact_mut(frames) {
        let mean = pairwise_sum(row) / frames as f32;
        for v in row.iter_mut() {
            *v = (*v - mean).max(0.0);
        }
    }
}

/// PyTorch's `F.interpolate(mode="bilinear", align_corners=False)` on one float32
/// plane of `h_in` × `w_in`, row-major, to `h_out` × `w_out`: source coordinate
/// `(dst + 0.5) * in / out - 0.5`, clamped at 0, the upper neighbour clamped to the
/// edge, weights and sums in float32 (each row pair's two columns blended first, then
/// the rows: torch's `Interpolate` order, without its FMA contraction).
pub fn resize_bilinear(
    src: &[f32],
    h_in: usize,
    w_in: usize,
    h_out: usize,
    w_out: usize,
) -> Vec<f32> {
    let rows = linear_weights(h_in, h_out);
    let cols = linear_weights(w_in, w_out);
    let mut out = Vec::with_capacity(h_out * w_out);
    for &(r0, r1, hw0, hw1) in &rows {
        let (top, bottom) = (&src[r0 * w_in..], &src[r1 * w_in..]);
        for &(c0, c1, ww0, ww1) in &cols {
            let t0 = top[c0] * ww0 + top[c1] * ww1;
            let t1 = bottom[c0] * ww0 + bottom[c1] * ww1;
            out.push(t0 * hw0 + t1 * hw1);
        }
    }
    out
}

/// Per output index: the two source indices and their weights (torch's
/// `compute_source_index_and_lambda`, float32).
fn linear_weights(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|dst| {
            let real = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real as usize).min(n_in - 1);
            let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// numpy's pairwise summation (`pairwise_sum` in its add loop), in `T`'s precision:
/// up to 128 values summed in eight lanes, longer runs split in two at a multiple of 8.
pub(super) fn pairwise_sum<T: Copy + Default + std::ops::Add<Output = T>>(a: &[T]) -> T {
    if a.len() < 8 {
        return a.iter().fold(T::default(), |s, &v| s + v);
    }
    if a.len() <= 128 {
        let mut r = [a[0]; 8];
        r.copy_from_slice(&a[..8]);
        let whole = a.len() - a.len() % 8;
        for block in a[8..whole].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(block) {
                *acc = *acc + v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[whole..] {
            res = res + v;
        }
        return res;
    }
    let mut half = a.len() / 2;
    half -= half % 8;
    pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
}

/// Greatest common divisor.
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
