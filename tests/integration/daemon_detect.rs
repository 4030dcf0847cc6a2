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
        let stored: Vec<(String, f64)> = outputs[0]
            .detections
            .iter()
            .map(|d| (d.tags[0].value.clone(), d.detection_score))
            .collect();
        assert_eq!(stored.len(), expected.len(), "{}", file.display());
        for ((class, score), e) in stored.iter().zip(&expected) {
            assert_eq!(class, &e.class);
            assert!((score - e.score).abs() < 1e-6, "{score} vs {}", e.score);
        }
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
