//! Reloading the connected program while it runs: the real `acoupi run` in user mode,
//! the real alsa-lib reading a FIFO through the `file` plugin, two real mosquittos, and
//! `acoupi config set`, which signals the running recorder.
//!
//! A reload restarts the messaging service only when the `messaging` section changed.
//! The test moves the recorder from broker A to broker B at the moment A stops answering
//! (the usual reason to move): the old session must end cleanly, the new one start, no
//! queued message may be lost, the summaries must go on without a hole, and recording
//! must not wait for the old broker. An unchanged section keeps the session; an invalid
//! one is refused and the running service goes on.

use crate::connected_support;
use crate::messaging_support;
use crate::support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use acoupi::store::outbox::Outbox;
use connected_support::{assert_summaries_contiguous, messages_db, metadata, outbox_messages};
use connected_support::{received_on, set_deployment, setup_connected, stop, summaries, wait_for};
use jiff::Timestamp;
use messaging_support::{Broker, Proxy, Subscriber};
use nix::sys::signal::Signal;
use support::feeder::Feeder;
use support::{Daemon, Install, Notify};

/// The summary interval (the smallest the configuration allows).
const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// `messaging.mqtt.timeout`: how long a publish waits for its `PUBACK`.
const MQTT_TIMEOUT_S: u64 = 2;
/// The longest stretch without audio a capture restart may leave (measured: a few
/// ms). Waiting for the old broker's `PUBACK`s inside it would take `MQTT_TIMEOUT_S`.
const MAX_AUDIO_HOLE: Duration = Duration::from_millis(1000);

/// Waits for `RELOADING=1` after `after`, then `READY=1` after that.
fn reloaded(notify: &Notify, after: Instant, daemon: &Daemon) {
    let limit = Duration::from_secs(15);
    let (reloading, _) = notify
        .wait_for(after, limit, |l| l == "RELOADING=1")
        .unwrap_or_else(|| panic!("no RELOADING=1; log:\n{}", daemon.log_text()));
    notify.expect_ready(reloading, limit, daemon);
}

/// Summaries queued after `t`: their interval ends later.
fn summaries_ending_after(sub: &Subscriber, t: Timestamp) -> Vec<serde_json::Value> {
    summaries(sub)
        .into_iter()
        .filter(|s| {
            s["timeinterval"]["endtime"]
                .as_str()
                .and_then(|e| e.parse::<Timestamp>().ok())
                .is_some_and(|e| e > t)
        })
        .collect()
}

/// The MQTT client ids that connected to `broker`, other than the test's subscribers.
fn recorder_sessions(broker: &Broker) -> Vec<String> {
    broker
        .log()
        .lines()
        .filter_map(|l| {
            l.split_once("New client connected from ")?
                .1
                .split_once(" as ")
        })
        .filter_map(|(_, rest)| rest.split_once(' ').map(|(id, _)| id.to_owned()))
        .filter(|id| !id.starts_with("sub-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_another_broker_on_reload_loses_nothing_and_keeps_recording() {
    let broker_a = Broker::start();
    let broker_b = Broker::start();
    // The recorder reaches A through a proxy, so that A can stop answering.
    let proxy_a = Proxy::start(broker_a.port);
    let sub_a = Subscriber::start(broker_a.port, "acoupi/#").await;
    let sub_b = Subscriber::start(broker_b.port, "acoupi/#").await;
    let install = Install::new();
    setup_connected(
        &install,
        &[
            "messaging.mqtt.host=127.0.0.1".into(),
            format!("messaging.mqtt.port={}", proxy_a.port),
            format!("messaging.mqtt.timeout={MQTT_TIMEOUT_S}"),
            "messaging.message_send_interval=1".into(),
            format!("messaging.summary_interval={}", SUMMARY_EVERY.as_secs()),
        ],
    );
    set_deployment(&install, "reload");
    let started = Timestamp::now();
    let feeder = Feeder::reopening(&install.fifo, 0);
    let notify = Notify::bind(install.root());
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, Duration::from_secs(10), &daemon);
    let status = install.control_status();
    assert_eq!(status["pid"], daemon.child.id(), "{status:#}");

    // A: `online`, then a summary with recordings in it.
    let first = wait_for("a summary on A", SUMMARY_EVERY * 3, || {
        summaries(&sub_a).into_iter().next()
    })
    .await;
    assert!(
        first["recordings"]["count"].as_u64().unwrap() >= 1,
        "{first}"
    );
    assert_eq!(received_on(&sub_a, "acoupi/status"), ["online"]);

    // An unchanged messaging section keeps the service and its MQTT session.
    let t = Instant::now();
    let out = install.ok(&["config", "set", "retention.min_free_space_mb", "2"]);
    assert!(out.stdout.contains("reloaded running recorder"), "{out:#?}");
    reloaded(&notify, t, &daemon);
    let log = daemon.log_text();
    assert_eq!(log.matches("messaging started").count(), 1, "{log}");
    assert_eq!(log.matches("messaging stopped").count(), 0, "{log}");

    // A stops answering (nothing it sends reaches the recorder), and the recorder is
    // moved to B: the old service's last summary gets no `PUBACK` and stays queued.
    proxy_a.pause();
    let t = Instant::now();
    let out = install.ok(&[
        "config",
        "set",
        "messaging.mqtt.port",
        &broker_b.port.to_string(),
    ]);
    assert!(out.stdout.contains("reloaded running recorder"), "{out:#?}");
    reloaded(&notify, t, &daemon);
    let switched = Timestamp::now();
    let log = daemon.log_text();
    assert_eq!(log.matches("messaging stopped").count(), 1, "{log}");
    assert_eq!(log.matches("messaging started").count(), 2, "{log}");

    // A: the old session ended with a DISCONNECT after a retained `offline`, which is
    // what a newcomer to A sees now.
    let sessions = recorder_sessions(&broker_a);
    assert_eq!(sessions.len(), 1, "{}", broker_a.log());
    let id = &sessions[0];
    assert!(
        broker_a
            .log()
            .contains(&format!("Client {id} disconnected.")),
        "no clean disconnect:\n{}",
        broker_a.log()
    );
    let newcomer = Subscriber::start(broker_a.port, "acoupi/status").await;
    let retained = newcomer.wait_until(|got| !got.is_empty()).await;
    assert_eq!(
        retained,
        [("acoupi/status".to_owned(), b"offline".to_vec(), true)]
    );

    // B: `online`, then summaries from the new service.
    let from_b = wait_for(
        "a summary on B from the new service",
        SUMMARY_EVERY * 2,
        || summaries_ending_after(&sub_b, switched).into_iter().next(),
    )
    .await;
    assert!(
        from_b["recordings"]["count"].as_u64().unwrap() >= 1,
        "{from_b}"
    );
    assert_eq!(received_on(&sub_b, "acoupi/status"), ["online"]);
    assert_eq!(recorder_sessions(&broker_b), std::slice::from_ref(id));
    // Exactly one online/offline pair on A: the unchanged reload left the session alone.
    assert_eq!(received_on(&sub_a, "acoupi/status"), ["online", "offline"]);

    // An invalid messaging section (a port out of range), written by hand: refused, and
    // the running service goes on delivering to B.
    let config = std::fs::read_to_string(install.config_file()).unwrap();
    let broken = config.replace(&format!("port: {},", broker_b.port), "port: 70000,");
    assert_ne!(broken, config, "no port line in:\n{config}");
    std::fs::write(install.config_file(), broken).unwrap();
    let t = Instant::now();
    daemon.signal(Signal::SIGHUP);
    reloaded(&notify, t, &daemon);
    let refused = Timestamp::now();
    let log = daemon.log_text();
    assert_eq!(log.matches("reload refused").count(), 1, "{log}");
    assert_eq!(log.matches("messaging started").count(), 2, "{log}");
    wait_for(
        "a summary on B after the refused reload",
        SUMMARY_EVERY * 2,
        || summaries_ending_after(&sub_b, refused).into_iter().next(),
    )
    .await;
    assert_eq!(received_on(&sub_b, "acoupi/status"), ["online"]);

    // Still the same process, never restarted; then a clean stop.
    let status = install.control_status();
    assert_eq!(status["pid"], daemon.child.id(), "{status:#}");
    assert_eq!(notify.times_of("RELOADING=1").len(), 3);
    assert_eq!(notify.times_of("READY=1").len(), 4);
    let stopped = stop(&mut daemon);
    drop(feeder);
    assert!(stopped.success(), "exit {stopped:?}\n{}", daemon.log_text());

    // Nothing lost: every message in the outbox reached A or B, and none is queued.
    let outbox = Outbox::open(messages_db(&install)).unwrap();
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.queued, 0, "{stats:?}\n{}", daemon.log_text());
    let messages = outbox_messages(&messages_db(&install));
    let received: HashSet<String> = wait_for("every message", Duration::from_secs(10), || {
        let got: HashSet<String> = received_on(&sub_a, "acoupi")
            .into_iter()
            .chain(received_on(&sub_b, "acoupi"))
            .collect();
        messages
            .iter()
            .all(|(_, content)| got.contains(content))
            .then_some(got)
    })
    .await;
    let queued: HashSet<String> = messages.into_iter().map(|(_, c)| c).collect();
    assert_eq!(
        received, queued,
        "something other than the outbox reached a broker"
    );
    assert_eq!(
        received_on(&sub_b, "acoupi/status"),
        ["online", "offline"],
        "B's session ended at the stop"
    );

    // The summaries, from both brokers, cover the run without a hole at the switch.
    let all: Vec<serde_json::Value> = summaries(&sub_a)
        .into_iter()
        .chain(summaries(&sub_b))
        .collect();
    let intervals = assert_summaries_contiguous(&all);
    let (first, last) = (intervals[0].0, intervals[intervals.len() - 1].1);
    assert!(
        first < switched && switched < last,
        "the switch is not inside the summarised stretch: {intervals:#?}"
    );

    // Recording went on through all three reloads: files after the switch, no gap, and
    // no capture pause longer than a restart takes.
    let store = metadata(&install);
    let rows = store.recordings_since(started).unwrap();
    assert!(
        rows.iter().any(|r| r.datetime > refused),
        "no recording after the last reload"
    );
    let gaps = store.gaps_since(started).unwrap();
    assert!(gaps.is_empty(), "{gaps:?}");
    let longest = rows
        .windows(2)
        .map(|w| {
            let end = w[0]
                .datetime
                .checked_add(jiff::SignedDuration::from_secs_f64(w[0].duration_s))
                .unwrap();
            let hole = w[1].datetime.duration_since(end);
            (hole, w[0].datetime, w[1].datetime)
        })
        .max()
        .unwrap();
    assert!(
        longest.0 < jiff::SignedDuration::try_from(MAX_AUDIO_HOLE).unwrap(),
        "audio stopped for {:?} between the files of {} and {}",
        longest.0,
        longest.1,
        longest.2
    );
    eprintln!(
        "{} messages (A received {}, B {}), {} summaries, {} recordings, longest audio hole {:?}",
        queued.len(),
        received_on(&sub_a, "acoupi").len(),
        received_on(&sub_b, "acoupi").len(),
        intervals.len(),
        rows.len(),
        longest.0
    );
}
