//! Model outputs, detections and tags on real SQLite files, in upstream's columns.

use rusqlite::Connection;
use uuid::Uuid;

use super::metadata::{BoundingBox, DetectionRow, ModelOutput, PredictedTag, PredictionType};
use super::tests::{at, fresh, new_recording, upstream_rows};
use super::*;

/// A fresh store holding one recording.
fn stored_recording() -> (tempfile::TempDir, MetadataStore, NewRecording) {
    let (dir, mut store, deployment) = fresh();
    let rec = new_recording(
        deployment.id,
        at("2026-11-26T02:01:00Z"),
        dir.path().join("a.wav"),
    );
    store.insert_recording(&rec).unwrap();
    (dir, store, rec)
}

fn output(recording_id: Uuid) -> ModelOutput {
    let tag = |value: &str, confidence_score| PredictedTag {
        key: "species".into(),
        value: value.into(),
        confidence_score,
    };
    ModelOutput {
        id: Uuid::new_v4(),
        model_name: "BirdNET".into(),
        recording_id,
        created_on: at("2026-11-26T02:01:03.123456Z"),
        detections: vec![
            DetectionRow {
                id: Uuid::new_v4(),
                prediction_type: PredictionType::Event,
                location: Some(BoundingBox {
                    start_time_s: 0.0,
                    low_freq_hz: 0.0,
                    end_time_s: 3.0,
                    high_freq_hz: 24_000.0,
                }),
                detection_score: 0.9,
                tags: vec![tag("Turdus merula", 0.9), tag("Erithacus rubecula", 0.4)],
            },
            DetectionRow {
                id: Uuid::new_v4(),
                prediction_type: PredictionType::Presence,
                location: None,
                detection_score: 0.3,
                tags: vec![],
            },
        ],
    }
}

#[test]
fn a_model_output_reads_back_whole_and_in_upstream_columns() {
    let (_dir, mut store, rec) = stored_recording();
    let out = output(rec.id);
    store.insert_model_output(&out).unwrap();
    assert_eq!(store.model_outputs(rec.id).unwrap(), vec![out.clone()]);
    assert_eq!(store.model_outputs(Uuid::new_v4()).unwrap(), vec![]);

    // What upstream's SqliteStore reads: 16-byte ids, its timestamp text, the bounding
    // box as four columns (all NULL for no location), tags by detection in insert order.
    let conn = Connection::open(store.path()).unwrap();
    let (id, created_on, rec_id): (Vec<u8>, String, Vec<u8>) = conn
        .query_row(
            "SELECT id, created_on, recording_id FROM model_output",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(id, out.id.as_bytes());
    assert_eq!(rec_id, rec.id.as_bytes());
    assert_eq!(created_on, "2026-11-26T02:01:03.123456+00:00");
    let boxes: Vec<(String, Option<f64>, Option<f64>, f64)> = conn
        .prepare("SELECT prediction_type, start_time_s, high_freq_hz, detection_score FROM detection ORDER BY detection_score DESC")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        boxes,
        [
            ("event".into(), Some(0.0), Some(24_000.0), 0.9),
            ("presence".into(), None, None, 0.3)
        ]
    );
    let tags: Vec<(String, String, f64)> = conn
        .prepare("SELECT key, value, confidence_score FROM predicted_tag WHERE detection_id = ?1 ORDER BY id")
        .unwrap()
        .query_map([out.detections[0].id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tags[0], ("species".into(), "Turdus merula".into(), 0.9));
    assert_eq!(tags.len(), 2);
}

#[test]
fn an_output_is_stored_once_and_only_for_a_stored_recording() {
    let (_dir, mut store, rec) = stored_recording();
    let missing = output(Uuid::new_v4());
    let e = store.insert_model_output(&missing).unwrap_err();
    assert!(matches!(e, StoreError::UnknownRecording { id } if id == missing.recording_id));
    let out = output(rec.id);
    store.insert_model_output(&out).unwrap();
    store.insert_model_output(&out).unwrap();
    let conn = Connection::open(store.path()).unwrap();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        (
            count("model_output"),
            count("detection"),
            count("predicted_tag")
        ),
        (1, 2, 2)
    );
    // Deleting the recording takes its outputs along (children first: no cascade).
    assert!(store.delete_recording(rec.id).unwrap());
    assert_eq!(
        (
            count("model_output"),
            count("detection"),
            count("predicted_tag")
        ),
        (0, 0, 0)
    );
}

#[test]
fn bad_scores_and_boxes_are_refused_before_writing() {
    let (_dir, mut store, rec) = stored_recording();
    let mut bad = output(rec.id);
    bad.detections[1].detection_score = 1.5;
    let e = store.insert_model_output(&bad).unwrap_err().to_string();
    assert_eq!(e, "invalid detection_score: 1.5 is not between 0 and 1");
    let mut bad = output(rec.id);
    if let Some(b) = bad.detections[0].location.as_mut() {
        b.end_time_s = 0.0;
    }
    let e = store.insert_model_output(&bad).unwrap_err().to_string();
    assert!(e.starts_with("invalid location:"), "{e}");
    assert_eq!(store.model_outputs(rec.id).unwrap(), vec![]);
}

#[test]
fn outputs_written_by_upstream_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let rec = upstream_rows(&path, "2024-01-01T00:01:00+00:00").recording;
    let store = MetadataStore::open(&path).unwrap();
    let outputs = store.model_outputs(rec).unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].model_name, "BatDetect2");
    assert_eq!(outputs[0].created_on, at("2024-01-01T00:01:05Z"));
    let d = &outputs[0].detections[0];
    assert_eq!(
        d.location,
        Some(BoundingBox {
            start_time_s: 0.1,
            low_freq_hz: 20_000.0,
            end_time_s: 0.2,
            high_freq_hz: 40_000.0
        })
    );
    assert_eq!(d.tags[0].value, "Pipistrellus");
}

#[test]
fn outputs_after_a_cursor_come_in_stored_order_ties_by_id_and_paged() {
    use super::metadata::OutputCursor;

    let (_dir, mut store, rec) = stored_recording();
    let same = at("2026-11-26T02:01:05Z");
    // Two outputs at one instant (ordered by id), one earlier, one later.
    let mut outputs: Vec<ModelOutput> = [
        ("2026-11-26T02:01:04Z", 7u128),
        ("2026-11-26T02:01:05Z", 9),
        ("2026-11-26T02:01:05Z", 3),
        ("2026-11-26T02:01:06Z", 1),
    ]
    .iter()
    .map(|(t, id)| ModelOutput {
        id: Uuid::from_u128(*id),
        created_on: at(t),
        ..output(rec.id)
    })
    .collect();
    for o in &outputs {
        store.insert_model_output(o).unwrap();
    }
    outputs.sort_by_key(|o| (o.created_on, o.id));
    let ids = |v: Vec<ModelOutput>| v.iter().map(|o| o.id.as_u128()).collect::<Vec<_>>();
    let start = OutputCursor {
        created_on: at("2026-11-26T02:01:00Z"),
        id: Uuid::nil(),
    };
    assert_eq!(
        ids(store.model_outputs_after(&start, 10).unwrap()),
        [7, 3, 9, 1]
    );
    // Paging resumes exactly after the last one seen, inside a tie too.
    let after_3 = OutputCursor {
        created_on: same,
        id: Uuid::from_u128(3),
    };
    assert_eq!(ids(store.model_outputs_after(&after_3, 1).unwrap()), [9]);
    assert_eq!(
        ids(store.model_outputs_after(&after_3, 10).unwrap()),
        [9, 1]
    );
    // Each comes back whole, with its recording.
    let all = store.model_outputs_after(&start, 10).unwrap();
    assert_eq!(all, outputs);
}

#[test]
fn tag_scores_summarise_the_detections_of_outputs_made_in_the_interval() {
    let (_dir, mut store, rec) = stored_recording();
    // `output` holds a detection scored 0.9 tagged with two species, and one untagged.
    for (id, t) in [
        (1u128, "2026-11-26T02:00:59Z"),
        (2, "2026-11-26T02:01:03Z"),
        (3, "2026-11-26T02:01:04Z"),
    ] {
        let mut o = output(rec.id);
        o.id = Uuid::from_u128(id);
        o.created_on = at(t);
        for (n, d) in o.detections.iter_mut().enumerate() {
            d.id = Uuid::from_u128(id * 10 + n as u128);
        }
        o.detections[0].detection_score = 0.5 + 0.1 * id as f64;
        store.insert_model_output(&o).unwrap();
    }
    let got = store
        .tag_scores_between(at("2026-11-26T02:01:00Z"), at("2026-11-26T02:01:04Z"))
        .unwrap();
    let names: Vec<&str> = got.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(names, ["Erithacus rubecula", "Turdus merula"]);
    let t = &got[1];
    // Only output 2 lies in [02:01:00, 02:01:04): output 3 starts at the end.
    assert_eq!((t.count, t.min, t.max), (1, 0.7, 0.7));
    let wide = store
        .tag_scores_between(at("2026-11-26T00:00:00Z"), at("2026-11-27T00:00:00Z"))
        .unwrap();
    let t = &wide[1];
    assert_eq!(t.count, 3);
    assert!(
        (t.mean - 0.7).abs() < 1e-9 && (t.min, t.max) == (0.6, 0.8),
        "{t:?}"
    );
}
