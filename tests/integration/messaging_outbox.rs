//! The outbox on real SQLite files: durability, order, back-off, pruning, upstream files.

use acoupi::store::outbox::{format_timestamp, Order, Outbox, OutboxError, Outcome};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use crate::messaging_support::scratch_outbox;
use crate::support::rerun_alone;

fn t0() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn after(s: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(s)
}

const CRASH_ENV: &str = "ACOUPI_TEST_OUTBOX_CRASH_DB";

#[test]
fn enqueued_message_survives_a_crash() {
    if let Ok(path) = std::env::var(CRASH_ENV) {
        // Child: accept a message, then die without closing anything.
        let outbox = Outbox::open(&path).unwrap();
        outbox.enqueue("detection", "{\"n\":1}", t0()).unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    let child = rerun_alone(
        module_path!(),
        "enqueued_message_survives_a_crash",
        CRASH_ENV,
        db.as_os_str(),
    );
    assert!(!child.status.success(), "the child aborts");
    let outbox = Outbox::open(&db).unwrap();
    let due = outbox.due(10, Order::OldestFirst, t0()).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].content, b"{\"n\":1}");
    assert_eq!(due[0].kind, "detection");
}

#[test]
fn timestamps_use_upstream_text_with_six_fraction_digits() {
    assert_eq!(format_timestamp(t0()), "2026-06-01 00:00:00.000000+00:00");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    let outbox = Outbox::open(&db).unwrap();
    let at: Timestamp = "2026-06-01T12:34:56.5Z".parse().unwrap();
    let id = outbox.enqueue("heartbeat", "{}", at).unwrap();
    drop(outbox);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (blob, created): (Vec<u8>, String) = conn
        .query_row("SELECT id, created_on FROM message", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(blob, id.as_bytes());
    assert_eq!(created, "2026-06-01 12:34:56.500000+00:00");
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn due_honours_order_limit_and_next_attempt() {
    let (_dir, outbox) = scratch_outbox();
    let ids: Vec<Uuid> = (0..5)
        .map(|n| {
            outbox
                .enqueue("detection", &n.to_string(), after(n))
                .unwrap()
        })
        .collect();
    let oldest: Vec<Uuid> = outbox
        .due(3, Order::OldestFirst, after(10))
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(oldest, ids[..3]);
    let newest: Vec<Uuid> = outbox
        .due(2, Order::NewestFirst, after(10))
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(newest, [ids[4], ids[3]]);
    // Messages created after `now` are not due yet.
    assert_eq!(
        outbox.due(10, Order::OldestFirst, after(2)).unwrap().len(),
        3
    );
    outbox
        .record_attempt(
            ids[0],
            "http",
            Outcome::Failed {
                reason: "HTTP 503".into(),
            },
            after(10),
        )
        .unwrap();
    let due: Vec<Uuid> = outbox
        .due(10, Order::OldestFirst, after(10))
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(due, ids[1..], "a failed message waits for its back-off");
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let (_dir, outbox) = scratch_outbox();
    let id = outbox.enqueue("detection", "{}", t0()).unwrap();
    let mut now = t0();
    let mut ceilings = Vec::new();
    for _ in 0..12 {
        outbox
            .record_attempt(
                id,
                "mqtt",
                Outcome::TimedOut {
                    reason: "no PUBACK".into(),
                },
                now,
            )
            .unwrap();
        let state = outbox.state(id).unwrap().unwrap();
        let wait = state.next_attempt_at.duration_since(now).as_secs_f64();
        ceilings.push(wait);
        now = state.next_attempt_at;
    }
    let expected = [
        10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 3600.0, 3600.0, 3600.0,
    ];
    for (wait, ceiling) in ceilings.iter().zip(expected) {
        assert!(
            *wait >= ceiling / 2.0 && *wait <= ceiling,
            "{wait} outside [{}, {ceiling}]",
            ceiling / 2.0
        );
    }
    assert_eq!(outbox.state(id).unwrap().unwrap().attempts, 12);
}

#[test]
fn permanent_failure_is_kept_with_its_reason_and_never_due_again() {
    let (_dir, outbox) = scratch_outbox();
    let id = outbox.enqueue("detection", "{}", t0()).unwrap();
    outbox
        .record_attempt(
            id,
            "http",
            Outcome::Rejected {
                reason: "HTTP 422: schema".into(),
            },
            t0(),
        )
        .unwrap();
    assert!(outbox
        .due(10, Order::OldestFirst, after(1_000_000))
        .unwrap()
        .is_empty());
    let state = outbox.state(id).unwrap().unwrap();
    assert_eq!(
        state.permanent_failure.as_deref(),
        Some("http: HTTP 422: schema")
    );
    assert_eq!(state.finished_on, Some(t0()));
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (stats.queued, stats.sent, stats.failed_permanent),
        (0, 0, 1)
    );
}

#[test]
fn response_for_an_unknown_message_is_an_error() {
    let (_dir, outbox) = scratch_outbox();
    let err = outbox
        .record_attempt(
            Uuid::new_v4(),
            "http",
            Outcome::Delivered {
                response: String::new(),
            },
            t0(),
        )
        .unwrap_err();
    assert!(matches!(err, OutboxError::UnknownMessage { .. }), "{err}");
}

#[test]
fn prune_removes_only_finished_messages_older_than_the_cutoff() {
    let (_dir, outbox) = scratch_outbox();
    let old = outbox.enqueue("detection", "{}", t0()).unwrap();
    let recent = outbox.enqueue("detection", "{}", t0()).unwrap();
    let queued = outbox.enqueue("detection", "{}", t0()).unwrap();
    let ok = || Outcome::Delivered {
        response: "PUBACK".into(),
    };
    outbox.record_attempt(old, "mqtt", ok(), after(10)).unwrap();
    outbox
        .record_attempt(recent, "mqtt", ok(), after(1000))
        .unwrap();
    assert_eq!(outbox.prune_sent(after(500)).unwrap(), 1);
    assert!(outbox.state(old).unwrap().is_none());
    assert!(outbox.state(recent).unwrap().is_some());
    assert!(outbox.state(queued).unwrap().is_some());
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.queued, stats.sent), (1, 1));
}

#[test]
fn upstream_messages_db_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    let sent = Uuid::new_v4();
    let unsent = Uuid::new_v4();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE message (id BLOB NOT NULL PRIMARY KEY, content BLOB NOT NULL, created_on TEXT NOT NULL);
             CREATE TABLE response (id INTEGER PRIMARY KEY AUTOINCREMENT, content TEXT,
                 message_id BLOB NOT NULL REFERENCES message (id), status INTEGER NOT NULL,
                 received_on TEXT NOT NULL);",
        )
        .unwrap();
        for (id, created) in [
            (sent, "2024-01-01 10:00:00+00:00"),
            (unsent, "2024-01-01 11:00:00.250000+00:00"),
        ] {
            conn.execute(
                "INSERT INTO message VALUES (?1, ?2, ?3)",
                rusqlite::params![id.as_bytes().as_slice(), b"{}".as_slice(), created],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO response (content, message_id, status, received_on) VALUES ('MQTT_ERR_SUCCESS', ?1, 0, '2024-01-01 10:00:05+00:00')",
            [sent.as_bytes().as_slice()],
        )
        .unwrap();
    }
    let outbox = Outbox::open(&db).unwrap();
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.queued, stats.sent), (1, 1));
    let due = outbox.due(10, Order::OldestFirst, t0()).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, unsent);
    assert_eq!(
        due[0].created_on,
        "2024-01-01T11:00:00.25Z".parse::<Timestamp>().unwrap()
    );
}
