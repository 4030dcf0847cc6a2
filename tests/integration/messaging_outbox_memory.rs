//! Memory stays flat with 100,000 queued messages. The measurement runs alone in a
//! child process ([`rerun_alone`]), so that the process's peak RSS (VmHWM) is this test's.

use acoupi::store::outbox::{format_timestamp, AttemptRound, Order, Outbox, Outcome};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use crate::support::rerun_alone;

const QUEUED: usize = 100_000;
/// Set in the child that measures; the parent only runs it.
const ALONE_ENV: &str = "ACOUPI_TEST_OUTBOX_MEMORY_ALONE";

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn hundred_thousand_queued_messages_keep_due_memory_flat() {
    if std::env::var_os(ALONE_ENV).is_none() {
        let child = rerun_alone(
            module_path!(),
            "hundred_thousand_queued_messages_keep_due_memory_flat",
            ALONE_ENV,
            "1".as_ref(),
        );
        assert!(
            child.status.success(),
            "the measuring child failed:\n{}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        // The figure for docs/benchmarks.md.
        eprint!("{}", String::from_utf8_lossy(&child.stderr));
        return;
    }
    let t0: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("messages.db");
    drop(Outbox::open(&db).unwrap());
    {
        // Bulk load in one transaction; enqueue() would fsync 100,000 times.
        let mut conn = rusqlite::Connection::open(&db).unwrap();
        let tx = conn.transaction().unwrap();
        let payload = format!("{{\"detections\":\"{}\"}}", "x".repeat(300));
        for n in 0..QUEUED {
            let id = Uuid::new_v4();
            let created = format_timestamp(t0 + SignedDuration::from_millis(n as i64));
            tx.execute(
                "INSERT INTO message (id, content, created_on) VALUES (?1, ?2, ?3)",
                rusqlite::params![id.as_bytes().as_slice(), payload.as_bytes(), created],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO message_state (message_id, kind, created_on, next_attempt_at) VALUES (?1, 'detection', ?2, ?2)",
                rusqlite::params![id.as_bytes().as_slice(), created],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let outbox = Outbox::open(&db).unwrap();
    let now = t0 + SignedDuration::from_secs(3600);
    // Warm up caches and allocator before the baseline.
    outbox.due(200, Order::OldestFirst, now).unwrap();
    let before = peak_rss_kib();
    for page in 0..20 {
        let order = if page % 2 == 0 {
            Order::OldestFirst
        } else {
            Order::NewestFirst
        };
        let due = outbox.due(200, order, now).unwrap();
        assert_eq!(due.len(), 200);
        let rounds: Vec<AttemptRound> = due
            .iter()
            .map(|m| AttemptRound {
                message_id: m.id,
                results: vec![(
                    "http".into(),
                    Outcome::Delivered {
                        response: "ok".into(),
                    },
                )],
            })
            .collect();
        outbox.record_attempts(&rounds, &["http"], now).unwrap();
    }
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.queued, stats.sent), ((QUEUED - 4000) as u64, 4000));
    let growth = peak_rss_kib().saturating_sub(before);
    // The whole queue is ~35 MB of payload; paging must not come near it.
    assert!(
        growth < 8 * 1024,
        "peak RSS grew by {growth} KiB while paging through {QUEUED} messages"
    );
    eprintln!(
        "peak RSS {} KiB, growth while paging {growth} KiB",
        peak_rss_kib()
    );
}
