//! Shared by the connected-program tests (`connected_*`): an [`Install`] set up for the
//! connected program with a deployment, and readers for what it produced: the outbox in
//! messages.db, what a [`Subscriber`] received, recording rows.
//!
//! Test files that use it declare `mod support;` and `mod messaging_support;` too. Like
//! those, it only sets things up and observes; the assertions stay in the tests, except
//! [`assert_summaries_contiguous`], which two tests share.
#![allow(dead_code)] // Each test file uses part of the kit.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use acoupi::store::metadata::MetadataStore;
use acoupi::store::{Check, Durability};
use jiff::Timestamp;

use crate::messaging_support::Subscriber;
use crate::support::{Daemon, Install, Outcome};

/// The last line of a failed `acoupi check`, printed by `main` after the findings.
pub const CHECKS_FAILED: &str = "error: health checks failed";

/// `acoupi setup --program connected` for the `filecap` microphone (see
/// [`Install::setup`]), UTC, 1 MB of free space is enough, plus `extra` `--set`
/// assignments (the messaging section).
pub fn setup_connected(install: &Install, extra: &[String]) {
    let mut args = vec!["timezone=UTC", "retention.min_free_space_mb=1"];
    args.extend(extra.iter().map(String::as_str));
    install.setup_program("connected", &args);
}

/// The messaging settings of a recorder that talks to an MQTT broker on this machine at
/// `port`, with a `timeout_s` for each broker operation: messages go out every second
/// and a summary every 10 s, so a test sees traffic within seconds.
pub fn mqtt_settings(port: u16, timeout_s: u32) -> Vec<String> {
    vec![
        "messaging.mqtt.host=127.0.0.1".into(),
        format!("messaging.mqtt.port={port}"),
        format!("messaging.mqtt.timeout={timeout_s}"),
        "messaging.message_send_interval=1".into(),
        "messaging.summary_interval=10".into(),
    ]
}

/// Puts a deployment section named `name` into the configuration: `acoupi run` starts
/// the deployment from it, with no terminal and no health check.
pub fn set_deployment(install: &Install, name: &str) {
    let site = format!("(name: \"{name}\", latitude: 51.5, longitude: -0.1)");
    install.ok(&["config", "set", "deployment", &site]);
}

/// messages.db (default paths).
pub fn messages_db(install: &Install) -> PathBuf {
    install.home.join("storages/messages.db")
}

/// SIGTERM, then waits (bounded, 30 s) for the daemon to exit.
pub fn stop(daemon: &mut Daemon) -> ExitStatus {
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("acoupi did not stop; log:\n{}", daemon.log_text()))
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`. Async, so the
/// [`Subscriber`] tasks keep running on the test's runtime meanwhile.
pub async fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message in messages.db: id and content.
pub fn outbox_messages(db: &Path) -> Vec<(Vec<u8>, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id, content FROM message").unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                String::from_utf8(r.get::<_, Vec<u8>>(1)?).unwrap(),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The payloads `sub` received on `topic`, in order.
pub fn received_on(sub: &Subscriber, topic: &str) -> Vec<String> {
    sub.received
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| t == topic)
        .map(|(_, p, _)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// The recording summaries `sub` received on `acoupi`, in order.
pub fn summaries(sub: &Subscriber) -> Vec<serde_json::Value> {
    received_on(sub, "acoupi")
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter(|v| v.get("timeinterval").is_some())
        .collect()
}

/// The metadata store of `install`, opened as a second reader next to the daemon.
pub fn metadata(install: &Install) -> MetadataStore {
    MetadataStore::open_with(&install.db(), Durability::Normal, Check::Quick).unwrap()
}

/// Recording rows that start at or after `since` (0 while metadata.db is not there yet).
pub fn recordings_since(install: &Install, since: Timestamp) -> usize {
    MetadataStore::open_with(&install.db(), Durability::Normal, Check::Quick)
        .and_then(|s| s.recordings_since(since))
        .map_or(0, |r| r.len())
}

/// The distinct summary intervals in `summaries` cover one stretch of time without
/// holes or overlaps: each starts exactly where the previous one ended. Returns them,
/// sorted (a summary delivered twice counts once).
pub fn assert_summaries_contiguous(summaries: &[serde_json::Value]) -> Vec<(Timestamp, Timestamp)> {
    let at = |s: &serde_json::Value, key: &str| -> Timestamp {
        let text = s["timeinterval"][key].as_str().unwrap();
        text.parse()
            .unwrap_or_else(|e| panic!("summary {key} {text:?}: {e}"))
    };
    let mut intervals: Vec<(Timestamp, Timestamp)> = summaries
        .iter()
        .map(|s| (at(s, "starttime"), at(s, "endtime")))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    intervals.sort();
    for pair in intervals.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "a hole or an overlap: {intervals:#?}");
    }
    intervals
}

/// Runs `acoupi check` and requires that it refused (exit code 1) with `expected` as its
/// only finding of severity error: the `error:` lines on stderr are exactly `expected`
/// and [`CHECKS_FAILED`]. Warnings (clock, units) may come and go.
pub fn check_fails_with(install: &Install, expected: &str) -> Outcome {
    let out = install.run(&["check"]);
    assert_eq!(out.code, Some(1), "{out:#?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors, [expected, CHECKS_FAILED], "{out:#?}");
    out
}

/// Runs `acoupi check` and requires that it passed.
pub fn check_passes(install: &Install) -> Outcome {
    let out = install.ok(&["check"]);
    assert!(out.stdout.contains("Health checks passed"), "{out:#?}");
    out
}
