//! The connected program end to end: the real `acoupi` binary (setup, run, check,
//! config get) in user mode, the real alsa-lib reading a FIFO through the `file` plugin
//! (fed at real-time pace, so the recorder runs as on a device), and a real mosquitto.
//!
//! The daemon test kills the broker while the recorder runs and starts it again on the
//! same port: every message the outbox holds must reach the subscriber, and recording
//! must go on during the outage.

mod messaging_support;

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acoupi::store::metadata::MetadataStore;
use acoupi::store::outbox::Outbox;
use acoupi::store::{Check, Durability};
use jiff::Timestamp;
use messaging_support::cli::{check_fails_with, check_passes, setup, text, Home};
use messaging_support::{free_port, Broker, Subscriber, PASSWORD, USER};

const RATE: usize = 8000;

/// Feeds the FIFO with a 16-bit mono counter at 8 kHz in real time, reopening it when
/// the reader closes it (the daemon opens the device more than once).
fn feed(fifo: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..RATE / 10)
            .flat_map(|i| (i as i16).to_le_bytes())
            .collect();
        while !stop.load(Ordering::Relaxed) {
            // Opening for writing blocks until the recorder opens the device.
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                return;
            };
            let start = Instant::now();
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if f.write_all(&chunk).is_err() {
                    break;
                }
                sent += 1;
                let due = start + Duration::from_millis(100) * sent;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
    })
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`.
async fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
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
fn outbox_messages(db: &Path) -> Vec<(Vec<u8>, String)> {
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

fn received_on(sub: &Subscriber, topic: &str) -> Vec<String> {
    sub.received
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| t == topic)
        .map(|(_, p, _)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

fn summaries(sub: &Subscriber) -> Vec<serde_json::Value> {
    received_on(sub, "acoupi")
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter(|v| v.get("timeinterval").is_some())
        .collect()
}

fn recordings_since(home: &Home, since: Timestamp) -> usize {
    MetadataStore::open_with(&home.metadata_db(), Durability::Normal, Check::Quick)
        .and_then(|s| s.recordings_since(since))
        .map_or(0, |r| r.len())
}

/// A daemon that is killed if the test ends without stopping it (a failed assertion),
/// so no recorder outlives its test.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn stop(Daemon(child): &mut Daemon) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "acoupi run did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_no_message_and_recording_goes_on() {
    let mut broker = Broker::start();
    let sub = Subscriber::start(broker.port, "acoupi/#").await;
    let home = Home::new();
    setup(
        &home,
        "fifocap",
        &[
            "messaging.mqtt.host=127.0.0.1".into(),
            format!("messaging.mqtt.port={}", broker.port),
            "messaging.mqtt.timeout=2".into(),
            "messaging.message_send_interval=1".into(),
            "messaging.summary_interval=10".into(),
            "messaging.heartbeat_interval=10".into(),
            "heartbeat.interval=10".into(),
        ],
    );
    let out = home.acoupi(&[
        "config",
        "set",
        "deployment",
        "(name: \"outage\", latitude: 51.5, longitude: -0.1)",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let feeding = Arc::new(AtomicBool::new(false));
    let feeder = feed(home.path().join("in.fifo"), Arc::clone(&feeding));
    let log = std::fs::File::create(home.path().join("run.log")).unwrap();
    let mut daemon = Daemon(
        home.command(&["run"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(home.path().join("run.log")).unwrap_or_default();

    // Summaries arrive while the broker is up.
    let first = wait_for("a first summary", Duration::from_secs(40), || {
        summaries(&sub).into_iter().next()
    })
    .await;
    assert!(
        first["recordings"]["count"].as_u64().unwrap() >= 1,
        "{first}\n{}",
        log_text()
    );
    assert_eq!(
        received_on(&sub, "acoupi/status")
            .last()
            .map(String::as_str),
        Some("online")
    );

    // The beat daemon (started once the storages exist) queues heartbeats in the same
    // outbox: a second process writing it.
    let state = home.path().join("systemctl");
    std::fs::create_dir_all(&state).unwrap();
    let mut beat = Daemon(
        home.command(&["beat"])
            .env(
                "ACOUPI_SYSTEMCTL",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake-systemctl"),
            )
            .env("FAKE_SYSTEMCTL_STATE", &state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.path().join("beat.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    // Outage: the broker dies; summaries queue up, recording goes on.
    broker.kill();
    let outage_start = Timestamp::now();
    let outbox = Outbox::open(home.messages_db()).unwrap();
    wait_for(
        "two summaries queued during the outage",
        Duration::from_secs(40),
        || (outbox.stats().unwrap().queued >= 2).then_some(()),
    )
    .await;
    let during = wait_for(
        "ten recordings during the outage",
        Duration::from_secs(40),
        || Some(recordings_since(&home, outage_start)).filter(|n| *n >= 10),
    )
    .await;
    let queued = outbox.stats().unwrap().queued;

    // The broker returns on the same port: everything queued is delivered.
    broker.restart();
    let outage_end = Timestamp::now();
    wait_for(
        "the queue to drain after the outage",
        Duration::from_secs(90),
        || (outbox.stats().unwrap().queued == 0).then_some(()),
    )
    .await;
    let beat_stopped = stop(&mut beat);
    let beat_log = std::fs::read_to_string(home.path().join("beat.log")).unwrap_or_default();
    assert!(
        beat_stopped.success(),
        "beat exit {beat_stopped:?}\n{beat_log}"
    );
    let stopped = stop(&mut daemon);
    feeding.store(true, Ordering::Relaxed);
    // Unblock the feeder if it waits in `open` for a reader that is gone.
    let _ = std::fs::File::open(home.path().join("in.fifo"));
    feeder.join().unwrap();
    assert!(stopped.success(), "exit {stopped:?}\n{}", log_text());

    // Shutdown queued a last summary and delivered it; the session ended `offline`.
    let messages = outbox_messages(&home.messages_db());
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.queued, 0, "{stats:?}\n{}", log_text());
    assert_eq!(stats.sent as usize, messages.len());
    let received: HashSet<String> = wait_for("the last summary", Duration::from_secs(10), || {
        let got: HashSet<String> = received_on(&sub, "acoupi").into_iter().collect();
        messages
            .iter()
            .all(|(_, content)| got.contains(content))
            .then_some(got)
    })
    .await;
    let lost: Vec<&String> = messages
        .iter()
        .map(|(_, c)| c)
        .filter(|c| !received.contains(*c))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    let ids: HashSet<&Vec<u8>> = messages.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), messages.len());
    assert!(
        messages.len() as u64 >= queued + 2,
        "{} messages, {queued} queued in the outage",
        messages.len()
    );
    assert_eq!(
        received_on(&sub, "acoupi/status")
            .last()
            .map(String::as_str),
        Some("offline")
    );

    // Heartbeats went the same way, with the recorder's state in them.
    let heartbeats: Vec<serde_json::Value> = received_on(&sub, "acoupi")
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter(|v| v.get("sent_on").is_some())
        .collect();
    assert!(!heartbeats.is_empty(), "no heartbeat received");
    assert!(
        heartbeats
            .iter()
            .any(|h| h["workers"]["recording"].as_str() == Some("recording")),
        "{heartbeats:?}"
    );

    // Summaries cover the run without holes: each starts where the previous ended.
    let mut intervals: Vec<(String, String)> = summaries(&sub)
        .iter()
        .map(|s| {
            (
                s["timeinterval"]["starttime"].as_str().unwrap().to_owned(),
                s["timeinterval"]["endtime"].as_str().unwrap().to_owned(),
            )
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    intervals.sort();
    for pair in intervals.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{intervals:?}");
    }
    // At-least-once: a message may arrive twice (an acknowledgement lost with the
    // broker); the outbox counts those, and never more than there were messages.
    let arrived = received_on(&sub, "acoupi").len();
    assert!(stats.duplicates as usize <= messages.len(), "{stats:?}");
    eprintln!(
        "outbox {} messages ({} queued in the outage), {arrived} received on acoupi, {} duplicates counted, {} recordings during the outage",
        messages.len(),
        queued,
        stats.duplicates,
        during
    );
    // Recording went on across the whole outage.
    let store =
        MetadataStore::open_with(&home.metadata_db(), Durability::Normal, Check::Quick).unwrap();
    let rows = store.recordings_since(outage_start).unwrap();
    assert!(
        rows.iter().any(|r| r.datetime >= outage_end),
        "no recording after the outage"
    );
    // Delivery never held the recorder up: not one gap while the broker was away.
    let gaps = store.gaps_since(outage_start).unwrap();
    assert!(gaps.is_empty(), "{gaps:?}");
}

/// Errors reach the summaries counted by kind, each in the summary of the interval it
/// happened in: a microphone missing at start is one `device_lost` in the first summary,
/// and the summaries after it do not repeat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_count_each_error_once_by_kind() {
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, "acoupi").await;
    let home = Home::new();
    setup(
        &home,
        "no-such-microphone",
        &[
            "messaging.mqtt.host=127.0.0.1".into(),
            format!("messaging.mqtt.port={}", broker.port),
            "messaging.message_send_interval=1".into(),
            "messaging.summary_interval=10".into(),
        ],
    );
    home.config_set(
        "deployment",
        "(name: \"no mic\", latitude: 51.5, longitude: -0.1)",
    );
    let mut daemon = Daemon(
        home.command(&["run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.path().join("run.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("the first summary", Duration::from_secs(30), || {
        summaries(&sub).into_iter().next()
    })
    .await;
    // Stopping queues and delivers the summary of the unfinished interval.
    assert!(stop(&mut daemon).success());
    let got = wait_for("the last summary", Duration::from_secs(10), || {
        Some(summaries(&sub)).filter(|s| s.len() >= 2)
    })
    .await;
    let log = std::fs::read_to_string(home.path().join("run.log")).unwrap_or_default();
    assert_eq!(got[0]["errors"]["count"], 1, "{}\n{log}", got[0]);
    assert_eq!(got[0]["errors"]["kinds"]["device_lost"], 1, "{}", got[0]);
    assert_eq!(got[0]["recordings"]["count"], 0, "{}", got[0]);
    for later in &got[1..] {
        assert_eq!(later["errors"]["count"], 0, "repeated: {later}");
        assert_eq!(later["errors"]["kinds"], serde_json::json!({}), "{later}");
    }
}

#[test]
fn check_names_the_broker_failure_and_config_get_masks_the_password() {
    let broker = Broker::start();
    let home = Home::new();
    setup(
        &home,
        "nullcap",
        &[
            "messaging.mqtt.host=127.0.0.1".into(),
            format!("messaging.mqtt.port={}", broker.auth_port),
            format!("messaging.mqtt.username={USER}"),
            "messaging.mqtt.password=wrong-pass".into(),
            "messaging.mqtt.timeout=3".into(),
        ],
    );
    let mode = std::fs::metadata(home.config_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    check_fails_with(
        &home,
        &format!(
            "error: mqtt: authentication rejected by 127.0.0.1:{}: not authorized",
            broker.auth_port
        ),
    );

    // Secrets are masked unless asked for, in every form of `config get`.
    for args in [
        &["config", "get"][..],
        &["config", "get", "messaging"],
        &["config", "get", "messaging.mqtt.password"],
        &["config", "get", "--json"],
    ] {
        let out = home.acoupi(args);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", text(&out));
        assert!(!shown.contains("wrong-pass"), "{args:?} shows it: {shown}");
        assert!(shown.contains("********"), "{args:?}: {shown}");
    }
    let out = home.acoupi(&["config", "get", "messaging.mqtt.password", "--show-secrets"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrong-pass"));

    // The right password passes; the file stays owner-only.
    home.config_set("messaging.mqtt.password", PASSWORD);
    check_passes(&home);
    let mode = std::fs::metadata(home.config_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Nothing listens: a refused connection, said as such.
    let closed = free_port();
    home.config_set("messaging.mqtt.port", &closed.to_string());
    check_fails_with(
        &home,
        &format!(
            "error: mqtt: connection refused by 127.0.0.1:{closed}: check that the server runs and the port is right"
        ),
    );
}

#[test]
fn setup_connected_without_a_messenger_names_the_option() {
    let home = Home::new();
    let out = home.acoupi(&[
        "setup",
        "--no-prompt",
        "--program",
        "connected",
        "--set",
        "microphone.device_name=nullcap",
    ]);
    // 2: a command that failed (1 is reserved for checks that refused).
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "pass --set messaging.mqtt.host=<broker> or --set messaging.http.base_url=<url>"
        ),
        "{}",
        text(&out)
    );
    assert!(!home.config_file().exists());
}
