//! The temporary directory is RAM in the image (`/run/acoupi/tmp`, a tmpfs): whatever
//! sits there when the power goes is lost. A finished file must leave it for the
//! recordings folder on the card at once, so a power cut loses at most the file in
//! progress.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use nix::sys::signal::Signal;
use support::{wav_files, wav_samples, Running, RATE};

/// When the audio of a kept file ends: its name's start (`YYYYMMDD_HHMMSS_mmm`) plus its
/// length. Stream time starts at the first read and follows the wall clock, so this is
/// when the recorder finished the file (within a read).
fn end_of(file: &Path) -> Timestamp {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let start = jiff::civil::DateTime::strptime("%Y%m%d_%H%M%S", &name[..15])
        .unwrap()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    let ms: i64 = name[16..19].parse().unwrap();
    let frames = wav_samples(file).len() as i64;
    start + SignedDuration::from_millis(ms + frames * 1000 / RATE as i64)
}

#[test]
fn a_finished_file_leaves_the_temporary_directory_within_a_second() {
    let mut r = Running::start("tmp-exposure");
    let recordings = r.install.recordings();
    // When each file first showed up in the recordings folder.
    let mut arrived: HashMap<PathBuf, Timestamp> = HashMap::new();
    let until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < until {
        for f in wav_files(&recordings) {
            arrived.entry(f).or_insert_with(Timestamp::now);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    r.daemon.signal(Signal::SIGTERM);
    assert_eq!(
        r.daemon
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
    // 1 s files for 6 s: at least four finished and were moved while we watched (the
    // first may have arrived before the first look).
    assert!(arrived.len() >= 4, "files kept while watched: {arrived:?}");
    let slow: Vec<_> = arrived
        .iter()
        .map(|(f, at)| (f, at.duration_since(end_of(f))))
        .filter(|(_, waited)| *waited > SignedDuration::from_secs(1))
        .collect();
    assert!(
        slow.is_empty(),
        "finished files left in RAM over 1 s: {slow:?}"
    );
}
