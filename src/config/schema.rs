//! The program configuration: every field, its default and its meaning.
//!
//! This is the RON file at `/etc/acoupi/acoupi.ron` (system mode) or
//! `$ACOUPI_HOME/config/acoupi.ron` (user mode). Field names follow upstream acoupi's
//! `program.json` where a field exists there (`timezone`, `microphone.samplerate`,
//! `recording.duration`, `paths.recordings`, `recording_saving.starttime`, …) so upstream
//! users find their way; fields upstream lacks are documented where they are declared.
//! Defaults match upstream's default program (3 s every 10 s, 06:00–22:30,
//! Europe/London), but the window is a single wrap-aware interval, not 24 hours.

use serde::{Deserialize, Serialize};

use crate::audio::format::SampleFormat;
use crate::messaging::config::MessagingConfig;
/// The schedule owns its input: `recording` and `recording_saving` are declared in
/// `schedule::spec`, next to the bounds and windows they are made of.
pub use crate::schedule::spec::{Recording, RecordingSaving};
/// The layout owns its input too: `paths` is declared in `system::layout`, which turns it
/// into the storages' real paths (so `system` never imports `config`).
pub use crate::system::layout::Paths;

/// Which acoupi program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// Records on schedule, keeps or deletes files by the saving filters.
    #[default]
    Default,
    /// The default program plus messages: heartbeats and recording summaries go through
    /// a durable outbox (messages.db) to MQTT and/or HTTP. Needs the `messaging` section.
    Connected,
}

/// The whole program configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which program runs.
    pub program: Program,
    /// IANA time zone in which schedules, windows and saving filters are read.
    pub timezone: String,
    /// The capture device and how it is sampled.
    pub microphone: Microphone,
    /// When and how long to record.
    pub recording: Recording,
    /// Where files and databases live.
    pub paths: Paths,
    /// Saving filters: which finished recordings are kept. `None` keeps every recording.
    pub recording_saving: Option<RecordingSaving>,
    /// Disk-space and age limits for kept recordings.
    pub retention: Retention,
    /// How often `acoupi beat` records a heartbeat.
    pub heartbeat: Heartbeat,
    /// A deployment to start without a terminal (used by the boot-partition file).
    pub deployment: Option<Site>,
    /// Where messages go (upstream's connected program): required when `program` is
    /// `connected`, ignored (kept, so it can be prepared before switching) otherwise.
    /// When both `mqtt` and `http` are set, BOTH are used: a message leaves the outbox
    /// only when every configured messenger has it.
    pub messaging: Option<MessagingConfig>,
}

/// The microphone. Upstream names: `device_name`, `samplerate`, `audio_channels`,
/// `time_expansion`; `sample_format` and `bit_depth` are ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Microphone {
    /// How the device is found: a card id or name substring (`UltraMic`), or a full PCM
    /// name (`hw:CARD=UltraMic,DEV=0`, `plughw:…`, `dsnoop:…`). Never a bare card number.
    pub device_name: String,
    /// Sample rate in Hz, within `audio::device::RATE_RANGE` (8000..=384000).
    pub samplerate: u32,
    /// Number of channels, at least 1.
    pub audio_channels: u16,
    /// Time expansion factor written into GUANO and the WAV header (1.0 for none).
    pub time_expansion: f64,
    /// Device sample format; `None` picks the first the device supports of
    /// S16_LE, S24_LE, S24_3LE, S32_LE that can hold `bit_depth`.
    pub sample_format: Option<SampleFormat>,
    /// Bits per sample stored in the WAV file: one of `audio::wav::BIT_DEPTHS` (16, 24, 32).
    pub bit_depth: u16,
}

/// Retention of kept recordings (ours; upstream only stops recording on low space).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Free space to keep on the recordings file system, in MiB. Below it the oldest kept
    /// recordings are deleted; when nothing can be deleted recording pauses.
    pub min_free_space_mb: u64,
    /// Delete kept recordings older than this many days; `None` keeps them forever.
    pub max_age_days: Option<u32>,
}

/// Heartbeat cadence (ours; upstream's heartbeat is a messaging feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Heartbeat {
    /// Seconds between heartbeats.
    pub interval: u32,
}

/// A deployment site, as `acoupi deployment start` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Deployment name.
    pub name: String,
    /// Latitude in degrees, -90..=90.
    pub latitude: f64,
    /// Longitude in degrees, -180..=180.
    pub longitude: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            program: Program::Default,
            timezone: "Europe/London".into(),
            microphone: Microphone::default(),
            recording: Recording::default(),
            paths: Paths::default(),
            recording_saving: None,
            retention: Retention::default(),
            heartbeat: Heartbeat::default(),
            deployment: None,
            messaging: None,
        }
    }
}

impl Default for Microphone {
    fn default() -> Self {
        Microphone {
            device_name: String::new(),
            samplerate: 48_000,
            audio_channels: 1,
            time_expansion: 1.0,
            sample_format: None,
            bit_depth: 16,
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            min_free_space_mb: 512,
            max_age_days: None,
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat { interval: 60 }
    }
}
