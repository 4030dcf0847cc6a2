//! Sample formats: what the device delivers and what the WAV file stores.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A capture format as ALSA names it. Only the little-endian integer formats USB and I2S
/// microphones deliver are supported. Variants carry ALSA's own spelling so the RON
/// configuration reads `S24_3LE`, as `arecord` and `acoupi devices` print it.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SampleFormat {
    /// 16-bit signed, 2 bytes per sample.
    S16_LE,
    /// 24-bit signed in the low 3 bytes of a 4-byte word.
    S24_LE,
    /// 24-bit signed packed in 3 bytes.
    S24_3LE,
    /// 32-bit signed.
    S32_LE,
}

impl SampleFormat {
    /// Every supported format, in order of preference when the device offers several.
    pub const ALL: [SampleFormat; 4] = [
        SampleFormat::S16_LE,
        SampleFormat::S24_LE,
        SampleFormat::S24_3LE,
        SampleFormat::S32_LE,
    ];

    /// The ALSA name, e.g. `S24_3LE`.
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::S16_LE => "S16_LE",
            SampleFormat::S24_LE => "S24_LE",
            SampleFormat::S24_3LE => "S24_3LE",
            SampleFormat::S32_LE => "S32_LE",
        }
    }

    /// Bytes one sample of one channel takes in the device buffer.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::S16_LE => 2,
            SampleFormat::S24_3LE => 3,
            SampleFormat::S24_LE | SampleFormat::S32_LE => 4,
        }
    }

    /// Significant bits per sample.
    pub fn significant_bits(self) -> u16 {
        match self {
            SampleFormat::S16_LE => 16,
            SampleFormat::S24_LE | SampleFormat::S24_3LE => 24,
            SampleFormat::S32_LE => 32,
        }
    }
}

impl fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SampleFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown sample format {s:?}; use one of S16_LE, S24_LE, S24_3LE, S32_LE")
            })
    }
}
