//! The recorder's side of detection: starting the detection worker from the
//! configuration, queueing each finished recording, storing what the model found, and
//! then deciding again a recording `keep_only_detected` may rule out. A queued recording
//! does not wait in the temporary directory (RAM in the image): it is kept at once and
//! the model reads it through the handle its job holds.
//!
//! A model that does not load is an error in the log and in status, not a stop: the
//! recorder records without detection (audio first), and every recording is then "not
//! analysed", which a detection-based saving filter keeps.

use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use jiff::Timestamp;

use crate::config::schema::Config;
use crate::daemon::control::DetectionWorker;
use crate::detection::birdnet_location::Place;
use crate::detection::worker::{Job, Outcome, Submitted, Worker, DEFAULT_CAPACITY};
use crate::detection::{rows, DetectionConfig, Model};
use crate::schedule::parse_time_zone;
use crate::store::metadata::Deployment;

use super::Daemon;

/// The running detection worker and what the default worker knows of it.
pub(super) struct Detection {
    /// The section the worker was started from: a reload restarts it only if it changed.
    config: DetectionConfig,
    worker: Worker,
    model: String,
    analysed: u64,
    failed: u64,
}

/// Starts the worker `config` asks for; `None` without a `detection` section or when the
/// model does not load (logged).
pub(super) fn start(
    config: &Config,
    deployment: &Deployment,
    outcomes: &UnboundedSender<Outcome>,
) -> Option<Detection> {
    let section = config.detection.as_ref()?;
    let model = match Model::load(section) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %crate::error::chain(&e), "the detection model does not load: recording without detection");
            return None;
        }
    };
    // Said once here rather than per recording: the filter needs the site, and a
    // deployment started without one cannot gain it without a new deployment.
    if model.filters_by_location() && site(deployment).is_none() {
        tracing::warn!("detection.location_model_file is set but the deployment has no latitude and longitude: detections are not filtered by location (start a deployment with its site)");
    }
    let name = model.name().to_owned();
    let tx = outcomes.clone();
    // A closed receiver means the daemon is going away; nothing left to store.
    let sink = Box::new(move |o| drop(tx.send(o)));
    match Worker::spawn(model, DEFAULT_CAPACITY, sink) {
        Ok(worker) => {
            tracing::info!(model = %name, "detection worker started");
            Some(Detection {
                config: section.clone(),
                worker,
                model: name,
                analysed: 0,
                failed: 0,
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "starting the detection thread failed: recording without detection");
            None
        }
    }
}

impl Daemon {
    /// Queues a finished recording for the model. The job holds the file open, so the
    /// management pass moves it out of the temporary directory at once all the same.
    pub(super) fn queue_for_detection(
        &mut self,
        recording_id: Uuid,
        path: std::path::PathBuf,
        started: Timestamp,
    ) {
        // The recording's local date gives BirdNET's week: the day the birds heard it.
        let place = site(&self.deployment).map(|(latitude, longitude)| Place {
            latitude,
            longitude,
            date: parse_time_zone(&self.program.config.timezone)
                .ok()
                .map(|tz| started.to_zoned_datetime(tz).date()),
        });
        let Some(d) = self.detection.as_mut() else {
            return;
        };
        let job = match Job::open(recording_id, path) {
            Ok(job) => job.at(place),
            Err(e) => {
                tracing::error!(recording = %recording_id, error = %e, "opening the recording for the model failed: it is kept as not analysed");
                d.failed += 1;
                return;
            }
        };
        if d.worker.submit(job) == Submitted::Queued {
            self.waiting.insert(recording_id);
        }
    }

    /// Stores what the model made of a recording, then lets the management task decide
    /// it again (`keep_only_detected` deletes a kept recording the model found nothing in).
    pub(super) fn detection_done(&mut self, outcome: Outcome) {
        self.waiting.remove(&outcome.recording_id);
        let failed = outcome.result.is_err();
        if let Some(d) = self.detection.as_mut() {
            d.analysed += 1;
            d.failed += u64::from(failed);
        }
        match outcome.result {
            Ok(found) => {
                let output = rows::model_output(
                    &outcome.model_name,
                    outcome.recording_id,
                    outcome.finished_on,
                    &found,
                );
                tracing::debug!(recording = %outcome.recording_id, detections = found.len(), took = ?outcome.took, "detection finished");
                match self.store.insert_model_output(&output) {
                    Ok(()) => {}
                    Err(crate::store::StoreError::UnknownRecording { .. }) => {
                        // A time-based saving filter deleted it while the model ran, or a
                        // full disk has not let its row in yet: the output has nothing to
                        // hang from (the recording counts as not analysed), and is not an error.
                        tracing::debug!(recording = %outcome.recording_id, "no row for the recording (deleted by the saving filters, or waiting for room): its model output is not stored");
                        return;
                    }
                    Err(e) => {
                        let error = crate::error::chain(&e);
                        tracing::error!(recording = %outcome.recording_id, %error, "storing the model output failed");
                        self.last_error = Some(format!("storing a model output: {error}"));
                        return;
                    }
                }
                let management = &self.program.management;
                if let Err(e) =
                    management.decide_after_detection(&mut self.store, outcome.recording_id)
                {
                    let error = crate::error::chain(&e);
                    tracing::error!(recording = %outcome.recording_id, %error, "deleting a recording the model found nothing in failed; it stays");
                    self.last_error = Some(format!("keep_only_detected: {error}"));
                }
            }
            Err(e) => {
                let error = crate::error::chain(&e);
                tracing::error!(recording = %outcome.recording_id, %error, "detection failed: the recording is kept as not analysed");
                self.last_error = Some(format!("detection: {error}"));
            }
        }
    }

    /// After a reload: restarts the worker if the `detection` section changed. Queued
    /// recordings of the old worker still finish (its queue drains before its thread
    /// ends) and their outcomes arrive as usual.
    pub(super) fn reload_detection(&mut self) {
        let wanted = self.program.config.detection.as_ref();
        if wanted == self.detection.as_ref().map(|d| &d.config) {
            return;
        }
        self.detection = start(&self.program.config, &self.deployment, &self.outcomes_tx);
    }

    /// The detection worker's line in `status`.
    pub(super) fn detection_status(&self) -> Option<DetectionWorker> {
        self.detection.as_ref().map(|d| DetectionWorker {
            model: d.model.clone(),
            analysed: d.analysed,
            skipped: d.worker.skipped(),
            failed: d.failed,
            waiting: self.waiting.len() as u64,
            capacity: d.worker.capacity() as u64,
        })
    }
}

/// The deployment's site, when it has both coordinates.
fn site(deployment: &Deployment) -> Option<(f64, f64)> {
    deployment.latitude.zip(deployment.longitude)
}
