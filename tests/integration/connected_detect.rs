//! Detection messages end to end: the real daemon on the ramp with the tiny model and
//! the connected program talking to a real mosquitto. Every model output that found
//! something becomes one message, under the output's own id, and reaches the broker in
//! upstream's `ModelOutput` shape; outputs that found nothing send nothing. The
//! summaries count the same detections per class.

use crate::connected_support;
use crate::messaging_support;
use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use connected_support::{metadata, mqtt_settings, received_on, set_deployment};
use connected_support::{setup_connected, stop, summaries, wait_for};
use messaging_support::{Broker, Subscriber};
use support::detection::TinyModel;
use support::feeder::Feeder;
use support::{Install, Notify};

/// The detection messages `sub` received, by their `id`.
fn detection_messages(sub: &Subscriber) -> BTreeMap<String, serde_json::Value> {
    received_on(sub, "acoupi")
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter(|v| v.get("name_model").is_some())
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_output_with_a_detection_reaches_the_broker_once_under_its_own_id() {
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, "acoupi").await;
    let install = Install::new();
    let tiny = TinyModel::write(&install);
    let mut settings = mqtt_settings(broker.port, 2);
    settings.extend(tiny.settings(false));
    setup_connected(&install, &settings);
    set_deployment(&install, "detect");
    let _feeder = Feeder::start(&install.fifo, 0);
    let notify = Notify::bind(install.root());
    let mut daemon = install.spawn_daemon("run", &notify);
    wait_for("two detection messages", Duration::from_secs(30), || {
        Some(detection_messages(&sub)).filter(|m| m.len() >= 2)
    })
    .await;
    assert!(stop(&mut daemon).success(), "{}", daemon.log_text());

    // What metadata.db holds after the stop: every output, with and without detections.
    let store = metadata(&install);
    let mut with_detection = BTreeMap::new();
    let mut without = BTreeSet::new();
    for recording in store.recordings_since(jiff::Timestamp::MIN).unwrap() {
        for output in store.model_outputs(recording.id).unwrap() {
            if output.detections.is_empty() {
                without.insert(output.id.to_string());
            } else {
                with_detection.insert(output.id.to_string(), (recording.clone(), output));
            }
        }
    }
    assert!(
        !without.is_empty(),
        "the ramp's quiet first file found nothing"
    );
    // The stop queues and delivers what the last outputs found.
    let got = wait_for("every detection message", Duration::from_secs(10), || {
        Some(detection_messages(&sub)).filter(|m| m.len() >= with_detection.len())
    })
    .await;
    let got_ids: BTreeSet<&String> = got.keys().collect();
    assert_eq!(
        got_ids,
        with_detection.keys().collect(),
        "one message per output with a detection, none for the {} without",
        without.len()
    );
    for (id, (recording, output)) in &with_detection {
        let m = &got[id];
        assert_eq!(m["name_model"], "tiny");
        assert_eq!(m["recording"]["id"], recording.id.to_string());
        assert_eq!(m["recording"]["deployment"]["name"], "detect");
        let tags: Vec<&str> = m["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["tags"][0]["tag"]["value"].as_str().unwrap())
            .collect();
        assert_eq!(tags.len(), output.detections.len(), "{m}");
        assert!(tags.iter().all(|t| *t == "loud"), "{m}");
    }

    // The summaries count the same detections, each in the interval its output was made.
    let summaries = summaries(&sub);
    let last_end: jiff::Timestamp = summaries.last().expect("a summary at the stop")
        ["timeinterval"]["endtime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let counted: u64 = summaries
        .iter()
        .filter_map(|s| s["detections"]["loud"]["count"].as_u64())
        .sum();
    let made: usize = with_detection
        .values()
        .filter(|(_, o)| o.created_on < last_end)
        .map(|(_, o)| o.detections.len())
        .sum();
    assert!(made > 0);
    assert_eq!(counted, made as u64, "{summaries:#?}");
}
