//! Detection inside `acoupi run`: the real daemon on the ramp (8 kHz, 1 s files) with the
//! tiny two-class model (one window per file), `detection.keep_only_detected` and
//! `classes: ["loud"]`. Every kept recording must carry the model output the model gives
//! for its file, and the quiet first file (a partial slot of the ramp's smallest values)
//! must be gone.

use std::time::{Duration, Instant};

use acoupi::detection::detect_file;
use acoupi::store::MetadataStore;
use nix::sys::signal::Signal;

use crate::support::detection::TinyModel;
use crate::support::feeder::Feeder;
use crate::support::{ramp, wait_until, wav_files, wav_samples, Install, Notify};

#[test]
fn the_recorder_stores_model_outputs_and_keeps_only_recordings_with_detections() {
    let install = Install::new();
    let tiny = TinyModel::write(&install);
    let settings = tiny.settings(true);
    install.setup(&settings.iter().map(String::as_str).collect::<Vec<_>>());
    install.deploy("detect");
    let notify = Notify::bind(install.root());
    let _feeder = Feeder::start(&install.fifo, 0);
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, Duration::from_secs(10), &daemon);

    assert!(
        wait_until(Duration::from_secs(15), || wav_files(&install.recordings())
            .len()
            >= 3),
        "no three kept recordings; log:\n{}",
        daemon.log_text()
    );
    let status = install.control_status();
    let d = &status["detection"];
    assert_eq!(d["model"], "tiny", "{status:#}");
    assert_eq!(
        (d["skipped"].as_u64(), d["failed"].as_u64()),
        (Some(0), Some(0)),
        "{status:#}"
    );
    assert_eq!(d["capacity"], 4);
    assert!(d["analysed"].as_u64().unwrap() >= 3, "{status:#}");
    let out = install.ok(&["deployment", "status"]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("detection :"))
        .unwrap_or_else(|| panic!("no detection line in status:\n{}", out.stdout));
    assert!(
        line.contains(": tiny: ") && line.contains(" 0 skipped (model behind), 0 failed, "),
        "{line}"
    );

    daemon.signal(Signal::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("no exit after SIGTERM");
    assert_eq!(exit.code(), Some(0), "log:\n{}", daemon.log_text());

    let model = tiny.load();
    let store = MetadataStore::open(&install.db()).unwrap();
    let files = wav_files(&install.recordings());
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        assert_ne!(
            wav_samples(file)[0],
            ramp(0),
            "{}: the quiet first file was kept",
            file.display()
        );
        let row = store.find_by_path(file).unwrap().expect("row");
        let outputs = store.model_outputs(row.id).unwrap();
        // Files finished after the stop began are decided without the model.
        if outputs.is_empty() {
            continue;
        }
        assert_eq!(outputs.len(), 1, "{}", file.display());
        assert_eq!(outputs[0].model_name, "tiny");
        let expected = detect_file(&model, file).unwrap();
        assert!(
            !expected.is_empty(),
            "{}: kept without a detection",
            file.display()
        );
        assert_stored(&outputs[0], &expected, |class| class, file);
    }
    let analysed = files
        .iter()
        .filter(|f| {
            let row = store.find_by_path(f).unwrap().unwrap();
            !store.model_outputs(row.id).unwrap().is_empty()
        })
        .count();
    assert!(
        analysed >= 2,
        "only {analysed} kept recordings were analysed"
    );
}

/// BirdNET's files from `make models`, or `None` (the test is skipped, said on stderr).
fn birdnet_models() -> Option<std::path::PathBuf> {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("build/models/birdnet");
    let needed = [
        "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
        "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite",
    ];
    if needed.iter().all(|f| models.join(f).is_file()) {
        return Some(models);
    }
    eprintln!("skipped: no BirdNET models in build/models/birdnet (run `make models`)");
    None
}

// The recorder applies BirdNET's location filter with the deployment's site and each
// recording's date: what it stores is what the library finds for that place and day, and
// the filter takes away species the same recordings give without it.
#[test]
fn the_recorder_filters_birdnet_detections_by_the_deployments_site_and_the_recordings_week() {
    let Some(models) = birdnet_models() else {
        return;
    };
    let install = Install::new();
    let file = |name: &str| models.join(name).display().to_string();
    let settings = [
        "detection.kind=birdnet".to_owned(),
        format!(
            "detection.model_file={}",
            file("BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
        ),
        format!(
            "detection.labels_file={}",
            file("BirdNET_GLOBAL_6K_V2.4_Labels.txt")
        ),
        format!(
            "detection.location_model_file={}",
            file("BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite")
        ),
        "detection.threshold=0.01".into(),
        // Three seconds: one whole BirdNET window per file.
        "recording.duration=3".into(),
        "recording.interval=3".into(),
    ];
    install.setup(&settings.iter().map(String::as_str).collect::<Vec<_>>());
    install.deploy("birdnet-site");
    let notify = Notify::bind(install.root());
    // 50-ms pips of 3 kHz every 0.1 s, the same in every file whatever its phase: at
    // 8 kHz BirdNET hears a New Guinea jewel-babbler and an Indian bush-quail in them
    // (0.06 to 0.22), species its meta-data model does not expect in London.
    let pips = |n: u64| {
        let m = (n % 800) as f64;
        let hann = if m < 400.0 {
            0.5 - 0.5 * (std::f64::consts::TAU * m / 399.0).cos()
        } else {
            0.0
        };
        let tone = (std::f64::consts::TAU * 3000.0 * n as f64 / 8000.0).sin();
        (0.4 * hann * tone * 32767.0) as i16
    };
    let _feeder = Feeder::start_with(&install.fifo, std::sync::Arc::new(pips));
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, Duration::from_secs(60), &daemon);
    assert!(
        wait_until(Duration::from_secs(120), || install.control_status()
            ["detection"]["analysed"]
            .as_u64()
            .unwrap_or(0)
            >= 2),
        "no two recordings analysed; log:\n{}",
        daemon.log_text()
    );
    daemon.signal(Signal::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(30))
        .expect("no exit after SIGTERM");
    assert_eq!(exit.code(), Some(0), "log:\n{}", daemon.log_text());

    let config = acoupi::detection::DetectionConfig {
        kind: acoupi::detection::ModelKind::Birdnet,
        model_file: models.join("BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"),
        labels_file: Some(models.join("BirdNET_GLOBAL_6K_V2.4_Labels.txt")),
        location_model_file: Some(models.join("BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite")),
        samplerate: 48_000,
        threshold: Some(0.01),
        ..acoupi::detection::DetectionConfig::default()
    };
    let model = acoupi::detection::Model::load(&config).unwrap();
    let store = MetadataStore::open(&install.db()).unwrap();
    let (mut compared, mut removed, mut kept) = (0, 0, 0);
    for file in wav_files(&install.recordings()) {
        let row = store.find_by_path(&file).unwrap().expect("row");
        let outputs = store.model_outputs(row.id).unwrap();
        if outputs.is_empty() {
            continue;
        }
        let audio = acoupi::detection::audio::read_wav(&file).unwrap();
        // Install::deploy's site; the configuration's time zone is UTC.
        let place = acoupi::detection::birdnet_location::Place {
            latitude: 51.5,
            longitude: -0.12,
            date: Some(
                row.datetime
                    .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .date(),
            ),
        };
        let expected = model.detect_at(&audio, Some(&place)).unwrap();
        let unfiltered = model.detect_at(&audio, None).unwrap();
        assert_stored(
            &outputs[0],
            &expected,
            acoupi::detection::birdnet::scientific_name,
            &file,
        );
        compared += 1;
        kept += expected.len();
        removed += unfiltered.len() - expected.len();
    }
    eprintln!("{compared} recordings: {kept} detections stored, {removed} removed by the filter");
    assert!(
        compared >= 2,
        "only {compared} recordings carry model outputs"
    );
    assert!(
        removed > 0,
        "the filter removed nothing from {compared} recordings ({kept} detections kept): the test shows nothing"
    );
}

/// Asserts the stored model output holds `expected`, in order: each detection's tag value
/// is `tag_of` its class, its score the same within 1e-6.
fn assert_stored(
    output: &acoupi::store::metadata::ModelOutput,
    expected: &[acoupi::detection::Detection],
    tag_of: impl Fn(&str) -> &str,
    file: &std::path::Path,
) {
    let stored: Vec<(&str, f64)> = output
        .detections
        .iter()
        .map(|d| (d.tags[0].value.as_str(), d.detection_score))
        .collect();
    assert_eq!(stored.len(), expected.len(), "{}", file.display());
    for ((tag, score), e) in stored.iter().zip(expected) {
        assert_eq!(*tag, tag_of(&e.class), "{}", file.display());
        assert!((score - e.score).abs() < 1e-6, "{score} vs {}", e.score);
    }
}
