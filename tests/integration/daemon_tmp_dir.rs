//! The temporary directory is RAM in the image (`/run/acoupi/tmp`, a tmpfs): whatever
//! sits there when the power goes is lost. A finished file must leave it for the
//! recordings folder on the card at once, so a power cut loses at most the file in
//! progress.

use crate::support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{wav_files, Running};

#[test]
fn a_finished_file_leaves_the_temporary_directory_within_a_second() {
    let mut r = Running::start("tmp-exposure");
    let tmp = r.install.tmp_audio();
    // When each finished file was first seen in tmp/, and how long it stayed.
    let mut seen: HashMap<PathBuf, Instant> = HashMap::new();
    let mut stays: Vec<(PathBuf, Duration)> = Vec::new();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let now_in_tmp = wav_files(&tmp);
        for f in &now_in_tmp {
            seen.entry(f.clone()).or_insert_with(Instant::now);
        }
        seen.retain(|f, since| {
            let here = now_in_tmp.contains(f);
            if !here {
                stays.push((f.clone(), since.elapsed()));
            }
            here
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    r.daemon.signal(Signal::SIGTERM);
    assert_eq!(
        r.daemon
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
    // 1 s files for 6 s: at least four came and went.
    assert!(stays.len() >= 4, "files seen leaving tmp/: {stays:?}");
    let slow: Vec<_> = stays
        .iter()
        .filter(|(_, d)| *d > Duration::from_secs(1))
        .collect();
    assert!(
        slow.is_empty(),
        "finished files left in RAM over 1 s: {slow:?}"
    );
    // Every file seen leaving tmp/ was kept (more were, finished before the watch began
    // or at the stop).
    let kept = wav_files(&r.install.recordings());
    assert!(
        kept.len() >= stays.len(),
        "kept {} of {} seen leaving tmp/",
        kept.len(),
        stays.len()
    );
}
