//! Start-up repair of `*.wav.part` files a crash or power loss left in the temporary
//! directory: fix the header sizes from the file length and keep the file, or delete it
//! when it holds less than one period of audio.
//!
//! It works on files [`super::wav::WavWriter`] wrote; it does not register anything (the
//! daemon stores what is returned).

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::guano;
use super::wav::{self, WavError, PART_SUFFIX};
use super::FinishedFile;

/// What happened to one leftover `.part` file.
#[derive(Debug)]
pub enum RepairOutcome {
    /// Header fixed and renamed to `.wav`. `samplerate` and `time_expansion` come from the
    /// GUANO chunk when the crash left one, else the header rate and 1.
    Recovered(FinishedFile),
    /// Deleted: fewer complete frames than the minimum.
    Deleted {
        /// The removed `.part`.
        path: PathBuf,
        /// Complete frames it held.
        frames: u64,
    },
    /// Left in place because it could not be read or fixed.
    Failed {
        /// The `.part` file.
        path: PathBuf,
        /// Why.
        error: WavError,
    },
}

/// Repairs every `*.wav.part` in `dir` (not recursive). Files with fewer than
/// `min_frames` complete frames are deleted. Each case is logged and returned.
pub fn repair_tmp_dir(dir: &Path, min_frames: u64) -> Vec<RepairOutcome> {
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
        .map(|p| match repair_one(&p, min_frames) {
            Ok(o) => o,
            Err(error) => RepairOutcome::Failed { path: p, error },
        })
        .collect();
    for o in &outcomes {
        match o {
            RepairOutcome::Recovered(f) => {
                tracing::info!(path = ?f.path, frames = f.frames, "recovered a partly written recording")
            }
            RepairOutcome::Deleted { path, frames } => {
                tracing::info!(path = ?path, frames, "deleted a too short partly written recording")
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
        if let Err(e) = wav::sync_dir(dir) {
            tracing::warn!(error = %e, "syncing the temporary directory after repair failed");
        }
    }
    outcomes
}

/// The start instant encoded in a `YYYYMMDD_HHMMSS_mmm[_n]` name.
fn start_from_name(stem: &str) -> Option<Timestamp> {
    let base = stem.get(..19)?;
    let dt = jiff::civil::DateTime::strptime("%Y%m%d_%H%M%S_%3f", base).ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
}

/// The GUANO text after the data chunk, when a complete chunk is there.
pub(super) fn read_guano(
    file: &std::fs::File,
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

/// Reads a finished `*.wav` back from its header (and GUANO chunk): the daemon registers
/// files a crash left without a database row.
pub fn read_finished(path: &Path) -> Result<FinishedFile, WavError> {
    let io = |what| {
        move |source| WavError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = std::fs::File::open(path).map_err(io("opening"))?;
    let len = file.metadata().map_err(io("reading size of"))?.len();
    let mut head = vec![0u8; 128.min(len as usize)];
    file.read_exact(&mut head).map_err(io("reading"))?;
    let h = wav::parse_header(path, &head)?;
    let guano_text = read_guano(&file, &h, len).map_err(io("reading"))?;
    let (samplerate, time_expansion) = rate_and_te(&h, guano_text.as_deref());
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(FinishedFile {
        path: path.to_path_buf(),
        start: start_from_name(&stem).unwrap_or(Timestamp::UNIX_EPOCH),
        frames: h.data_bytes / h.block_align,
        samplerate,
        channels: h.channels,
        bit_depth: h.bit_depth,
        time_expansion,
    })
}

fn repair_one(part: &Path, min_frames: u64) -> Result<RepairOutcome, WavError> {
    let io = |what| {
        move |source| WavError::Io {
            what,
            path: part.to_path_buf(),
            source,
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .map_err(io("opening"))?;
    let len = file.metadata().map_err(io("reading size of"))?.len();
    let mut head = vec![0u8; 128.min(len as usize)];
    file.read_exact(&mut head).map_err(io("reading"))?;
    let h = wav::parse_header(part, &head)?;
    let available = len.saturating_sub(h.data_at);

    // A header whose data size points at a complete GUANO chunk was written by `finish`
    // just before the crash: the sizes are right, only the rename is missing.
    let guano_text = read_guano(&file, &h, len).map_err(io("reading"))?;
    let data_bytes = match guano_text {
        Some(_) => h.data_bytes,
        None => available / h.block_align * h.block_align,
    };
    let frames = data_bytes / h.block_align;
    if frames < min_frames {
        std::fs::remove_file(part).map_err(io("deleting"))?;
        return Ok(RepairOutcome::Deleted {
            path: part.to_path_buf(),
            frames,
        });
    }

    let (samplerate, time_expansion) = rate_and_te(&h, guano_text.as_deref());
    let trailer = match &guano_text {
        Some(text) => {
            let glen = text.len() as u64;
            8 + glen + (glen & 1)
        }
        None => {
            file.set_len(h.data_at + data_bytes)
                .map_err(io("truncating"))?;
            0
        }
    };
    let riff = (h.data_at - 8 + data_bytes + (data_bytes & 1) + trailer).min(u64::from(u32::MAX));
    file.write_all_at(&(riff as u32).to_le_bytes(), 4)
        .map_err(io("writing header of"))?;
    file.write_all_at(
        &(data_bytes.min(u64::from(u32::MAX)) as u32).to_le_bytes(),
        h.data_at - 4,
    )
    .map_err(io("writing header of"))?;
    file.sync_all().map_err(io("syncing"))?;

    let name = part
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.trim_end_matches(PART_SUFFIX).to_string();
    let done = part.with_file_name(format!("{stem}.wav"));
    std::fs::rename(part, &done).map_err(io("renaming"))?;
    Ok(RepairOutcome::Recovered(FinishedFile {
        path: done,
        start: start_from_name(&stem).unwrap_or(Timestamp::UNIX_EPOCH),
        frames,
        samplerate,
        channels: h.channels,
        bit_depth: h.bit_depth,
        time_expansion,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::guano::Guano;
    use crate::audio::wav::{WavSpec, WavWriter};

    fn spec() -> WavSpec {
        WavSpec {
            samplerate: 8000,
            channels: 2,
            bit_depth: 16,
            time_expansion: 1.0,
        }
    }

    /// 'n' stereo frames of a counter.
    fn frames(n: usize) -> Vec<u8> {
        (0..n * 2).flat_map(|i| (i as i16).to_le_bytes()).collect()
    }

    fn check_recovered(o: &RepairOutcome) -> &FinishedFile {
        match o {
            RepairOutcome::Recovered(f) => f,
            other => panic!("expected a recovered file, got {other:?}"),
        }
    }

    #[test]
    fn part_file_is_recovered_after_power_loss() {
        let dir = tempfile::tempdir().unwrap();
        let start: Timestamp = "2026-03-01T12:00:00.250Z".parse().unwrap();
        let mut w = WavWriter::create(dir.path(), start, spec()).unwrap();
        w.write(&frames(12_000)).unwrap();
        let part = w.part_path().to_path_buf();
        drop(w); // crash: never finished
                 // A torn last frame, as a power cut mid-write leaves it.
        let mut bytes = std::fs::read(&part).unwrap();
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&part, bytes).unwrap();

        let out = repair_tmp_dir(dir.path(), 800);
        assert_eq!(out.len(), 1);
        let f = check_recovered(&out[0]);
        assert_eq!(f.frames, 12_000);
        assert_eq!(f.start, start);
        assert!(!part.exists());
        let mut r = hound::WavReader::open(&f.path).unwrap();
        let got: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        let want: Vec<i16> = (0..24_000).map(|i| i as i16).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn part_shorter_than_one_period_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WavWriter::create(dir.path(), Timestamp::UNIX_EPOCH, spec()).unwrap();
        w.write(&frames(10)).unwrap();
        let part = w.part_path().to_path_buf();
        drop(w);
        let out = repair_tmp_dir(dir.path(), 800);
        assert!(matches!(
            &out[..],
            [RepairOutcome::Deleted { frames: 10, .. }]
        ));
        assert!(!part.exists());
    }

    #[test]
    fn crash_after_guano_keeps_audio_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WavWriter::create(dir.path(), Timestamp::UNIX_EPOCH, spec()).unwrap();
        w.write(&frames(1001)).unwrap();
        let (done, _) = w
            .finish(|name, n| Guano {
                timestamp: Timestamp::UNIX_EPOCH,
                position: None,
                samplerate: 8000,
                length_seconds: n as f64 / 8000.0,
                model: "m".into(),
                serial: None,
                original_filename: name.into(),
                time_expansion: 2.0,
                deployment_name: None,
            })
            .unwrap();
        // Simulate a crash between writing GUANO and the rename.
        let part = dir.path().join("19700101_000000_000.wav.part");
        std::fs::rename(&done, &part).unwrap();
        let out = repair_tmp_dir(dir.path(), 1);
        let f = check_recovered(&out[0]);
        assert_eq!(
            (f.frames, f.samplerate, f.time_expansion),
            (1001, 8000, 2.0)
        );
        assert_eq!(hound::WavReader::open(&f.path).unwrap().duration(), 1001);
    }

    #[test]
    fn a_non_wav_part_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.wav.part");
        std::fs::write(&p, b"not audio at all").unwrap();
        let out = repair_tmp_dir(dir.path(), 1);
        assert!(matches!(&out[..], [RepairOutcome::Failed { .. }]));
        assert!(p.exists());
    }
}
