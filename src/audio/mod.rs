//! ALSA capture: owns the PCM on a dedicated thread and cuts a continuous frame stream
//! into crash-safe WAV files at sample boundaries.
//!
//! The PCM is open only while a recording window is open. This module knows nothing about
//! SQLite, configuration files or tokio: it receives a [`crate::schedule::plan::Planner`]
//! and reports [`RecorderEvent`]s over a channel.
//!
//! # Layout
//! - [`device`]: device names → PCM names, capability probing, hardware parameters,
//!   the test capture.
//! - [`recorder`]: the capture thread ("recording worker") and its progress counters.
//! - [`wav`]: the `.wav.part` writer; [`repair`]: start-up repair of leftovers;
//!   [`name`]: a recording's file name (its UTC start), written and read back;
//!   [`inspect`]: a finished file's header, length and GUANO read back for the audit.
//! - [`guano`]: the GUANO metadata chunk; [`convert`]: sample format conversion.
//! - [`status`]: progress counters and events the recorder reports.
//! - [`mod@format`]: the sample formats.

pub mod convert;
pub mod device;
pub mod format;
pub mod guano;
pub mod inspect;
pub mod name;
pub mod recorder;
pub mod repair;
pub mod status;
pub mod wav;

use std::ffi::CStr;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

pub use device::{list_devices, resolve_device, test_capture, DeviceInfo, TestCaptureReport};
pub use recorder::{spawn_recorder, RecorderConfig, RecorderHandle};
pub use repair::{add_missing_guano, repair_tmp_dir, GuanoContext, RepairOutcome};
pub use status::{GapReason, Progress, RecorderEvent, RecorderState};

/// The version of the alsa-lib this binary runs with (the static one on the device).
pub fn alsa_lib_version() -> String {
    // SAFETY: snd_asoundlib_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(alsa_sys::snd_asoundlib_version()) }
        .to_string_lossy()
        .into_owned()
}

/// A finished recording in the temporary directory, ready to be registered.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedFile {
    /// The `.wav` file.
    pub path: PathBuf,
    /// Instant of the first sample (stream time).
    pub start: Timestamp,
    /// Frames in the file.
    pub frames: u64,
    /// Real sample rate in Hz (not time-expanded).
    pub samplerate: u32,
    /// Channels.
    pub channels: u16,
    /// Stored bits per sample.
    pub bit_depth: u16,
    /// Time expansion factor (1 for none).
    pub time_expansion: f64,
    /// True when `start` is an estimate: a crash left a file whose name holds no time,
    /// and its start was taken from its last write minus its length (see
    /// [`repair`]). The row then says the clock was not synchronised.
    pub start_approximate: bool,
}

impl FinishedFile {
    /// The stream-time instant just after its last sample.
    pub fn end(&self) -> Timestamp {
        let ns = i128::from(self.frames) * 1_000_000_000 / i128::from(self.samplerate.max(1));
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        self.start
            .checked_add(jiff::SignedDuration::from_nanos(ns))
            .unwrap_or(Timestamp::MAX)
    }
}

/// Errors of device lookup, device configuration and capture.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// `microphone.device_name` is empty.
    #[error("no microphone configured; set microphone.device_name to a card id or PCM name (see `acoupi devices`)")]
    NoDeviceConfigured,
    /// A bare card number was configured.
    #[error("device name {name:?} is a card number, which can change between boots; use the card id instead (cards: {available})")]
    CardNumber {
        /// The configured name.
        name: String,
        /// The cards that exist.
        available: String,
    },
    /// No card matches the configured name.
    #[error("no capture device matches {name:?}; cards: {available}")]
    NoSuchDevice {
        /// The configured name.
        name: String,
        /// The cards that exist.
        available: String,
    },
    /// Several cards match the configured substring.
    #[error("device name {name:?} matches several cards ({matches}); use the full card id")]
    Ambiguous {
        /// The configured name.
        name: String,
        /// The ids of the matching cards.
        matches: String,
    },
    /// Listing the sound cards failed.
    #[error("enumerating sound cards")]
    Enumerate(#[source] alsa::Error),
    /// The PCM could not be opened.
    #[error("opening PCM {pcm:?}")]
    Open {
        /// The PCM name.
        pcm: String,
        /// The cause (e.g. no such device, busy).
        #[source]
        source: alsa::Error,
    },
    /// Rate outside what the recorder supports.
    #[error("sample rate {0} Hz is out of range; use {min}..={max}", min = device::RATE_RANGE.start(), max = device::RATE_RANGE.end())]
    InvalidRate(u32),
    /// Zero channels requested.
    #[error("audio_channels must be at least 1")]
    InvalidChannels,
    /// The stored bit depth is not one of [`wav::BIT_DEPTHS`].
    #[error("bit depth {0} is not supported; use {depths}", depths = wav::bit_depths_phrase())]
    InvalidBitDepth(u16),
    /// The device does not offer the rate.
    #[error("PCM {pcm:?} does not support {rate} Hz; it supports {supported}")]
    UnsupportedRate {
        /// The PCM name.
        pcm: String,
        /// The requested rate.
        rate: u32,
        /// What it offers.
        supported: String,
    },
    /// The device does not offer the channel count.
    #[error("PCM {pcm:?} does not support {channels} channels; it supports {min}..={max}")]
    UnsupportedChannels {
        /// The PCM name.
        pcm: String,
        /// The requested count.
        channels: u16,
        /// Fewest channels.
        min: u32,
        /// Most channels.
        max: u32,
    },
    /// The device offers no usable sample format.
    #[error("PCM {pcm:?} does not deliver {wanted} samples; it offers {supported}")]
    UnsupportedFormat {
        /// The PCM name.
        pcm: String,
        /// What was asked for.
        wanted: String,
        /// What it offers.
        supported: String,
    },
    /// A hardware parameter call failed.
    #[error("configuring PCM {pcm:?}: {what}")]
    HwParams {
        /// The PCM name.
        pcm: String,
        /// Which step.
        what: &'static str,
        /// The cause.
        #[source]
        source: alsa::Error,
    },
    /// Reading samples failed and recovery did not help.
    #[error("reading from PCM {pcm:?}")]
    Read {
        /// The PCM name.
        pcm: String,
        /// The cause.
        #[source]
        source: alsa::Error,
    },
    /// The recorder thread could not be started.
    #[error("starting the recorder thread")]
    Spawn(#[source] std::io::Error),
    /// The device delivered nothing for a while.
    #[error("PCM {pcm:?} delivered no audio within {waited:?}; check the microphone connection")]
    NoFrames {
        /// The PCM name.
        pcm: String,
        /// How long we waited.
        waited: Duration,
    },
}
