//! Delivery throughput to a local mosquitto and to an in-process HTTP server, and peak
//! RSS with 100,000 queued messages. Run: `cargo bench --bench messaging`
//! (`MESSAGING_BENCH_COUNT` sets the messages per throughput run, default 5000).

#[path = "../tests/messaging_support/mod.rs"]
mod messaging_support;

use std::path::Path;
use std::time::Instant;

use acoupi::messaging::config::{HttpConfig, MqttConfig};
use acoupi::messaging::http::HttpMessenger;
use acoupi::messaging::mqtt::MqttMessenger;
use acoupi::messaging::{deliver_due, Messenger};
use acoupi::store::outbox::{format_timestamp, Order, Outbox};
use jiff::{SignedDuration, Timestamp};
use messaging_support::{Broker, HttpServer, Reply};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Loads `count` messages in one transaction (enqueue() would fsync each).
fn bulk_load(db: &Path, count: usize, t0: Timestamp) {
    drop(Outbox::open(db).expect("open outbox"));
    let mut conn = rusqlite::Connection::open(db).expect("open db");
    let tx = conn.transaction().expect("transaction");
    let payload = format!("{{\"detections\":\"{}\"}}", "x".repeat(300));
    for n in 0..count {
        let id = uuid::Uuid::new_v4();
        let created = format_timestamp(t0 + SignedDuration::from_millis(n as i64));
        tx.execute(
            "INSERT INTO message (id, content, created_on) VALUES (?1, ?2, ?3)",
            rusqlite::params![id.as_bytes().as_slice(), payload.as_bytes(), created],
        )
        .expect("insert message");
        tx.execute(
            "INSERT INTO message_state (message_id, kind, created_on, next_attempt_at) VALUES (?1, 'detection', ?2, ?2)",
            rusqlite::params![id.as_bytes().as_slice(), created],
        )
        .expect("insert state");
    }
    tx.commit().expect("commit");
}

async fn throughput(name: &str, messenger: &dyn Messenger, count: usize) {
    let t0: Timestamp = "2026-06-01T00:00:00Z".parse().expect("timestamp");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("messages.db");
    bulk_load(&db, count, t0);
    let outbox = Outbox::open(&db).expect("open outbox");
    let now = t0 + SignedDuration::from_secs(3600);
    let start = Instant::now();
    let report = deliver_due(&outbox, &[messenger], None, Order::OldestFirst, now)
        .await
        .expect("delivery");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.sent as usize, count, "{name}: {report:?}");
    println!(
        "{name}: {count} messages in {secs:.2} s = {:.0} messages/s",
        count as f64 / secs
    );
}

fn main() {
    let count: usize = std::env::var("MESSAGING_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let broker = Broker::start();
        let mqtt = MqttMessenger::start(
            &MqttConfig {
                host: "127.0.0.1".into(),
                port: broker.port,
                username: None,
                password: None,
                topic: "bench".into(),
                per_kind_subtopics: false,
                timeout: 10,
                use_tls: false,
                ca_file: None,
                keep_alive: 60,
            },
            "bench",
        )
        .expect("mqtt messenger");
        throughput("mqtt (mosquitto, QoS 1)", &mqtt, count).await;

        let server = HttpServer::start(Reply::Status(200, "ok"));
        let http = HttpMessenger::new(&HttpConfig {
            base_url: server.url(),
            content_type: "application/json".into(),
            timeout: 10,
            bearer_token: None,
            username: None,
            password: None,
            ca_file: None,
        })
        .expect("http messenger");
        throughput("http (in-process server)", &http, count).await;

        let t0: Timestamp = "2026-06-01T00:00:00Z".parse().expect("timestamp");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("messages.db");
        bulk_load(&db, 100_000, t0);
        let outbox = Outbox::open(&db).expect("open outbox");
        let before = peak_rss_kib();
        let report = deliver_due(
            &outbox,
            &[&mqtt as &dyn Messenger],
            Some(20_000),
            Order::NewestFirst,
            t0 + SignedDuration::from_secs(3600),
        )
        .await
        .expect("delivery");
        println!(
            "100,000 queued, 20,000 delivered over mqtt: peak RSS {} KiB (grew {} KiB), {report:?}",
            peak_rss_kib(),
            peak_rss_kib().saturating_sub(before)
        );
    });
}
