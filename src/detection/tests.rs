//! The whole path with the tiny model: file → preprocessing → tract → detections, and
//! each way a model file, labels file or class list can be wrong.

use std::f32::consts::TAU;
use std::path::{Path, PathBuf};

use super::audio::Mono;
use super::*;

/// Windows of 0.1 s at 8 kHz keep the tests fast.
const RATE: u32 = 8000;
const WINDOW: usize = 800;

fn setup(dir: &Path) -> DetectionConfig {
    let model = dir.join("tiny.onnx");
    let labels = dir.join("labels.txt");
    tiny::write(&model, &labels, WINDOW).unwrap();
    DetectionConfig {
        model_file: model,
        labels_file: Some(labels),
        samplerate: RATE,
        threshold: Some(0.5),
        ..DetectionConfig::default()
    }
}

/// `silence_s` of silence then `tone_s` of a 1 kHz sine of amplitude 0.5 at `rate`.
fn silence_then_tone(rate: u32, silence_s: f64, tone_s: f64) -> Vec<f32> {
    let n = |s: f64| (s * f64::from(rate)).round() as usize;
    let mut v = vec![0.0; n(silence_s)];
    v.extend((0..n(tone_s)).map(|i| 0.5 * (TAU * 1000.0 * i as f32 / rate as f32).sin()));
    v
}

fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn the_tiny_model_finds_the_tone_in_its_windows_and_silence_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&setup(dir.path())).unwrap();
    assert_eq!(model.window(), WINDOW);
    assert_eq!(model.labels(), ["loud", "quiet"]);
    assert_eq!(model.name(), "tiny");
    let wav = dir.path().join("r.wav");
    write_wav(&wav, RATE, &silence_then_tone(RATE, 0.2, 0.1));
    let found = detect_file(&model, &wav).unwrap();
    let summary: Vec<(&str, f64, f64)> = found
        .iter()
        .map(|d| (d.class.as_str(), d.start_s, d.end_s))
        .collect();
    assert_eq!(
        summary,
        [("quiet", 0.0, 0.1), ("quiet", 0.1, 0.2), ("loud", 0.2, 0.3)]
    );
    assert!(found[0].score > 0.99 && found[2].score > 0.99, "{found:?}");
    assert_eq!((found[2].low_freq_hz, found[2].high_freq_hz), (0.0, 4000.0));
}

#[test]
fn recordings_at_another_rate_are_resampled_and_the_tail_window_is_padded() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&setup(dir.path())).unwrap();
    // 0.25 s at 16 kHz: three windows at 8 kHz, the last half audio, half padding.
    let found = model
        .detect(&Mono {
            samples: silence_then_tone(16_000, 0.1, 0.15),
            samplerate: 16_000,
        })
        .unwrap();
    let times: Vec<(&str, f64)> = found.iter().map(|d| (d.class.as_str(), d.end_s)).collect();
    assert_eq!(times, [("quiet", 0.1), ("loud", 0.2), ("loud", 0.25)]);
}

#[test]
fn classes_and_threshold_filter_what_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = DetectionConfig {
        classes: vec!["loud".into()],
        ..setup(dir.path())
    };
    let model = Model::load(&config).unwrap();
    assert!(detect_silence(&model, 1.0).unwrap().is_empty());
    let everything = Model::load(&DetectionConfig {
        threshold: Some(0.0),
        ..setup(dir.path())
    })
    .unwrap();
    // Ten windows in a second, both classes in each.
    assert_eq!(detect_silence(&everything, 1.0).unwrap().len(), 20);
}

fn load_err(config: &DetectionConfig) -> String {
    Model::load(config).unwrap_err().to_string()
}

#[test]
fn a_bad_model_labels_or_class_list_is_named_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let good = setup(dir.path());

    let missing = DetectionConfig {
        model_file: dir.path().join("none.onnx"),
        ..good.clone()
    };
    let e = load_err(&missing);
    assert!(
        e.starts_with("detection.model_file ") && e.contains("none.onnx: cannot read it"),
        "{e}"
    );

    let garbage: PathBuf = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not a model").unwrap();
    let e = load_err(&DetectionConfig {
        model_file: garbage,
        ..good.clone()
    });
    assert!(e.contains("garbage.onnx: not a usable window model"), "{e}");

    let three = dir.path().join("three.txt");
    std::fs::write(&three, "a\nb\n\nc\n").unwrap();
    let e = load_err(&DetectionConfig {
        labels_file: Some(three),
        ..good.clone()
    });
    assert!(
        e.starts_with("detection.labels_file ")
            && e.contains("has 3 labels but the model gives 2 scores"),
        "{e}"
    );

    let e = load_err(&DetectionConfig {
        classes: vec!["lowd".into()],
        ..good.clone()
    });
    assert_eq!(
        e,
        "detection.classes: \"lowd\" is not a label of the model (closest: \"loud\"); list labels from detection.labels_file"
    );

    let numbered = Model::load(&DetectionConfig {
        labels_file: None,
        ..good
    })
    .unwrap();
    assert_eq!(numbered.labels(), ["0", "1"]);
}

#[test]
fn a_model_without_a_fixed_window_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    // A window of 0 samples: the input is [1, 0], no window to cut recordings into.
    std::fs::write(&config.model_file, tiny::model_bytes(0)).unwrap();
    let e = load_err(&config);
    assert!(
        e.contains("not a usable window model: its input is") && e.contains("fixed input shape"),
        "{e}"
    );
}

#[test]
fn a_file_becomes_upstream_rows_in_metadata_db() {
    use crate::store::metadata::{MetadataStore, PredictionType};
    use crate::store::NewRecording;

    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&setup(dir.path())).unwrap();
    let wav = dir.path().join("r.wav");
    write_wav(&wav, RATE, &silence_then_tone(RATE, 0.1, 0.1));
    let found = detect_file(&model, &wav).unwrap();

    let mut store = MetadataStore::open(&dir.path().join("metadata.db")).unwrap();
    let now = jiff::Timestamp::now();
    let deployment = store.start_deployment("site", None, None, now).unwrap();
    let recording = NewRecording {
        id: uuid::Uuid::new_v4(),
        path: wav.clone(),
        datetime: now,
        duration_s: 0.2,
        samplerate_hz: RATE,
        audio_channels: 1,
        deployment_id: deployment.id,
        clock_synced: true,
        time_expansion: 1.0,
        bit_depth: 16,
        frames: 1600,
    };
    store.insert_recording(&recording).unwrap();
    let output = rows::model_output(model.name(), recording.id, now, &found);
    store.insert_model_output(&output).unwrap();

    let stored = store.model_outputs(recording.id).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].model_name, "tiny");
    let tags: Vec<(PredictionType, &str, &str, f64)> = stored[0]
        .detections
        .iter()
        .map(|d| {
            let t = &d.tags[0];
            let start = d.location.map_or(-1.0, |b| b.start_time_s);
            (d.prediction_type, t.key.as_str(), t.value.as_str(), start)
        })
        .collect();
    assert_eq!(
        tags,
        [
            (PredictionType::Event, "class", "quiet", 0.0),
            (PredictionType::Event, "class", "loud", 0.1)
        ]
    );
}

#[test]
fn a_full_queue_skips_the_new_recording_and_never_waits() {
    use std::sync::mpsc::channel;
    use worker::{Job, Submitted, Worker};

    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&setup(dir.path())).unwrap();
    let wav = dir.path().join("r.wav");
    write_wav(&wav, RATE, &silence_then_tone(RATE, 0.1, 0.1));
    // The sink blocks the worker on its first outcome until the test lets it go, so the
    // queue fills deterministically: one recording in hand, `capacity` waiting.
    let (entered_tx, entered) = channel();
    let (release, released) = channel::<()>();
    let released = std::sync::Mutex::new(released);
    let (outcomes_tx, outcomes) = channel();
    let sink = Box::new(move |o: worker::Outcome| {
        let _ = entered_tx.send(());
        let _ = released.lock().unwrap().recv();
        let _ = outcomes_tx.send(o);
    });
    let mut w = Worker::spawn(model, 1, sink).unwrap();
    let job = |n: u128| Job::open(uuid::Uuid::from_u128(n), wav.clone()).unwrap();
    assert_eq!(w.submit(job(1)), Submitted::Queued);
    entered.recv().unwrap();
    assert_eq!(w.submit(job(2)), Submitted::Queued);
    let t = std::time::Instant::now();
    assert_eq!(w.submit(job(3)), Submitted::Skipped);
    assert!(t.elapsed() < std::time::Duration::from_millis(50));
    assert_eq!(w.skipped(), 1);
    drop(release);
    drop(w);
    let done: Vec<u128> = outcomes.iter().map(|o| o.recording_id.as_u128()).collect();
    assert_eq!(
        done,
        [1, 2],
        "the queued recordings finish, the skipped one never runs"
    );
}

#[test]
fn a_queued_recording_is_analysed_after_it_has_moved_and_even_after_it_is_deleted() {
    use std::sync::mpsc::channel;
    use worker::{Job, Worker};

    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&setup(dir.path())).unwrap();
    let tone = silence_then_tone(RATE, 0.1, 0.1);
    let expected = {
        let wav = dir.path().join("expected.wav");
        write_wav(&wav, RATE, &tone);
        detect_file(&model, &wav).unwrap()
    };
    assert!(!expected.is_empty(), "the tone is found: {expected:?}");
    // The worker is held on its first outcome, so both files change hands while queued.
    let (release, released) = channel::<()>();
    let released = std::sync::Mutex::new(released);
    let (outcomes_tx, outcomes) = channel();
    let sink = Box::new(move |o: worker::Outcome| {
        let _ = released.lock().unwrap().recv();
        let _ = outcomes_tx.send(o);
    });
    let mut w = Worker::spawn(model, 4, sink).unwrap();
    let (moved, deleted) = (dir.path().join("moved.wav"), dir.path().join("deleted.wav"));
    for path in [&moved, &deleted] {
        write_wav(path, RATE, &tone);
    }
    w.submit(Job::open(uuid::Uuid::from_u128(1), moved.clone()).unwrap());
    w.submit(Job::open(uuid::Uuid::from_u128(2), deleted.clone()).unwrap());
    std::fs::rename(&moved, dir.path().join("elsewhere.wav")).unwrap();
    std::fs::remove_file(&deleted).unwrap();
    drop(release);
    drop(w);
    let results: Vec<_> = outcomes.iter().map(|o| o.result.unwrap()).collect();
    assert_eq!(results, [expected.clone(), expected]);
}

#[test]
fn a_model_file_of_the_other_kind_is_named_with_the_kind_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = setup(dir.path());
    let e = load_err(&DetectionConfig {
        kind: ModelKind::Birdnet,
        ..onnx.clone()
    });
    assert!(
        e.contains("tiny.onnx: not a usable window model: it is not a TFLite file: kind birdnet takes BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"),
        "{e}"
    );
    // The first bytes of a TFLite flatbuffer, given to the ONNX window kind.
    let tflite = dir.path().join("model.tflite");
    std::fs::write(&tflite, b"\x1c\0\0\0TFL3\0\0\0\0").unwrap();
    let e = load_err(&DetectionConfig {
        model_file: tflite.clone(),
        ..onnx.clone()
    });
    assert!(
        e.contains("it is a TFLite file: for BirdNET set detection.kind to birdnet"),
        "{e}"
    );
    // A TFLite header with nothing behind it: refused by tract, never a panic.
    let e = load_err(&DetectionConfig {
        kind: ModelKind::Birdnet,
        model_file: tflite,
        ..onnx
    });
    assert!(
        e.contains("model.tflite: not a usable window model: tract cannot read it"),
        "{e}"
    );
}

#[test]
fn birdnet_detections_become_upstreams_scientific_name_tags() {
    let found = [Detection {
        class: "Turdus merula_Eurasian Blackbird".into(),
        score: 0.5,
        class_score: 0.5,
        start_s: 0.0,
        end_s: 3.0,
        low_freq_hz: 0.0,
        high_freq_hz: 24_000.0,
    }];
    let now = jiff::Timestamp::now();
    let id = uuid::Uuid::new_v4();
    let bird = rows::model_output(birdnet::MODEL_NAME, id, now, &found);
    assert_eq!(bird.model_name, "BirdNET");
    let tag = &bird.detections[0].tags[0];
    assert_eq!(
        (tag.key.as_str(), tag.value.as_str()),
        ("Scientific Taxon Name", "Turdus merula")
    );
    let other = rows::model_output("tiny", id, now, &found);
    let tag = &other.detections[0].tags[0];
    assert_eq!(
        (tag.key.as_str(), tag.value.as_str()),
        ("class", "Turdus merula_Eurasian Blackbird")
    );
}

#[test]
fn batdetect2_calls_become_upstreams_species_tags_with_the_class_probability() {
    let call = [Detection {
        class: "Pipistrellus pygmaeus".into(),
        score: 0.8,
        class_score: 0.6,
        start_s: 0.0115,
        end_s: 0.0155,
        low_freq_hz: 34_062.0,
        high_freq_hz: 42_656.0,
    }];
    let o = rows::model_output(
        batdetect2::MODEL_NAME,
        uuid::Uuid::new_v4(),
        jiff::Timestamp::now(),
        &call,
    );
    assert_eq!(o.model_name, "BatDetect2");
    let d = &o.detections[0];
    // As acoupi-batdetect2 stores a call: its probability on the detection, the class's on
    // the tag, the call's own box.
    assert_eq!(d.detection_score, 0.8);
    let b = d.location.as_ref().unwrap();
    assert_eq!(
        (b.start_time_s, b.end_time_s, b.low_freq_hz, b.high_freq_hz),
        (0.0115, 0.0155, 34_062.0, 42_656.0)
    );
    let tag = &d.tags[0];
    assert_eq!(
        (tag.key.as_str(), tag.value.as_str()),
        ("species", "Pipistrellus pygmaeus")
    );
    assert_eq!(tag.confidence_score, 0.6);
}
