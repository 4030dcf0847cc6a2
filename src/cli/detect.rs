//! `acoupi detect FILE.wav [--json]`: runs the configured model over any WAV file,
//! offline, and prints what it found. For trying a model and its threshold on known
//! recordings before a deployment; the recorder itself stores nothing from here.
//!
//! `acoupi detect --example-model DIR` writes the tiny two-class model
//! (`detection::tiny`) and its labels: a model anyone may copy, to try the whole
//! pipeline (and bake it into an image, as `make e2e` does) before obtaining a real one.
//!
//! The detection lives in `detection`; this file only loads the configuration and prints.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::detection::birdnet_location::Place;
use crate::detection::{self, Detection, Model};
use crate::system::layout::Layout;

/// `acoupi detect FILE.wav [--json]`, or `acoupi detect --example-model DIR`.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// The WAV file to run the model over.
    #[arg(required_unless_present = "example_model")]
    pub file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write an example model (two classes, `loud` and `quiet`, on one-second windows)
    /// and its labels into this folder, to try detection without a licensed model.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["file", "json"])]
    pub example_model: Option<PathBuf>,
    /// The sample rate of the example model's windows, in Hz (default 48000).
    #[arg(long, value_name = "HZ")]
    pub samplerate: Option<u32>,
    /// With BirdNET's location filter: the site's latitude in degrees (default: the
    /// active deployment's).
    #[arg(
        long,
        value_name = "DEG",
        requires = "longitude",
        allow_hyphen_values = true
    )]
    pub latitude: Option<f64>,
    /// With BirdNET's location filter: the site's longitude in degrees.
    #[arg(
        long,
        value_name = "DEG",
        requires = "latitude",
        allow_hyphen_values = true
    )]
    pub longitude: Option<f64>,
    /// With BirdNET's location filter: the day the file was recorded (YYYY-MM-DD), which
    /// gives its week; without it, the whole year (or `detection.week`).
    #[arg(long, value_name = "DATE")]
    pub date: Option<jiff::civil::Date>,
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
    /// BirdNET's location filter as applied; `None` without one (or without a site).
    pub location: Option<LocationReport>,
    /// What the model found, by start time then falling score.
    pub detections: Vec<Detection>,
}

/// Where and when `acoupi detect` filtered BirdNET's species.
#[derive(Debug, Clone, Serialize)]
pub struct LocationReport {
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// BirdNET's week (1 to 48, -1 for the whole year).
    pub week: i32,
    /// How many species the meta-data model expects there then (0: none, so nothing
    /// is filtered, as in birdnetlib).
    pub species: usize,
}

/// Loads the configured model, runs it over the file, prints the detections; or writes
/// the example model.
pub fn run(layout: &Layout, args: DetectArgs) -> anyhow::Result<()> {
    let file = match (args.example_model, args.file) {
        (Some(dir), _) => return write_example_model(&dir, args.samplerate.unwrap_or(48_000)),
        (None, Some(_)) if args.samplerate.is_some() => {
            bail!("--samplerate sets the example model's rate: use it with --example-model DIR (a WAV file is read at its own rate)")
        }
        (None, Some(file)) => file,
        // clap requires one of the two.
        (None, None) => bail!("give a WAV file: acoupi detect FILE.wav"),
    };
    let config = crate::config::load(&layout.config_file)?;
    let Some(section) = config.detection else {
        bail!(
            "detection is not configured in {}: set a model with `acoupi config set detection.model_file /path/to/model.onnx`",
            layout.config_file.display()
        );
    };
    let model = Model::load(&section)?;
    let place = match (model.location_filter(), args.latitude.zip(args.longitude)) {
        (None, _) => None,
        (Some(_), Some((latitude, longitude))) => {
            crate::config::validate_latitude(latitude)
                .map_err(|m| anyhow::anyhow!("--latitude {m}"))?;
            crate::config::validate_longitude(longitude)
                .map_err(|m| anyhow::anyhow!("--longitude {m}"))?;
            Some((latitude, longitude))
        }
        (Some(_), None) => deployment_site(layout, &config.paths)?,
    }
    .map(|(latitude, longitude)| Place {
        latitude,
        longitude,
        date: args.date,
    });
    let location = match (model.location_filter(), &place) {
        (Some(filter), Some(place)) => Some(LocationReport {
            latitude: place.latitude,
            longitude: place.longitude,
            week: filter.week(place.date),
            species: filter
                .expected(place)?
                .map_or(0, |e| e.iter().filter(|e| **e).count()),
        }),
        (Some(_), None) => {
            eprintln!("note: detection.location_model_file is set but there is no site: species are not filtered by location (give --latitude and --longitude, or start a deployment with its site)");
            None
        }
        _ => None,
    };
    let audio = detection::audio::read_wav(&file)?;
    let duration_s = audio.samples.len() as f64 / f64::from(audio.samplerate.max(1));
    let detections = model
        .detect_at(&audio, place.as_ref())
        .with_context(|| format!("running {} over {}", model.name(), file.display()))?;
    let report = DetectReport {
        file,
        model: model.name().to_owned(),
        duration_s,
        threshold: section.threshold(),
        location,
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
    if let Some(l) = &report.location {
        println!(
            "  location filter: {} species expected at {}, {} in week {}",
            l.species, l.latitude, l.longitude, l.week
        );
    }
    for d in &report.detections {
        // A BatDetect2 call lasts milliseconds and has its own band and class confidence.
        let call = if d.class_score != d.score {
            format!(
                "  {:.1}–{:.1} kHz  class {:.3}",
                d.low_freq_hz / 1e3,
                d.high_freq_hz / 1e3,
                d.class_score
            )
        } else {
            String::new()
        };
        println!(
            "  {:>9.4}–{:<9.4} s  {:.3}  {}{call}",
            d.start_s, d.end_s, d.score, d.class
        );
    }
    Ok(())
}

/// The active deployment's site, read only from metadata.db (never created here);
/// `None` when there is no database, no deployment or no coordinates.
fn deployment_site(
    layout: &Layout,
    paths: &crate::system::layout::Paths,
) -> anyhow::Result<Option<(f64, f64)>> {
    let db = layout.storage_paths(paths).db_metadata;
    if !db.exists() {
        return Ok(None);
    }
    let store = crate::store::metadata::MetadataStore::open_for_reading(&db)
        .with_context(|| format!("reading the deployment's site from {}", db.display()))?;
    Ok(store
        .active_deployment()?
        .and_then(|d| d.latitude.zip(d.longitude)))
}

/// `--example-model DIR`: the tiny model and its labels, never over a file already there.
fn write_example_model(dir: &std::path::Path, samplerate: u32) -> anyhow::Result<()> {
    let range = crate::audio::device::RATE_RANGE;
    if !range.contains(&samplerate) {
        bail!(
            "--samplerate {samplerate}: must be between {} and {} Hz",
            range.start(),
            range.end()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir)?;
    let model = dir.join("acoupi-tiny.onnx");
    let labels = dir.join("acoupi-tiny.labels.txt");
    for f in [&model, &labels] {
        if f.exists() {
            bail!(
                "{} already exists: remove it or give another folder",
                f.display()
            );
        }
    }
    detection::tiny::write(&model, &labels, samplerate as usize)
        .with_context(|| format!("writing the example model into {}", dir.display()))?;
    println!(
        "wrote an example model: classes loud and quiet, on 1 s windows at {samplerate} Hz\n  {}\n  {}\nto run it on every recording:\n  acoupi config set detection.model_file {}\n  acoupi config set detection.labels_file {}\n  acoupi config set detection.samplerate {samplerate}",
        model.display(),
        labels.display(),
        model.display(),
        labels.display()
    );
    Ok(())
}
