//! Store tests on real SQLite files in temporary directories.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;
use uuid::Uuid;

use super::*;

/// Upstream acoupi 0.6's metadata.db DDL as upstream writes it, kept here independently of
/// `schema.rs` so the comparison below can fail.
pub(super) const UPSTREAM_DDL: &str = "
CREATE TABLE IF NOT EXISTS deployment (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    started_on TEXT NOT NULL UNIQUE,
    ended_on TEXT,
    latitude REAL,
    longitude REAL
);
CREATE TABLE IF NOT EXISTS recording (
    id BLOB PRIMARY KEY,
    path TEXT UNIQUE,
    datetime TEXT NOT NULL UNIQUE,
    duration_s REAL NOT NULL,
    samplerate_hz INTEGER NOT NULL,
    audio_channels INTEGER NOT NULL DEFAULT 1,
    deployment_id BLOB NOT NULL,
    FOREIGN KEY (deployment_id) REFERENCES deployment(id)
);
CREATE TABLE IF NOT EXISTS model_output (
    id BLOB PRIMARY KEY,
    model_name TEXT NOT NULL,
    recording_id BLOB NOT NULL,
    created_on TEXT NOT NULL,
    FOREIGN KEY (recording_id) REFERENCES recording(id)
);
CREATE TABLE IF NOT EXISTS detection (
    id BLOB PRIMARY KEY,
    prediction_type TEXT NOT NULL CHECK (prediction_type IN ('presence', 'sequence', 'event')),
    start_time_s REAL,
    end_time_s REAL,
    low_freq_hz REAL,
    high_freq_hz REAL,
    detection_score REAL NOT NULL,
    model_output_id BLOB NOT NULL,
    FOREIGN KEY (model_output_id) REFERENCES model_output(id)
);
CREATE TABLE IF NOT EXISTS predicted_tag (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    confidence_score REAL NOT NULL,
    detection_id BLOB NOT NULL,
    FOREIGN KEY (detection_id) REFERENCES detection(id)
);
CREATE INDEX IF NOT EXISTS idx_recording_deployment_id ON recording(deployment_id);
CREATE INDEX IF NOT EXISTS idx_model_output_recording_id ON model_output(recording_id);
CREATE INDEX IF NOT EXISTS idx_model_output_created_on ON model_output(created_on);
CREATE INDEX IF NOT EXISTS idx_detection_model_output_id ON detection(model_output_id);
CREATE INDEX IF NOT EXISTS idx_predicted_tag_detection_id ON predicted_tag(detection_id);
CREATE INDEX IF NOT EXISTS idx_predicted_tag_key_value ON predicted_tag(key, value);
PRAGMA user_version = 1;
";

const UPSTREAM_TABLES: [&str; 5] = [
    "deployment",
    "recording",
    "model_output",
    "detection",
    "predicted_tag",
];

pub(super) fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub(super) fn new_recording(deployment: Uuid, datetime: Timestamp, path: PathBuf) -> NewRecording {
    NewRecording {
        id: Uuid::new_v4(),
        path,
        datetime,
        duration_s: 60.0,
        samplerate_hz: 48_000,
        audio_channels: 1,
        deployment_id: deployment,
        clock_synced: true,
        time_expansion: 1.0,
        bit_depth: 16,
        frames: 2_880_000,
    }
}

pub(super) fn fresh() -> (tempfile::TempDir, MetadataStore, Deployment) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetadataStore::open(&dir.path().join("metadata.db")).unwrap();
    let deployment = store
        .start_deployment(
            "site A",
            Some(51.5),
            Some(-0.12),
            at("2026-11-26T02:00:00Z"),
        )
        .unwrap();
    (dir, store, deployment)
}

type ColumnInfo = (i64, String, String, bool, Option<String>, i64);

fn table_info(conn: &Connection, table: &str) -> Vec<ColumnInfo> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Index name → (table, unique, columns), for every index, including UNIQUE autoindexes.
fn indices(conn: &Connection, tables: &[&str]) -> Vec<(String, String, bool, Vec<String>)> {
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn
            .prepare(&format!("PRAGMA index_list({table})"))
            .unwrap();
        let list: Vec<(String, bool)> = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (name, unique) in list {
            let mut info = conn.prepare(&format!("PRAGMA index_info({name})")).unwrap();
            let cols: Vec<String> = info
                .query_map([], |r| r.get(2))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            out.push((name, table.to_string(), unique, cols));
        }
    }
    out.sort();
    out
}

pub(super) fn upstream_db(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(UPSTREAM_DDL).unwrap();
    conn
}

/// The ids of [`upstream_rows`].
pub(super) struct UpstreamRows {
    /// The deployment.
    pub deployment: Uuid,
    /// Its one recording.
    pub recording: Uuid,
    /// The recording's one model output.
    pub output: Uuid,
    /// The output's one detection (with one predicted tag).
    pub detection: Uuid,
}

/// An upstream database at `path` with one row in each of its tables, written as upstream
/// writes them (zero microseconds omitted, the recording's `datetime` as given).
pub(super) fn upstream_rows(path: &Path, recording_datetime: &str) -> UpstreamRows {
    let ids = UpstreamRows {
        deployment: Uuid::new_v4(),
        recording: Uuid::new_v4(),
        output: Uuid::new_v4(),
        detection: Uuid::new_v4(),
    };
    let conn = upstream_db(path);
    conn.execute(
        "INSERT INTO deployment VALUES (?1, 'old', '2024-01-01T00:00:00+00:00', NULL, 1.5, 2.5)",
        [ids.deployment.as_bytes()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO recording (id, path, datetime, duration_s, samplerate_hz, audio_channels, deployment_id)
         VALUES (?1, '/run/shm/x.wav', ?2, 3.0, 192000, 1, ?3)",
        (ids.recording.as_bytes(), recording_datetime, ids.deployment.as_bytes()),
    )
    .unwrap();
    conn.execute(
        "INSERT INTO model_output VALUES (?1, 'BatDetect2', ?2, '2024-01-01T00:01:05+00:00')",
        (ids.output.as_bytes(), ids.recording.as_bytes()),
    )
    .unwrap();
    conn.execute(
        "INSERT INTO detection VALUES (?1, 'event', 0.1, 0.2, 20000, 40000, 0.9, ?2)",
        (ids.detection.as_bytes(), ids.output.as_bytes()),
    )
    .unwrap();
    conn.execute(
        "INSERT INTO predicted_tag (key, value, confidence_score, detection_id)
         VALUES ('species', 'Pipistrellus', 0.8, ?1)",
        [ids.detection.as_bytes()],
    )
    .unwrap();
    ids
}

#[test]
fn fresh_schema_keeps_upstream_columns_types_and_indices() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = upstream_db(&dir.path().join("upstream.db"));
    let ours_path = dir.path().join("metadata.db");
    drop(MetadataStore::open(&ours_path).unwrap());
    let ours = Connection::open(&ours_path).unwrap();

    for table in UPSTREAM_TABLES {
        let theirs = table_info(&upstream, table);
        let mine = table_info(&ours, table);
        assert_eq!(&mine[..theirs.len()], &theirs[..], "table {table}");
        for extra in &mine[theirs.len()..] {
            // Added columns must be nullable without default, so upstream inserts still work.
            assert!(!extra.3 && extra.4.is_none() && extra.5 == 0, "{extra:?}");
        }
    }
    let theirs = indices(&upstream, &UPSTREAM_TABLES);
    let mine = indices(&ours, &UPSTREAM_TABLES);
    for index in &theirs {
        assert!(mine.contains(index), "missing {index:?}");
    }
    let user_version: i64 = ours
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(user_version, 1);
    let journal: String = ours
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn second_start_is_refused_and_first_deployment_kept() {
    let (_dir, mut store, first) = fresh();
    let err = store
        .start_deployment("site B", None, None, at("2026-11-27T00:00:00Z"))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DeploymentActive { name, started_on }
            if name == "site A" && *started_on == first.started_on),
        "{err}"
    );
    assert_eq!(store.deployments().unwrap(), vec![first.clone()]);
    assert_eq!(store.active_deployment().unwrap(), Some(first));
}

#[test]
fn ending_without_active_deployment_is_not_deployed_and_history_stays() {
    let (_dir, mut store, first) = fresh();
    let ended = store
        .end_active_deployment(at("2026-11-26T05:00:00Z"))
        .unwrap();
    assert_eq!(ended.ended_on, Some(at("2026-11-26T05:00:00Z")));
    assert_eq!(store.active_deployment().unwrap(), None);
    assert!(matches!(
        store.end_active_deployment(at("2026-11-26T06:00:00Z")),
        Err(StoreError::NotDeployed)
    ));
    let second = store
        .start_deployment("site B", None, None, at("2026-11-26T07:00:00Z"))
        .unwrap();
    let all = store.deployments().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, first.id);
    assert_eq!(all[0].ended_on, Some(at("2026-11-26T05:00:00Z")));
    assert_eq!(store.active_deployment().unwrap(), Some(second));
}

#[test]
fn out_of_range_coordinates_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetadataStore::open(&dir.path().join("metadata.db")).unwrap();
    for (lat, lon) in [
        (Some(91.0), None),
        (None, Some(-180.5)),
        (Some(f64::NAN), None),
    ] {
        let err = store
            .start_deployment("x", lat, lon, at("2026-11-26T00:00:00Z"))
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    }
    assert!(store.deployments().unwrap().is_empty());
}

#[test]
fn missing_parent_directory_is_reported_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storages").join("metadata.db");
    let err = MetadataStore::open(&path).unwrap_err();
    assert!(matches!(&err, StoreError::ParentMissing { path: p } if *p == path));
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!dir.path().join("storages").exists());
}

#[test]
fn corrupt_file_is_refused_with_typed_error_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    {
        // NORMAL: fsync per commit adds nothing to this test but seconds.
        let mut store = MetadataStore::open_with(&path, Durability::Normal, Check::Full).unwrap();
        let base = at("2026-01-01T00:00:00Z");
        let deployment = store.start_deployment("site", None, None, base).unwrap();
        for i in 0..2000 {
            let t = base + SignedDuration::from_secs(60 * i);
            let new = new_recording(deployment.id, t, dir.path().join(format!("{i}.wav")));
            store.insert_recording(&new).unwrap();
        }
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for (i, b) in bytes[middle..middle + 16384].iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    let quick = MetadataStore::open_with(&path, Durability::Full, Check::Quick).unwrap_err();
    assert!(
        matches!(&quick, StoreError::Corrupt { path: p, .. } if *p == path),
        "{quick:?}"
    );
    let err = MetadataStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path: p, .. } if *p == path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.starts_with("metadata.db at "), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("move it aside"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was modified"
    );
}

#[test]
fn upstream_v1_database_migrates_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let UpstreamRows {
        deployment: dep,
        recording: rec,
        ..
    } = upstream_rows(&path, "2024-01-01T00:01:00.250000");
    let store = MetadataStore::open(&path).unwrap();
    let deployments = store.deployments().unwrap();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].id, dep);
    assert_eq!(deployments[0].started_on, at("2024-01-01T00:00:00Z"));
    // Upstream's rule: the latest deployment without an end is the active one.
    assert_eq!(store.active_deployment().unwrap().map(|d| d.id), Some(dep));
    let recording = store.recording(rec).unwrap().unwrap();
    assert_eq!(recording.datetime, at("2024-01-01T00:01:00.25Z"));
    assert_eq!(recording.samplerate_hz, 192_000);
    assert_eq!(recording.state, None);
    assert_eq!(recording.frames, None);
    drop(store);

    // Reopening applies nothing twice.
    let store = MetadataStore::open(&path).unwrap();
    drop(store);
    let conn = Connection::open(&path).unwrap();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    for table in UPSTREAM_TABLES {
        assert_eq!(count(table), 1, "{table}");
    }
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM acoupi_schema_version ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4]);
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(user_version, 1);
}

#[test]
fn database_from_a_newer_acoupi_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    drop(MetadataStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO acoupi_schema_version VALUES (99, '2030-01-01T00:00:00.000000+00:00')",
            [],
        )
        .unwrap();
    let err = MetadataStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn reader_keeps_its_snapshot_while_writer_commits() {
    let (dir, mut store, deployment) = fresh();
    let first = new_recording(
        deployment.id,
        at("2026-11-26T03:00:00Z"),
        dir.path().join("1.wav"),
    );
    store.insert_recording(&first).unwrap();

    let reader = Connection::open(store.path()).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let count = || -> i64 {
        reader
            .query_row("SELECT COUNT(*) FROM recording", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(), 1);
    // With a rollback journal this commit would wait for the reader and time out.
    let started = std::time::Instant::now();
    for i in 2..=50 {
        let t = at("2026-11-26T03:00:00Z") + SignedDuration::from_secs(60 * i);
        let new = new_recording(deployment.id, t, dir.path().join(format!("{i}.wav")));
        store.insert_recording(&new).unwrap();
    }
    assert!(started.elapsed() < super::db::BUSY_TIMEOUT);
    assert_eq!(count(), 1, "the reader's snapshot moved");
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(count(), 50);

    // A second store on the same file, in another thread, reads while this one writes.
    let path = store.path().to_path_buf();
    let handle = std::thread::spawn(move || {
        let other = MetadataStore::open(&path).unwrap();
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.push(other.recording_summary(deployment.id).unwrap().count);
        }
        seen
    });
    for i in 51..=100 {
        let t = at("2026-11-26T03:00:00Z") + SignedDuration::from_secs(60 * i);
        let new = new_recording(deployment.id, t, dir.path().join(format!("{i}.wav")));
        store.insert_recording(&new).unwrap();
    }
    let seen = handle.join().unwrap();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().all(|&c| (50..=100).contains(&c)), "{seen:?}");
}

/// Issue 11: another application's SQLite file (a `users` table) used as metadata.db
/// got our tables added. It is refused, named, and left byte for byte as it was.
#[test]
fn issue_11_a_foreign_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('alice');",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let e = MetadataStore::open(&path).unwrap_err();
    assert!(
        matches!(&e, StoreError::Foreign { tables, .. } if tables == &["users"]),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "{} is not an acoupi metadata database: it holds other tables (users) and none of acoupi's",
            path.display()
        )),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let siblings: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(siblings.len(), 1, "no -wal/-shm left: {siblings:?}");
}

/// A file holding our tables and one of the user's own is still ours.
#[test]
fn our_database_with_an_extra_table_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    drop(MetadataStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE field_notes (note TEXT);")
        .unwrap();
    let store = MetadataStore::open(&path).unwrap();
    assert!(!store.was_empty());
}

/// A zero-length metadata.db (a truncation) becomes a new store, and says so.
#[test]
fn an_empty_file_is_initialised_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    std::fs::write(&path, b"").unwrap();
    let mut store = MetadataStore::open(&path).unwrap();
    assert!(store.was_empty());
    store
        .start_deployment("site", None, None, "2026-01-01T00:00:00Z".parse().unwrap())
        .unwrap();
    drop(store);
    assert!(!MetadataStore::open(&path).unwrap().was_empty());
}

/// Upstream acoupi 0.8's metadata store (the same DDL as 0.6, `CREATE ... IF NOT
/// EXISTS`, `user_version = 1`) opens our metadata.db without changing its schema.
#[test]
fn upstream_0_8_opens_our_metadata_db_without_changing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    drop(MetadataStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let schema = |c: &Connection| -> (Vec<(String, Option<String>)>, i64) {
        let mut stmt = c
            .prepare("SELECT name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let v = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        (rows, v)
    };
    let before = schema(&conn);
    conn.execute_batch(UPSTREAM_DDL).unwrap();
    conn.execute_batch("PRAGMA user_version = 1;").unwrap();
    assert_eq!(schema(&conn), before);
}
