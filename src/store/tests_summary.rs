//! The recording summary and the integrity record, on real SQLite files: the figures
//! `deployment status` reads without counting must equal a full count after every kind
//! of write, on a migrated file as on a new one.

use jiff::SignedDuration;
use rusqlite::Connection;
use uuid::Uuid;

use super::tests::{at, fresh, new_recording, UPSTREAM_DDL};
use super::*;

/// Count and total duration of a deployment's rows, counted.
fn counted(path: &std::path::Path, deployment: Uuid) -> (u64, f64) {
    let conn = Connection::open(path).unwrap();
    let (n, total): (i64, f64) = conn
        .query_row(
            "SELECT COUNT(*), TOTAL(duration_s) FROM recording WHERE deployment_id = ?1",
            [deployment.as_bytes()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    (n as u64, total)
}

/// The summary as status reads it, on a read-only connection.
fn summarised(path: &std::path::Path, deployment: Uuid) -> (u64, f64) {
    let s = MetadataStore::open_for_reading(path)
        .unwrap()
        .recording_summary(deployment)
        .unwrap();
    (s.count, s.total_duration_s)
}

fn assert_summary_counts(path: &std::path::Path, deployment: Uuid, expected: u64) {
    let (n, total) = counted(path, deployment);
    assert_eq!(n, expected, "the rows themselves");
    let (sn, stotal) = summarised(path, deployment);
    assert_eq!(sn, n, "summary count vs a full count");
    assert!(
        (stotal - total).abs() < 1e-6,
        "summary {stotal} s vs {total} s"
    );
}

/// Stores `n` recordings through the store, `step_s` apart from 2026-11-26 02:10 UTC;
/// returns their ids.
fn record_every(
    store: &mut MetadataStore,
    dir: &std::path::Path,
    deployment: Uuid,
    n: i64,
    step_s: i64,
) -> Vec<Uuid> {
    let base = at("2026-11-26T02:10:00Z");
    (0..n)
        .map(|i| {
            let t = base + SignedDuration::from_secs(step_s * i);
            let new = new_recording(deployment, t, dir.join(format!("{i}.wav")));
            store.insert_recording(&new).unwrap();
            // Idempotent by id: a replay adds nothing.
            store.insert_recording(&new).unwrap();
            new.id
        })
        .collect()
}

/// Writes `rows` recordings of 10 s to `deployment` as upstream acoupi does (its columns
/// only), in one statement.
fn upstream_rows(conn: &Connection, deployment: Uuid, rows: i64, first_second: i64) {
    conn.execute(
        "INSERT INTO recording (id, path, datetime, duration_s, samplerate_hz, audio_channels, deployment_id)
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         SELECT randomblob(16), '/up/' || (?2 + i) || '.wav',
                strftime('%Y-%m-%dT%H:%M:%S', ?2 + i * 10, 'unixepoch') || '.000000+00:00',
                10.0, 48000, 1, ?3
         FROM n",
        rusqlite::params![rows, first_second, deployment.as_bytes()],
    )
    .unwrap();
}

#[test]
fn migration_fills_the_summary_of_a_populated_database_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let (old, current) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(UPSTREAM_DDL).unwrap();
        conn.execute(
            "INSERT INTO deployment VALUES (?1, 'old', '2024-01-01T00:00:00+00:00', '2024-02-01T00:00:00+00:00', NULL, NULL)",
            [old.as_bytes()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO deployment VALUES (?1, 'now', '2024-03-01T00:00:00+00:00', NULL, NULL, NULL)",
            [current.as_bytes()],
        )
        .unwrap();
        upstream_rows(&conn, old, 1_500, 1_704_067_200);
        upstream_rows(&conn, current, 2_500, 1_709_251_200);
    }
    let store = MetadataStore::open(&path).unwrap();
    drop(store);
    let conn = Connection::open(&path).unwrap();
    let kept: Vec<(Vec<u8>, i64)> = conn
        .prepare(
            "SELECT deployment_id, recordings FROM acoupi_recording_summary ORDER BY recordings",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        kept,
        [
            (old.as_bytes().to_vec(), 1_500),
            (current.as_bytes().to_vec(), 2_500)
        ]
    );
    assert_summary_counts(&path, old, 1_500);
    assert_summary_counts(&path, current, 2_500);
    // Reopening fills nothing twice.
    drop(MetadataStore::open(&path).unwrap());
    assert_summary_counts(&path, current, 2_500);
}

/// A file of schema version 3 (before the summary): status counts its rows, read-only,
/// and the recorder's migration fills the summary from the rows found.
#[test]
fn a_file_before_the_summary_is_counted_read_only_then_migrated() {
    let (dir, mut store, deployment) = fresh();
    let path = store.path().to_path_buf();
    record_every(&mut store, dir.path(), deployment.id, 5, 60);
    drop(store);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER acoupi_recording_summary_deployment;
         DROP TRIGGER acoupi_recording_summary_insert;
         DROP TRIGGER acoupi_recording_summary_delete;
         DROP TRIGGER acoupi_recording_summary_update;
         DROP TABLE acoupi_recording_summary;
         DROP TABLE acoupi_integrity;
         DELETE FROM acoupi_schema_version WHERE version = 4;",
    )
    .unwrap();
    upstream_rows(&conn, deployment.id, 20, 1_800_000_000);
    assert_eq!(summarised(&path, deployment.id), (25, 500.0));
    assert_eq!(
        MetadataStore::open_for_reading(&path)
            .unwrap()
            .last_integrity()
            .unwrap(),
        None
    );
    drop(MetadataStore::open(&path).unwrap());
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'acoupi_recording_summary')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(has_table);
    assert_summary_counts(&path, deployment.id, 25);
}

#[test]
fn summary_follows_inserts_deletes_updates_and_upstream_writes() {
    let (dir, mut store, deployment) = fresh();
    let path = store.path().to_path_buf();
    assert_eq!(summarised(&path, deployment.id), (0, 0.0));
    let base = at("2026-11-26T02:10:00Z");
    let ids = record_every(&mut store, dir.path(), deployment.id, 6, 60);
    assert_summary_counts(&path, deployment.id, 6);
    // Moves change path and state only.
    store
        .mark_kept(ids[0], &dir.path().join("kept/0.wav"))
        .unwrap();
    assert_summary_counts(&path, deployment.id, 6);
    // Retention deletes rows.
    assert!(store.delete_recording(ids[1]).unwrap());
    assert!(store.delete_recording(ids[2]).unwrap());
    assert!(!store.delete_recording(ids[2]).unwrap());
    assert_summary_counts(&path, deployment.id, 4);
    // A duration corrected by hand, and a row moved to another deployment.
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE recording SET duration_s = 12.5 WHERE id = ?1",
        [ids[3].as_bytes()],
    )
    .unwrap();
    assert_summary_counts(&path, deployment.id, 4);
    store.end_active_deployment(base).unwrap();
    let other = store
        .start_deployment("site B", None, None, at("2026-11-27T00:00:00Z"))
        .unwrap();
    conn.execute(
        "UPDATE recording SET deployment_id = ?1 WHERE id = ?2",
        (other.id.as_bytes(), ids[4].as_bytes()),
    )
    .unwrap();
    assert_summary_counts(&path, deployment.id, 3);
    assert_summary_counts(&path, other.id, 1);
    // Upstream acoupi writing its own rows.
    upstream_rows(&conn, other.id, 10, 1_800_000_000);
    assert_summary_counts(&path, other.id, 11);
    assert!(!store.recount_summary().unwrap(), "nothing drifted");
}

/// An outer `INSERT OR REPLACE` deletes the row it replaces without firing the delete
/// trigger: the summary counts one too many until the daily recount puts it right.
#[test]
fn recount_repairs_what_a_foreign_insert_or_replace_skews() {
    let (dir, mut store, deployment) = fresh();
    let path = store.path().to_path_buf();
    let new = new_recording(
        deployment.id,
        at("2026-11-26T02:10:00Z"),
        dir.path().join("a.wav"),
    );
    store.insert_recording(&new).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO recording (id, path, datetime, duration_s, samplerate_hz, audio_channels, deployment_id)
         SELECT id, path, datetime, 30.0, samplerate_hz, audio_channels, deployment_id FROM recording",
        [],
    )
    .unwrap();
    assert_eq!(counted(&path, deployment.id), (1, 30.0));
    assert_eq!(summarised(&path, deployment.id), (2, 90.0), "the skew");
    assert!(store.recount_summary().unwrap());
    assert_summary_counts(&path, deployment.id, 1);
    assert!(!store.recount_summary().unwrap());
    // The recount keeps a row for a deployment without recordings, which the next
    // recording then counts on.
    store
        .end_active_deployment(at("2026-11-26T03:00:00Z"))
        .unwrap();
    let empty = store
        .start_deployment("empty", None, None, at("2026-11-27T00:00:00Z"))
        .unwrap();
    conn.execute("DELETE FROM acoupi_recording_summary", [])
        .unwrap();
    assert!(store.recount_summary().unwrap());
    assert_eq!(summarised(&path, empty.id), (0, 0.0));
    let new = new_recording(
        empty.id,
        at("2026-11-27T01:00:00Z"),
        dir.path().join("b.wav"),
    );
    store.insert_recording(&new).unwrap();
    assert_summary_counts(&path, empty.id, 1);
}

/// The integrity record as status reads it, on a read-only connection.
fn stored_integrity(path: &std::path::Path) -> IntegrityRecord {
    MetadataStore::open_for_reading(path)
        .unwrap()
        .last_integrity()
        .unwrap()
        .expect("an integrity record")
}

#[test]
fn integrity_results_are_stored_and_read_back_read_only() {
    let (_dir, mut store, _) = fresh();
    let path = store.path().to_path_buf();
    let when = at("2026-12-01T03:00:00.123456789Z");
    store.record_integrity(Check::Full, None, when).unwrap();
    let read = stored_integrity(&path);
    assert_eq!(read.check, "integrity_check");
    assert_eq!(read.checked_on, at("2026-12-01T03:00:00.123456Z"));
    assert!(read.ok());
    // A later result replaces it.
    store
        .record_integrity(
            Check::Quick,
            Some("page 7: btreeInitPage() returns error code 11"),
            when,
        )
        .unwrap();
    let read = stored_integrity(&path);
    assert_eq!(read.check, "quick_check");
    assert!(!read.ok());
    assert_eq!(
        read.problems.as_deref(),
        Some("page 7: btreeInitPage() returns error code 11")
    );
}

/// The background pass on a sound file stores `ok`; on a file with a damaged index it
/// stores SQLite's report instead of failing.
#[test]
fn the_background_check_stores_ok_or_the_damage_it_found() {
    let (dir, mut store, deployment) = fresh();
    let path = store.path().to_path_buf();
    record_every(&mut store, dir.path(), deployment.id, 3000, 10);
    store.checkpoint().unwrap();
    let (_, record) = MetadataStore::check_integrity(&path, Check::Quick).unwrap();
    assert!(record.ok(), "{record:?}");
    assert_eq!(record.check, "quick_check");
    drop(store);

    // Garbage over a leaf page of the datetime index (the table's pages stay readable).
    let conn = Connection::open(&path).unwrap();
    let page: i64 = conn
        .query_row(
            "SELECT MAX(pageno) FROM dbstat WHERE name = 'sqlite_autoindex_recording_3' AND pagetype = 'leaf'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|_| {
            // No dbstat in this build: the index's root page.
            conn.query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_recording_3'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        });
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    let from = ((page - 1) * size) as usize;
    for (k, b) in bytes[from + 8..from + size as usize].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();

    let (_, record) = MetadataStore::check_integrity(&path, Check::Quick).unwrap();
    assert!(!record.ok(), "{record:?}");
    let stored = stored_integrity(&path);
    assert_eq!(stored, record);
}

/// Where `check`'s audit of the newest recordings begins: the `n`th newest start, of any
/// deployment and any spelling upstream wrote.
#[test]
fn the_start_of_the_newest_recordings() {
    let (dir, mut store, deployment) = fresh();
    assert_eq!(store.start_of_newest(3).unwrap(), None);
    record_every(&mut store, dir.path(), deployment.id, 5, 60);
    assert_eq!(
        store.start_of_newest(1).unwrap(),
        Some(at("2026-11-26T02:14:00Z"))
    );
    assert_eq!(
        store.start_of_newest(3).unwrap(),
        Some(at("2026-11-26T02:12:00Z"))
    );
    assert_eq!(
        store.start_of_newest(5).unwrap(),
        Some(at("2026-11-26T02:10:00Z"))
    );
    assert_eq!(store.start_of_newest(6).unwrap(), None);
}
