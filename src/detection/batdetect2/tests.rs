//! Pure-function checks of the BatDetect2 front-end against values worked out by hand or
//! printed once by scipy 1.10.1; the whole front-end against batdetect2 itself is
//! `tests/integration/detect_batdetect2_frontend.rs`.

use super::frontend::{
    chunks, firwin_kaiser, padded_len, pairwise_sum, pcen, resample_poly, resize_bilinear,
    spectrogram, Resampler, HEIGHT, SAMPLERATE,
};

/// `x` = 0.1, 0.2, ..., 1.0 in float32, scipy's `resample_poly` test input below.
fn tenths() -> Vec<f32> {
    (1..=10).map(|i| i as f32 / 10.0).collect()
}

#[test]
fn resample_poly_is_scipys_to_the_bit() {
    // scipy.signal.resample_poly(np.arange(1, 11, dtype=np.float32) / 10, up, down),
    // float32 bit patterns printed by scipy 1.10.1.
    let up3_down2: [u32; 15] = [
        0x3dcc_ec95,
        0x3e2f_fc43,
        0x3e69_b9db,
        0x3e99_b170,
        0x3ebf_cf04,
        0x3ed8_d5be,
        0x3f00_13dd,
        0x3f15_a8d4,
        0x3f1c_44ec,
        0x3f33_4f02,
        0x3f4f_126a,
        0x3f46_a20a,
        0x3f66_8a27,
        0x3f8e_11ec,
        0x3f33_825c,
    ];
    let up2_down3: [u32; 7] = [
        0x3db5_19ad,
        0x3e85_4a9d,
        0x3ec6_861a,
        0x3f11_6571,
        0x3f2c_3d36,
        0x3f67_0ff2,
        0x3f53_02b4,
    ];
    // Rates in the ratios 3/2 and 2/3, so the gcd reduction is exercised too.
    let y = resample_poly(&tenths(), 64_000, 96_000);
    assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), up3_down2);
    let y = resample_poly(&tenths(), 96_000, 64_000);
    assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), up2_down3);
}

#[test]
fn any_stretch_of_the_resampled_audio_is_the_whole_resamplings_to_the_bit() {
    // Chunks are resampled one at a time: each must equal its part of the whole.
    let x: Vec<f32> = (0..30_011)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    for (from, to) in [(384_000, 256_000), (44_100, 256_000), (250_000, 256_000)] {
        let whole = resample_poly(&x, from, to);
        let resampler = Resampler::new(&x, from, to);
        assert_eq!(resampler.output_len(), whole.len());
        for range in [0..1, 0..7_000, 6_999..20_000, 20_000..whole.len()] {
            let part = resampler.range(range.clone());
            let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&part),
                bits(&whole[range.clone()]),
                "{from} -> {to}, {range:?}"
            );
        }
    }
}

#[test]
fn resample_poly_lengths_and_dc_gain() {
    for (from, to) in [
        (44_100, 256_000),
        (192_000, 256_000),
        (250_000, 256_000),
        (384_000, 256_000),
    ] {
        for n in [1usize, 7, 1000, 20_000] {
            let y = resample_poly(&vec![1.0; n], from, to);
            let expected = (n as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
            assert_eq!(y.len(), expected, "{from} -> {to}, {n} samples");
        }
        // A constant comes out constant away from the edges: every filter phase sums to
        // about 1 (scipy: within 7e-4 at 44.1 kHz, the worst of these).
        let y = resample_poly(&vec![1.0; 20_000], from, to);
        let interior = &y[1000..y.len() - 1000];
        let worst = interior.iter().map(|v| (v - 1.0).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-3, "{from} -> {to}: DC off by {worst}");
    }
    assert_eq!(resample_poly(&tenths(), 256_000, 256_000), tenths());
    assert!(resample_poly(&[], 44_100, 256_000).is_empty());
}

#[test]
fn firwin_has_unit_dc_gain_and_is_symmetric() {
    let h = firwin_kaiser(81, 0.25, 5.0);
    assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    for i in 0..40 {
        assert_eq!(h[i], h[80 - i], "tap {i}");
    }
    // Zeros of the sinc at multiples of 1 / cutoff from the centre.
    assert!(h[40 + 4].abs() < 1e-15 && h[40 - 8].abs() < 1e-15);
}

#[test]
fn pairwise_sum_splits_like_numpy() {
    // 1e8 plus 300 ones: a sequential float32 sum stays at 1e8 (each 1 is under half an
    // ulp), numpy's pairwise sum keeps most of them in the lanes before adding 1e8.
    let mut a = vec![1.0f32; 301];
    a[0] = 1e8;
    let sequential = a.iter().fold(0.0f32, |s, &v| s + v);
    assert_eq!(sequential, 1e8);
    assert!(pairwise_sum(&a) > 1e8);
    assert_eq!(pairwise_sum(&[1.0f64, 2.0, 3.0]), 6.0);
    assert_eq!(pairwise_sum::<f32>(&[]), 0.0);
}

#[test]
fn bilinear_resize_is_torchs() {
    // 2 × 2 to 3 × 3: source coordinates (0.5 / 1.5)(d + 0.5) * 2 / 3 - 0.5 = 0, 0.5,
    // 1.1667 (clamped to the last pixel).
    let src = [0.0, 1.0, 2.0, 3.0];
    let out = resize_bilinear(&src, 2, 2, 3, 3);
    let expected = [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0];
    assert_eq!(out, expected);
    // 220 rows to 128: output row 0 reads rows 0 and 1 at 0.359375 = 0.5 * 220 / 128 - 0.5;
    // halving the width averages column pairs.
    let (h, w) = (220, 4);
    let src: Vec<f32> = (0..h * w).map(|i| (i / w * 10 + i % w) as f32).collect();
    let out = resize_bilinear(&src, h, w, 128, 2);
    assert_eq!(out.len(), 256);
    assert_eq!(out[0], 0.5 * 0.640_625 + 10.5 * 0.359_375);
    assert_eq!(out[1], 2.5 * 0.640_625 + 12.5 * 0.359_375);
    // Last row: 127.5 * 1.71875 - 0.5 = 218.640625, rows 218 and 219.
    assert_eq!(out[254], 2180.5 * 0.359_375 + 2190.5 * 0.640_625);
}

#[test]
fn pcen_of_a_constant_is_the_closed_form() {
    // A constant x (the magnitude times 2^31) through the low-pass started at lfilter_zi's
    // steady state for 1: M[n] = x + (1 - x)(1 - b)^(n + 1); then
    // out = sqrt(2) ((1 + x (eps + M)^-0.98 / 2)^0.5 - 1).
    let frames = 50;
    for magnitude in [1e-9f32, 1e-4, 0.3] {
        let mut spec = vec![magnitude; 2 * frames];
        pcen(&mut spec, frames);
        let x = f64::from(magnitude) * 2f64.powi(31);
        let t: f64 = 0.4 * 25_600.0 / 512.0;
        let b = ((1.0 + 4.0 * t * t).sqrt() - 1.0) / (2.0 * t * t);
        for (n, &got) in spec[frames..].iter().enumerate() {
            let m = x + (1.0 - x) * (1.0 - b).powi(n as i32 + 1);
            let want = 2f64.sqrt() * ((1.0 + x * (1e-6 + m).powf(-0.98) / 2.0).sqrt() - 1.0);
            let err = (f64::from(got) - want).abs() / want;
            assert!(
                err < 1e-6,
                "magnitude {magnitude}, frame {n}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn padding_is_pad_audios() {
    // A full 3 s chunk: 5997 frames, width 2998 -> 3008, i.e. 6016 frames.
    assert_eq!(padded_len(768_000), 6015 * 128 + 512);
    // Audiomoth.WAV's last chunk (0.72525 s): width 723 -> 736.
    assert_eq!(padded_len(185_664), 1471 * 128 + 512);
    // Short chunks get the minimum of 64 columns (128 frames).
    assert_eq!(padded_len(0), 16_768);
    assert_eq!(padded_len(100), 16_768);
    // A width already a multiple of 32 is left alone: 64 columns exactly.
    assert_eq!(padded_len(16_768), 16_768);
    assert_eq!(padded_len(16_768 + 127), 16_768 + 127);
}

#[test]
fn chunks_follow_iterate_over_chunks() {
    let audio = vec![0.0f32; 7 * SAMPLERATE as usize];
    let got: Vec<_> = chunks(&audio, SAMPLERATE).collect();
    assert_eq!(got.len(), 3);
    let summary: Vec<(f64, f64, usize)> = got
        .iter()
        .map(|c| (c.start_s, c.duration_s, c.width))
        .collect();
    assert_eq!(
        summary,
        [(0.0, 3.0, 3008), (3.0, 3.0, 3008), (6.0, 1.0, 1024)]
    );
    for c in &got {
        assert_eq!(c.spec.len(), HEIGHT * c.width);
    }
    assert_eq!(chunks(&[], 250_000).count(), 0);
    // Silence: the magnitude is 0, PCEN of 0 is 0, and so is everything after.
    assert!(got[2].spec.iter().all(|&v| v == 0.0));
    let (width, spec) = spectrogram(&[0.5; 100]);
    assert_eq!((width, spec.len()), (64, HEIGHT * 64));
}
