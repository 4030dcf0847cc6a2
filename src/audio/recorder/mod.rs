//! The recording worker: one thread that owns the PCM, reads it continuously while a
//! window is open and cuts the stream into WAV files at exact sample boundaries.
//!
//! Time inside the stream is *stream time*: the instant the stream started plus
//! frames / rate, in integer nanoseconds, so cuts never drift by rounding and files with
//! `interval == duration` join without a lost or repeated sample. The thread asks the
//! [`Planner`] whether a window is open before it opens the PCM (so the PCM is open only
//! while one is), then what to do at the stream time of the next sample; it never touches the
//! database, the network or tokio, and reports through [`RecorderEvent`]s.
//! Overruns and a missing device are states it recovers from, never reasons to stop.
//!
//! A stop never waits on a device call: the file in progress is shared with the
//! [`RecorderHandle`], which finishes it itself when the thread is stuck past a deadline
//! (see [`RecorderHandle::stop`]). `stream` holds the cutting of one open stream.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::Timestamp;

use super::convert::Converter;
use super::device::{self, Capture, CaptureParams};
use super::format::SampleFormat;
use super::status::{GapReason, Progress, RecorderEvent, RecorderState};
use super::wav::{self, WavWriter};
use super::AudioError;
use crate::schedule::plan::{Plan, Planner};

mod stream;
use stream::Stream;

/// First retry delay after the device went missing; doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay: a re-plugged microphone is picked up within this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a wait for audio may last before the loop looks at the shutdown flag again.
const WAIT_MS: u32 = 500;
/// Longest single wall-clock sleep, so shutdown and clock steps are noticed quickly.
const SLEEP_STEP: Duration = Duration::from_millis(100);
/// How often an idle recorder asks the planner again. A plan can end an idle stretch
/// early (the daemon lifts a disk-full pause the moment space is back); waiting for the
/// `until` it first gave would waste that much audio.
const IDLE_RECHECK: Duration = Duration::from_secs(1);
const NANOS_PER_SEC: i128 = 1_000_000_000;
/// Audio arriving this much later than its stream time says means the device stalled
/// without an overrun (a hung USB device, a paused source): well above the ~1 s of audio
/// a full buffer can hold, so ordinary scheduling delays never trigger it.
const STALL_REANCHOR_NS: i128 = 3 * NANOS_PER_SEC;
/// How far ahead of the wall clock kept audio may end and still hold back the next
/// stream's time (see [`Recorder::anchor_at`]). A stream runs ahead by what its source
/// had buffered when it started, or by a device clock faster than the system's: tenths
/// of a second, a few seconds after days. More than this is the system clock stepping
/// back (an NTP correction), which names files by the new clock (`_1` on a clash).
const MAX_CARRIED_LEAD_NS: i128 = 2 * NANOS_PER_SEC;

/// What the recorder needs to know. Built by the daemon from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderConfig {
    /// `microphone.device_name`; resolved again at every open so a re-plugged card that
    /// came back under another number is found.
    pub device_name: String,
    /// Sample rate in Hz.
    pub samplerate: u32,
    /// Channels.
    pub channels: u16,
    /// Device sample format, or `None` to pick one.
    pub format: Option<SampleFormat>,
    /// Stored bits per sample: 16, 24 or 32.
    pub bit_depth: u16,
    /// Time expansion factor for the header and GUANO.
    pub time_expansion: f64,
    /// Where `.wav.part` and finished `.wav` files go.
    pub tmp_dir: PathBuf,
    /// GUANO `Acoupi|Deployment Name`.
    pub deployment_name: Option<String>,
    /// GUANO `Loc Position` (latitude, longitude).
    pub position: Option<(f64, f64)>,
    /// GUANO `Serial`: the recorder's device id.
    pub serial: Option<String>,
    /// Where the audio a previous recorder kept ends (its last file's stream-time end),
    /// so a restarted capture (a reload) never names a file before audio it follows.
    /// Ignored when it is more than 2 s ahead of the wall clock: the clock stepped back.
    pub kept_until: Option<Timestamp>,
}

/// The running recorder.
pub struct RecorderHandle {
    /// Progress counters for the watchdog.
    pub progress: Arc<Progress>,
    recorder: Arc<Recorder>,
    join: JoinHandle<()>,
    /// Closed (or sent on) when the thread ends, panic included: a stop waits on it
    /// rather than polling.
    ended: std::sync::mpsc::Receiver<()>,
}

impl std::fmt::Debug for RecorderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderHandle")
            .field("finished", &self.join.is_finished())
            .finish_non_exhaustive()
    }
}

/// How a stop ended (see [`RecorderHandle::stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The thread finished the file in progress itself and ended.
    Joined,
    /// The thread ended abnormally (a panic); what it had written stays as a `.part`
    /// for the next start-up's repair.
    Panicked,
    /// The thread was stuck inside a device call (a stalled read): the file in progress
    /// was finished from the stopping thread and the capture thread left behind. It
    /// writes nothing more; it ends by itself if the call ever returns.
    TakenOver,
}

impl RecorderHandle {
    /// True once the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Waits for the thread (after setting the shutdown flag, or after `ScheduleEnded`).
    pub fn join(self) -> std::thread::Result<()> {
        self.join.join()
    }

    /// Stops the thread, whose shutdown flag the caller has set, within about `wait`.
    /// A thread that has not ended by then is stuck in a call that does not return (the
    /// ALSA `file` plugin reading a FIFO with no writer blocks in `read(2)`, past any
    /// `snd_pcm_wait` timeout; a hung USB device can too): the file in progress is then
    /// finished here — header, GUANO chunk, rename, `FileFinished` — so a stop keeps
    /// every sample that reached the disk and never waits for systemd's SIGKILL.
    /// Blocks: call it off the async runtime.
    pub fn stop(self, wait: Duration) -> Stopped {
        // Ok: ended; Disconnected: ended by a panic (the sender was dropped); Timeout: stuck.
        let ended = !matches!(
            self.ended.recv_timeout(wait),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if ended {
            return match self.join.join() {
                Ok(()) => Stopped::Joined,
                Err(_) => Stopped::Panicked,
            };
        }
        // Waits only for a write or a finish in progress on the capture thread: the
        // lock is never held across a device call.
        let mut current = self.recorder.current();
        current.closed = true;
        if let Some(f) = current.file.take() {
            let model = current.model.clone();
            drop(current);
            tracing::warn!(path = ?f.writer.part_path(), "capture is stuck in a device call: finishing its file without it");
            if let Err((_, e)) = self.recorder.finish_file(f, model) {
                self.recorder.report_write_failure(e);
            }
        }
        Stopped::TakenOver
    }
}

/// Where the recorder reports: called on the capture thread (and on a stopping thread
/// that takes a stuck file over), so it must not block. A plain closure keeps audio free
/// of any async runtime: the daemon forwards into its tokio channel, tests into a std
/// one. A receiver that has gone away is the caller's business (nothing left to tell).
pub type EventSink = Box<dyn Fn(RecorderEvent) + Send + Sync>;

/// Starts the recording worker thread. It runs until `shutdown` is set (finishing the
/// current file first) or the planner says `Idle { until: None }`; `events` receives
/// what happens (see [`EventSink`]).
pub fn spawn_recorder(
    cfg: RecorderConfig,
    planner: Arc<dyn Planner>,
    events: impl Fn(RecorderEvent) + Send + Sync + 'static,
    shutdown: Arc<AtomicBool>,
) -> Result<RecorderHandle, AudioError> {
    if !wav::valid_bit_depth(cfg.bit_depth) {
        return Err(AudioError::InvalidBitDepth(cfg.bit_depth));
    }
    if !device::RATE_RANGE.contains(&cfg.samplerate) {
        return Err(AudioError::InvalidRate(cfg.samplerate));
    }
    if cfg.channels == 0 {
        return Err(AudioError::InvalidChannels);
    }
    let progress = Arc::new(Progress::default());
    let recorder = Arc::new(Recorder {
        planner,
        events: Box::new(events),
        shutdown,
        progress: progress.clone(),
        current: Mutex::new(Current {
            kept_until: cfg.kept_until,
            ..Current::default()
        }),
        cfg,
    });
    let r = recorder.clone();
    let (ended_tx, ended) = std::sync::mpsc::channel();
    let join = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || {
            r.run();
            let _ = ended_tx.send(());
        })
        .map_err(AudioError::Spawn)?;
    Ok(RecorderHandle {
        progress,
        recorder,
        join,
        ended,
    })
}

struct Recorder {
    cfg: RecorderConfig,
    planner: Arc<dyn Planner>,
    events: EventSink,
    shutdown: Arc<AtomicBool>,
    progress: Arc<Progress>,
    /// The file being written, shared with the [`RecorderHandle`] so a stop can finish
    /// it when this thread is stuck in a device call. std `Mutex`: the capture thread
    /// holds it only while it writes or finishes a file, never across a device call, and
    /// the handle takes it only at a stop that timed out.
    current: Mutex<Current>,
}

/// The file in progress and what its GUANO chunk needs from the stream.
#[derive(Default)]
struct Current {
    file: Option<OpenFile>,
    /// The PCM name of the stream writing it (GUANO `Model`).
    model: String,
    /// Set when a stop took the file over: the capture thread writes nothing more.
    closed: bool,
    /// The stream-time end of the last file kept (or [`RecorderConfig::kept_until`]).
    kept_until: Option<Timestamp>,
}

/// Why a stream ended.
enum StreamEnd {
    Shutdown,
    Idle(Option<Timestamp>),
    Lost(AudioError),
}

/// Stream time: the instant of frame `n` is `anchor + n / rate`, in integer nanoseconds.
#[derive(Debug, Clone, Copy)]
struct StreamClock {
    anchor_ns: i128,
    rate: i128,
}

impl StreamClock {
    fn time(&self, frame: u64) -> Timestamp {
        ts(self.anchor_ns + i128::from(frame) * NANOS_PER_SEC / self.rate)
    }

    /// The first frame whose instant is at or after `t`.
    fn frame_at(&self, t: Timestamp) -> u64 {
        let d = (t.as_nanosecond() - self.anchor_ns).max(0);
        let f = (d * self.rate + NANOS_PER_SEC - 1) / NANOS_PER_SEC;
        u64::try_from(f).unwrap_or(u64::MAX)
    }
}

fn ts(ns: i128) -> Timestamp {
    Timestamp::from_nanosecond(ns).unwrap_or(if ns < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The file being written and the slot it belongs to.
struct OpenFile {
    writer: WavWriter,
    slot: (Timestamp, Timestamp),
}

impl Recorder {
    fn current(&self) -> MutexGuard<'_, Current> {
        // A panic while holding it leaves a file that is still valid up to its last
        // header rewrite; finishing it is the best that can be done.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    fn emit(&self, e: RecorderEvent) {
        (self.events)(e);
    }

    /// The stream time to give the next frame read at wall time `now`, when capture
    /// (re)starts: `now`, unless kept audio ends later, by no more than
    /// [`MAX_CARRIED_LEAD_NS`]. Stream time then never runs backwards across a restart,
    /// so file names sort in the order their audio was captured and no two files claim
    /// the same stretch of time.
    fn anchor_at(&self, now: Timestamp) -> Timestamp {
        match self.current().kept_until {
            Some(end)
                if end > now
                    && end.as_nanosecond() - now.as_nanosecond() <= MAX_CARRIED_LEAD_NS =>
            {
                end
            }
            _ => now,
        }
    }

    /// Sleeps until wall time `until`, waking early on shutdown.
    fn sleep_until(&self, until: Timestamp) {
        while !self.stopping() {
            let left = until.as_nanosecond() - Timestamp::now().as_nanosecond();
            if left <= 0 {
                return;
            }
            let left = Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX));
            std::thread::sleep(left.min(SLEEP_STEP));
        }
    }

    /// Sleeps until `until` (the end of an idle stretch), with the PCM closed; wakes
    /// early on shutdown, or when the planner, asked every [`IDLE_RECHECK`], no longer
    /// says idle (a disk-full pause lifted). At `until` itself it does not ask: the
    /// capture loop does, before it opens the PCM.
    fn idle_until(&self, until: Timestamp) {
        while !self.stopping() {
            let now = Timestamp::now();
            let recheck = now.checked_add(IDLE_RECHECK).unwrap_or(Timestamp::MAX);
            if recheck >= until {
                self.sleep_until(until);
                return;
            }
            self.sleep_until(recheck);
            if !matches!(self.planner.plan_at(Timestamp::now()), Plan::Idle { .. }) {
                return;
            }
        }
    }

    fn sleep_for(&self, d: Duration) {
        let until = Timestamp::now().checked_add(d).unwrap_or(Timestamp::MAX);
        self.sleep_until(until);
    }

    fn params(&self) -> CaptureParams {
        CaptureParams {
            samplerate: self.cfg.samplerate,
            channels: self.cfg.channels,
            format: self.cfg.format,
            bit_depth: self.cfg.bit_depth,
        }
    }

    fn run(&self) {
        let mut backoff = BACKOFF_START;
        let mut lost_since: Option<Timestamp> = None;
        while !self.stopping() {
            // The PCM is open only while a window is open: ask before opening it (so a
            // missing device outside a window is no event either).
            match self.planner.plan_at(Timestamp::now()) {
                Plan::Idle { until: None } => {
                    self.emit(RecorderEvent::ScheduleEnded);
                    break;
                }
                Plan::Idle { until: Some(u) } => {
                    self.progress.set_state(RecorderState::Idle);
                    self.idle_until(u);
                    continue;
                }
                Plan::Record { .. } | Plan::Listen { .. } => {}
            }
            let opened = device::resolve_device(&self.cfg.device_name)
                .and_then(|pcm| device::open_capture(&pcm, &self.params()));
            let cap = match opened {
                Ok(c) => c,
                Err(e) => {
                    self.progress.set_state(RecorderState::DeviceMissing);
                    if lost_since.is_none() {
                        lost_since = Some(Timestamp::now());
                        tracing::warn!(device = %self.cfg.device_name, error = %crate::error::chain(&e), "capture device unavailable; retrying");
                        self.emit(RecorderEvent::DeviceLost {
                            device: self.cfg.device_name.clone(),
                            error: Arc::new(e),
                        });
                    }
                    self.sleep_for(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            backoff = BACKOFF_START;
            if let Some(since) = lost_since.take() {
                tracing::info!(pcm = %cap.name, "capture device is back");
                self.emit(RecorderEvent::DeviceBack {
                    pcm: cap.name.clone(),
                });
                self.emit(RecorderEvent::Gap {
                    start: since,
                    end: Timestamp::now(),
                    reason: GapReason::DeviceMissing,
                });
            }
            match self.stream(&cap) {
                StreamEnd::Shutdown => break,
                StreamEnd::Idle(None) => {
                    self.emit(RecorderEvent::ScheduleEnded);
                    break;
                }
                StreamEnd::Idle(Some(until)) => {
                    drop(cap); // the PCM is closed outside windows
                    self.progress.set_state(RecorderState::Idle);
                    self.idle_until(until);
                }
                StreamEnd::Lost(e) => {
                    drop(cap);
                    tracing::warn!(device = %self.cfg.device_name, error = %crate::error::chain(&e), "capture device failed; reopening");
                    lost_since = Some(Timestamp::now());
                    self.progress.set_state(RecorderState::DeviceMissing);
                    self.emit(RecorderEvent::DeviceLost {
                        device: self.cfg.device_name.clone(),
                        error: Arc::new(e),
                    });
                    self.sleep_for(backoff);
                }
            }
        }
        self.progress.set_state(RecorderState::Stopped);
    }

    /// Reads one open stream until the plan says idle, the device fails, or shutdown.
    fn stream(&self, cap: &Capture) -> StreamEnd {
        let bpf = cap.format.bytes_per_sample() * usize::from(self.cfg.channels);
        let mut buf = vec![0u8; cap.read_frames * bpf];
        let mut s = Stream {
            rec: self,
            conv: Converter::new(cap.format, self.cfg.bit_depth),
            model: cap.name.clone(),
            clock: StreamClock {
                anchor_ns: 0, // set by the first read (`Stream::keep_time`)
                rate: i128::from(self.cfg.samplerate),
            },
            anchored: false,
            pos: 0,
            skip_slot: None,
        };
        self.current().model = cap.name.clone();
        let read_err = |source| AudioError::Read {
            pcm: cap.name.clone(),
            source,
        };
        if let Err(e) = cap.pcm.start() {
            return StreamEnd::Lost(read_err(e));
        }
        let io = cap.pcm.io_bytes();
        loop {
            if self.stopping() {
                s.finish();
                return StreamEnd::Shutdown;
            }
            let result = match cap.pcm.wait(Some(WAIT_MS)) {
                // No audio yet: look at the shutdown flag again. Progress stays still,
                // which is what the watchdog watches for.
                Ok(false) => continue,
                Ok(true) => io.readi(&mut buf),
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => {
                    self.progress.add_frames(n as u64);
                    s.keep_time(n as u64);
                    if let Some(end) = s.process(&buf[..n * bpf], n as u64, bpf) {
                        return end;
                    }
                }
                Err(e) if e.errno() == libc::EPIPE || e.errno() == libc::ESTRPIPE => {
                    let count = self.progress.add_xrun();
                    let gap_start = s.clock.time(s.pos);
                    // The file so far is contiguous audio; what follows is not.
                    s.finish();
                    if let Err(e) = cap.pcm.try_recover(e, true) {
                        return StreamEnd::Lost(read_err(e));
                    }
                    // readi starts a prepared stream by itself; starting here only puts
                    // the new anchor closer to the first frame, so a failure is harmless.
                    let _ = cap.pcm.start();
                    let now = Timestamp::now();
                    tracing::warn!(count, "capture overrun; recovered");
                    self.emit(RecorderEvent::Xrun { at: now, count });
                    // Stream time restarts at the wall clock: the lost frames are unknown.
                    let resumed = self.anchor_at(now);
                    self.emit(RecorderEvent::Gap {
                        start: gap_start,
                        end: resumed.max(gap_start),
                        reason: GapReason::Xrun,
                    });
                    s.clock.anchor_ns = resumed.as_nanosecond();
                    s.pos = 0;
                }
                Err(e) => {
                    s.finish();
                    return StreamEnd::Lost(read_err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_time_has_no_rounding_drift() {
        let c = StreamClock {
            anchor_ns: 1_000_000_000_000_000_123,
            rate: 44_100,
        };
        // A day of frames later, time is exact to the nanosecond floor.
        let day = 44_100u64 * 86_400;
        assert_eq!(
            c.time(day).as_nanosecond(),
            1_000_000_000_000_000_123 + 86_400 * NANOS_PER_SEC
        );
        // Cutting at an instant and reading it back lands on the same frame.
        for f in [0u64, 1, 44_099, 44_100, 3_333_333] {
            assert_eq!(c.frame_at(c.time(f)), f);
        }
    }

    #[test]
    fn frame_at_rounds_up_between_samples() {
        let c = StreamClock {
            anchor_ns: 0,
            rate: 3,
        };
        assert_eq!(c.frame_at(ts(1)), 1);
        assert_eq!(c.frame_at(ts(333_333_333)), 1);
        assert_eq!(c.frame_at(ts(333_333_334)), 2);
        assert_eq!(c.frame_at(ts(-5)), 0);
    }
}
