//! `acoupi detect FILE.wav [--json]`: runs the configured model over any WAV file,
//! offline, and prints what it found. For trying a model and its threshold on known
//! recordings before a deployment; the recorder itself stores nothing from here.
//!
//! The detection lives in `detection`; this file only loads the configuration and prints.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::detection::{self, Detection, Model};
use crate::system::layout::Layout;

/// `acoupi detect FILE.wav [--json]`.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// The WAV file to run the model over.
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `acoupi detect --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DetectReport {
    /// The file the model ran over.
    pub file: PathBuf,
    /// The model's name (`model_output.model_name`).
    pub model: String,
    /// The file's length, seconds.
    pub duration_s: f64,
    /// The score threshold applied.
    pub threshold: f64,
    /// What the model found, by start time then falling score.
    pub detections: Vec<Detection>,
}

/// Loads the configured model, runs it over the file, prints the detections.
pub fn run(layout: &Layout, args: DetectArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&layout.config_file)?;
    let Some(section) = config.detection else {
        bail!(
            "detection is not configured in {}: set a model with `acoupi config set detection.model_file /path/to/model.onnx`",
            layout.config_file.display()
        );
    };
    let model = Model::load(&section)?;
    let audio = detection::audio::read_wav(&args.file)?;
    let duration_s = audio.samples.len() as f64 / f64::from(audio.samplerate.max(1));
    let detections = model
        .detect(&audio)
        .with_context(|| format!("running {} over {}", model.name(), args.file.display()))?;
    let report = DetectReport {
        file: args.file,
        model: model.name().to_owned(),
        duration_s,
        threshold: section.threshold(),
        detections,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{}: {} detection(s) by {} in {:.2} s (threshold {})",
        report.file.display(),
        report.detections.len(),
        report.model,
        report.duration_s,
        report.threshold
    );
    for d in &report.detections {
        println!(
            "  {:>8.2}–{:<8.2} s  {:.3}  {}",
            d.start_s, d.end_s, d.score, d.class
        );
    }
    Ok(())
}
