//! From the network's three maps to detections, as batdetect2 1.3.1's `run_nms` and
//! `get_annotations_from_preds` do (`detector/post_process.py`, `utils/detector_utils.py`).
//!
//! A call is a peak of the detection map: a pixel that is the largest in the 9 × 9 around
//! it, among the `top_k` highest (200 per second of spectrogram), above the model's own
//! threshold (0.01). Its time is the pixel's column, its lowest frequency its row; the size
//! map gives its duration and bandwidth, the class map its species. Values are rounded
//! as batdetect2 rounds them before acoupi-batdetect2 stores them (times to 0.1 ms,
//! probabilities to 0.001, frequencies down to the hertz), so our rows read as upstream's.

use std::ops::Range;

use super::frontend::{HOP, N_FFT, SAMPLERATE};

/// The band the spectrogram covers (`min_freq`, `max_freq`), Hz.
const MIN_FREQ_HZ: u32 = 10_000;
const MAX_FREQ_HZ: u32 = 120_000;
/// The spectrogram's width after the resize, as a fraction of its frames (`resize_factor`).
const RESIZE_FACTOR: f32 = 0.5;

/// The side of the square a peak must be the largest in (`nms_kernel_size`).
pub const NMS_KERNEL: usize = 9;
/// Peaks kept per second of spectrogram at most (`nms_top_k_per_sec`).
pub const TOP_K_PER_SECOND: f64 = 200.0;
/// The model's own floor for a peak (`detection_threshold` in batdetect2's config).
pub const PEAK_THRESHOLD: f32 = 0.01;

/// The network's outputs for one spectrogram of `height` × `width` pixels, row-major.
#[derive(Debug)]
pub struct Maps<'a> {
    /// Rows of the maps (128: the highest frequency first).
    pub height: usize,
    /// Columns of the maps (time).
    pub width: usize,
    /// `pred_det`: the probability of a call, `[height][width]`.
    pub detection: &'a [f32],
    /// `pred_size`: duration then bandwidth in pixels, `[2][height][width]`.
    pub size: &'a [f32],
    /// `pred_class`: per class (the last is background), `[classes + 1][height][width]`.
    pub class: &'a [f32],
}

/// One call: batdetect2's annotation before acoupi turns it into a detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Start, seconds from the start of the spectrogram.
    pub start_s: f64,
    /// End, seconds from the start of the spectrogram.
    pub end_s: f64,
    /// Lowest frequency, Hz.
    pub low_freq_hz: f64,
    /// Highest frequency, Hz.
    pub high_freq_hz: f64,
    /// The most likely class (index into the labels).
    pub class: usize,
    /// Its probability (`class_prob`), rounded as batdetect2 rounds it.
    pub class_prob: f64,
    /// The probability of a call (`det_prob`), rounded as batdetect2 rounds it.
    pub det_prob: f64,
}

/// Seconds from the start of the audio of spectrogram column `x` (before the resize):
/// batdetect2's `x_coords_to_time`, the start of that column's FFT window plus its overlap.
fn column_time(x: f32) -> f32 {
    let noverlap = (N_FFT - HOP) as f32;
    (x * HOP as f32 + noverlap) / SAMPLERATE as f32
}

/// Rounds as Python's `round(x, digits)`: to the nearest of the exact decimal value, ties
/// to even. Rust's fixed-precision formatting rounds the same way (scaling by 10^digits
/// first would not: 0.0125 is stored a hair above, Python gives 0.013).
fn round_to(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// A peak of the detection map: a call before it is placed in time and frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// `pred_det` at the peak, the probability of a call.
    pub det_prob: f32,
    /// Row of the maps (the highest frequency first).
    pub row: usize,
    /// Column of the chunk.
    pub column: usize,
    /// `pred_size` at the peak: the call's duration and bandwidth, pixels.
    pub size: [f32; 2],
    /// The most likely class but background, and its probability.
    pub class: usize,
    /// Its probability.
    pub class_prob: f32,
}

/// The peaks of `maps` (non-maximum suppression over all of them) above the model's floor
/// in `columns` of the maps, placed in the chunk `offset` columns further on. The maps
/// are one tile of a chunk ([`super::tiles`]): suppression reads up to 4 columns beyond
/// `columns`, which must hold the chunk's values there or be the chunk's edge.
pub fn peaks_in(maps: &Maps, columns: Range<usize>, offset: usize) -> Vec<Peak> {
    let (h, w) = (maps.height, maps.width);
    let classes = maps.class.len() / (h * w);
    let suppressed = suppress_non_maxima(maps.detection, h, w);
    let mut found = Vec::new();
    for y in 0..h {
        for x in columns.clone() {
            let i = y * w + x;
            if suppressed[i] <= PEAK_THRESHOLD {
                continue;
            }
            // Class probabilities without the background class; the first maximum wins.
            let (class, class_prob) = (0..classes - 1)
                .map(|c| (c, maps.class[c * h * w + i]))
                .fold((0, f32::MIN), |b, c| if c.1 > b.1 { c } else { b });
            found.push(Peak {
                det_prob: suppressed[i],
                row: y,
                column: x + offset,
                size: [maps.size[i], maps.size[h * w + i]],
                class,
                class_prob,
            });
        }
    }
    found
}

/// How many peaks of a chunk `width` columns wide may become calls (`nms_top_k_per_sec`
/// over its duration, which batdetect2 takes from the resized width).
pub fn top_k(width: usize) -> usize {
    (f64::from(column_time(width as f32)) * TOP_K_PER_SECOND) as usize
}

/// Keeps the `k` peaks torch.topk keeps of the suppressed map of a chunk `width` columns
/// wide: the largest, ties to the lower row-major index. Applied to part of a chunk's
/// peaks, it keeps every peak the whole chunk's would keep.
pub fn keep_best(peaks: &mut Vec<Peak>, k: usize, width: usize) {
    let index = |p: &Peak| p.row * width + p.column;
    peaks.sort_by(|a, b| {
        b.det_prob
            .total_cmp(&a.det_prob)
            .then(index(a).cmp(&index(b)))
    });
    peaks.truncate(k);
}

/// The calls among the peaks of a chunk of `height` × `width` ([`top_k`] of them, the
/// best), ordered by time (then by falling probability), as batdetect2 reports them for
/// the chunk of audio that starts `offset_s` into the recording (added before rounding,
/// in f32, as batdetect2's `process_file` adds it).
pub fn calls(mut peaks: Vec<Peak>, height: usize, width: usize, offset_s: f32) -> Vec<Call> {
    keep_best(&mut peaks, top_k(width), width);
    peaks.sort_by(|a, b| {
        a.column
            .cmp(&b.column)
            .then(b.det_prob.total_cmp(&a.det_prob))
    });
    let freq_step = (MAX_FREQ_HZ - MIN_FREQ_HZ) as f32 / height as f32;
    peaks
        .into_iter()
        .map(|p| {
            let [duration, bandwidth] = p.size;
            let low = (height - p.row) as f32 * freq_step + MIN_FREQ_HZ as f32;
            let high = low + bandwidth * freq_step;
            let x = p.column as f32;
            Call {
                start_s: round_to(f64::from(column_time(x / RESIZE_FACTOR) + offset_s), 4),
                end_s: round_to(
                    f64::from(column_time((x + duration) / RESIZE_FACTOR) + offset_s),
                    4,
                ),
                low_freq_hz: f64::from(low).trunc(),
                high_freq_hz: f64::from(high).trunc(),
                class: p.class,
                class_prob: round_to(f64::from(p.class_prob), 3),
                det_prob: round_to(f64::from(p.det_prob), 3),
            }
        })
        .collect()
}

/// Non-maximum suppression: each pixel of `heat` that is not the largest in the
/// [`NMS_KERNEL`] square around it (a max-pool, stride 1, edges not counted) becomes 0.
pub fn suppress_non_maxima(heat: &[f32], h: usize, w: usize) -> Vec<f32> {
    let r = NMS_KERNEL / 2;
    // Separable: the largest along each row's window, then along each column's.
    let mut rows = vec![f32::MIN; h * w];
    for y in 0..h {
        for x in 0..w {
            let (lo, hi) = (x.saturating_sub(r), (x + r).min(w - 1));
            rows[y * w + x] = heat[y * w + lo..=y * w + hi]
                .iter()
                .copied()
                .fold(f32::MIN, f32::max);
        }
    }
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        let (lo, hi) = (y.saturating_sub(r), (y + r).min(h - 1));
        for x in 0..w {
            let max = (lo..=hi)
                .map(|yy| rows[yy * w + x])
                .fold(f32::MIN, f32::max);
            let v = heat[y * w + x];
            if v == max {
                out[y * w + x] = v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_follows_python() {
        // Values checked against CPython 3.11's round().
        assert_eq!(round_to(0.0125, 3), 0.013);
        assert_eq!(round_to(0.25, 1), 0.2);
        assert_eq!(round_to(0.35, 1), 0.3);
        assert_eq!(round_to(2.675, 2), 2.67);
        assert_eq!(round_to(0.0115, 4), 0.0115);
    }

    #[test]
    fn a_peak_keeps_its_value_and_its_smaller_neighbours_become_zero() {
        let (h, w) = (20, 20);
        let mut heat = vec![0.0f32; h * w];
        heat[5 * w + 5] = 0.9;
        heat[5 * w + 9] = 0.5; // 4 columns away: inside the 9 x 9 square
        heat[5 * w + 15] = 0.4; // 10 away: a peak of its own
        heat[19 * w + 19] = 0.3; // in the corner: the edges do not count
        let p = suppress_non_maxima(&heat, h, w);
        assert_eq!(p[5 * w + 5], 0.9);
        assert_eq!(p[5 * w + 9], 0.0);
        assert_eq!(p[5 * w + 15], 0.4);
        assert_eq!(p[19 * w + 19], 0.3);
        assert_eq!(p.iter().filter(|v| **v > 0.0).count(), 3);
    }

    /// The calls found in maps of `h` × `w` (3 classes and background) of a chunk at
    /// `offset_s`, empty but for `placed`: (row, column, call probability, duration px,
    /// bandwidth px, class, class probability).
    fn calls_in(
        h: usize,
        w: usize,
        offset_s: f32,
        placed: &[(usize, usize, f32, f32, f32, usize, f32)],
    ) -> Vec<Call> {
        let (mut det, mut size, mut class) =
            (vec![0.0; h * w], vec![0.0; 2 * h * w], vec![0.0; 4 * h * w]);
        for &(y, x, p, dur, band, c, cp) in placed {
            let i = y * w + x;
            det[i] = p;
            size[i] = dur;
            size[h * w + i] = band;
            class[c * h * w + i] = cp;
            class[3 * h * w + i] = 1.0 - cp;
        }
        let maps = Maps {
            height: h,
            width: w,
            detection: &det,
            size: &size,
            class: &class,
        };
        calls(peaks_in(&maps, 0..w, 0), h, w, offset_s)
    }

    /// Columns `from..to` of a `[planes][rows][w]` map, row-major.
    fn columns(map: &[f32], w: usize, from: usize, to: usize) -> Vec<f32> {
        map.chunks(w)
            .flat_map(|row| row[from..to].iter().copied())
            .collect()
    }

    #[test]
    fn peaks_found_tile_by_tile_make_the_calls_the_whole_map_makes() {
        // A noisy map with ties (values in steps of 1/64) and bursts above the top-k
        // count, cut as the network's tiles are: same calls, same order.
        let (h, w) = (128, 2048);
        let mut state = 12345u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 24) as f32
        };
        let det: Vec<f32> = (0..h * w).map(|_| (next() * 64.0).floor() / 64.0).collect();
        let size: Vec<f32> = (0..2 * h * w).map(|_| next() * 10.0).collect();
        let class: Vec<f32> = (0..4 * h * w).map(|_| next()).collect();
        let whole = Maps {
            height: h,
            width: w,
            detection: &det,
            size: &size,
            class: &class,
        };
        let expected = calls(peaks_in(&whole, 0..w, 0), h, w, 1.5);
        assert!(expected.len() > 100, "{} calls", expected.len());
        let tiles = super::super::tiles::layout(w);
        assert!(tiles.len() > 3);
        let mut found = Vec::new();
        for tile in &tiles {
            let (from, to) = (tile.start, tile.end);
            let (det, size, class) = (
                columns(&det, w, from, to),
                columns(&size, w, from, to),
                columns(&class, w, from, to),
            );
            let maps = Maps {
                height: h,
                width: tile.width(),
                detection: &det,
                size: &size,
                class: &class,
            };
            found.extend(peaks_in(&maps, tile.core_in_tile(), tile.start));
            keep_best(&mut found, top_k(w), w);
        }
        assert_eq!(calls(found, h, w, 1.5), expected);
    }

    #[test]
    fn a_peak_becomes_a_call_with_batdetect2s_times_frequencies_and_class() {
        let (h, w) = (128, 64);
        let placed = &[(100, 10, 0.8, 4.0, 10.0, 2, 0.6)];
        let found = calls_in(h, w, 3.0, placed);
        // Column 10 of the half-width map is spectrogram frame 20: (20 * 128 + 384) / 256 kHz
        // = 11.5 ms; it lasts 4 columns = 8 frames. Row 100 of 128 is 28 rows of
        // 859.375 Hz above 10 kHz, and 10 rows high.
        assert_eq!(
            found,
            [Call {
                start_s: 3.0115,
                end_s: 3.0155,
                low_freq_hz: 34062.0,
                high_freq_hz: 42656.0,
                class: 2,
                class_prob: 0.6,
                det_prob: 0.8,
            }]
        );
    }

    #[test]
    fn at_most_200_calls_a_second_above_the_floor_come_out_in_time_order() {
        // 32 columns are 17.5 ms of spectrogram: room for 3 calls.
        let (h, w) = (128, 32);
        let placed = &[
            (10, 30, 0.5, 1.0, 1.0, 0, 0.9),
            (30, 20, 0.7, 1.0, 1.0, 1, 0.9),
            (50, 10, 0.6, 1.0, 1.0, 2, 0.9),
            (70, 0, 0.2, 1.0, 1.0, 0, 0.9),
            (90, 15, 0.01, 1.0, 1.0, 0, 0.9),
        ];
        let found: Vec<(usize, f64)> = calls_in(h, w, 0.0, placed)
            .iter()
            .map(|c| (c.class, c.det_prob))
            .collect();
        assert_eq!(found, [(2, 0.6), (1, 0.7), (0, 0.5)]);
        // Wider, the weaker one is in; the one at the floor never is.
        let (h, w) = (128, 64);
        let placed = &[
            (70, 0, 0.2, 1.0, 1.0, 0, 0.9),
            (90, 15, 0.01, 1.0, 1.0, 0, 0.9),
        ];
        assert_eq!(calls_in(h, w, 0.0, placed).len(), 1);
    }
}
