//! The tiny two-class model (`acoupi::detection::tiny`) set up for an [`Install`]: its
//! files, the `detection` settings that point at them, and the same model loaded in the
//! test to compute what the daemon should have found.

use std::path::PathBuf;

use acoupi::detection::{DetectionConfig, Model};

use super::Install;

/// The sample rate the ramp and the tiny model share.
const RATE: u32 = 8000;

/// The tiny model's files inside an installation.
pub struct TinyModel {
    /// The ONNX file.
    pub model_file: PathBuf,
    /// Its labels (`quiet`, `loud`).
    pub labels_file: PathBuf,
}

impl TinyModel {
    /// Writes the model and its labels into `install`'s root.
    pub fn write(install: &Install) -> TinyModel {
        let model_file = install.root().join("tiny.onnx");
        let labels_file = install.root().join("labels.txt");
        // A one-second window: one per file of the ramp.
        acoupi::detection::tiny::write(&model_file, &labels_file, RATE as usize).unwrap();
        TinyModel {
            model_file,
            labels_file,
        }
    }

    /// `--set` assignments: the model reporting `loud` above 0.5, and
    /// `keep_only_detected` as given.
    pub fn settings(&self, keep_only_detected: bool) -> Vec<String> {
        vec![
            format!("detection.model_file={}", self.model_file.display()),
            format!("detection.labels_file={}", self.labels_file.display()),
            format!("detection.samplerate={RATE}"),
            "detection.threshold=0.5".into(),
            "detection.classes=[\"loud\"]".into(),
            format!("detection.keep_only_detected={keep_only_detected}"),
        ]
    }

    /// The same model, loaded here as [`TinyModel::settings`] configures it.
    pub fn load(&self) -> Model {
        Model::load(&DetectionConfig {
            model_file: self.model_file.clone(),
            labels_file: Some(self.labels_file.clone()),
            samplerate: RATE,
            threshold: Some(0.5),
            classes: vec!["loud".into()],
            ..DetectionConfig::default()
        })
        .unwrap()
    }
}

/// Runs `python` on the reference script `script` (a file in
/// `scripts/detection-reference/`) with `args`, asserts it succeeded and returns what it
/// printed: the Python side of the equivalence tests.
pub fn reference_stdout<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    python: &std::path::Path,
    script: &str,
    args: &[A],
) -> Vec<u8> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/detection-reference")
        .join(script);
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
