//! Recording, gap and heartbeat queries on real SQLite files.

use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;
use uuid::Uuid;

use super::tests::{at, fresh, new_recording};
use super::*;

#[test]
fn uuids_are_stored_as_16_byte_blobs() {
    let (dir, mut store, deployment) = fresh();
    let new = new_recording(
        deployment.id,
        at("2026-11-26T02:00:00Z"),
        dir.path().join("a.wav"),
    );
    store.insert_recording(&new).unwrap();
    let conn = Connection::open(store.path()).unwrap();
    let (kind, len, bytes, dep): (String, i64, Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT typeof(id), length(id), id, deployment_id FROM recording",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), len), ("blob", 16));
    assert_eq!(bytes, new.id.as_bytes());
    assert_eq!(dep, deployment.id.as_bytes());
}

#[test]
fn timestamps_within_one_second_sort_as_text_in_time_order() {
    let (dir, mut store, deployment) = fresh();
    // Inserted out of order; .000000 must not sort after .05 as upstream's
    // "microseconds omitted when zero" would make it.
    let times = [
        "2026-11-26T03:00:00.5Z",
        "2026-11-26T03:00:00Z",
        "2026-11-26T03:00:01Z",
        "2026-11-26T03:00:00.05Z",
        "2026-11-26T03:00:00.000001Z",
    ];
    for (i, t) in times.iter().enumerate() {
        let new = new_recording(deployment.id, at(t), dir.path().join(format!("{i}.wav")));
        store.insert_recording(&new).unwrap();
    }
    let conn = Connection::open(store.path()).unwrap();
    let texts: Vec<String> = conn
        .prepare("SELECT datetime FROM recording ORDER BY datetime")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        texts,
        [
            "2026-11-26T03:00:00.000000+00:00",
            "2026-11-26T03:00:00.000001+00:00",
            "2026-11-26T03:00:00.050000+00:00",
            "2026-11-26T03:00:00.500000+00:00",
            "2026-11-26T03:00:01.000000+00:00",
        ]
    );
    let since = store
        .recordings_since(at("2026-11-26T03:00:00.000001Z"))
        .unwrap();
    let got: Vec<Timestamp> = since.iter().map(|r| r.datetime).collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got.len(), 4);
    assert_eq!(got, sorted);
}

#[test]
fn insert_is_idempotent_by_id_and_collisions_are_typed_errors() {
    let (dir, mut store, deployment) = fresh();
    let new = new_recording(
        deployment.id,
        at("2026-11-26T03:00:00.123Z"),
        dir.path().join("a.wav"),
    );
    let stored = store.insert_recording(&new).unwrap();
    assert_eq!(store.insert_recording(&new).unwrap(), stored);

    let same_start = new_recording(deployment.id, new.datetime, dir.path().join("b.wav"));
    let err = store.insert_recording(&same_start).unwrap_err();
    assert!(
        matches!(&err, StoreError::DatetimeTaken { existing, .. } if *existing == new.id),
        "{err}"
    );
    let same_path = new_recording(deployment.id, at("2026-11-26T03:01:00Z"), new.path.clone());
    let err = store.insert_recording(&same_path).unwrap_err();
    assert!(matches!(err, StoreError::PathTaken { .. }), "{err}");
    let orphan = new_recording(
        Uuid::new_v4(),
        at("2026-11-26T03:02:00Z"),
        dir.path().join("c.wav"),
    );
    let err = store.insert_recording(&orphan).unwrap_err();
    assert!(matches!(err, StoreError::UnknownDeployment { .. }), "{err}");
    assert_eq!(store.recording_summary(deployment.id).unwrap().count, 1);
}

#[test]
fn keeping_and_deleting_update_queries_and_remove_model_outputs() {
    let (dir, mut store, deployment) = fresh();
    let base = at("2026-11-26T03:00:00Z");
    let mut ids = Vec::new();
    for i in 0..4 {
        let t = base + SignedDuration::from_secs(60 * i);
        let new = new_recording(deployment.id, t, dir.path().join(format!("tmp/{i}.wav")));
        ids.push(store.insert_recording(&new).unwrap().id);
    }
    assert_eq!(store.tmp_recordings().unwrap().len(), 4);
    for (i, id) in ids.iter().enumerate().take(3) {
        let kept = store
            .mark_kept(*id, &dir.path().join(format!("rec/{i}.wav")))
            .unwrap();
        assert_eq!(kept.state, Some(RecordingState::Kept));
    }
    // Replaying a move is harmless.
    store
        .mark_kept(ids[0], &dir.path().join("rec/0.wav"))
        .unwrap();
    assert!(matches!(
        store.mark_kept(ids[3], &dir.path().join("rec/0.wav")),
        Err(StoreError::PathTaken { .. })
    ));
    let tmp: Vec<Uuid> = store
        .tmp_recordings()
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(tmp, [ids[3]]);
    let oldest: Vec<Uuid> = store.oldest_kept(2).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(oldest, [ids[0], ids[1]]);
    let older: Vec<Uuid> = store
        .kept_older_than(base + SignedDuration::from_secs(90), 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(older, [ids[0], ids[1]]);
    assert_eq!(
        store
            .find_by_path(&dir.path().join("rec/1.wav"))
            .unwrap()
            .map(|r| r.id),
        Some(ids[1])
    );

    // A model output with a detection and a tag hangs from recording 0.
    let conn = Connection::open(store.path()).unwrap();
    let (out, det) = (Uuid::new_v4(), Uuid::new_v4());
    conn.execute(
        "INSERT INTO model_output VALUES (?1, 'm', ?2, '2026-11-26T03:05:00.000000+00:00')",
        (out.as_bytes(), ids[0].as_bytes()),
    )
    .unwrap();
    conn.execute(
        "INSERT INTO detection VALUES (?1, 'presence', NULL, NULL, NULL, NULL, 0.5, ?2)",
        (det.as_bytes(), out.as_bytes()),
    )
    .unwrap();
    conn.execute(
        "INSERT INTO predicted_tag (key, value, confidence_score, detection_id) VALUES ('k', 'v', 0.5, ?1)",
        [det.as_bytes()],
    )
    .unwrap();
    assert!(store.delete_recording(ids[0]).unwrap());
    assert!(!store.delete_recording(ids[0]).unwrap());
    for table in ["model_output", "detection", "predicted_tag"] {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let summary = store.recording_summary(deployment.id).unwrap();
    assert_eq!(summary.count, 3);
    assert_eq!(summary.total_duration_s, 180.0);
    assert_eq!(summary.last.map(|r| r.id), Some(ids[3]));
}

#[test]
fn gaps_and_heartbeats_round_trip() {
    let (_dir, mut store, deployment) = fresh();
    let gap = Gap {
        deployment_id: deployment.id,
        started_on: at("2026-11-26T03:00:00.250Z"),
        ended_on: at("2026-11-26T03:00:02Z"),
        reason: "xrun".into(),
    };
    store.insert_gap(&gap).unwrap();
    let backwards = Gap {
        ended_on: at("2026-11-26T02:59:00Z"),
        ..gap.clone()
    };
    assert!(matches!(
        store.insert_gap(&backwards),
        Err(StoreError::Invalid { .. })
    ));
    let foreign = Gap {
        deployment_id: Uuid::new_v4(),
        ..gap.clone()
    };
    assert!(matches!(
        store.insert_gap(&foreign),
        Err(StoreError::UnknownDeployment { .. })
    ));
    assert_eq!(
        store.gaps_since(at("2026-11-26T03:00:01Z")).unwrap(),
        vec![gap]
    );
    assert!(store
        .gaps_since(at("2026-11-26T03:00:03Z"))
        .unwrap()
        .is_empty());

    let payload = serde_json::json!({"free_bytes": 123, "cpu_temp_c": 51.2, "clock_synced": false});
    let stored = store
        .insert_heartbeat(at("2026-11-26T03:10:00Z"), &payload)
        .unwrap();
    store
        .insert_heartbeat(at("2026-11-26T03:20:00Z"), &serde_json::json!({}))
        .unwrap();
    let since = store.heartbeats_since(at("2026-11-26T03:10:00Z")).unwrap();
    assert_eq!(since.len(), 2);
    assert_eq!(since[0], stored);
    assert_eq!(since[0].payload, payload);
}
