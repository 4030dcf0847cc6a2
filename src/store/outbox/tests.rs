//! The outbox next to upstream acoupi 0.8's message store, on real files: the SQL below
//! is what upstream's store runs (from the reference facts), so the tests need no Python.

use rusqlite::Connection;

use super::*;

/// What upstream 0.8's `SqliteMessageStore(db_path)` runs on open: its tables and
/// indexes if missing, then below `user_version` 2 the `message_type` column and the
/// version.
fn upstream_open(conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS message (
            id BLOB PRIMARY KEY, content BLOB NOT NULL, created_on TEXT NOT NULL,
            message_type TEXT);
         CREATE TABLE IF NOT EXISTS response (
            id INTEGER PRIMARY KEY AUTOINCREMENT, content TEXT, message_id BLOB NOT NULL,
            status INTEGER NOT NULL, received_on TEXT NOT NULL,
            FOREIGN KEY (message_id) REFERENCES message(id));
         CREATE INDEX IF NOT EXISTS idx_response_message_id ON response(message_id);
         CREATE INDEX IF NOT EXISTS idx_response_status ON response(status);",
    )
    .unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    if version < 2 {
        let has: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('message') WHERE name = 'message_type'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if has == 0 {
            conn.execute_batch("ALTER TABLE message ADD COLUMN message_type TEXT;")
                .unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 2;").unwrap();
    }
}

/// Upstream's `store_response`: a row with no `target`.
fn upstream_response(conn: &Connection, id: Uuid, status: i64) {
    conn.execute(
        "INSERT INTO response (content, message_id, status, received_on)
         VALUES ('MQTT_ERR_SUCCESS', ?1, ?2, '2026-12-05 08:40:00.5+00:00')",
        params![id.as_bytes().as_slice(), status],
    )
    .unwrap();
}

/// Upstream's `get_unsent_messages`: no SUCCESS response row.
fn upstream_unsent(conn: &Connection) -> Vec<Uuid> {
    let mut stmt = conn
        .prepare(
            "SELECT m.id FROM message AS m WHERE NOT EXISTS (
                SELECT 1 FROM response AS r WHERE r.message_id = m.id AND r.status = 0)
             ORDER BY m.created_on ASC, m.id ASC",
        )
        .unwrap();
    let ids = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| Uuid::from_slice(&b.unwrap()).unwrap())
        .collect();
    ids
}

/// The schema as `sqlite_master` and `user_version` describe it.
fn schema_of(conn: &Connection) -> (Vec<(String, String, Option<String>)>, i64) {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    (rows, version)
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Our messages.db has upstream 0.8's column, index names and version: upstream's
/// store opens it without changing a thing.
#[test]
fn upstream_0_8_finds_its_schema_and_migrates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    let outbox = Outbox::open(&path).unwrap();
    outbox
        .enqueue("heartbeat", "{}", t("2026-12-05T08:00:00Z"))
        .unwrap();
    let conn = Connection::open(&path).unwrap();
    let before = schema_of(&conn);
    assert_eq!(before.1, 2, "user_version");
    let names: Vec<&str> = before.0.iter().map(|(_, n, _)| n.as_str()).collect();
    for index in ["idx_response_message_id", "idx_response_status"] {
        assert!(names.contains(&index), "{names:?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("idx_response__")),
        "{names:?}"
    );
    upstream_open(&conn);
    assert_eq!(schema_of(&conn), before);
}

/// Issue 11: a SUCCESS response upstream's store recorded was not seen as sent by us,
/// so the message went out again. It is sent, whoever wrote the row, and upstream
/// agrees about every message.
#[test]
fn issue_11_a_success_upstream_records_is_sent_for_us_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    let outbox = Outbox::open(&path).unwrap();
    let now = t("2026-12-05T08:00:00Z");
    let by_upstream = outbox.enqueue("heartbeat", "{}", now).unwrap();
    let failed_upstream = outbox.enqueue("summary", "{}", now).unwrap();
    let by_us = outbox.enqueue("summary", "{}", now).unwrap();
    let conn = Connection::open(&path).unwrap();
    upstream_open(&conn);
    upstream_response(&conn, by_upstream, status::SUCCESS);
    upstream_response(&conn, failed_upstream, status::ERROR);
    outbox
        .record_attempt(
            by_us,
            "mqtt",
            Outcome::Delivered {
                response: "PUBACK".into(),
            },
            now,
        )
        .unwrap();
    let due: Vec<Uuid> = outbox
        .due(10, Order::OldestFirst, now)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(due, vec![failed_upstream]);
    assert_eq!(upstream_unsent(&conn), due, "both programs agree");
    let state = outbox.state(by_upstream).unwrap().unwrap();
    assert_eq!(state.finished_on, Some(t("2026-12-05T08:40:00.5Z")));
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.queued, stats.sent), (1, 2));
}

/// A SUCCESS row upstream wrote while the file had no trigger (a messages.db from an
/// earlier acoupi) is honoured when the outbox next opens.
#[test]
fn a_success_written_before_the_trigger_existed_is_honoured_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    let id = {
        let outbox = Outbox::open(&path).unwrap();
        outbox
            .enqueue("heartbeat", "{}", t("2026-12-05T08:00:00Z"))
            .unwrap()
    };
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP TRIGGER acoupi_response_success;")
        .unwrap();
    upstream_response(&conn, id, status::SUCCESS);
    let outbox = Outbox::open(&path).unwrap();
    assert!(outbox
        .due(10, Order::OldestFirst, t("2026-12-05T09:00:00Z"))
        .unwrap()
        .is_empty());
    assert!(outbox.state(id).unwrap().unwrap().finished_on.is_some());
}

/// The messages.db an earlier acoupi wrote (no `message_type`, our old index names,
/// `user_version` 0) is brought to upstream 0.8's schema, its queue intact.
#[test]
fn an_outbox_from_before_upstream_0_8_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    let id = Uuid::new_v4();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE message (id BLOB NOT NULL PRIMARY KEY, content BLOB NOT NULL,
                 created_on TEXT NOT NULL);
             CREATE TABLE response (id INTEGER PRIMARY KEY AUTOINCREMENT, content TEXT,
                 message_id BLOB NOT NULL REFERENCES message (id), status INTEGER NOT NULL,
                 received_on TEXT NOT NULL, target TEXT);
             CREATE INDEX idx_response__message_id ON response (message_id);
             CREATE INDEX idx_response__status ON response (status);
             CREATE TABLE message_state (
                 message_id BLOB NOT NULL PRIMARY KEY REFERENCES message (id),
                 kind TEXT NOT NULL, created_on TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL,
                 finished_on TEXT, permanent_failure TEXT);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO message VALUES (?1, X'7B7D', '2026-12-05 08:00:00.000000+00:00')",
            [id.as_bytes().as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO message_state (message_id, kind, created_on, next_attempt_at)
             VALUES (?1, 'heartbeat', '2026-12-05 08:00:00.000000+00:00',
                     '2026-12-05 08:00:00.000000+00:00')",
            [id.as_bytes().as_slice()],
        )
        .unwrap();
    }
    let outbox = Outbox::open(&path).unwrap();
    let due = outbox
        .due(10, Order::OldestFirst, t("2026-12-05T09:00:00Z"))
        .unwrap();
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(due[0].kind, "heartbeat");
    let conn = Connection::open(&path).unwrap();
    let before = schema_of(&conn);
    assert_eq!(before.1, 2);
    upstream_open(&conn);
    assert_eq!(
        schema_of(&conn),
        before,
        "nothing left for upstream to migrate"
    );
}

/// Our kinds that upstream knows go into `message_type`; others stay NULL, since
/// upstream refuses a value outside its enum.
#[test]
fn message_type_holds_only_upstream_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    let outbox = Outbox::open(&path).unwrap();
    let now = t("2026-12-05T08:00:00Z");
    let heartbeat = outbox.enqueue("heartbeat", "{}", now).unwrap();
    let other = outbox.enqueue("diagnostics", "{}", now).unwrap();
    let conn = Connection::open(&path).unwrap();
    let message_type = |id: Uuid| -> Option<String> {
        conn.query_row(
            "SELECT message_type FROM message WHERE id = ?1",
            [id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(message_type(heartbeat).as_deref(), Some("heartbeat"));
    assert_eq!(message_type(other), None);
    assert_eq!(outbox.state(other).unwrap().unwrap().kind, "diagnostics");
}

/// Opening a current file writes nothing: a read-only command such as `deployment
/// status` does not wait for, or take, the write lock (issue 14).
#[test]
fn opening_a_current_outbox_takes_no_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    drop(Outbox::open(&path).unwrap());
    let writer = Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let started = std::time::Instant::now();
    let outbox = Outbox::open(&path).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(outbox.stats().unwrap().queued, 0);
    writer.execute_batch("ROLLBACK;").unwrap();
}

#[test]
fn messages_from_a_source_keep_their_ids_are_queued_once_and_move_the_source_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.db");
    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(outbox.source_position("model_output").unwrap(), None);
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let sourced = |n: u128, t: &str| SourcedMessage {
        id: Uuid::from_u128(n),
        content: format!("{{\"n\":{n}}}"),
        created_on: at(t),
    };
    let first = [
        sourced(1, "2026-12-06T01:00:00Z"),
        sourced(2, "2026-12-06T01:00:01Z"),
    ];
    let queued = outbox
        .enqueue_from_source("model_output", "p1", "detection", &first)
        .unwrap();
    assert_eq!(queued, 2);
    // A replay (say, the position was read before a crash) queues nothing twice.
    let again = [first[1].clone(), sourced(3, "2026-12-06T01:00:02Z")];
    let queued = outbox
        .enqueue_from_source("model_output", "p2", "detection", &again)
        .unwrap();
    assert_eq!(queued, 1);
    drop(outbox);

    let outbox = Outbox::open(&path).unwrap();
    assert_eq!(
        outbox.source_position("model_output").unwrap().as_deref(),
        Some("p2")
    );
    let due = outbox
        .due(10, Order::OldestFirst, at("2026-12-06T02:00:00Z"))
        .unwrap();
    let got: Vec<(u128, &str, Timestamp)> = due
        .iter()
        .map(|m| (m.id.as_u128(), m.kind.as_str(), m.created_on))
        .collect();
    assert_eq!(
        got,
        [
            (1, "detection", at("2026-12-06T01:00:00Z")),
            (2, "detection", at("2026-12-06T01:00:01Z")),
            (3, "detection", at("2026-12-06T01:00:02Z")),
        ]
    );
    assert_eq!(due[2].content, b"{\"n\":3}");
    // Upstream reads the kind from `message_type`.
    let conn = Connection::open(&path).unwrap();
    let types: i64 = conn
        .query_row(
            "SELECT count(*) FROM message WHERE message_type = 'detection'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(types, 3);
}
