//! The crash-safe WAV writer: `<tmp>/<UTC name>.wav.part`, header sizes kept valid as the
//! file grows, a GUANO chunk after the data, then fsync, rename to `.wav`, fsync the
//! directory.
//!
//! Written by hand rather than with hound: hound cannot rewrite the header sizes while the
//! file grows, nor append a chunk after `data`. hound is what the tests (and the tools
//! downstream) read the files back with. This module knows nothing about ALSA or schedules.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::guano::{self, Guano};
use super::name;

/// Extension of a file still being written.
pub const PART_SUFFIX: &str = ".wav.part";

/// `WAVE_FORMAT_PCM`.
const FORMAT_PCM: u16 = 1;
/// `WAVE_FORMAT_EXTENSIBLE`: required for more than 16 bits or more than 2 channels.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// How much audio may follow the header's last rewrite, in seconds: a `.part` read as it
/// is (without `repair`, which keeps every whole frame whatever the header says) shows
/// all but at most this much. Each rewrite is a write call of its own, and the header
/// used to be rewritten every second (issue 14: fixed cost per period); a few seconds keep
/// an interrupted file useful as it is.
pub const HEADER_REWRITE_SECS: u64 = 5;
/// The longest header [`WavSpec::header`] writes (`WAVE_FORMAT_EXTENSIBLE`).
const MAX_HEADER_LEN: usize = 68;
/// `KSDATAFORMAT_SUBTYPE_PCM` as stored on disk.
const SUBTYPE_PCM: [u8; 16] = [
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Errors of the WAV writer and the start-up repair.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// An I/O call on a WAV file or its directory failed.
    #[error("{what} {path:?}")]
    Io {
        /// What was being done, e.g. "writing".
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A `.part` file whose header is not one this writer produces.
    #[error("{path:?} is not a WAV file this recorder wrote: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl WavError {
    /// True when the cause is a full file system ([`crate::files::is_disk_full`]: a
    /// quota too).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, WavError::Io { source, .. } if crate::files::is_disk_full(source))
    }
}

impl From<crate::files::FsError> for WavError {
    fn from(e: crate::files::FsError) -> WavError {
        WavError::Io {
            what: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

/// The I/O error constructor for `path`, naming what was being done.
pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> WavError + 'a {
    move |source| WavError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The shape of the stored audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavSpec {
    /// Real sample rate in Hz.
    pub samplerate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Bits per stored sample: 16, 24 or 32.
    pub bit_depth: u16,
    /// Time expansion factor; the header rate is `samplerate / time_expansion` when ≠ 1.
    pub time_expansion: f64,
}

impl WavSpec {
    /// Bytes per interleaved frame in the file.
    pub fn block_align(&self) -> u64 {
        u64::from(self.channels) * u64::from(self.bit_depth / 8)
    }

    /// The rate written into the header. As upstream: `int(samplerate / time_expansion)`.
    pub fn header_rate(&self) -> u32 {
        if self.time_expansion == 1.0 || self.time_expansion <= 0.0 {
            self.samplerate
        } else {
            ((f64::from(self.samplerate) / self.time_expansion) as u32).max(1)
        }
    }

    fn extensible(&self) -> bool {
        self.bit_depth > 16 || self.channels > 2
    }

    /// Length of the header up to the first data byte.
    pub fn header_len(&self) -> u64 {
        if self.extensible() {
            68
        } else {
            44
        }
    }

    /// The header for `data_bytes` of audio followed by `trailer_bytes` of other chunks.
    /// Built on the stack: it is rewritten as the file grows, and the capture thread
    /// allocates nothing per period.
    fn header(&self, data_bytes: u64, trailer_bytes: u64) -> Header {
        let fmt_len: u32 = if self.extensible() { 40 } else { 16 };
        let block = self.block_align() as u16;
        let rate = self.header_rate();
        let riff = (self.header_len() - 8 + data_bytes + (data_bytes & 1) + trailer_bytes)
            .min(u64::from(u32::MAX)) as u32;
        let mut h = Header::default();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&riff.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&fmt_len.to_le_bytes());
        let tag = if self.extensible() {
            FORMAT_EXTENSIBLE
        } else {
            FORMAT_PCM
        };
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&self.channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        h.extend_from_slice(&block.to_le_bytes());
        h.extend_from_slice(&self.bit_depth.to_le_bytes());
        if self.extensible() {
            h.extend_from_slice(&22u16.to_le_bytes());
            h.extend_from_slice(&self.bit_depth.to_le_bytes());
            let mask: u32 = if self.channels <= 18 {
                (1u32 << self.channels) - 1
            } else {
                0
            };
            h.extend_from_slice(&mask.to_le_bytes());
            h.extend_from_slice(&SUBTYPE_PCM);
        }
        h.extend_from_slice(b"data");
        h.extend_from_slice(&(data_bytes.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        debug_assert_eq!(h.len as u64, self.header_len());
        h
    }
}

/// A header's bytes, at most [`MAX_HEADER_LEN`] of them.
struct Header {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl Default for Header {
    fn default() -> Header {
        Header {
            bytes: [0; MAX_HEADER_LEN],
            len: 0,
        }
    }
}

impl Header {
    fn extend_from_slice(&mut self, b: &[u8]) {
        self.bytes[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A WAV file being written in the temporary directory.
#[derive(Debug)]
pub struct WavWriter {
    file: File,
    part: PathBuf,
    stem: String,
    spec: WavSpec,
    start: Timestamp,
    data_bytes: u64,
    header_at_bytes: u64,
}

impl WavWriter {
    /// Creates `<dir>/<stem>.wav.part` for a recording starting at `start`, named by
    /// [`name`]. If that name (or its `.wav`) already exists — the clock jumped back — a
    /// `_1`, `_2`, … suffix keeps names unique; `create_new` makes the check race-free.
    pub fn create(dir: &Path, start: Timestamp, spec: WavSpec) -> Result<WavWriter, WavError> {
        let base = name::file_stem(start);
        let mut n = 0u32;
        loop {
            let stem = name::numbered(&base, n);
            let part = dir.join(format!("{stem}{PART_SUFFIX}"));
            let done = dir.join(format!("{stem}.wav"));
            n += 1;
            if done.exists() {
                continue;
            }
            match OpenOptions::new().write(true).create_new(true).open(&part) {
                Ok(file) => {
                    let w = WavWriter {
                        file,
                        part,
                        stem,
                        spec,
                        start,
                        data_bytes: 0,
                        header_at_bytes: 0,
                    };
                    if let Err(e) = w.file.write_all_at(spec.header(0, 0).as_slice(), 0) {
                        // On a full disk the name is created but not its first page. An
                        // empty `.part` is nobody's recording: start-up repair cannot read
                        // it, and one per slot would pile up while the disk stays full.
                        let _ = std::fs::remove_file(&w.part);
                        return Err(io_err("writing header of", &w.part)(e));
                    }
                    return Ok(w);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("creating", &part)(e)),
            }
        }
    }

    /// The `.part` path being written.
    pub fn part_path(&self) -> &Path {
        &self.part
    }

    /// The instant of the first sample.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// Complete frames written so far.
    pub fn frames(&self) -> u64 {
        self.data_bytes / self.spec.block_align()
    }

    /// Appends whole frames already in the file's sample format. The header sizes are
    /// rewritten after every [`HEADER_REWRITE_SECS`] of audio, so a `.part` read as it is
    /// after a crash shows all but at most that much (`repair` recovers all of it).
    /// On a short write (e.g. `ENOSPC`) the file is cut back to whole frames and stays
    /// valid; the error is returned.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), WavError> {
        let at = self.spec.header_len() + self.data_bytes;
        if let Err(e) = self.file.write_all_at(bytes, at) {
            self.cut_to_whole_frames();
            return Err(io_err("writing", &self.part)(e));
        }
        self.data_bytes += bytes.len() as u64;
        let every = HEADER_REWRITE_SECS * u64::from(self.spec.samplerate) * self.spec.block_align();
        if self.data_bytes - self.header_at_bytes >= every {
            self.write_header(0)?;
        }
        Ok(())
    }

    /// After a failed write: keep only the whole frames that reached the file.
    fn cut_to_whole_frames(&mut self) {
        let header = self.spec.header_len();
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(header);
        let block = self.spec.block_align();
        self.data_bytes = len.saturating_sub(header) / block * block;
        if let Err(e) = self.file.set_len(header + self.data_bytes) {
            tracing::warn!(path = ?self.part, error = %e, "cutting a partly written frame failed");
        }
        if let Err(e) = self.write_header(0) {
            tracing::warn!(error = %e, "rewriting the header after a failed write failed");
        }
    }

    fn write_header(&mut self, trailer: u64) -> Result<(), WavError> {
        self.file
            .write_all_at(self.spec.header(self.data_bytes, trailer).as_slice(), 0)
            .map_err(io_err("writing header of", &self.part))?;
        self.header_at_bytes = self.data_bytes;
        Ok(())
    }

    /// Writes the final header and the GUANO chunk, syncs, renames to `.wav` and syncs the
    /// directory. A GUANO chunk that does not fit (disk full) is left out: the audio is
    /// what matters.
    pub fn finish(
        mut self,
        meta: impl FnOnce(&str, u64) -> Guano,
    ) -> Result<(PathBuf, u64), WavError> {
        // Data size first: a crash from here on leaves a header that points exactly at
        // the end of the audio, which `repair` relies on to tell audio from GUANO.
        self.write_header(0)?;
        let name = format!("{}.wav", self.stem);
        let frames = self.frames();
        let chunk = guano_chunk(self.data_bytes, &meta(&name, frames).to_text());
        let end = self.spec.header_len() + self.data_bytes;
        match self.file.write_all_at(&chunk, end) {
            Ok(()) => {
                let trailer = chunk.len() as u64 - (self.data_bytes & 1);
                self.write_header(trailer)?;
            }
            Err(e) => {
                tracing::warn!(path = ?self.part, error = %e, "GUANO chunk left out");
                self.file
                    .set_len(end)
                    .map_err(io_err("truncating", &self.part))?;
            }
        }
        self.file
            .sync_all()
            .map_err(io_err("syncing", &self.part))?;
        let done = self.part.with_file_name(&name);
        crate::files::rename_durably(&self.part, &done)?;
        Ok((done, frames))
    }
}

/// The bytes that follow `data_bytes` of audio: the data chunk's pad byte when its size
/// is odd, then the GUANO chunk (itself padded to an even size). The RIFF size counts
/// all of it; the trailer passed to the header is its length without the data pad.
pub(crate) fn guano_chunk(data_bytes: u64, text: &str) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(text.len() + 10);
    if data_bytes & 1 == 1 {
        chunk.push(0);
    }
    chunk.extend_from_slice(guano::CHUNK_ID);
    chunk.extend_from_slice(&(text.len() as u32).to_le_bytes());
    chunk.extend_from_slice(text.as_bytes());
    if text.len() & 1 == 1 {
        chunk.push(0);
    }
    chunk
}

/// Header facts read back from a file this writer produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub channels: u16,
    pub header_rate: u32,
    pub bit_depth: u16,
    pub block_align: u64,
    /// Offset of the first audio byte.
    pub data_at: u64,
    /// The data size the header claims.
    pub data_bytes: u64,
}

/// Reads the RIFF header of `path` (from `head`, its first bytes).
pub(crate) fn parse_header(path: &Path, head: &[u8]) -> Result<Parsed, WavError> {
    let bad = |why| WavError::Malformed {
        path: path.to_path_buf(),
        why,
    };
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let mut pos = 12usize;
    let mut fmt = None;
    while pos + 8 <= head.len() {
        let id = &head[pos..pos + 4];
        let len = u32_at(pos + 4) as usize;
        if id == b"fmt " {
            if len < 16 || pos + 8 + 16 > head.len() {
                return Err(bad("short fmt chunk"));
            }
            let b = pos + 8;
            fmt = Some((u16_at(b + 2), u32_at(b + 4), u16_at(b + 12), u16_at(b + 14)));
        } else if id == b"data" {
            let (channels, header_rate, block, bit_depth) =
                fmt.ok_or_else(|| bad("data before fmt"))?;
            if block == 0 || channels == 0 {
                return Err(bad("zero channels or block size"));
            }
            return Ok(Parsed {
                channels,
                header_rate,
                bit_depth,
                block_align: u64::from(block),
                data_at: (pos + 8) as u64,
                data_bytes: u64::from(u32_at(pos + 4)),
            });
        }
        pos += 8 + len + (len & 1);
    }
    Err(bad("no data chunk in the header"))
}

/// The bit depths a WAV file is stored in: the one list of them (the recorder refuses
/// others, and configuration validation and every message read it from here).
pub const BIT_DEPTHS: [u16; 3] = [16, 24, 32];

/// Whether [`BIT_DEPTHS`] has `bits`.
pub fn valid_bit_depth(bits: u16) -> bool {
    BIT_DEPTHS.contains(&bits)
}

/// [`BIT_DEPTHS`] as messages list them: "16, 24 or 32".
pub fn bit_depths_phrase() -> String {
    let [a, b, c] = BIT_DEPTHS;
    format!("{a}, {b} or {c}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_depth_messages_list_the_one_list() {
        assert_eq!(bit_depths_phrase(), "16, 24 or 32");
        assert_eq!(
            crate::audio::AudioError::InvalidBitDepth(20).to_string(),
            "bit depth 20 is not supported; use 16, 24 or 32"
        );
        assert!(BIT_DEPTHS.iter().all(|&b| valid_bit_depth(b)) && !valid_bit_depth(20));
    }

    fn spec(rate: u32, channels: u16, bits: u16) -> WavSpec {
        WavSpec {
            samplerate: rate,
            channels,
            bit_depth: bits,
            time_expansion: 1.0,
        }
    }

    fn meta(name: &str, frames: u64) -> Guano {
        Guano::for_test(name, frames, Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn odd_sized_24_bit_data_is_padded_and_hound_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            WavWriter::create(dir.path(), Timestamp::UNIX_EPOCH, spec(8000, 1, 24)).unwrap();
        let samples: Vec<i32> = vec![-8_388_608, 1, 8_388_607];
        let bytes: Vec<u8> = samples
            .iter()
            .flat_map(|s| s.to_le_bytes()[..3].to_vec())
            .collect();
        w.write(&bytes).unwrap();
        let (path, frames) = w.finish(meta).unwrap();
        assert_eq!(frames, 3);
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().bits_per_sample, 24);
        let got: Vec<i32> = r.samples::<i32>().map(|s| s.unwrap()).collect();
        assert_eq!(got, samples);
        let riff = std::fs::read(&path).unwrap();
        let riff_size = u32::from_le_bytes([riff[4], riff[5], riff[6], riff[7]]) as usize;
        assert_eq!(
            riff_size + 8,
            riff.len(),
            "RIFF size covers data, pad and GUANO"
        );
    }

    #[test]
    fn time_expansion_divides_the_header_rate() {
        let mut s = spec(384_000, 1, 16);
        s.time_expansion = 10.0;
        let dir = tempfile::tempdir().unwrap();
        let w = WavWriter::create(dir.path(), Timestamp::UNIX_EPOCH, s).unwrap();
        let (path, _) = w.finish(meta).unwrap();
        assert_eq!(
            hound::WavReader::open(path).unwrap().spec().sample_rate,
            38_400
        );
    }

    #[test]
    fn a_name_that_exists_after_a_clock_jump_gets_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let t = Timestamp::UNIX_EPOCH;
        let (first, _) = WavWriter::create(dir.path(), t, spec(8000, 1, 16))
            .unwrap()
            .finish(meta)
            .unwrap();
        let open = WavWriter::create(dir.path(), t, spec(8000, 1, 16)).unwrap();
        let (second, _) = WavWriter::create(dir.path(), t, spec(8000, 1, 16))
            .unwrap()
            .finish(meta)
            .unwrap();
        assert_eq!(first.file_name().unwrap(), "19700101_000000_000.wav");
        assert_eq!(
            open.part_path().file_name().unwrap(),
            "19700101_000000_000_1.wav.part"
        );
        assert_eq!(second.file_name().unwrap(), "19700101_000000_000_2.wav");
    }

    #[test]
    fn header_is_valid_while_the_file_grows() {
        let dir = tempfile::tempdir().unwrap();
        let rate = 8000u64;
        let mut w =
            WavWriter::create(dir.path(), Timestamp::UNIX_EPOCH, spec(8000, 1, 16)).unwrap();
        let period: Vec<u8> = (0..800i16).flat_map(|s| s.to_le_bytes()).collect();
        let mut rewrites = 0;
        let mut shown = 0;
        for i in 1..=120u64 {
            w.write(&period).unwrap();
            // Without finishing: the header always describes whole audio already written,
            // and never lags it by more than the bound.
            let r = hound::WavReader::open(w.part_path()).unwrap();
            let frames = u64::from(r.duration());
            assert!(
                frames <= i * 800,
                "{frames} frames claimed after {}",
                i * 800
            );
            assert!(
                i * 800 - frames < HEADER_REWRITE_SECS * rate,
                "header lags {} frames behind",
                i * 800 - frames
            );
            if frames != shown {
                rewrites += 1;
                shown = frames;
            }
        }
        // 12 s of audio: rewritten at 5 s and 10 s, not at every second.
        assert_eq!(rewrites, 2);
        assert_eq!(shown, 2 * HEADER_REWRITE_SECS * rate);
    }
}
