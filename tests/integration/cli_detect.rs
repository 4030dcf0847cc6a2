//! `acoupi detect FILE.wav` and `acoupi check` with a detection model: the real binary
//! in user mode, the tiny two-class model written by the library's own generator (no
//! weights to licence), WAV files written here.

use std::f32::consts::TAU;
use std::path::{Path, PathBuf};

use crate::support::Install;

/// The tiny model's window: 0.1 s at 8 kHz.
const RATE: u32 = 8000;
const WINDOW: usize = 800;

/// An installation whose configuration runs the tiny model; returns the model's path.
fn with_model(install: &Install) -> PathBuf {
    let model = install.root().join("tiny.onnx");
    let labels = install.root().join("labels.txt");
    acoupi::detection::tiny::write(&model, &labels, WINDOW).unwrap();
    install.setup(&[
        &format!("detection.model_file={}", model.display()),
        &format!("detection.labels_file={}", labels.display()),
        "detection.samplerate=8000",
        "detection.threshold=0.5",
    ]);
    model
}

/// `len` samples of silence then `len` of a 1 kHz sine of amplitude 0.5, 16-bit mono at
/// 8 kHz.
fn silence_then_tone(path: &Path, len: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..2 * len {
        let s = if i < len {
            0.0
        } else {
            0.5 * (TAU * 1000.0 * i as f32 / RATE as f32).sin()
        };
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn first_error(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
}

#[test]
fn detect_prints_each_class_in_its_window_as_text_and_json() {
    let install = Install::new();
    with_model(&install);
    let wav = install.root().join("call.wav");
    silence_then_tone(&wav, WINDOW);
    let wav_arg = wav.display().to_string();

    let out = install.ok(&["detect", &wav_arg, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["model"], "tiny");
    assert_eq!(report["duration_s"], 0.2);
    let found: Vec<(String, f64, f64)> = report["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["class"].as_str().unwrap().to_owned(),
                d["start_s"].as_f64().unwrap(),
                d["end_s"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [("quiet".into(), 0.0, 0.1), ("loud".into(), 0.1, 0.2)]
    );
    assert!(report["detections"][1]["score"].as_f64().unwrap() > 0.99);

    let out = install.ok(&["detect", &wav_arg]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("{wav_arg}: 2 detection(s) by tiny in 0.20 s (threshold 0.5)")
    );
    assert!(lines[2].ends_with("loud"), "{lines:?}");
}

#[test]
fn check_runs_the_model_and_names_a_broken_model_file() {
    let install = Install::new();
    let model = with_model(&install);
    install.mic_from_file();
    let out = install.ok(&["check"]);
    assert!(out.stdout.contains("Health checks passed"), "{out:#?}");

    std::fs::write(&model, b"not an onnx model").unwrap();
    let out = install.run(&["check"]);
    assert_eq!(out.code, Some(1), "{out:#?}");
    let prefix = format!(
        "error: detection.model_file {}: not a usable window model: ",
        model.display()
    );
    assert!(first_error(&out.stderr).starts_with(&prefix), "{out:#?}");
    assert!(!out.stderr.contains("panicked"), "{out:#?}");

    std::fs::remove_file(&model).unwrap();
    let out = install.run(&["detect", "/dev/null"]);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert_eq!(
        first_error(&out.stderr),
        format!(
            "error: detection.model_file {}: cannot read it: No such file or directory (os error 2) (check the path in `acoupi config get detection.model_file`)",
            model.display()
        )
    );
}

#[test]
fn detect_without_a_model_or_with_a_bad_file_says_what_to_do() {
    let install = Install::new();
    install.setup(&[]);
    let out = install.run(&["detect", "/nonexistent.wav"]);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        first_error(&out.stderr).starts_with("error: detection is not configured in ")
            && out
                .stderr
                .contains("set a model with `acoupi config set detection.model_file"),
        "{out:#?}"
    );

    let install = Install::new();
    with_model(&install);
    let out = install.run(&["detect", "/nonexistent.wav"]);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        first_error(&out.stderr)
            .starts_with("error: /nonexistent.wav: cannot read it as a WAV file: "),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("panicked"), "{out:#?}");
}

#[test]
fn the_example_model_runs_as_its_printed_instructions_set_it_and_is_never_overwritten() {
    let install = Install::new();
    install.setup(&[]);
    let dir = install.root().join("models");
    let dir_arg = dir.display().to_string();
    let out = install.ok(&[
        "detect",
        "--example-model",
        &dir_arg,
        "--samplerate",
        "8000",
    ]);
    // Follow the printed instructions word for word.
    for line in out.stdout.lines().map(str::trim) {
        if let Some(args) = line.strip_prefix("acoupi ") {
            install.ok(&args.split(' ').collect::<Vec<_>>());
        }
    }
    let model = dir.join("acoupi-tiny.onnx");
    let bytes = std::fs::read(&model).unwrap();
    // One-second windows: ten of the 0.1 s file's windows make one.
    let wav = install.root().join("call.wav");
    silence_then_tone(&wav, RATE as usize);
    let out = install.ok(&["detect", &wav.display().to_string(), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let classes: Vec<(&str, f64)> = report["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["class"].as_str().unwrap(), d["start_s"].as_f64().unwrap()))
        .collect();
    assert_eq!(classes, [("quiet", 0.0), ("loud", 1.0)], "{report:#}");

    let again = install.run(&["detect", "--example-model", &dir_arg]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert_eq!(
        first_error(&again.stderr),
        format!(
            "error: {} already exists: remove it or give another folder",
            model.display()
        )
    );
    assert_eq!(std::fs::read(&model).unwrap(), bytes, "left as it was");
}
