//! Detection messages: the connected program's service turns each model output that
//! found something into a message in the outbox.
//!
//! The outputs are read from metadata.db in the order they were stored, from where the
//! last run stopped. That place (`message_source` "model_output" in messages.db) moves in
//! the same transaction that queues the messages, and each message takes its output's
//! id, so a crash at any point neither loses an output nor queues one twice. The
//! recorder knows nothing of this: it only stores outputs.
//!
//! Each call looks back [`LOOKBACK`] before that place: an output stored late (by the
//! worker a reload replaced, finishing its queue beside the new one) can carry an
//! earlier time than one already queued. Looking back costs a re-read; the ids keep
//! anything from being queued twice.
//!
//! A device that first runs the connected program starts from that moment: the outputs
//! of the months before are in metadata.db, not resent.

use jiff::Timestamp;
use uuid::Uuid;

use crate::messaging::detection::detection_payload;
use crate::store::metadata::{MetadataStore, OutputCursor};
use crate::store::outbox::{Outbox, SourcedMessage};

/// The source name in messages.db.
const SOURCE: &str = "model_output";
/// Outputs read per query: bounds memory however far behind the messages are.
const BATCH: usize = 200;
/// How far before the last queued output each call reads again.
const LOOKBACK: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);
/// Batches per call: a backlog is worked off over several delivery ticks, so one call
/// never holds the messaging thread for long.
const MAX_BATCHES: usize = 10;

/// Queues a `detection` message for every model output with a detection stored since
/// the last call. Returns how many were queued.
pub(super) fn queue_detections(metadata: &MetadataStore, outbox: &Outbox) -> anyhow::Result<usize> {
    let mut cursor = match outbox.source_position(SOURCE)? {
        Some(position) => parse_position(&position).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: message_source {SOURCE:?} holds {position:?}, not a position; delete that row to restart detection messages from now",
                outbox.path().display()
            )
        })?,
        None => {
            let start = OutputCursor {
                created_on: Timestamp::now(),
                id: Uuid::nil(),
            };
            outbox.enqueue_from_source(SOURCE, &format_position(&start), "detection", &[])?;
            start
        }
    };
    let mut queued = 0;
    let mut from = OutputCursor {
        created_on: cursor
            .created_on
            .checked_sub(LOOKBACK)
            .unwrap_or(Timestamp::MIN),
        id: Uuid::nil(),
    };
    for _ in 0..MAX_BATCHES {
        let outputs = metadata.model_outputs_after(&from, BATCH)?;
        let Some(last) = outputs.last() else {
            break;
        };
        let next = OutputCursor {
            created_on: last.created_on,
            id: last.id,
        };
        let deployments = metadata.deployments()?;
        let mut messages = Vec::new();
        for output in outputs.iter().filter(|o| !o.detections.is_empty()) {
            // A recording deleted since (retention) takes its outputs with it; one
            // without a row here is gone, and so is its message.
            let Some(recording) = metadata.recording(output.recording_id)? else {
                continue;
            };
            let Some(deployment) = deployments.iter().find(|d| d.id == recording.deployment_id)
            else {
                continue;
            };
            messages.push(SourcedMessage {
                id: output.id,
                content: detection_payload(output, &recording, deployment),
                created_on: output.created_on,
            });
        }
        // The position never moves back (a batch re-read inside the look-back).
        cursor = cursor.max(next);
        queued += outbox.enqueue_from_source(
            SOURCE,
            &format_position(&cursor),
            "detection",
            &messages,
        )?;
        from = next;
        if outputs.len() < BATCH {
            break;
        }
    }
    Ok(queued)
}

/// `<created_on>|<id>`: RFC 3339 and the hyphenated UUID.
fn format_position(cursor: &OutputCursor) -> String {
    format!("{}|{}", cursor.created_on, cursor.id)
}

fn parse_position(text: &str) -> Option<OutputCursor> {
    let (created_on, id) = text.split_once('|')?;
    Some(OutputCursor {
        created_on: created_on.parse().ok()?,
        id: id.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::{DetectionRow, ModelOutput, PredictedTag, PredictionType};
    use crate::store::NewRecording;

    /// metadata.db with one recording, and an empty outbox, in `dir`.
    fn stores(dir: &std::path::Path) -> (MetadataStore, Outbox, Uuid) {
        let mut metadata = MetadataStore::open(&dir.join("metadata.db")).unwrap();
        let deployment = metadata
            .start_deployment(
                "hedge",
                Some(51.5),
                Some(-0.1),
                "2026-12-01T00:00:00Z".parse().unwrap(),
            )
            .unwrap();
        let recording = NewRecording {
            id: Uuid::new_v4(),
            path: dir.join("r.wav"),
            datetime: "2026-12-06T00:00:00Z".parse().unwrap(),
            duration_s: 1.0,
            samplerate_hz: 8000,
            audio_channels: 1,
            deployment_id: deployment.id,
            clock_synced: true,
            time_expansion: 1.0,
            bit_depth: 16,
            frames: 8000,
        };
        metadata.insert_recording(&recording).unwrap();
        let outbox = Outbox::open(dir.join("messages.db")).unwrap();
        (metadata, outbox, recording.id)
    }

    fn output(recording_id: Uuid, created_on: Timestamp, found: &[&str]) -> ModelOutput {
        ModelOutput {
            id: Uuid::new_v4(),
            model_name: "tiny".into(),
            recording_id,
            created_on,
            detections: found
                .iter()
                .map(|class| DetectionRow {
                    id: Uuid::new_v4(),
                    prediction_type: PredictionType::Presence,
                    location: None,
                    detection_score: 0.9,
                    tags: vec![PredictedTag {
                        key: "class".into(),
                        value: (*class).into(),
                        confidence_score: 0.9,
                    }],
                })
                .collect(),
        }
    }

    fn queued(outbox: &Outbox) -> Vec<crate::store::outbox::Message> {
        let oldest_first = crate::store::outbox::Order::OldestFirst;
        outbox.due(100, oldest_first, Timestamp::MAX).unwrap()
    }

    #[test]
    fn outputs_with_detections_are_queued_once_under_their_own_ids_late_ones_too() {
        let dir = tempfile::tempdir().unwrap();
        let (mut metadata, outbox, recording) = stores(dir.path());
        // Before the connected program first ran: not resent.
        let old = output(
            recording,
            "2026-12-01T00:00:00Z".parse().unwrap(),
            &["loud"],
        );
        metadata.insert_model_output(&old).unwrap();
        assert_eq!(queue_detections(&metadata, &outbox).unwrap(), 0);

        let now = Timestamp::now();
        let found = output(recording, now, &["loud"]);
        let nothing = output(recording, now, &[]);
        metadata.insert_model_output(&found).unwrap();
        metadata.insert_model_output(&nothing).unwrap();
        assert_eq!(queue_detections(&metadata, &outbox).unwrap(), 1);
        assert_eq!(
            queue_detections(&metadata, &outbox).unwrap(),
            0,
            "queued once"
        );
        // Stored after those but stamped earlier (a replaced worker's last output).
        let late = output(
            recording,
            now - jiff::SignedDuration::from_secs(30),
            &["loud"],
        );
        metadata.insert_model_output(&late).unwrap();
        assert_eq!(queue_detections(&metadata, &outbox).unwrap(), 1);
        let ids: Vec<Uuid> = queued(&outbox).iter().map(|m| m.id).collect();
        assert_eq!(ids, [late.id, found.id]);

        // The position survives a restart of the service (a new outbox connection).
        drop(outbox);
        let outbox = Outbox::open(dir.path().join("messages.db")).unwrap();
        assert_eq!(queue_detections(&metadata, &outbox).unwrap(), 0);
        let due = queued(&outbox);
        let v: serde_json::Value = serde_json::from_slice(&due[1].content).unwrap();
        assert_eq!(v["id"], found.id.to_string());
        assert_eq!(v["recording"]["deployment"]["name"], "hedge");
        assert_eq!(v["detections"][0]["tags"][0]["tag"]["value"], "loud");
    }

    #[test]
    fn a_position_reads_back_as_written() {
        let cursor = OutputCursor {
            created_on: "2026-12-06T01:02:03.456789Z".parse().unwrap(),
            id: Uuid::from_u128(42),
        };
        assert_eq!(parse_position(&format_position(&cursor)), Some(cursor));
        assert_eq!(parse_position("yesterday"), None);
    }
}
