//! Model outputs: upstream's `model_output`, `detection` and `predicted_tag` rows, written
//! as upstream's SqliteStore writes them so its `get_model_outputs` reads ours.
//!
//! The tables are upstream's (migration 1), so no migration of ours is needed: one
//! model output is one transaction (its detections and their tags, tags in insert
//! order), refused when its recording is not stored, as upstream refuses it. A
//! detection's location is four nullable columns; upstream reads it as no location when
//! any of them is NULL, so a stored location is always whole.

use jiff::Timestamp;
use rusqlite::{params, TransactionBehavior};
use uuid::Uuid;

use super::{collect, sqlite_err, ts, MetadataStore};
use crate::store::db::{parse_timestamp, to_micros};
use crate::store::metadata_types::invalid;
use crate::store::StoreError;

/// What a detection describes (upstream's `prediction_type` CHECK constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionType {
    /// Present somewhere in the recording.
    Presence,
    /// Present over a time interval.
    Sequence,
    /// A time-frequency box.
    Event,
}

impl PredictionType {
    /// The word upstream stores.
    pub fn as_str(self) -> &'static str {
        match self {
            PredictionType::Presence => "presence",
            PredictionType::Sequence => "sequence",
            PredictionType::Event => "event",
        }
    }

    fn parse(word: &str) -> Option<PredictionType> {
        [
            PredictionType::Presence,
            PredictionType::Sequence,
            PredictionType::Event,
        ]
        .into_iter()
        .find(|p| p.as_str() == word)
    }
}

/// Where a detection lies: upstream's bounding box `[start_time, low_freq, end_time,
/// high_freq]` in seconds from the recording's start and in Hz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    /// Start, seconds.
    pub start_time_s: f64,
    /// Lowest frequency, Hz.
    pub low_freq_hz: f64,
    /// End, seconds (after the start).
    pub end_time_s: f64,
    /// Highest frequency, Hz (above the lowest).
    pub high_freq_hz: f64,
}

/// One tag of a detection: upstream's `{"tag": {"key", "value"}, "confidence_score"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedTag {
    /// The tag's key, e.g. `species`.
    pub key: String,
    /// The tag's value, e.g. a species name.
    pub value: String,
    /// The model's confidence in this tag, 0 to 1.
    pub confidence_score: f64,
}

/// One detection of a model output.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionRow {
    /// The detection's id.
    pub id: Uuid,
    /// What it describes.
    pub prediction_type: PredictionType,
    /// Where it lies, if the model says.
    pub location: Option<BoundingBox>,
    /// The model's score for the detection, 0 to 1.
    pub detection_score: f64,
    /// Its tags, in the model's order.
    pub tags: Vec<PredictedTag>,
}

/// A place in the stream of model outputs, in the order they were stored: the last
/// output the connected program turned into a message. Ordered as the outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutputCursor {
    /// That output's `created_on`.
    pub created_on: Timestamp,
    /// That output's id (ties on `created_on` go by id).
    pub id: Uuid,
}

/// The scores of the detections carrying one tag value over an interval: what
/// upstream's statistics summary reports per tag value.
#[derive(Debug, Clone, PartialEq)]
pub struct TagScores {
    /// The tag value (a class, a species).
    pub value: String,
    /// Detections carrying it.
    pub count: u64,
    /// Their mean detection score.
    pub mean: f64,
    /// Their lowest detection score.
    pub min: f64,
    /// Their highest detection score.
    pub max: f64,
}

/// One run of a model over one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    /// The output's id.
    pub id: Uuid,
    /// The model's name (upstream: `BirdNET`, `BatDetect2`, …).
    pub model_name: String,
    /// The recording the model ran on.
    pub recording_id: Uuid,
    /// When the model ran (stored to the microsecond).
    pub created_on: Timestamp,
    /// What it found; empty when it found nothing.
    pub detections: Vec<DetectionRow>,
}

fn check_output(o: &ModelOutput) -> Result<(), StoreError> {
    if o.model_name.trim().is_empty() {
        return Err(invalid("model_name", "is empty".into()));
    }
    let unit = |field, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(invalid(field, format!("{v} is not between 0 and 1")))
        }
    };
    for d in &o.detections {
        unit("detection_score", d.detection_score)?;
        for t in &d.tags {
            unit("confidence_score", t.confidence_score)?;
        }
        if let Some(b) = d.location {
            let finite = [b.start_time_s, b.end_time_s, b.low_freq_hz, b.high_freq_hz]
                .iter()
                .all(|v| v.is_finite());
            if !finite || b.end_time_s <= b.start_time_s || b.high_freq_hz <= b.low_freq_hz {
                return Err(invalid(
                    "location",
                    format!("{b:?} needs end after start and high above low frequency"),
                ));
            }
        }
    }
    Ok(())
}

impl MetadataStore {
    /// Stores a model output with its detections and tags in one transaction. The
    /// recording must be stored. Idempotent by id: a replay stores nothing twice.
    pub fn insert_model_output(&mut self, output: &ModelOutput) -> Result<(), StoreError> {
        check_output(output)?;
        let err = |op| sqlite_err(&self.path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("locking"))?;
        let exists = |sql: &str, id: &Uuid| -> Result<bool, StoreError> {
            tx.query_row(sql, [id.as_bytes()], |r| r.get(0))
                .map_err(err("reading model outputs in"))
        };
        if exists(
            "SELECT EXISTS (SELECT 1 FROM model_output WHERE id = ?1)",
            &output.id,
        )? {
            return Ok(());
        }
        if !exists(
            "SELECT EXISTS (SELECT 1 FROM recording WHERE id = ?1)",
            &output.recording_id,
        )? {
            return Err(StoreError::UnknownRecording {
                id: output.recording_id,
            });
        }
        tx.execute(
            "INSERT INTO model_output (id, model_name, recording_id, created_on)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                output.id.as_bytes(),
                output.model_name,
                output.recording_id.as_bytes(),
                ts(to_micros(output.created_on)),
            ],
        )
        .map_err(err("storing a model output in"))?;
        for d in &output.detections {
            let b = d.location;
            tx.execute(
                "INSERT INTO detection (id, prediction_type, start_time_s, end_time_s,
                     low_freq_hz, high_freq_hz, detection_score, model_output_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    d.id.as_bytes(),
                    d.prediction_type.as_str(),
                    b.map(|b| b.start_time_s),
                    b.map(|b| b.end_time_s),
                    b.map(|b| b.low_freq_hz),
                    b.map(|b| b.high_freq_hz),
                    d.detection_score,
                    output.id.as_bytes(),
                ],
            )
            .map_err(err("storing a detection in"))?;
            for t in &d.tags {
                tx.execute(
                    "INSERT INTO predicted_tag (key, value, confidence_score, detection_id)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![t.key, t.value, t.confidence_score, d.id.as_bytes()],
                )
                .map_err(err("storing a predicted tag in"))?;
            }
        }
        tx.commit().map_err(err("committing a model output to"))
    }

    /// The model outputs of a recording, oldest first, with their detections and tags
    /// (tags in insert order, as upstream reads them).
    pub fn model_outputs(&self, recording_id: Uuid) -> Result<Vec<ModelOutput>, StoreError> {
        self.read_outputs(
            "SELECT id, model_name, recording_id, created_on FROM model_output
             WHERE recording_id = ?1 ORDER BY created_on, id",
            params![recording_id.as_bytes()],
        )
    }

    /// Up to `limit` model outputs stored after `cursor` (later `created_on`, or the
    /// same and a greater id), oldest first, each with its detections: what the connected
    /// program has not turned into messages yet.
    pub fn model_outputs_after(
        &self,
        cursor: &OutputCursor,
        limit: usize,
    ) -> Result<Vec<ModelOutput>, StoreError> {
        let created = ts(to_micros(cursor.created_on));
        self.read_outputs(
            "SELECT id, model_name, recording_id, created_on FROM model_output
             WHERE created_on > ?1 OR (created_on = ?1 AND id > ?2)
             ORDER BY created_on, id LIMIT ?3",
            params![
                created,
                cursor.id.as_bytes(),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
        )
    }

    /// Per tag value, the scores of the detections of the model outputs created in
    /// `[start, end)`, by tag value.
    pub fn tag_scores_between(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<TagScores>, StoreError> {
        collect(
            &self.conn,
            "SELECT t.value, count(*), avg(d.detection_score), min(d.detection_score),
                    max(d.detection_score)
             FROM model_output m
             JOIN detection d ON d.model_output_id = m.id
             JOIN predicted_tag t ON t.detection_id = d.id
             WHERE m.created_on >= ?1 AND m.created_on < ?2
             GROUP BY t.value ORDER BY t.value",
            params![ts(to_micros(start)), ts(to_micros(end))],
            |r| {
                Ok(TagScores {
                    value: r.get(0)?,
                    count: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    mean: r.get(2)?,
                    min: r.get(3)?,
                    max: r.get(4)?,
                })
            },
        )
        .map_err(sqlite_err(&self.path, "summarising detections in"))
    }

    /// The model outputs `sql` selects (`id, model_name, recording_id, created_on`),
    /// each with its detections and tags.
    fn read_outputs(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<ModelOutput>, StoreError> {
        let err = |op| sqlite_err(&self.path, op);
        let bad = |column: &'static str, value: String| StoreError::BadValue {
            path: self.path.clone(),
            table: "model_output",
            column,
            value,
        };
        let outputs = collect(&self.conn, sql, params, |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(err("reading model outputs in"))?;
        let mut result = Vec::new();
        for (id, model_name, recording_id, created_on) in outputs {
            let id = uuid(&id).ok_or_else(|| bad("id", format!("{id:?}")))?;
            let recording_id = uuid(&recording_id)
                .ok_or_else(|| bad("recording_id", format!("{recording_id:?}")))?;
            let created_on =
                parse_timestamp(&created_on).ok_or_else(|| bad("created_on", created_on))?;
            let mut detections = Vec::new();
            let rows = collect(
                &self.conn,
                "SELECT id, prediction_type, start_time_s, end_time_s, low_freq_hz,
                        high_freq_hz, detection_score
                 FROM detection WHERE model_output_id = ?1 ORDER BY rowid",
                [id.as_bytes()],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        [
                            r.get::<_, Option<f64>>(2)?,
                            r.get::<_, Option<f64>>(3)?,
                            r.get::<_, Option<f64>>(4)?,
                            r.get::<_, Option<f64>>(5)?,
                        ],
                        r.get::<_, f64>(6)?,
                    ))
                },
            )
            .map_err(err("reading detections in"))?;
            for (did, kind, [start, end, low, high], score) in rows {
                let did = uuid(&did).ok_or_else(|| bad("detection.id", format!("{did:?}")))?;
                let prediction_type = PredictionType::parse(&kind)
                    .ok_or_else(|| bad("detection.prediction_type", kind))?;
                let location = match (start, end, low, high) {
                    (Some(s), Some(e), Some(l), Some(h)) => Some(BoundingBox {
                        start_time_s: s,
                        low_freq_hz: l,
                        end_time_s: e,
                        high_freq_hz: h,
                    }),
                    _ => None,
                };
                let tags = collect(
                    &self.conn,
                    "SELECT key, value, confidence_score FROM predicted_tag
                     WHERE detection_id = ?1 ORDER BY id",
                    [did.as_bytes()],
                    |r| {
                        Ok(PredictedTag {
                            key: r.get(0)?,
                            value: r.get(1)?,
                            confidence_score: r.get(2)?,
                        })
                    },
                )
                .map_err(err("reading predicted tags in"))?;
                detections.push(DetectionRow {
                    id: did,
                    prediction_type,
                    location,
                    detection_score: score,
                    tags,
                });
            }
            result.push(ModelOutput {
                id,
                model_name,
                recording_id,
                created_on,
                detections,
            });
        }
        Ok(result)
    }
}

fn uuid(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}
