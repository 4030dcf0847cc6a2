//! Preprocessing for window models: a WAV file becomes mono f32 samples at the model's
//! rate, cut into fixed windows.
//!
//! Reading goes through hound (any PCM or float WAV, including ours with a GUANO chunk
//! after `data`). Channels are averaged: the generic window model takes one channel, and
//! averaging keeps a call heard on either channel. Resampling is linear interpolation:
//! enough for a window classifier fed at a neighbouring rate, and no dependency; a model
//! kind whose reference implementation resamples otherwise (BirdNET, BatDetect2) must
//! bring its own, or its scores will not match the reference.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::DetectionError;

/// A recording as the models see it: mono samples in -1..1 and their rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Mono {
    /// The samples, channels averaged.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub samplerate: u32,
}

/// Reads a WAV file as mono f32 samples at its own rate.
pub fn read_wav(path: &Path) -> Result<Mono, DetectionError> {
    let file = File::open(path).map_err(|e| DetectionError::Audio {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    read_open_wav(file, path)
}

/// [`read_wav`] from a file already open: the detection worker opens a recording when
/// it is queued, so the recording can be moved (or deleted) meanwhile. `path` is only
/// for the error message.
pub fn read_open_wav(file: File, path: &Path) -> Result<Mono, DetectionError> {
    let bad = |e: hound::Error| DetectionError::Audio {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut reader = hound::WavReader::new(BufReader::new(file)).map_err(bad)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        hound::SampleFormat::Int => {
            // Full scale of a signed integer of this width: the most negative sample is -1.
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(bad)?
        }
    };
    let samples = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(Mono {
        samples,
        samplerate: spec.sample_rate,
    })
}

/// `samples` at `from` Hz resampled to `to` Hz by linear interpolation; the same samples
/// when the rates agree. The result covers the same duration (rounded down to a sample).
pub fn resample_linear(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() || from == 0 || to == 0 {
        return samples.to_vec();
    }
    let out_len = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let left = pos.floor() as usize;
            let frac = (pos - left as f64) as f32;
            let a = samples[left.min(samples.len() - 1)];
            let b = samples[(left + 1).min(samples.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// The first sample of each window of `window` samples, `hop` apart, covering `len`
/// samples: the last window may run past the end (it is padded with silence), so the
/// tail of a recording is analysed too. No window for no samples.
pub fn window_starts(len: usize, window: usize, hop: usize) -> Vec<usize> {
    let hop = hop.max(1);
    let mut starts = Vec::new();
    let mut start = 0;
    while start < len {
        starts.push(start);
        if start + window >= len {
            break;
        }
        start += hop;
    }
    starts
}

/// The window of `window` samples at `start`, padded with zeros past the end.
pub fn window_at(samples: &[f32], start: usize, window: usize) -> Vec<f32> {
    let end = (start + window).min(samples.len());
    let mut w = samples[start.min(end)..end].to_vec();
    w.resize(window, 0.0);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_tail_and_stop_at_the_first_that_reaches_the_end() {
        assert_eq!(window_starts(0, 4, 4), Vec::<usize>::new());
        assert_eq!(window_starts(3, 4, 4), vec![0]);
        assert_eq!(window_starts(8, 4, 4), vec![0, 4]);
        assert_eq!(window_starts(9, 4, 4), vec![0, 4, 8]);
        assert_eq!(window_starts(8, 4, 2), vec![0, 2, 4]);
        assert_eq!(window_at(&[1.0, 2.0, 3.0], 2, 3), vec![3.0, 0.0, 0.0]);
    }

    #[test]
    fn linear_resampling_keeps_duration_and_interpolates() {
        let up = resample_linear(&[0.0, 1.0, 0.0, -1.0], 4, 8);
        assert_eq!(up.len(), 8);
        assert_eq!(&up[..4], &[0.0, 0.5, 1.0, 0.5]);
        let down = resample_linear(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 6, 3);
        assert_eq!(down, vec![0.0, 2.0, 4.0]);
        assert_eq!(resample_linear(&[0.5], 48_000, 48_000), vec![0.5]);
    }

    #[test]
    fn stereo_int_files_read_as_mono_full_scale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in [i16::MIN, 0, 16384, 16384] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let m = read_wav(&path).unwrap();
        assert_eq!(m.samplerate, 8000);
        assert_eq!(m.samples, vec![-0.5, 0.5]);
        let err = read_wav(&dir.path().join("none.wav")).unwrap_err();
        assert!(err.to_string().contains("none.wav"), "{err}");
    }
}
