//! The detection worker: a thread of its own runs the model over finished recordings,
//! fed through a bounded queue, so a slow model never holds up the capture thread or the
//! default worker (database writes, file moves, the control socket).
//!
//! A job holds its recording open from the moment it is queued: the management task
//! moves the recording out of the temporary directory (RAM in the image) at once, model
//! or not, and the worker reads the same file through its handle wherever it has gone.
//! Nothing waits in RAM for the model, so a power cut while the model is behind loses
//! no recording.
//!
//! The skip rule, when the model is slower than real time: a recording that finishes
//! while [`Worker::capacity`] recordings already wait is not analysed. It is counted
//! (`skipped`, in status), logged, and decided by the saving filters as if no model ran:
//! a detection-based filter keeps a recording it has no output for. Audio is never
//! dropped for being late.
//!
//! Nothing here knows tokio or SQL: outcomes leave through a sink closure (the daemon
//! forwards them into its event loop, which stores the rows).

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use uuid::Uuid;

use super::birdnet_location::Place;
use super::{detect_open_file, Detection, DetectionError, Model};

/// How many recordings may wait for the model before new ones are skipped.
pub const DEFAULT_CAPACITY: usize = 4;

/// A finished recording to analyse, held open.
#[derive(Debug)]
pub struct Job {
    /// The recording's row.
    pub recording_id: Uuid,
    /// Where the recording was when it was queued (for messages: it may have moved).
    pub path: PathBuf,
    /// Where and on which day it was recorded, for BirdNET's location filter.
    pub place: Option<Place>,
    file: File,
}

impl Job {
    /// Opens the recording at `path` for the model.
    pub fn open(recording_id: Uuid, path: PathBuf) -> std::io::Result<Job> {
        let file = File::open(&path)?;
        Ok(Job {
            recording_id,
            path,
            place: None,
            file,
        })
    }

    /// The job for a recording made at `place` (`None`: the site is not known).
    pub fn at(self, place: Option<Place>) -> Job {
        Job { place, ..self }
    }
}

/// What the model made of one recording.
#[derive(Debug)]
pub struct Outcome {
    /// The recording analysed.
    pub recording_id: Uuid,
    /// The model's name, for `model_output.model_name`.
    pub model_name: String,
    /// When the model finished.
    pub finished_on: Timestamp,
    /// How long the model took.
    pub took: Duration,
    /// The detections, or why there are none.
    pub result: Result<Vec<Detection>, DetectionError>,
}

/// Where outcomes go: called on the worker's thread, so it must not block for long.
pub type OutcomeSink = Box<dyn Fn(Outcome) + Send>;

/// Whether a job was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Queued: its outcome will come through the sink.
    Queued,
    /// Skipped by the skip rule: the queue was full (or the worker has stopped).
    Skipped,
}

/// The worker thread and its queue. Dropping it closes the queue; the thread finishes
/// the recording in hand and ends (it is not waited for: a shutdown must not wait on a
/// model).
#[derive(Debug)]
pub struct Worker {
    queue: SyncSender<Job>,
    capacity: usize,
    skipped: u64,
    _thread: JoinHandle<()>,
}

impl Worker {
    /// Starts the worker with a queue of `capacity` (at least 1) recordings.
    pub fn spawn(model: Model, capacity: usize, sink: OutcomeSink) -> std::io::Result<Worker> {
        let capacity = capacity.max(1);
        let (queue, jobs) = sync_channel::<Job>(capacity);
        let thread = std::thread::Builder::new()
            .name("detection".into())
            .spawn(move || {
                for job in jobs {
                    let started = Instant::now();
                    let result = detect_open_file(&model, job.file, &job.path, job.place.as_ref());
                    sink(Outcome {
                        recording_id: job.recording_id,
                        model_name: model.name().to_owned(),
                        finished_on: Timestamp::now(),
                        took: started.elapsed(),
                        result,
                    });
                }
            })?;
        Ok(Worker {
            queue,
            capacity,
            skipped: 0,
            _thread: thread,
        })
    }

    /// Queues a recording, or skips it when `capacity` recordings already wait.
    pub fn submit(&mut self, job: Job) -> Submitted {
        match self.queue.try_send(job) {
            Ok(()) => Submitted::Queued,
            Err(TrySendError::Full(job)) => {
                self.skipped += 1;
                tracing::warn!(recording = %job.recording_id, path = %job.path.display(), waiting = self.capacity, "detection is behind: recording not analysed (skipped)");
                Submitted::Skipped
            }
            Err(TrySendError::Disconnected(job)) => {
                self.skipped += 1;
                tracing::error!(recording = %job.recording_id, "the detection thread has stopped: recording not analysed");
                Submitted::Skipped
            }
        }
    }

    /// How many recordings may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Recordings skipped since the worker started.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}
