//! BatDetect2's front-end (`detection::batdetect2::frontend`) against batdetect2 1.3.1
//! itself: the Python reference script (`scripts/detection-reference/batdetect2_frontend.py`)
//! dumps what batdetect2 feeds its network for each WAV, and ours must agree chunk by
//! chunk.
//!
//! Needs the reference venv (`$ACOUPI_BATDETECT2_VENV`, else build/venv-batdetect2) and
//! batdetect2's own test recordings in build/models/batdetect2/audio/ (192 kHz and
//! 250 kHz). Without them it says so on stderr and passes. Besides those two files, the
//! test writes the same samples under other sample rates (a header change, nothing
//! resampled), so every resampling path batdetect2 takes is covered: 256 kHz (none),
//! 384 kHz (up 2, down 3) and 44.1 kHz (up 2560, down 441).
//!
//! Asserted per file: the same resampled length (and the resampled audio within
//! `AUDIO_TOLERANCE`), the same chunks (start, unpadded duration, width) and each
//! chunk's spectrogram within `TOLERANCE` of the reference's largest value.

use std::path::{Path, PathBuf};

use acoupi::detection::audio::read_wav;
use acoupi::detection::batdetect2::frontend::{self, HEIGHT, SAMPLERATE};

use crate::support::detection::reference_stdout;

/// Largest difference allowed in a chunk's spectrogram, relative to its largest value.
/// Measured on 2026-12-06 (batdetect2 1.3.1, numpy 1.24.2, scipy 1.10.1, torch 1.13, an
/// AVX-512 CPU): at most 4.8e-7 absolute, 1.4e-7 relative, over the five files; 88 % of
/// the values bit for bit, the rest one ulp apart (torch's resize order).
const TOLERANCE: f32 = 1e-4;
/// Largest difference allowed in the resampled audio (full scale 1). Measured: 0, ours
/// is bit for bit scipy's at all four rates.
const AUDIO_TOLERANCE: f32 = 1e-6;

/// The reference Python and the recordings, when both are there.
fn reference() -> Option<(PathBuf, Vec<PathBuf>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var_os("ACOUPI_BATDETECT2_VENV")
        .map_or_else(|| root.join("build/venv-batdetect2"), PathBuf::from);
    let python = venv.join("bin/python");
    let audio = root.join("build/models/batdetect2/audio");
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(&audio)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
        .collect();
    wavs.sort();
    if python.is_file() && !wavs.is_empty() {
        return Some((python, wavs));
    }
    eprintln!(
        "skipped: the BatDetect2 front-end test needs a venv with batdetect2 1.3.1 \
         ($ACOUPI_BATDETECT2_VENV or build/venv-batdetect2) and WAVs in {}",
        audio.display()
    );
    None
}

/// `wav`'s 16-bit samples written again to `dir/name.wav` declared at `rate`.
fn relabel(wav: &Path, dir: &Path, name: &str, rate: u32) -> PathBuf {
    let mut reader = hound::WavReader::open(wav).unwrap();
    let spec = hound::WavSpec {
        sample_rate: rate,
        ..reader.spec()
    };
    assert_eq!(
        (spec.channels, spec.bits_per_sample),
        (1, 16),
        "{}",
        wav.display()
    );
    let path = dir.join(format!("{name}.wav"));
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for s in reader.samples::<i16>() {
        writer.write_sample(s.unwrap()).unwrap();
    }
    writer.finalize().unwrap();
    path
}

/// Raw little-endian float32 values.
fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Largest absolute difference between two equally long slices.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn batdetect2_frontend_matches_batdetect2() {
    let Some((python, originals)) = reference() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut wavs = originals.clone();
    // The first recording under the other rates: none, 2/3 and 2560/441 resampling.
    for (name, rate) in [
        ("at256k", SAMPLERATE),
        ("at384k", 384_000),
        ("at44k1", 44_100),
    ] {
        wavs.push(relabel(&originals[0], tmp.path(), name, rate));
    }
    let dumps = tmp.path().join("reference");
    let mut args = vec![dumps.as_os_str()];
    args.extend(wavs.iter().map(|w| w.as_os_str()));
    reference_stdout(&python, "batdetect2_frontend.py", &args);

    for wav in &wavs {
        let dir = dumps.join(wav.file_stem().unwrap());
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("frontend.json")).unwrap()).unwrap();
        let name = wav.file_name().unwrap().to_string_lossy();
        let mono = read_wav(wav).unwrap();
        assert_eq!(u64::from(mono.samplerate), meta["file_samplerate"]);

        let resampled = frontend::resample_poly(&mono.samples, mono.samplerate, SAMPLERATE);
        let theirs = read_f32(&dir.join("audio.f32"));
        assert_eq!(resampled.len(), theirs.len(), "{name}: resampled length");
        let audio_diff = max_diff(&resampled, &theirs);
        let exact = resampled
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| a.to_bits() == b.to_bits())
            .count();
        eprintln!(
            "{name} ({} Hz): resampled {} samples, max diff {audio_diff:.3e}, {exact} bit-exact",
            mono.samplerate,
            resampled.len()
        );
        assert!(
            audio_diff <= AUDIO_TOLERANCE,
            "{name}: resampled audio off by {audio_diff}"
        );

        let ours: Vec<_> = frontend::chunks(&mono.samples, mono.samplerate).collect();
        let reference = meta["chunks"].as_array().unwrap();
        assert_eq!(ours.len(), reference.len(), "{name}: chunks");
        for (i, (chunk, r)) in ours.iter().zip(reference).enumerate() {
            assert_eq!(
                chunk.start_s,
                r["start_s"].as_f64().unwrap(),
                "{name} chunk {i}"
            );
            assert_eq!(
                chunk.duration_s,
                r["duration_s"].as_f64().unwrap(),
                "{name} chunk {i}"
            );
            assert_eq!(r["height"].as_u64(), Some(HEIGHT as u64));
            assert_eq!(
                Some(chunk.width as u64),
                r["width"].as_u64(),
                "{name} chunk {i}"
            );
            let theirs = read_f32(&dir.join(format!("chunk{i}.f32")));
            let diff = max_diff(&chunk.spec, &theirs);
            let peak = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let exact = chunk
                .spec
                .iter()
                .zip(&theirs)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count();
            eprintln!(
                "  chunk {i} at {} s: 128 x {}, max diff {diff:.3e} (peak {peak:.4}, relative {:.3e}), {:.2}% bit-exact",
                chunk.start_s,
                chunk.width,
                diff / peak,
                100.0 * exact as f64 / theirs.len() as f64
            );
            assert!(
                diff <= TOLERANCE * peak,
                "{name} chunk {i}: spectrogram off by {diff} (peak {peak})"
            );
        }
    }
}
