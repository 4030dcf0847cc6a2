//! The soak's account: what the recorder kept, read back from the disk and metadata.db
//! after the last stop, against what the fault loop did ([`Log`]).
//!
//! The feeder writes a 16-bit counter ramp, so the kept audio, file after file in name
//! order, must count up by one. A jump forward is a *hole*: audio the microphone made
//! while no recorder was reading (a restart) or while recording was paused (a full
//! disk); there can be at most one per interruption. Anything else (a jump backwards, a
//! jump inside a file) is a sample repeated, reordered or lost on the way to the disk.

use std::path::Path;

use acoupi::store::{audit, MetadataStore};

use super::{Fault, Log, STOP_LIMIT};
use crate::support::{wav_files, wav_samples, Install};

/// Header bytes of the recorder's 8 kHz mono 16-bit files.
pub const HEADER: usize = 44;
/// A jump of more than this many samples backwards on the 16-bit ramp is read as a
/// repeat; anything less as a hole (holes are a few seconds, far below 65,536 samples).
const REPEAT_BELOW: u32 = 4096;

/// What the disk and metadata.db hold after the run.
pub struct Account {
    files: usize,
    samples: u64,
    holes: u32,
    hole_samples: u64,
    /// Jumps inside a file or backwards between files: each is lost or repeated audio.
    breaks: Vec<String>,
    /// Torn `.part` files not recovered with every whole frame.
    torn_lost: Vec<String>,
    /// Rows and files that disagree (the library audit).
    disagreements: Option<String>,
    /// `acoupi audit --json`, when it did not exit 0.
    audit_cli: Option<String>,
    /// Model outputs stored, and of those with a detection.
    outputs: (usize, usize),
    /// Outputs with a detection that have no detection message in messages.db.
    unsent_outputs: Vec<String>,
}

impl Account {
    /// Reads the recordings, the temporary folder and metadata.db.
    pub fn take(
        install: &Install,
        recordings: &Path,
        tmp: &Path,
        db: &Path,
        messages_db: &Path,
        log: &Log,
    ) -> Account {
        let mut files = wav_files(recordings);
        files.extend(wav_files(tmp));
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        let is_torn = |f: &Path| {
            let name = f.file_name().unwrap().to_string_lossy();
            log.torn.iter().any(|(n, _)| *n == name)
        };
        let mut account = Account {
            files: 0,
            samples: 0,
            holes: 0,
            hole_samples: 0,
            breaks: Vec::new(),
            torn_lost: Vec::new(),
            disagreements: None,
            audit_cli: None,
            outputs: (0, 0),
            unsent_outputs: Vec::new(),
        };
        let mut next: Option<u16> = None;
        let mut previous: Option<&Path> = None;
        for f in files.iter().filter(|f| !is_torn(f)) {
            account.files += 1;
            let samples = wav_samples(f);
            account.samples += samples.len() as u64;
            for (i, s) in samples.iter().enumerate() {
                let s = *s as u16;
                if let Some(want) = next.filter(|w| *w != s) {
                    let ahead = u32::from(s.wrapping_sub(want));
                    if i == 0 && ahead < 65536 - REPEAT_BELOW {
                        account.holes += 1;
                        account.hole_samples += u64::from(ahead);
                    } else {
                        account.breaks.push(format!(
                            "{} sample {i}: {s}, expected {want} (previous file {:?})",
                            f.display(),
                            previous.and_then(|p| p.file_name())
                        ));
                    }
                }
                next = Some(s.wrapping_add(1));
            }
            previous = Some(f.as_path());
        }
        for (name, frames) in &log.torn {
            let found = files
                .iter()
                .find(|f| f.file_name().unwrap().to_string_lossy() == *name);
            match found.map(|f| wav_samples(f).len() as u64) {
                Some(n) if n == *frames => {}
                Some(n) => account
                    .torn_lost
                    .push(format!("{name}: {n} frames kept of {frames}")),
                None => account.torn_lost.push(format!("{name}: not kept")),
            }
        }
        match MetadataStore::open(db).and_then(|s| audit(&s, recordings, tmp)) {
            Ok(a) if a.is_clean() => {}
            Ok(a) => account.disagreements = Some(format!("{a:#?}")),
            Err(e) => account.disagreements = Some(format!("opening {}: {e}", db.display())),
        }
        let cli = install.run(&["audit", "--json"]);
        if cli.code != Some(0) {
            account.audit_cli = Some(format!("{cli:#?}"));
        }
        account.count_detection_messages(db, messages_db);
        account
    }

    /// Every stored output with a detection must have its message (same id) in
    /// messages.db: a kill -9 between the two is made up for at the next start.
    fn count_detection_messages(&mut self, db: &Path, messages_db: &Path) {
        let store = MetadataStore::open(db).unwrap();
        let queued: std::collections::HashSet<Vec<u8>> =
            crate::connected_support::outbox_messages(messages_db)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
        for rec in store.recordings_since(jiff::Timestamp::MIN).unwrap() {
            for output in store.model_outputs(rec.id).unwrap() {
                self.outputs.0 += 1;
                if output.detections.is_empty() {
                    continue;
                }
                self.outputs.1 += 1;
                if !queued.contains(output.id.as_bytes().as_slice()) {
                    self.unsent_outputs.push(output.id.to_string());
                }
            }
        }
    }

    /// Interruptions that may each leave one hole: restarts and full-disk pauses.
    fn interruptions(log: &Log) -> u32 {
        log.restarts + log.injected.get(&Fault::DiskFull).copied().unwrap_or(0)
    }

    /// Every broken promise, one line each.
    pub fn failures(&self, log: &Log) -> Vec<String> {
        let mut out: Vec<String> = self.breaks.iter().map(|b| format!("audio: {b}")).collect();
        if self.holes > Self::interruptions(log) {
            out.push(format!(
                "audio: {} holes for {} interruptions",
                self.holes,
                Self::interruptions(log)
            ));
        }
        out.extend(self.torn_lost.iter().map(|t| format!("torn .part: {t}")));
        out.extend(
            self.disagreements
                .iter()
                .map(|d| format!("rows and files: {d}")),
        );
        out.extend(self.audit_cli.iter().map(|a| format!("acoupi audit: {a}")));
        out.extend(
            self.unsent_outputs
                .iter()
                .map(|id| format!("model output {id} with a detection has no message")),
        );
        out.extend(
            log.config_values_lost
                .iter()
                .map(|c| format!("config value lost: {c}")),
        );
        out.extend(
            log.config_refused
                .iter()
                .map(|c| format!("config set refused: {c}")),
        );
        out.extend(log.bad_stops.iter().map(|s| format!("stop: {s}")));
        out
    }

    /// The figures, in the form docs/benchmarks.md keeps them.
    pub fn report(&self, seconds: u64, seed: u64, log: &Log) -> String {
        let injected: Vec<String> = log
            .injected
            .iter()
            .map(|(f, n)| format!("{f:?} {n}"))
            .collect();
        let max_stop = log.stop_times.iter().max().copied().unwrap_or_default();
        format!(
            "soak report (SOAK_SECONDS={seconds} SOAK_SEED={seed})\n\
             faults injected: {} ({})\n\
             recorder restarts: {}\n\
             kept files: {}, samples {} ({:.1} s of audio)\n\
             holes: {} ({:.1} s, while no recorder ran or the disk was full; limit {})\n\
             samples lost or repeated inside the kept audio: {}\n\
             torn .part files: {} left, {} not recovered whole\n\
             rows without files or files without rows: {}\n\
             model outputs: {} ({} with a detection), detection messages missing: {}\n\
             config values lost: {} of {} storms\n\
             stops: {}, slowest {:.2} s (limit {:.1} s), over the limit or unclean: {}",
            log.injected.values().sum::<u32>(),
            injected.join(", "),
            log.restarts,
            self.files,
            self.samples,
            self.samples as f64 / crate::support::RATE as f64,
            self.holes,
            self.hole_samples as f64 / crate::support::RATE as f64,
            Self::interruptions(log),
            self.breaks.len(),
            log.torn.len(),
            self.torn_lost.len(),
            if self.disagreements.is_none() && self.audit_cli.is_none() {
                "0"
            } else {
                "some (see failures)"
            },
            self.outputs.0,
            self.outputs.1,
            self.unsent_outputs.len(),
            log.config_values_lost.len(),
            log.injected.get(&Fault::ConfigStorm).copied().unwrap_or(0),
            log.stop_times.len(),
            max_stop.as_secs_f64(),
            STOP_LIMIT.as_secs_f64(),
            log.bad_stops.len(),
        )
    }
}
