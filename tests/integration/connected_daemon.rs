//! The connected program end to end: the real `acoupi` binary (setup, run, check,
//! config get) in user mode, the real alsa-lib reading a FIFO through the `file` plugin
//! (fed at real-time pace, so the recorder runs as on a device), and a real mosquitto.
//!
//! The daemon test kills the broker while the recorder runs and starts it again on the
//! same port: every message the outbox holds must reach the subscriber, and recording
//! must go on during the outage.

use crate::connected_support;
use crate::messaging_support;
use crate::support;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use acoupi::store::outbox::Outbox;
use connected_support::{assert_summaries_contiguous, messages_db, metadata, outbox_messages};
use connected_support::{check_fails_with, check_passes, stop, summaries, wait_for};
use connected_support::{mqtt_settings, received_on, recordings_since};
use connected_support::{set_deployment, setup_connected};
use jiff::Timestamp;
use messaging_support::{free_port, Broker, Subscriber, PASSWORD, USER};
use support::feeder::Feeder;
use support::{Install, Notify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_no_message_and_recording_goes_on() {
    let mut broker = Broker::start();
    let sub = Subscriber::start(broker.port, "acoupi/#").await;
    let install = Install::new();
    setup_connected(
        &install,
        &[
            mqtt_settings(broker.port, 2),
            vec![
                "messaging.heartbeat_interval=10".into(),
                "heartbeat.interval=10".into(),
            ],
        ]
        .concat(),
    );
    set_deployment(&install, "outage");

    let feeder = Feeder::reopening(&install.fifo, 0);
    let notify = Notify::bind(install.root());
    let mut daemon = install.spawn_daemon("run", &notify);

    // Summaries arrive while the broker is up.
    let first = wait_for("a first summary", Duration::from_secs(40), || {
        summaries(&sub).into_iter().next()
    })
    .await;
    assert!(
        first["recordings"]["count"].as_u64().unwrap() >= 1,
        "{first}\n{}",
        daemon.log_text()
    );
    assert_eq!(
        received_on(&sub, "acoupi/status")
            .last()
            .map(String::as_str),
        Some("online")
    );

    // The beat daemon (started once the storages exist) queues heartbeats in the same
    // outbox: a second process writing it.
    let mut beat = install.spawn_daemon("beat", &notify);

    // Outage: the broker dies; summaries queue up, recording goes on.
    broker.kill();
    let outage_start = Timestamp::now();
    let outbox = Outbox::open(messages_db(&install)).unwrap();
    wait_for(
        "two summaries queued during the outage",
        Duration::from_secs(40),
        || (outbox.stats().unwrap().queued >= 2).then_some(()),
    )
    .await;
    let during = wait_for(
        "ten recordings during the outage",
        Duration::from_secs(40),
        || Some(recordings_since(&install, outage_start)).filter(|n| *n >= 10),
    )
    .await;
    let queued = outbox.stats().unwrap().queued;
    // `deployment status` shows the outage as messages waiting.
    let status: serde_json::Value =
        serde_json::from_str(&install.ok(&["deployment", "status", "--json"]).stdout).unwrap();
    let waiting = status["program"]["messages"]["queued"].as_u64();
    assert!(waiting >= Some(2), "{status:#}");

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
    assert!(
        beat_stopped.success(),
        "beat exit {beat_stopped:?}\n{}",
        beat.log_text()
    );
    let stopped = stop(&mut daemon);
    drop(feeder);
    assert!(stopped.success(), "exit {stopped:?}\n{}", daemon.log_text());

    // Shutdown queued a last summary and delivered it; the session ended `offline`.
    let messages = outbox_messages(&messages_db(&install));
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.queued, 0, "{stats:?}\n{}", daemon.log_text());
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
    // Each says how much waited in the outbox; one queued during the outage saw the
    // summaries held back.
    let backlog: Vec<f64> = heartbeats
        .iter()
        .map(|h| {
            h["metrics"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["name"] == "messages_queued"))
                .and_then(|m| m["value"].as_f64())
                .unwrap_or_else(|| panic!("no messages_queued in {h}"))
        })
        .collect();
    assert!(backlog.iter().any(|n| *n >= 1.0), "{backlog:?}");

    // Summaries cover the run without holes: each starts where the previous ended.
    assert_summaries_contiguous(&summaries(&sub));
    // At-least-once: a message may arrive twice (an acknowledgement lost with the
    // broker); the outbox counts those, and never more than there were messages.
    assert!(stats.duplicates as usize <= messages.len(), "{stats:?}");
    eprintln!(
        "outbox {} messages ({} queued in the outage), {} received on acoupi, {} duplicates counted, {} recordings during the outage",
        messages.len(),
        queued,
        received_on(&sub, "acoupi").len(),
        stats.duplicates,
        during
    );
    // Recording went on across the whole outage.
    let store = metadata(&install);
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
    let install = Install::new();
    setup_connected(
        &install,
        &[
            "microphone.device_name=no-such-microphone".into(),
            "messaging.mqtt.host=127.0.0.1".into(),
            format!("messaging.mqtt.port={}", broker.port),
            "messaging.message_send_interval=1".into(),
            "messaging.summary_interval=10".into(),
        ],
    );
    set_deployment(&install, "no mic");
    let notify = Notify::bind(install.root());
    let mut daemon = install.spawn_daemon("run", &notify);
    wait_for("the first summary", Duration::from_secs(30), || {
        summaries(&sub).into_iter().next()
    })
    .await;
    // Stopping queues and delivers the summary of the unfinished interval.
    assert!(stop(&mut daemon).success(), "{}", daemon.log_text());
    let got = wait_for("the last summary", Duration::from_secs(10), || {
        Some(summaries(&sub)).filter(|s| s.len() >= 2)
    })
    .await;
    let first = &got[0];
    assert_eq!(
        first["errors"]["count"],
        1,
        "{first}\n{}",
        daemon.log_text()
    );
    assert_eq!(first["errors"]["kinds"]["device_lost"], 1, "{first}");
    assert_eq!(first["recordings"]["count"], 0, "{first}");
    for later in &got[1..] {
        assert_eq!(later["errors"]["count"], 0, "repeated: {later}");
        assert_eq!(later["errors"]["kinds"], serde_json::json!({}), "{later}");
    }
    // Everything went out: `deployment status` says so, with the time of the last one.
    let text = install.ok(&["deployment", "status"]).stdout;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("messages :"))
        .unwrap_or_else(|| panic!("no messages line in\n{text}"));
    let sent = outbox_messages(&messages_db(&install)).len();
    assert!(
        line.contains(&format!("0 queued, {sent} sent, 0 rejected; last sent 20")),
        "{line}"
    );
}

#[test]
fn check_names_the_broker_failure_and_config_get_masks_the_password() {
    let broker = Broker::start();
    let install = Install::new();
    setup_connected(
        &install,
        &[
            "messaging.mqtt.host=127.0.0.1".into(),
            format!("messaging.mqtt.port={}", broker.auth_port),
            format!("messaging.mqtt.username={USER}"),
            "messaging.mqtt.password=wrong-pass".into(),
            "messaging.mqtt.timeout=3".into(),
        ],
    );
    // `check` opens the microphone briefly: a file, not the FIFO nobody feeds.
    install.mic_from_file();
    let mode = std::fs::metadata(install.config_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    check_fails_with(
        &install,
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
        let out = install.ok(args);
        let shown = &out.stdout;
        assert!(!shown.contains("wrong-pass"), "{args:?} shows it: {shown}");
        assert!(shown.contains("********"), "{args:?}: {shown}");
    }
    let out = install.ok(&["config", "get", "messaging.mqtt.password", "--show-secrets"]);
    assert!(out.stdout.contains("wrong-pass"));

    // The right password passes; the file stays owner-only.
    install.ok(&["config", "set", "messaging.mqtt.password", PASSWORD]);
    check_passes(&install);
    let mode = std::fs::metadata(install.config_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Nothing listens: a refused connection, said as such.
    let closed = free_port();
    install.ok(&["config", "set", "messaging.mqtt.port", &closed.to_string()]);
    check_fails_with(
        &install,
        &format!(
            "error: mqtt: connection refused by 127.0.0.1:{closed}: check that the server runs and the port is right"
        ),
    );
}

#[test]
fn setup_connected_without_a_messenger_names_the_option() {
    let install = Install::new();
    let out = install.run(&[
        "setup",
        "--no-prompt",
        "--program",
        "connected",
        "--set",
        "microphone.device_name=filecap",
    ]);
    // 2: a command that failed (1 is reserved for checks that refused).
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        out.stderr.contains(
            "pass --set messaging.mqtt.host=<broker> or --set messaging.http.base_url=<url>"
        ),
        "{out:#?}"
    );
    assert!(!install.config_file().exists());
}
