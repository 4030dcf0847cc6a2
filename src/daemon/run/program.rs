//! What `acoupi run` derives from one version of the configuration: the schedule
//! behind the disk-full gate, the management task, and the recorder's settings.

use std::path::Path;
use std::sync::Arc;

use crate::audio::{GuanoContext, RecorderConfig};
use crate::config::schema::Config;
use crate::schedule::{parse_time_zone, Location, SavingFilters, Schedule};
use crate::store::metadata::Deployment;
use crate::system::layout::{Layout, StoragePaths};
use crate::tasks::management::{available_bytes, retention, KeepRule, Management};

use super::pause::{Gate, Pause};
use super::ROOM_MARGIN;

/// Everything derived from one version of the configuration.
pub(super) struct Program {
    pub(super) config: Config,
    pub(super) paths: StoragePaths,
    pub(super) gate: Arc<Gate>,
    pub(super) management: Management,
    /// Free bytes each storage needs before a disk-full pause ends: one file and its row.
    pub(super) room_needed: u64,
}

impl Program {
    /// The program of `config`; its gate closes while `pause` lasts (the daemon's one
    /// pause, which outlives the configuration).
    pub(super) fn new(
        config: Config,
        layout: &Layout,
        deployment: &Deployment,
        serial: &str,
        pause: Arc<Pause>,
    ) -> anyhow::Result<Program> {
        let paths = layout.storage_paths(&config.paths);
        let tz = parse_time_zone(&config.timezone)?;
        let location = match (deployment.latitude, deployment.longitude) {
            (Some(latitude), Some(longitude)) => Some(Location {
                latitude,
                longitude,
            }),
            _ => None,
        };
        let schedule = Schedule::new(&config.recording, tz.clone(), location)?;
        let keep: Option<KeepRule> = match &config.recording_saving {
            None => None,
            Some(saving) => {
                let filters = SavingFilters::new(Some(saving), tz, location)?;
                Some(Box::new(move |t| filters.keeps(t)))
            }
        };
        // A threshold beyond half the disk (a typo, or a file edited by hand) is clamped
        // with an error in the log, not refused: refusing would stop the recording.
        let min_free =
            retention::clamp_min_free(&paths.recordings, config.retention.min_free_space_mb);
        let mut management = Management::new(paths.recordings.clone(), min_free);
        management.keep = keep;
        if let Some(d) = config.detection.as_ref().filter(|d| d.keep_only_detected) {
            management.keep_detected = true;
            management.keep_negatives = d.keep_negatives;
        }
        management.max_age = config
            .retention
            .max_age_days
            .map(|d| jiff::SignedDuration::from_hours(i64::from(d) * 24));
        let mic = &config.microphone;
        management.guano = GuanoContext {
            model: mic.device_name.clone(),
            serial: Some(serial.to_string()),
            position: deployment.latitude.zip(deployment.longitude),
            deployment_name: Some(deployment.name.clone()),
        };
        let room_needed = u64::from(mic.samplerate)
            * u64::from(mic.audio_channels)
            * u64::from(mic.bit_depth / 8)
            * u64::from(config.recording.duration)
            + ROOM_MARGIN;
        Ok(Program {
            config,
            paths,
            gate: Arc::new(Gate { schedule, pause }),
            management,
            room_needed,
        })
    }

    /// Whether the temporary directory and metadata.db's folder each have room for one
    /// more file and its row, and the recordings root for that and the free space
    /// retention keeps (below it the management pass would pause again at once). A
    /// folder that cannot be measured does not hold a pause: a write refused again would
    /// say so.
    pub(super) fn room_for_a_file(&self) -> bool {
        let p = &self.paths;
        let db_dir = p.db_metadata.parent().unwrap_or(Path::new("."));
        let kept_free = self.room_needed.max(self.management.min_free_bytes);
        [
            (p.tmp_audio.as_path(), self.room_needed),
            (db_dir, self.room_needed),
            (p.recordings.as_path(), kept_free),
        ]
        .into_iter()
        .all(|(dir, need)| available_bytes(dir).map_or(true, |a| a >= need))
    }

    pub(super) fn recorder_config(&self, deployment: &Deployment, serial: &str) -> RecorderConfig {
        let mic = &self.config.microphone;
        RecorderConfig {
            device_name: mic.device_name.clone(),
            samplerate: mic.samplerate,
            channels: mic.audio_channels,
            format: mic.sample_format,
            bit_depth: mic.bit_depth,
            time_expansion: mic.time_expansion,
            tmp_dir: self.paths.tmp_audio.clone(),
            deployment_name: Some(deployment.name.clone()),
            position: deployment.latitude.zip(deployment.longitude),
            serial: Some(serial.to_string()),
            kept_until: None,
        }
    }
}
