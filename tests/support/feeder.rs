//! The real-time audio source: ramp samples (or any signal a test gives) into the FIFO
//! the ALSA `file` plugin reads.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ramp, wait_until, CHUNK, CHUNK_EVERY};

/// Sample `n` of what a [`Feeder`] writes.
pub type Signal = Arc<dyn Fn(u64) -> i16 + Send + Sync>;

/// Writes ramp samples into the FIFO, one [`CHUNK`] every [`CHUNK_EVERY`], up to a limit that the
/// test moves to pause and resume it.
pub struct Feeder {
    limit: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    last_write: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl Feeder {
    /// Starts writing ramp samples from sample `first` once a reader opens the FIFO;
    /// stops for good when the reader closes it.
    pub fn start(fifo: &Path, first: u64) -> Feeder {
        Feeder::spawn(fifo, first, false, 0, Arc::new(ramp))
    }

    /// Like [`Feeder::start`] from sample 0, but writing `signal(n)` as sample `n`: audio
    /// a model has something to say about.
    pub fn start_with(fifo: &Path, signal: Signal) -> Feeder {
        Feeder::spawn(fifo, 0, false, 0, signal)
    }

    /// Like [`Feeder::start`], but waits for the next reader when one closes the FIFO,
    /// as a microphone outlives the recorder's capture restarts (a reload). The ramp goes
    /// on where it stopped; what the pipe held at the close is lost with the old reader.
    pub fn reopening(fifo: &Path, first: u64) -> Feeder {
        Feeder::spawn(fifo, first, true, 0, Arc::new(ramp))
    }

    /// Like [`Feeder::reopening`], but each new reader finds `backlog` samples already
    /// waiting, as from a source that buffers audio before it is read: the reader gets
    /// audio faster than real time at first, so its stream time runs ahead of the clock.
    pub fn reopening_with_backlog(fifo: &Path, first: u64, backlog: u64) -> Feeder {
        Feeder::spawn(fifo, first, true, backlog, Arc::new(ramp))
    }

    fn spawn(fifo: &Path, first: u64, reopen: bool, backlog: u64, signal: Signal) -> Feeder {
        let limit = Arc::new(AtomicU64::new(u64::MAX));
        let written = Arc::new(AtomicU64::new(first));
        let last_write = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, w, lw, s, path) = (
            limit.clone(),
            written.clone(),
            last_write.clone(),
            stop.clone(),
            fifo.to_path_buf(),
        );
        let join =
            std::thread::spawn(
                move || while feed(&path, backlog, &l, &w, &lw, &s, &*signal) && reopen {},
            );
        Feeder {
            limit,
            written,
            last_write,
            stop,
            join: Some(join),
        }
    }

    /// Ramp samples written so far (the next sample's index).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// When the last chunk went into the FIFO.
    pub fn last_write(&self) -> Option<Instant> {
        *self.last_write.lock().unwrap()
    }

    /// Writes nothing once `frames` samples are written (the FIFO stays open).
    pub fn pause_at(&self, frames: u64) {
        self.limit.store(frames, Ordering::SeqCst);
    }

    /// Pauses now and returns the number of samples written.
    pub fn pause(&self) -> u64 {
        self.limit.store(0, Ordering::SeqCst);
        self.written()
    }

    /// Writes again.
    pub fn resume(&self) {
        self.limit.store(u64::MAX, Ordering::SeqCst);
    }

    /// True once the writing thread has ended: the reader closed the FIFO (the recorder
    /// closed the microphone) and a write failed.
    pub fn stopped(&self) -> bool {
        self.join.as_ref().is_none_or(|j| j.is_finished())
    }

    /// Waits up to `timeout` until at least `frames` samples are written.
    pub fn wait_written(&self, frames: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.written() >= frames)
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Not joined: a write blocked on a full pipe would hang the test; the thread ends
        // at its next step or when the reader closes the FIFO.
        drop(self.join.take());
    }
}

/// Feeds one reader of the FIFO, `backlog` samples at once and then one [`CHUNK`] per
/// [`CHUNK_EVERY`] from the moment it opened (a microphone delivers nothing from before it was
/// opened); returns `true` when that reader went away, `false` when told to stop.
fn feed(
    path: &Path,
    backlog: u64,
    limit: &AtomicU64,
    written: &AtomicU64,
    last_write: &Mutex<Option<Instant>>,
    stop: &AtomicBool,
    signal: &(dyn Fn(u64) -> i16 + Send + Sync),
) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    // Non-blocking open fails with ENXIO until a reader has the FIFO open; polling keeps
    // the thread stoppable when the daemon never opens it.
    let file = loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => break f,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    // Blocking writes from here on, as a real source would behave.
    if fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())).is_err() {
        return false;
    }
    let mut file = file;
    let step = CHUNK_EVERY;
    let mut next = Instant::now();
    let mut first = backlog.max(CHUNK);
    while !stop.load(Ordering::Relaxed) {
        let n = written.load(Ordering::SeqCst);
        if n < limit.load(Ordering::SeqCst) {
            let len = std::mem::replace(&mut first, CHUNK);
            let bytes: Vec<u8> = (n..n + len).flat_map(|i| signal(i).to_le_bytes()).collect();
            if file.write_all(&bytes).is_err() {
                return true; // the reader went away
            }
            written.store(n + len, Ordering::SeqCst);
            *last_write.lock().unwrap() = Some(Instant::now());
        }
        next += step;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    false
}
