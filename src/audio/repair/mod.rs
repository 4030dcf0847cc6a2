//! Start-up repair of `*.wav.part` files a crash or power loss left in the temporary
//! directory: fix the header sizes from the file length, write the GUANO chunk the writer
//! would have written, and keep the file. Every whole frame that reached the disk is kept;
//! only a file with none (empty, or a header cut short) is removed, as there is nothing in
//! it to keep.
//!
//! The start of a recording comes from its name (`YYYYMMDD_HHMMSS_mmm`, UTC), else from a
//! GUANO `Timestamp` a crash after `finish` left, else from the file's modification time
//! (the last write) minus its length; that last one is only approximate and the outcome
//! says so, so the row is stored as not clock-synchronised. Never 1970.
//!
//! It works on files [`super::wav::WavWriter`] wrote; it does not register anything (the
//! daemon stores what is returned).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use super::guano::{self, Guano};
use super::wav::{self, WavError, PART_SUFFIX};
use super::FinishedFile;

/// What the writer would have put in the GUANO chunk that the recording itself cannot
/// tell: the daemon fills it from the configuration and the active deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuanoContext {
    /// `Model`: the capture device.
    pub model: String,
    /// `Serial`: the recorder's device id.
    pub serial: Option<String>,
    /// `Loc Position` (latitude, longitude).
    pub position: Option<(f64, f64)>,
    /// `Acoupi|Deployment Name`.
    pub deployment_name: Option<String>,
}

impl GuanoContext {
    /// The chunk the writer would have written for this recording.
    pub fn guano(
        &self,
        start: Timestamp,
        samplerate: u32,
        frames: u64,
        original_filename: String,
        time_expansion: f64,
    ) -> Guano {
        Guano {
            timestamp: start,
            position: self.position,
            samplerate,
            length_seconds: frames as f64 / f64::from(samplerate.max(1)),
            model: self.model.clone(),
            serial: self.serial.clone(),
            original_filename,
            time_expansion,
            deployment_name: self.deployment_name.clone(),
        }
    }
}

/// What happened to one leftover `.part` file.
#[derive(Debug)]
pub enum RepairOutcome {
    /// Header fixed, GUANO chunk written (or kept) and renamed to `.wav`. `samplerate`
    /// and `time_expansion` come from the GUANO chunk when the crash left one, else the
    /// header rate and 1.
    Recovered(FinishedFile),
    /// Removed: not one whole frame of audio in it (empty, or a header cut short).
    Deleted {
        /// The removed `.part`.
        path: PathBuf,
        /// Its size in bytes.
        bytes: u64,
    },
    /// Left in place because it could not be read or fixed.
    Failed {
        /// The `.part` file.
        path: PathBuf,
        /// Why.
        error: WavError,
    },
}

/// Repairs every `*.wav.part` in `dir` (not recursive). Files without a whole frame are
/// removed. Each case is logged and returned.
pub fn repair_tmp_dir(dir: &Path, context: &GuanoContext) -> Vec<RepairOutcome> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(dir = ?dir, error = %e, "cannot list the temporary audio directory");
            return Vec::new();
        }
    };
    let mut parts: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(PART_SUFFIX))
        .collect();
    parts.sort();
    let outcomes: Vec<RepairOutcome> = parts
        .into_iter()
        .map(|p| match repair_one(&p, context) {
            Ok(o) => o,
            Err(error) => RepairOutcome::Failed { path: p, error },
        })
        .collect();
    for o in &outcomes {
        match o {
            RepairOutcome::Recovered(f) => {
                tracing::info!(path = ?f.path, frames = f.frames, start = %f.start, approximate = f.start_approximate, "recovered a partly written recording")
            }
            RepairOutcome::Deleted { path, bytes } => {
                tracing::info!(path = ?path, bytes, "removed a partly written recording without a whole frame: nothing to keep")
            }
            RepairOutcome::Failed { path, error } => {
                tracing::warn!(path = ?path, error = %error, "could not repair a partly written recording")
            }
        }
    }
    if outcomes
        .iter()
        .any(|o| !matches!(o, RepairOutcome::Failed { .. }))
    {
        // One directory sync for every rename above.
        if let Err(e) = crate::files::sync_dir(dir) {
            tracing::warn!(error = %crate::error::chain(&e), "syncing the temporary directory after repair failed");
        }
    }
    outcomes
}

/// The start of a recording whose name holds no time: its GUANO `Timestamp` (exact), else
/// its last write (`mtime`) minus its length (approximate). Returns the instant and
/// whether it is approximate.
fn start_otherwise(
    guano_text: Option<&str>,
    mtime: Option<Timestamp>,
    frames: u64,
    samplerate: u32,
) -> (Timestamp, bool) {
    let from_guano = guano_text.and_then(|text| {
        let fields = guano::parse(text);
        let (_, v) = fields.iter().find(|(k, _)| k == "Timestamp")?;
        // Written as `2026-11-26T03:49:07.123+00:00`.
        v.parse::<Timestamp>().ok()
    });
    if let Some(t) = from_guano {
        return (t, false);
    }
    let length = SignedDuration::from_secs_f64(frames as f64 / f64::from(samplerate.max(1)));
    let end = mtime.unwrap_or_else(Timestamp::now);
    (end.checked_sub(length).unwrap_or(end), true)
}

/// The GUANO text after the data chunk, when a complete chunk is there.
pub(super) fn read_guano(
    file: &File,
    h: &wav::Parsed,
    len: u64,
) -> std::io::Result<Option<String>> {
    let guano_at = h.data_at + h.data_bytes + (h.data_bytes & 1);
    if h.data_bytes == 0 || guano_at + 8 > len {
        return Ok(None);
    }
    let mut id = [0u8; 8];
    file.read_exact_at(&mut id, guano_at)?;
    let glen = u64::from(u32::from_le_bytes([id[4], id[5], id[6], id[7]]));
    if &id[..4] != guano::CHUNK_ID || guano_at + 8 + glen > len {
        return Ok(None);
    }
    let mut text = vec![0u8; glen as usize];
    file.read_exact_at(&mut text, guano_at + 8)?;
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// The capture rate and time-expansion factor: from GUANO when present (the header rate
/// is divided by TE), else the header rate and 1.
fn rate_and_te(h: &wav::Parsed, guano_text: Option<&str>) -> (u32, f64) {
    let Some(text) = guano_text else {
        return (h.header_rate, 1.0);
    };
    let fields = guano::parse(text);
    let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    (
        get("Samplerate")
            .and_then(|v| v.parse().ok())
            .unwrap_or(h.header_rate),
        get("TE").and_then(|v| v.parse().ok()).unwrap_or(1.0),
    )
}

/// The file's modification time: when its last bytes were written.
fn mtime(file: &File) -> Option<Timestamp> {
    let t = file.metadata().ok()?.modified().ok()?;
    Timestamp::try_from(t).ok()
}

/// True for what a crash leaves of the header [`wav::WavWriter`] begins with: nothing, or
/// a prefix of `RIFF....WAVE` shorter than a whole header. Anything else that does not
/// parse is someone else's file and is left alone.
fn is_cut_header(head: &[u8], len: u64) -> bool {
    if len == 0 {
        return true;
    }
    if len >= 68 {
        return false;
    }
    let n = head.len().min(4);
    let riff = head[..n] == b"RIFF"[..n];
    riff && (head.len() < 12 || &head[8..12] == b"WAVE")
}

/// The GUANO text of a WAV file this recorder wrote (or repaired), `None` when it has no
/// complete GUANO chunk after its audio: what `acoupi audit` and the tests look for.
pub fn read_guano_text(path: &Path) -> Result<Option<String>, WavError> {
    let io = |what| wav::io_err(what, path);
    let mut file = File::open(path).map_err(io("opening"))?;
    let len = file.metadata().map_err(io("reading size of"))?.len();
    let mut head = vec![0u8; 128.min(len as usize)];
    file.read_exact(&mut head).map_err(io("reading"))?;
    let h = wav::parse_header(path, &head)?;
    read_guano(&file, &h, len).map_err(io("reading"))
}

/// Reads a finished `*.wav` back from its header (and GUANO chunk): the daemon registers
/// files a crash left without a database row.
pub fn read_finished(path: &Path) -> Result<FinishedFile, WavError> {
    let io = |what| wav::io_err(what, path);
    let (file, len, head) = open_with_head(path, false)?;
    let h = wav::parse_header(path, &head)?;
    let guano_text = read_guano(&file, &h, len).map_err(io("reading"))?;
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let frames = h.data_bytes / h.block_align;
    let guano = guano_text.as_deref();
    Ok(describe(path, &stem, &h, frames, guano, mtime(&file)))
}

/// What a recording at `path` is, from its header `h`, its `frames`, its GUANO text and
/// its name `stem` (its start, else the GUANO's, else `last_write` less its length): the
/// one reading a re-read file and a repaired one share, so the two cannot disagree.
fn describe(
    path: &Path,
    stem: &str,
    h: &wav::Parsed,
    frames: u64,
    guano_text: Option<&str>,
    last_write: Option<Timestamp>,
) -> FinishedFile {
    let (samplerate, time_expansion) = rate_and_te(h, guano_text);
    let (start, start_approximate) = match super::name::start_of(stem) {
        Some(t) => (t, false),
        None => start_otherwise(guano_text, last_write, frames, samplerate),
    };
    FinishedFile {
        path: path.to_path_buf(),
        start,
        frames,
        samplerate,
        channels: h.channels,
        bit_depth: h.bit_depth,
        time_expansion,
        start_approximate,
    }
}

/// Opens a recording (for writing too when it is to be fixed in place): the file, its
/// length and its first bytes. The header of a file this recorder wrote is 44 or 68
/// bytes; 128 covers both plus a small chunk before `data` another tool may have written.
pub(super) fn open_with_head(
    path: &Path,
    writable: bool,
) -> Result<(File, u64, Vec<u8>), WavError> {
    let io = |what| wav::io_err(what, path);
    let mut file = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(io("opening"))?;
    let len = file.metadata().map_err(io("reading size of"))?.len();
    let mut head = vec![0u8; 128.min(len as usize)];
    file.read_exact(&mut head).map_err(io("reading"))?;
    Ok((file, len, head))
}

fn repair_one(part: &Path, context: &GuanoContext) -> Result<RepairOutcome, WavError> {
    let io = |what| wav::io_err(what, part);
    let (file, len, head) = open_with_head(part, true)?;
    // Taken before anything is written: the repair itself would move it to now.
    let last_write = mtime(&file);
    let remove = || -> Result<RepairOutcome, WavError> {
        std::fs::remove_file(part).map_err(io("removing"))?;
        Ok(RepairOutcome::Deleted {
            path: part.to_path_buf(),
            bytes: len,
        })
    };
    let h = match wav::parse_header(part, &head) {
        Ok(h) => h,
        Err(_) if is_cut_header(&head, len) => return remove(),
        Err(e) => return Err(e),
    };
    let available = len.saturating_sub(h.data_at);

    // A header whose data size points at a complete GUANO chunk was written by `finish`
    // just before the crash: the sizes are right, only the rename is missing.
    let guano_text = read_guano(&file, &h, len).map_err(io("reading"))?;
    let data_bytes = match guano_text {
        Some(_) => h.data_bytes,
        None => available / h.block_align * h.block_align,
    };
    let frames = data_bytes / h.block_align;
    if frames == 0 {
        return remove();
    }

    let name = part
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.trim_end_matches(PART_SUFFIX).to_string();
    let mut finished = describe(part, &stem, &h, frames, guano_text.as_deref(), last_write);
    let trailer = match &guano_text {
        Some(text) => {
            let glen = text.len() as u64;
            8 + glen + (glen & 1)
        }
        None => {
            // The chunk `finish` would have written, with the length that survived.
            let text = context
                .guano(
                    finished.start,
                    finished.samplerate,
                    frames,
                    format!("{stem}.wav"),
                    finished.time_expansion,
                )
                .to_text();
            match append_guano(&file, &h, data_bytes, &text) {
                Ok(trailer) => trailer,
                Err(e) => {
                    // As in `finish`: the audio matters more than its metadata.
                    tracing::warn!(path = ?part, error = %e, "GUANO chunk left out of a repaired recording");
                    file.set_len(h.data_at + data_bytes)
                        .map_err(io("truncating"))?;
                    0
                }
            }
        }
    };
    write_sizes(&file, &h, data_bytes, trailer).map_err(io("writing header of"))?;

    let done = part.with_file_name(format!("{stem}.wav"));
    std::fs::rename(part, &done).map_err(io("renaming"))?;
    finished.path = done;
    Ok(RepairOutcome::Recovered(finished))
}

/// Adds the GUANO chunk to a finished recording that has none: the writer leaves it out
/// when the disk is full (the audio matters more), and the management pass puts it back
/// before keeping the file, once there is room. Returns whether a chunk was added; a
/// file that has one is left as it is. On failure the file is as it was.
pub fn add_missing_guano(
    path: &Path,
    context: &GuanoContext,
    start: Timestamp,
) -> Result<bool, WavError> {
    let io = |what| wav::io_err(what, path);
    let (file, len, head) = open_with_head(path, true)?;
    let h = wav::parse_header(path, &head)?;
    if read_guano(&file, &h, len).map_err(io("reading"))?.is_some() {
        return Ok(false);
    }
    let data_bytes =
        h.data_bytes.min(len.saturating_sub(h.data_at)) / h.block_align * h.block_align;
    let frames = data_bytes / h.block_align;
    let (samplerate, time_expansion) = rate_and_te(&h, None);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = context
        .guano(start, samplerate, frames, name, time_expansion)
        .to_text();
    let undo = |e: std::io::Error| {
        // Back to the audio alone: a chunk half written is worse than none.
        let _ = file.set_len(h.data_at + data_bytes);
        e
    };
    let trailer = append_guano(&file, &h, data_bytes, &text)
        .map_err(undo)
        .map_err(io("writing the GUANO chunk of"))?;
    write_sizes(&file, &h, data_bytes, trailer)
        .map_err(undo)
        .map_err(io("writing header of"))?;
    Ok(true)
}

/// Writes the GUANO chunk with `text` right after `data_bytes` of audio (dropping
/// anything after them); returns the trailer length the RIFF size counts.
fn append_guano(file: &File, h: &wav::Parsed, data_bytes: u64, text: &str) -> std::io::Result<u64> {
    let chunk = wav::guano_chunk(data_bytes, text);
    let end = h.data_at + data_bytes;
    file.set_len(end)?;
    file.write_all_at(&chunk, end)?;
    Ok(chunk.len() as u64 - (data_bytes & 1))
}

/// Sets the RIFF and data sizes for `data_bytes` of audio and a `trailer`, then syncs.
fn write_sizes(file: &File, h: &wav::Parsed, data_bytes: u64, trailer: u64) -> std::io::Result<()> {
    let riff = (h.data_at - 8 + data_bytes + (data_bytes & 1) + trailer).min(u64::from(u32::MAX));
    file.write_all_at(&(riff as u32).to_le_bytes(), 4)?;
    file.write_all_at(
        &(data_bytes.min(u64::from(u32::MAX)) as u32).to_le_bytes(),
        h.data_at - 4,
    )?;
    file.sync_all()
}

#[cfg(test)]
mod tests;
