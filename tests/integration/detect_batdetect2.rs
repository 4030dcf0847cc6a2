//! BatDetect2 equivalence: our calls against batdetect2 1.3.1's own `process_file` on the
//! package's own test recordings (192, 250 and 312.5 kHz), through the Python reference
//! script (`scripts/detection-reference/batdetect2_reference.py`).
//!
//! Two comparisons: the network and post-processing alone, fed the very spectrograms
//! batdetect2 computed (so a difference is the ONNX conversion's or `postprocess`'s), and
//! the whole path through `acoupi detect --json` (our front-end too).
//!
//! Needs the converted model (`make models`: build/models/batdetect2/) and the batdetect2
//! venv (`make reference-venv`: build/venv-batdetect2). Without them it says so on stderr
//! and passes: the weights carry a non-commercial licence, never in the repository.
//!
//! Asserted: every call found on one side is found on the other (a call on one side
//! only must have a probability within the tolerance of the model's 0.01 floor), at the
//! same pixel (start and lowest frequency equal; the end within one spectrogram frame),
//! with the same species and probabilities within 0.01.

use std::path::{Path, PathBuf};

use acoupi::detection::batdetect2::Network;

use crate::support::detection::reference_stdout;
use crate::support::Install;

/// Probability tolerance (the issue's).
const TOLERANCE: f64 = 0.01;
/// The model's own floor: calls at or below it are not reported by either side.
const FLOOR: f64 = 0.01;
/// One spectrogram frame: 128 samples at 256 kHz.
const FRAME_S: f64 = 128.0 / 256_000.0;

/// The converted model, its labels, the recordings and the venv's python, when all are there.
struct Reference {
    models: PathBuf,
    python: PathBuf,
}

impl Reference {
    fn find() -> Option<Reference> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let models = root.join("build/models/batdetect2");
        let python = root.join("build/venv-batdetect2/bin/python");
        if models.join("Net2DFast_UK_same.onnx").is_file() && python.is_file() {
            return Some(Reference { models, python });
        }
        eprintln!(
            "skipped: run `make models` and `make reference-venv` (build/models/batdetect2/, build/venv-batdetect2) for the BatDetect2 equivalence test"
        );
        None
    }

    fn model(&self) -> PathBuf {
        self.models.join("Net2DFast_UK_same.onnx")
    }

    /// The package's test recordings, by name.
    fn recordings(&self) -> Vec<PathBuf> {
        let mut wavs: Vec<PathBuf> = std::fs::read_dir(self.models.join("audio"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .collect();
        wavs.sort();
        assert!(wavs.len() >= 3, "make models unpacks the test recordings");
        wavs
    }

    /// batdetect2's answer for `wav`, with each chunk's spectrogram dumped into `dump`.
    fn run(&self, wav: &Path, dump: &Path) -> serde_json::Value {
        let out = reference_stdout(
            &self.python,
            "batdetect2_reference.py",
            &[wav.as_os_str(), "--dump".as_ref(), dump.as_os_str()],
        );
        serde_json::from_slice(&out).unwrap()
    }
}

/// One call, as either side reports it.
#[derive(Debug, Clone)]
struct Call {
    start: f64,
    end: f64,
    low: f64,
    high: f64,
    class: String,
    class_prob: f64,
    det_prob: f64,
}

impl Call {
    /// Reads a JSON detection with the side's own field names.
    fn from_json(d: &serde_json::Value, fields: [&str; 7]) -> Call {
        let f = |i: usize| {
            d[fields[i]]
                .as_f64()
                .unwrap_or_else(|| panic!("{d} has no {}", fields[i]))
        };
        Call {
            start: f(0),
            end: f(1),
            low: f(2),
            high: f(3),
            class: d[fields[4]].as_str().unwrap().to_owned(),
            class_prob: f(5),
            det_prob: f(6),
        }
    }
}

const THEIRS: [&str; 7] = [
    "start_time",
    "end_time",
    "low_freq",
    "high_freq",
    "class",
    "class_prob",
    "det_prob",
];
const OURS: [&str; 7] = [
    "start_s",
    "end_s",
    "low_freq_hz",
    "high_freq_hz",
    "class",
    "class_score",
    "score",
];

/// Asserts the two lists are the same calls within the tolerances; returns the number
/// matched and the largest probability difference.
fn compare(what: &str, ours: &[Call], theirs: &[Call]) -> (usize, f64) {
    let mut used = vec![false; ours.len()];
    let mut worst = 0.0f64;
    let mut matched = 0;
    for t in theirs {
        let found = ours.iter().enumerate().position(|(i, o)| {
            !used[i] && (o.start - t.start).abs() < 1e-6 && (o.low - t.low).abs() <= 1.0
        });
        let Some(i) = found else {
            assert!(
                t.det_prob < FLOOR + TOLERANCE,
                "{what}: batdetect2's call {t:?} is not among ours"
            );
            continue;
        };
        used[i] = true;
        let o = &ours[i];
        matched += 1;
        assert_eq!(o.class, t.class, "{what}: ours {o:?}, batdetect2 {t:?}");
        assert!(
            (o.end - t.end).abs() <= FRAME_S && (o.high - t.high).abs() <= 860.0,
            "{what}: ours {o:?}, batdetect2 {t:?}"
        );
        for (a, b) in [(o.det_prob, t.det_prob), (o.class_prob, t.class_prob)] {
            worst = worst.max((a - b).abs());
            assert!(
                (a - b).abs() <= TOLERANCE,
                "{what}: ours {o:?}, batdetect2 {t:?}"
            );
        }
    }
    for (o, _) in ours.iter().zip(&used).filter(|(_, u)| !**u) {
        assert!(
            o.det_prob < FLOOR + TOLERANCE,
            "{what}: our call {o:?} is not among batdetect2's"
        );
    }
    (matched, worst)
}

fn theirs(answer: &serde_json::Value) -> Vec<Call> {
    answer["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Call::from_json(d, THEIRS))
        .collect()
}

// The converted network and our post-processing, on batdetect2's own spectrograms.
#[test]
fn the_network_and_post_processing_match_batdetect2_on_its_spectrograms() {
    let Some(reference) = Reference::find() else {
        return;
    };
    let network = Network::load(&reference.model()).unwrap();
    let labels: Vec<String> = std::fs::read_to_string(reference.models.join("labels.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for wav in reference.recordings() {
        let dump = tempfile::tempdir().unwrap();
        let answer = reference.run(&wav, dump.path());
        let nyquist = f64::from(hound::WavReader::open(&wav).unwrap().spec().sample_rate) / 2.0;
        let mut ours = Vec::new();
        for chunk in answer["chunks"].as_array().unwrap() {
            let width = chunk["width"].as_u64().unwrap() as usize;
            let bytes = std::fs::read(chunk["file"].as_str().unwrap()).unwrap();
            let spec: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let calls = network
                .calls(&spec, width, chunk["start"].as_f64().unwrap())
                .unwrap();
            ours.extend(
                calls
                    .into_iter()
                    .filter(|c| c.high_freq_hz <= nyquist)
                    .map(|c| Call {
                        start: c.start_s,
                        end: c.end_s,
                        low: c.low_freq_hz,
                        high: c.high_freq_hz,
                        class: labels[c.class].clone(),
                        class_prob: c.class_prob,
                        det_prob: c.det_prob,
                    }),
            );
        }
        let theirs = theirs(&answer);
        let what = format!("{} (network only)", wav.display());
        let (matched, worst) = compare(&what, &ours, &theirs);
        eprintln!(
            "{what}: {matched} of {} calls matched (ours {}), largest probability difference {worst:.4}",
            theirs.len(),
            ours.len()
        );
        assert!(matched > 0 || theirs.is_empty(), "{what}: nothing compared");
    }
}

// The whole path: `acoupi detect --json` with kind batdetect2 on the same recordings.
#[test]
fn acoupi_detect_matches_batdetect2_on_its_test_recordings() {
    let Some(reference) = Reference::find() else {
        return;
    };
    let install = Install::new();
    install.setup(&[
        "detection.kind=batdetect2",
        &format!("detection.model_file={}", reference.model().display()),
        &format!(
            "detection.labels_file={}",
            reference.models.join("labels.txt").display()
        ),
        &format!("detection.threshold={FLOOR}"),
    ]);
    install.mic_from_file();
    let mut total = 0;
    for wav in reference.recordings() {
        let dump = tempfile::tempdir().unwrap();
        let theirs = theirs(&reference.run(&wav, dump.path()));
        let out = install.ok(&["detect", &wav.display().to_string(), "--json"]);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(report["model"], "BatDetect2");
        let ours: Vec<Call> = report["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| Call::from_json(d, OURS))
            .collect();
        let what = wav.display().to_string();
        let (matched, worst) = compare(&what, &ours, &theirs);
        eprintln!(
            "{what}: {matched} of {} calls matched (ours {}), largest probability difference {worst:.4}",
            theirs.len(),
            ours.len()
        );
        total += matched;
    }
    assert!(
        total > 100,
        "only {total} calls compared over the recordings"
    );
}
