//! Cutting one open stream into files: where each frame goes by the plan (record,
//! listen, idle), when a file ends at its slot's exact sample, anchoring stream time at
//! the first read and after a stall, and finishing a file (GUANO chunk, rename, event) —
//! from the capture thread, or from a stop that took a stuck thread's file over.

use jiff::Timestamp;

use super::{ts, OpenFile, Recorder, StreamClock, StreamEnd, NANOS_PER_SEC, STALL_REANCHOR_NS};
use crate::audio::convert::Converter;
use crate::audio::guano::Guano;
use crate::audio::status::{GapReason, RecorderEvent, RecorderState};
use crate::audio::wav::{WavError, WavSpec, WavWriter};
use crate::audio::FinishedFile;
use crate::schedule::plan::Plan;

/// One open stream's cutting state.
pub(super) struct Stream<'a> {
    pub(super) rec: &'a Recorder,
    pub(super) conv: Converter,
    pub(super) model: String,
    pub(super) clock: StreamClock,
    /// False until the first read has placed stream time ([`Stream::keep_time`]).
    pub(super) anchored: bool,
    /// Frames of this stream already handled.
    pub(super) pos: u64,
    /// A slot whose file could not be written (disk full): not retried until it ends.
    pub(super) skip_slot: Option<(Timestamp, Timestamp)>,
}

impl Stream<'_> {
    /// Ties stream time to the wall clock by the `n` frames just read.
    ///
    /// The first read of a stream anchors it: those frames were captured just before
    /// they could be read, so they end now (a device's buffer fills from the start; a
    /// source that held audio back must not put later files ahead of the clock), and
    /// never before kept audio ends ([`Recorder::anchor_at`]).
    ///
    /// After a stall, the frames just read are recent audio, not the continuation
    /// stream time assumes: cut the file there, record the gap, and restart stream time at
    /// the wall clock so later files are named and timed correctly.
    pub(super) fn keep_time(&mut self, n: u64) {
        let now = Timestamp::now().as_nanosecond();
        let chunk_ns = i128::from(n) * NANOS_PER_SEC / self.clock.rate;
        if !std::mem::replace(&mut self.anchored, true) {
            self.clock.anchor_ns = self.rec.anchor_at(ts(now - chunk_ns)).as_nanosecond();
            return;
        }
        let chunk_start = self.clock.time(self.pos);
        if now - chunk_start.as_nanosecond() - chunk_ns <= STALL_REANCHOR_NS {
            return;
        }
        self.finish();
        let resumed = ts(now - chunk_ns);
        tracing::warn!(%chunk_start, %resumed, "capture stalled; stream time restarts at the wall clock");
        self.rec.emit(RecorderEvent::Gap {
            start: chunk_start,
            end: resumed,
            reason: GapReason::Stall,
        });
        self.clock.anchor_ns = resumed.as_nanosecond();
        self.pos = 0;
    }

    /// Cuts `n` frames of device bytes by the plan. `Some` ends the stream.
    pub(super) fn process(&mut self, chunk: &[u8], n: u64, bpf: usize) -> Option<StreamEnd> {
        let mut off = 0u64;
        while off < n {
            let at = self.pos + off;
            let t = self.clock.time(at);
            let step = match self.rec.planner.plan_at(t) {
                Plan::Record { start, end } => {
                    // `t < end` makes this at least one frame; `max` guards a planner bug.
                    let until = self.clock.frame_at(end).max(at + 1);
                    let take = (n - off).min(until - at);
                    self.record(
                        (start, end),
                        t.max(start),
                        &chunk[off as usize * bpf..(off + take) as usize * bpf],
                    );
                    if at + take == until {
                        self.finish();
                    }
                    take
                }
                Plan::Listen { until } => {
                    self.finish();
                    self.rec.progress.set_state(RecorderState::Listening);
                    (n - off).min(self.clock.frame_at(until).max(at + 1) - at)
                }
                Plan::Idle { until } => {
                    self.finish();
                    self.pos += n;
                    return Some(StreamEnd::Idle(until));
                }
            };
            off += step;
        }
        self.pos += n;
        None
    }

    fn spec(&self) -> WavSpec {
        WavSpec {
            samplerate: self.rec.cfg.samplerate,
            channels: self.rec.cfg.channels,
            bit_depth: self.rec.cfg.bit_depth,
            time_expansion: self.rec.cfg.time_expansion,
        }
    }

    fn record(&mut self, slot: (Timestamp, Timestamp), start: Timestamp, bytes: &[u8]) {
        let rec = self.rec;
        let mut current = rec.current();
        if current.closed {
            // A stop took the file over while this thread was stuck; it is gone now.
            tracing::warn!(
                bytes = bytes.len(),
                "audio read after a stop took the file over is dropped"
            );
            return;
        }
        if current.file.as_ref().is_some_and(|f| f.slot != slot) {
            let f = current.file.take();
            drop(current);
            self.finish_one(f);
            current = rec.current();
        }
        if self.skip_slot == Some(slot) {
            return;
        }
        if current.file.is_none() {
            match WavWriter::create(&rec.cfg.tmp_dir, start, self.spec()) {
                Ok(writer) => {
                    rec.progress.set_state(RecorderState::Recording);
                    current.file = Some(OpenFile { writer, slot });
                }
                Err(e) => {
                    drop(current);
                    return self.write_failed(slot, e);
                }
            }
        }
        let Some(f) = current.file.as_mut() else {
            return;
        };
        if let Err(e) = f.writer.write(self.conv.convert(bytes)) {
            // Keep what is written: the writer cut it back to whole frames.
            let f = current.file.take();
            drop(current);
            self.finish_one(f);
            self.write_failed(slot, e);
        }
    }

    fn write_failed(&mut self, slot: (Timestamp, Timestamp), e: WavError) {
        self.skip_slot = Some(slot);
        self.rec.report_write_failure(e);
    }

    /// Finishes the open file, if any, and reports it.
    pub(super) fn finish(&mut self) {
        let f = self.rec.current().file.take();
        self.finish_one(f);
    }

    fn finish_one(&mut self, f: Option<OpenFile>) {
        let Some(f) = f else { return };
        if let Err((slot, e)) = self.rec.finish_file(f, self.model.clone()) {
            self.write_failed(slot, e);
        }
    }
}

impl Recorder {
    /// Reports a write that failed (the capture thread also skips the rest of its slot).
    pub(super) fn report_write_failure(&self, e: WavError) {
        tracing::error!(error = %crate::error::chain(&e), "writing a recording failed; skipping the rest of this slot");
        let event = RecorderEvent::write_failure(e);
        if matches!(event, RecorderEvent::DiskFull { .. }) {
            self.progress.set_state(RecorderState::DiskFull);
        }
        self.emit(event);
    }

    /// Finishes `f` (GUANO chunk, rename) and reports it; the error comes back with the
    /// file's slot.
    pub(super) fn finish_file(
        &self,
        f: OpenFile,
        model: String,
    ) -> Result<(), ((Timestamp, Timestamp), WavError)> {
        let cfg = &self.cfg;
        let start = f.writer.start();
        let result = f.writer.finish(|name, frames| Guano {
            timestamp: start,
            position: cfg.position,
            samplerate: cfg.samplerate,
            length_seconds: frames as f64 / f64::from(cfg.samplerate),
            model,
            serial: cfg.serial.clone(),
            original_filename: name.to_string(),
            time_expansion: cfg.time_expansion,
            deployment_name: cfg.deployment_name.clone(),
        });
        match result {
            Ok((path, frames)) => {
                tracing::debug!(path = ?path, frames, "recording finished");
                let file = FinishedFile {
                    path,
                    start,
                    frames,
                    samplerate: cfg.samplerate,
                    channels: cfg.channels,
                    bit_depth: cfg.bit_depth,
                    time_expansion: cfg.time_expansion,
                    start_approximate: false,
                };
                let mut current = self.current();
                current.kept_until = current.kept_until.max(Some(file.end()));
                drop(current);
                self.emit(RecorderEvent::FileFinished(file));
                Ok(())
            }
            Err(e) => Err((f.slot, e)),
        }
    }
}
