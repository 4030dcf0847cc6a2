//! Reading a finished WAV file back for `acoupi audit`: what its header claims, whether
//! the file is as long as the header says, and whether its GUANO chunk is there.
//!
//! Read-only and tolerant: it never changes a file, and reports what it finds rather than
//! judging it (the audit compares the facts with the file's database row).

use std::path::Path;

use super::repair::{open_with_head, read_guano};
use super::wav::{self, WavError};

/// What a WAV file on disk says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct WavFacts {
    /// Channels in the header.
    pub channels: u16,
    /// The sample rate in the header (the real rate divided by any time expansion).
    pub header_rate: u32,
    /// Bits per stored sample.
    pub bit_depth: u16,
    /// Frames the header's data size claims.
    pub frames: u64,
    /// Complete frames the file actually holds after the header; fewer than `frames`
    /// when the file was cut short.
    pub frames_present: u64,
    /// Whether a complete GUANO chunk follows the audio.
    pub has_guano: bool,
}

impl WavFacts {
    /// The file is shorter than its header says.
    pub fn is_truncated(&self) -> bool {
        self.frames_present < self.frames
    }
}

/// Reads the header of the finished WAV at `path` and measures the file against it.
/// [`WavError::Malformed`] when it is not a RIFF/WAVE file with `fmt ` and `data` chunks.
pub fn inspect(path: &Path) -> Result<WavFacts, WavError> {
    let io = |what| wav::io_err(what, path);
    let (file, len, head) = open_with_head(path, false)?;
    let h = wav::parse_header(path, &head)?;
    let frames = h.data_bytes / h.block_align;
    let present = len.saturating_sub(h.data_at).min(h.data_bytes) / h.block_align;
    let has_guano = read_guano(&file, &h, len).map_err(io("reading"))?.is_some();
    Ok(WavFacts {
        channels: h.channels,
        header_rate: h.header_rate,
        bit_depth: h.bit_depth,
        frames,
        frames_present: present,
        has_guano,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::guano::Guano;
    use crate::audio::wav::{WavSpec, WavWriter};
    use jiff::Timestamp;

    fn written(dir: &Path, frames: usize) -> std::path::PathBuf {
        let spec = WavSpec {
            samplerate: 8000,
            channels: 1,
            bit_depth: 16,
            time_expansion: 1.0,
        };
        let mut w = WavWriter::create(dir, Timestamp::UNIX_EPOCH, spec).unwrap();
        w.write(&vec![0u8; frames * 2]).unwrap();
        w.finish(|name, n| Guano::for_test(name, n, Timestamp::UNIX_EPOCH))
            .unwrap()
            .0
    }

    #[test]
    fn a_finished_file_is_whole_and_carries_guano() {
        let dir = tempfile::tempdir().unwrap();
        let f = inspect(&written(dir.path(), 1000)).unwrap();
        assert_eq!((f.frames, f.frames_present), (1000, 1000));
        assert_eq!((f.channels, f.header_rate, f.bit_depth), (1, 8000, 16));
        assert!(f.has_guano && !f.is_truncated());
    }

    #[test]
    fn a_cut_file_is_truncated_and_has_lost_its_guano() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), 1000);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(44 + 600 * 2).unwrap();
        let f = inspect(&path).unwrap();
        assert_eq!((f.frames, f.frames_present), (1000, 600));
        assert!(f.is_truncated() && !f.has_guano);
    }

    #[test]
    fn a_file_that_is_not_wav_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(inspect(&path), Err(WavError::Malformed { .. })));
    }
}
