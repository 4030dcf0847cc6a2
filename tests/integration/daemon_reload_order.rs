//! A reload restarts capture, and the audio on both sides of it must sort in the order it
//! was captured: recordings are named by the instant of their first sample, and upstream's
//! tools and researchers sort by that name.
//!
//! The source here holds audio back (each new reader finds 0.8 s waiting), so a
//! capture's stream time runs ahead of the clock; the capture a reload starts must not
//! name a file before the audio the old one kept (found by `make soak`, issue 11).

use crate::support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::feeder::Feeder;
use support::{part_files, wait_until, wav_files, wav_samples, Install, Notify, RATE};

/// Names of the `.part` files in `dir`.
fn parts(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    part_files(dir)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_owned()))
        .collect()
}

#[test]
fn a_reload_never_names_a_file_before_audio_it_follows() {
    let install = Install::new();
    install.setup(&[]);
    install.deploy("reload-order");
    let notify = Notify::bind(install.root());
    let feeder = Feeder::reopening_with_backlog(&install.fifo, 0, RATE * 8 / 10);
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, Duration::from_secs(10), &daemon);
    assert!(feeder.wait_written(3 * RATE, Duration::from_secs(6)));

    // Reload just after a file began: the old capture, 0.7 s ahead of the clock, has
    // named it for an instant the new capture would otherwise start before.
    let tmp = install.tmp_audio();
    let before = parts(&tmp);
    assert!(
        wait_until(Duration::from_secs(3), || {
            let now = parts(&tmp);
            !now.is_empty() && now != before
        }),
        "no new file began"
    );
    let out = install.ok(&["config", "set", "retention.min_free_space_mb", "1"]);
    assert!(out.stdout.contains("reloaded running recorder"), "{out:#?}");
    assert!(wait_until(Duration::from_secs(3), || daemon
        .log_text()
        .contains("configuration reloaded")));
    let after = feeder.written();
    assert!(feeder.wait_written(after + 2 * RATE, Duration::from_secs(5)));

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(5)).expect("no exit");
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.log_text());

    let mut files = wav_files(&install.recordings());
    files.extend(wav_files(&tmp));
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    // In name order the ramp only goes forward: back to back, or one jump ahead where
    // the reload lost what the FIFO held (the ramp does not wrap in this run).
    let mut next: Option<u16> = None;
    let mut jumps = Vec::new();
    for f in &files {
        let samples = wav_samples(f);
        assert!(!samples.is_empty(), "{} is empty", f.display());
        let first = samples[0] as u16;
        if let Some(want) = next {
            assert!(
                first >= want,
                "{} begins at ramp sample {first}, before the {want} the file named before it ended at: {files:#?}",
                f.display()
            );
            if first > want {
                jumps.push(f.clone());
            }
        }
        for (i, s) in samples.iter().enumerate() {
            assert_eq!(
                *s as u16,
                first.wrapping_add(i as u16),
                "{} sample {i}",
                f.display()
            );
        }
        next = Some(first.wrapping_add(samples.len() as u16));
    }
    assert!(
        jumps.len() <= 1,
        "more than the reload's one hole: {jumps:#?}"
    );
    assert!(files.len() >= 4, "{files:#?}");
}
