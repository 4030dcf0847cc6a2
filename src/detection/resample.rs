//! Band-limited resampling as birdnetlib gets it: `librosa.load(sr=48000,
//! res_type="kaiser_fast")`, i.e. resampy 0.4's `kaiser_fast` filter and interpolation
//! loop, then librosa's length fix (zero-padded to `ceil(len * to / from)`).
//!
//! The filter is computed here, not read from resampy's `kaiser_fast.npz`: a
//! Kaiser-windowed sinc with resampy's roll-off, 24 zero crossings, 512 table entries
//! between them and the Kaiser β that reproduces the stored table to 2e-10 (fitted once
//! against resampy 0.4.3's file). The loop is resampy's `_resample_loop`, summing into an
//! f32 output as numba does. Results still differ slightly from resampy's (the table's
//! last bits, the order of float operations), so BirdNET scores of non-48 kHz
//! recordings match birdnetlib's within the tolerance
//! `tests/integration/detect_birdnet.rs` states, not bit for bit.

/// resampy's `kaiser_fast` roll-off, a fraction of Nyquist.
const ROLLOFF: f64 = 0.868_212_04;
/// Zero crossings of the sinc on each side.
const ZEROS: usize = 24;
/// Table entries between zero crossings (resampy's `precision`).
const TABLE: usize = 512;
/// The Kaiser window's β (fitted to resampy's stored table, see the module doc).
const BETA: f64 = 9.903_224_256_654_14;

/// `samples` at `from` Hz resampled to `to` Hz the way birdnetlib's librosa does it; the
/// same samples when the rates agree.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() || from == 0 || to == 0 {
        return samples.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let n_out = (samples.len() as f64 * f64::from(to) / f64::from(from)) as usize;
    let mut win = half_window();
    if ratio < 1.0 {
        win.iter_mut().for_each(|w| *w *= ratio);
    }
    // np.diff(win, append=win[-1]): the last delta is 0.
    let delta: Vec<f64> = (0..win.len())
        .map(|i| win.get(i + 1).map_or(0.0, |next| next - win[i]))
        .collect();
    let scale = ratio.min(1.0);
    let step = (scale * TABLE as f64) as usize;
    let increment = 1.0 / ratio;
    let nwin = win.len();
    let weight = |index_frac: f64, i: usize| {
        let offset = index_frac as usize;
        let eta = index_frac - offset as f64;
        win[offset + i * step] + eta * delta[offset + i * step]
    };
    let mut out: Vec<f32> = (0..n_out)
        .map(|t| {
            let time = t as f64 * increment;
            let n = time as usize;
            let frac = scale * (time - n as f64);
            let mut y = 0.0f32;
            // Left wing: x[n], x[n-1], …
            let index_frac = frac * TABLE as f64;
            let i_max = (n + 1).min((nwin - index_frac as usize) / step);
            for i in 0..i_max {
                y = (f64::from(y) + weight(index_frac, i) * f64::from(samples[n - i])) as f32;
            }
            // Right wing: x[n+1], x[n+2], …
            let index_frac = (scale - frac) * TABLE as f64;
            let k_max = (samples.len() - n - 1).min((nwin - index_frac as usize) / step);
            for k in 0..k_max {
                y = (f64::from(y) + weight(index_frac, k) * f64::from(samples[n + k + 1])) as f32;
            }
            y
        })
        .collect();
    out.resize((samples.len() as f64 * ratio).ceil() as usize, 0.0);
    out
}

/// The right half of the interpolation filter: `ROLLOFF * sinc(ROLLOFF * t)` tapered by a
/// Kaiser window, at `t = j / TABLE` for `j` in `0..=ZEROS * TABLE`.
fn half_window() -> Vec<f64> {
    let n = ZEROS * TABLE;
    let i0_beta = bessel_i0(BETA);
    (0..=n)
        .map(|j| {
            let t = j as f64 / TABLE as f64;
            let x = std::f64::consts::PI * ROLLOFF * t;
            let sinc = if j == 0 { 1.0 } else { x.sin() / x };
            let r = j as f64 / n as f64;
            let taper = bessel_i0(BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            ROLLOFF * sinc * taper
        })
        .collect()
}

/// The modified Bessel function of the first kind, order 0, by its power series (which
/// converges fast for the arguments a Kaiser window with β ≈ 10 needs).
pub(crate) fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_resampys_kaiser_fast() {
        let w = half_window();
        assert_eq!(w.len(), 12_289);
        // Values of resampy 0.4.3's kaiser_fast.npz `half_window` (first and last).
        assert!((w[0] - 0.868_212_04).abs() < 1e-9, "{}", w[0]);
        assert!((w[1] - 0.868_207_91).abs() < 1e-8, "{}", w[1]);
        assert!((w[12_288] - 2.529e-6).abs() < 1e-9, "{}", w[12_288]);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-15);
    }

    #[test]
    fn lengths_are_librosas_and_a_tone_survives() {
        assert_eq!(resample(&[0.25; 10], 48_000, 48_000), vec![0.25; 10]);
        let tone: Vec<f32> = (0..44_100)
            .map(|i| (std::f32::consts::TAU * 1000.0 * i as f32 / 44_100.0).sin())
            .collect();
        let up = resample(&tone, 44_100, 48_000);
        // librosa's ceil(len * (to / from)): 44100 * (48000 / 44100) is 48000.00000000001.
        assert_eq!(up.len(), 48_001);
        // Away from the edges the 1 kHz tone is the same tone at the new rate.
        for (i, y) in up.iter().enumerate().skip(1000).take(46_000) {
            let want = (std::f32::consts::TAU * 1000.0 * i as f32 / 48_000.0).sin();
            assert!((y - want).abs() < 1e-3, "sample {i}: {y} vs {want}");
        }
        // librosa pads to the ceiling of the float product, one more sample even when exact.
        assert_eq!(resample(&tone[..441], 44_100, 48_000).len(), 481);
        assert_eq!(resample(&tone[..442], 44_100, 48_000).len(), 482);
    }
}
