//! MQTT delivery and checks against a real mosquitto on loopback.

use crate::messaging_support;

use std::collections::HashSet;
use std::time::Duration;

use acoupi::messaging::config::{MqttConfig, Secret};
use acoupi::messaging::mqtt::{check_mqtt, MqttMessenger};
use acoupi::messaging::{CheckError, Messenger};
use acoupi::store::outbox::Order;
use jiff::{SignedDuration, Timestamp};
use messaging_support::{deliver_at, scratch_outbox, Broker, Proxy, Subscriber, PASSWORD, USER};

fn mqtt(port: u16) -> MqttConfig {
    MqttConfig {
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
        topic: "acoupi".into(),
        per_kind_subtopics: false,
        timeout: 2,
        use_tls: false,
        ca_file: None,
        keep_alive: 30,
    }
}

fn t0() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn after(s: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(s)
}

fn ids_in(received: &[(String, Vec<u8>, bool)], topic: &str) -> Vec<String> {
    received
        .iter()
        .filter(|(t, _, _)| t == topic)
        .map(|(_, p, _)| serde_json::from_slice::<serde_json::Value>(p).unwrap()["n"].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_published_with_qos1_and_status_is_retained_online() {
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, "acoupi/#").await;
    let (_dir, outbox) = scratch_outbox();
    let mut cfg = mqtt(broker.port);
    cfg.per_kind_subtopics = true;
    let messenger = MqttMessenger::start(&cfg, "dev-1").unwrap();
    for n in 0..5 {
        outbox
            .enqueue(
                "detection",
                &format!("{{\"n\":{n}}}"),
                t0() + SignedDuration::from_millis(n),
            )
            .unwrap();
    }
    outbox.enqueue("heartbeat", "{\"n\":99}", t0()).unwrap();
    let report = deliver_at(&outbox, &[&messenger], after(1)).await;
    assert_eq!((report.sent, report.deferred), (6, 0));
    let got = sub
        .wait_until(|r| {
            r.iter()
                .filter(|(t, _, _)| t.starts_with("acoupi/detection") || t == "acoupi/heartbeat")
                .count()
                == 6
        })
        .await;
    assert_eq!(ids_in(&got, "acoupi/detection"), ["0", "1", "2", "3", "4"]);
    assert_eq!(ids_in(&got, "acoupi/heartbeat"), ["99"]);
    assert!(got
        .iter()
        .any(|(t, p, _)| t == "acoupi/status" && p == b"online"));
    // A late subscriber still learns the status: it is retained.
    let late = Subscriber::start(broker.port, "acoupi/status").await;
    let status = late.wait_until(|r| !r.is_empty()).await;
    assert_eq!(
        (status[0].1.as_slice(), status[0].2),
        (&b"online"[..], true)
    );
    assert_eq!(outbox.stats().unwrap().sent, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_device_leaves_retained_offline_last_will() {
    let broker = Broker::start();
    let messenger = MqttMessenger::start(&mqtt(broker.port), "dev-2").unwrap();
    let sub = Subscriber::start(broker.port, "acoupi/status").await;
    sub.wait_until(|r| r.iter().any(|(_, p, _)| p == b"online"))
        .await;
    // Dropping without close() cuts the TCP connection: the broker publishes the will.
    drop(messenger);
    sub.wait_until(|r| r.iter().any(|(_, p, _)| p == b"offline"))
        .await;
    let late = Subscriber::start(broker.port, "acoupi/status").await;
    let status = late.wait_until(|r| !r.is_empty()).await;
    assert_eq!(
        (status[0].1.as_slice(), status[0].2),
        (&b"offline"[..], true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_is_accepted_and_a_wrong_one_is_reported_as_rejected() {
    let broker = Broker::start();
    let mut cfg = mqtt(broker.auth_port);
    cfg.username = Some(USER.into());
    cfg.password = Some(Secret::new(PASSWORD));
    check_mqtt(&cfg, "dev-3", Duration::from_secs(5))
        .await
        .unwrap();
    let messenger = MqttMessenger::start(&cfg, "dev-3").unwrap();
    let (_dir, outbox) = scratch_outbox();
    outbox.enqueue("detection", "{\"n\":1}", t0()).unwrap();
    let report = deliver_at(&outbox, &[&messenger], t0()).await;
    assert_eq!(report.sent, 1);

    cfg.password = Some(Secret::new("wrong"));
    let err = check_mqtt(&cfg, "dev-3", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, CheckError::Authentication { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        // mosquitto answers a wrong password with "not authorized" (CONNACK code 5).
        format!(
            "authentication rejected by 127.0.0.1:{}: not authorized",
            broker.auth_port
        )
    );
    cfg.username = None;
    cfg.password = None;
    let err = check_mqtt(&cfg, "dev-3", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, CheckError::Authentication { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_works_with_the_right_ca_and_a_wrong_ca_is_a_tls_error() {
    let broker = Broker::start();
    let mut cfg = mqtt(broker.tls_port);
    cfg.use_tls = true;
    cfg.ca_file = Some(broker.ca());
    check_mqtt(&cfg, "dev-4", Duration::from_secs(5))
        .await
        .unwrap();
    let messenger = MqttMessenger::start(&cfg, "dev-4").unwrap();
    let (_dir, outbox) = scratch_outbox();
    outbox.enqueue("detection", "{\"n\":1}", t0()).unwrap();
    let report = deliver_at(&outbox, &[&messenger], t0()).await;
    assert_eq!(report.sent, 1);

    cfg.ca_file = Some(broker.other_ca());
    let err = check_mqtt(&cfg, "dev-4", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, CheckError::Tls { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "tls handshake with 127.0.0.1:{} failed: server certificate not accepted (UnknownIssuer): no CA in {} signed it, check ca_file",
            broker.tls_port,
            broker.other_ca().display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_and_unknown_host_are_reported_distinctly() {
    let port = messaging_support::free_port();
    let err = check_mqtt(&mqtt(port), "dev-5", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("connection refused by 127.0.0.1:{port}: check that the server runs and the port is right")
    );
    let mut cfg = mqtt(1883);
    cfg.host = "no-such-broker.invalid".into();
    let err = check_mqtt(&cfg, "dev-5", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "name resolution failed for no-such-broker.invalid: check the host name and the DNS settings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_no_message() {
    let mut broker = Broker::start();
    let (_dir, outbox) = scratch_outbox();
    let messenger = MqttMessenger::start(&mqtt(broker.port), "dev-6").unwrap();
    let messengers = [&messenger as &dyn Messenger];
    for n in 0..10 {
        outbox
            .enqueue("detection", &format!("{{\"n\":{n}}}"), t0())
            .unwrap();
    }
    assert_eq!(deliver_at(&outbox, &messengers, t0()).await.sent, 10);

    broker.kill();
    for n in 10..460 {
        outbox
            .enqueue("detection", &format!("{{\"n\":{n}}}"), after(1))
            .unwrap();
    }
    let down = deliver_at(&outbox, &messengers, after(1)).await;
    // One page fails, then the run stops instead of waiting on every page.
    assert_eq!((down.sent, down.deferred), (0, 200));
    assert_eq!(outbox.stats().unwrap().queued, 450);
    assert_eq!(
        outbox
            .due(1000, Order::OldestFirst, after(2))
            .unwrap()
            .len(),
        250,
        "the 200 tried wait for their back-off; the others were not tried"
    );

    broker.restart();
    let sub = Subscriber::start(broker.port, "acoupi").await;
    // The messenger reconnects on its own back-off (1 s doubling): the daemon's next
    // delivery run after that is what delivers, so wait for the reconnection first.
    let waited = std::time::Instant::now();
    while !messenger.is_connected() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no reconnection within 60 s of the broker's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = deliver_at(&outbox, &messengers, after(3600)).await;
    assert_eq!((back.sent, back.deferred), (450, 0));
    let got = sub.wait_until(|r| r.len() >= 450).await;
    let ids: HashSet<String> = ids_in(&got, "acoupi").into_iter().collect();
    let expected: HashSet<String> = (10..460).map(|n| n.to_string()).collect();
    assert_eq!(
        ids, expected,
        "every message queued during the outage arrives"
    );
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.queued, stats.sent, stats.duplicates), (0, 460, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_lost_for_a_while_are_recorded_late_and_duplicates_counted() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port);
    let sub = Subscriber::start(broker.port, "acoupi").await;
    let (_dir, outbox) = scratch_outbox();
    let mut cfg = mqtt(proxy.port);
    cfg.timeout = 1;
    let messenger = MqttMessenger::start(&cfg, "dev-7").unwrap();
    let messengers = [&messenger as &dyn Messenger];
    // Let the connection (and its `online` status publish) settle before losing acks.
    outbox.enqueue("detection", "{\"n\":0}", t0()).unwrap();
    assert_eq!(deliver_at(&outbox, &messengers, t0()).await.sent, 1);

    proxy.pause();
    outbox.enqueue("detection", "{\"n\":1}", t0()).unwrap();
    let first = deliver_at(&outbox, &messengers, after(1)).await;
    assert_eq!(first.deferred, 1, "no PUBACK within the timeout");
    // Retried while the acknowledgements are still held back: a second copy goes out.
    let second = deliver_at(&outbox, &messengers, after(3600)).await;
    assert_eq!(second.deferred, 1);
    proxy.resume();
    sub.wait_until(|r| ids_in(r, "acoupi").iter().filter(|n| *n == "1").count() == 2)
        .await;
    // Both PUBACKs arrive late; the driver may need a moment to see them.
    let (mut late, mut duplicates) = (0, 0);
    for _ in 0..500 {
        let run = deliver_at(&outbox, &messengers, after(3601)).await;
        assert_eq!(
            run.sent + run.deferred,
            0,
            "the message is not due again yet"
        );
        late += run.late_acks;
        duplicates += run.duplicates;
        if late == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((late, duplicates), (2, 1));
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.queued, stats.sent, stats.duplicates), (0, 2, 1));
    assert!(
        outbox
            .due(10, Order::OldestFirst, after(90_000))
            .unwrap()
            .is_empty(),
        "not sent a third time"
    );
}
