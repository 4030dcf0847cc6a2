//! `acoupi run` stops within 2 s in every state (issue 11), as systemd stops it: SIGTERM
//! to the real binary under a `NOTIFY_SOCKET`, the real alsa-lib reading a FIFO through
//! the `file` plugin, a real metadata.db and messages.db.
//!
//! The states that used to hold a stop up: capture stalled with the microphone open (the
//! feeder pauses with the FIFO held open, so the read blocks as on a hung device), and the
//! connected program with its MQTT broker down (a loopback port nobody listens on).
//! Each test measures SIGTERM → exit and prints the figure.

use crate::connected_support;
use crate::messaging_support;
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use acoupi::store::{audit, MetadataStore};
use connected_support::{messages_db, mqtt_settings, outbox_messages};
use connected_support::{set_deployment, setup_connected};
use messaging_support::free_port;
use nix::sys::signal::Signal;
use support::feeder::Feeder;
use support::{
    part_files, ramp, wait_until, wav_files, wav_samples, Install, Notify, Running, RATE,
};

/// The stop budget the issue sets; the assertions allow a little for a loaded test host.
const STOP_BUDGET: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_millis(300);

/// SIGTERM, then how long the daemon took to exit and its exit code.
fn sigterm_and_time(daemon: &mut support::Daemon) -> (Duration, Option<i32>) {
    let t = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no exit 30 s after SIGTERM; log:\n{}", daemon.log_text()));
    (t.elapsed(), status.code())
}

/// Samples in every finished file and `.part` under `home` (recordings and tmp).
///
/// The recorder moves finished files while this walks, so a file listed in tmp may be gone
/// when it is opened: it counts nothing this time and the caller's next poll finds it.
fn samples_on_disk(home: &Path, tmp: &Path) -> u64 {
    let done: u64 = wav_files(home)
        .iter()
        .filter_map(|f| hound::WavReader::open(f).ok())
        .map(|r| u64::from(r.duration()))
        .sum();
    done + part_files(tmp)
        .iter()
        .map(|p| support::part_frames(p))
        .sum::<u64>()
}

// Issue 11: SIGTERM while capture was stalled (microphone open, no data) never finished:
// the stop waited on the stalled read until systemd's SIGKILL.
#[test]
fn issue_11_sigterm_during_a_capture_stall_stops_within_2_s_keeping_every_sample() {
    let Running {
        install,
        notify,
        feeder,
        mut daemon,
        ready_at,
    } = Running::start("stall stop");
    // 2.5 s of audio, then the source stalls with the FIFO open.
    assert!(feeder.wait_written(2 * RATE + RATE / 2, Duration::from_secs(6)));
    let written = feeder.pause();
    let (home, tmp) = (install.home.clone(), install.tmp_audio());
    assert!(
        wait_until(Duration::from_secs(5), || samples_on_disk(&home, &tmp)
            == feeder.written()),
        "capture did not catch up with the writer"
    );
    let written = written.max(feeder.written());
    // The stall is judged (and the read is blocked) before the signal.
    assert!(
        notify
            .wait_for(ready_at, Duration::from_secs(5), |l| l
                == "STATUS=capture stalled: no audio from the microphone")
            .is_some(),
        "the stall was never reported; log:\n{}",
        daemon.log_text()
    );

    let (took, code) = sigterm_and_time(&mut daemon);
    eprintln!("stalled capture: SIGTERM → exit in {took:?}");
    let log = daemon.log_text();
    assert_eq!(code, Some(0), "log:\n{log}");
    assert!(took < STOP_BUDGET + SLACK, "took {took:?}; log:\n{log}");
    // The `file` plugin blocks in read(2) on the silent FIFO: the stop finished the file.
    assert!(log.contains("its file was finished without it"), "{log}");

    // The file in progress was finished and renamed: every sample fed is in a file.
    assert!(part_files(&tmp).is_empty(), "a .part was left; log:\n{log}");
    let files = wav_files(&home);
    let mut next = 0u64;
    for f in &files {
        for (i, s) in wav_samples(f).iter().enumerate() {
            assert_eq!(*s, ramp(next + i as u64), "{} sample {i}", f.display());
        }
        next += wav_samples(f).len() as u64;
    }
    assert_eq!(
        next, written,
        "samples kept vs fed; files {files:#?}\n{log}"
    );
    // And each has its row.
    let store = MetadataStore::open(&install.db()).unwrap();
    let a = audit(&store, &install.recordings(), &tmp).unwrap();
    assert!(a.is_clean(), "rows and files disagree: {a:#?}\n{log}");
    assert_eq!(
        store.recordings_since(jiff::Timestamp::MIN).unwrap().len(),
        files.len()
    );
}

// Issue 11: with the MQTT broker down the connected program took 12 s to stop and left
// metadata.db-wal behind.
#[test]
fn issue_11_sigterm_with_the_broker_down_stops_within_2_s_and_leaves_no_wal() {
    let install = Install::new();
    setup_connected(
        &install,
        &[
            mqtt_settings(free_port(), 5),
            vec!["messaging.heartbeat_interval=10".into()],
        ]
        .concat(),
    );
    set_deployment(&install, "no broker");
    let _feeder = Feeder::start(&install.fifo, 0);
    let notify = Notify::bind(install.root());
    let t0 = Instant::now();
    let mut daemon = install.spawn_daemon("run", &notify);
    notify.expect_ready(t0, Duration::from_secs(10), &daemon);
    // A summary is queued and its delivery is being tried against the dead port.
    let outbox = messages_db(&install);
    assert!(
        wait_until(Duration::from_secs(15), || outbox.exists()
            && !outbox_messages(&outbox).is_empty()),
        "nothing queued; log:\n{}",
        daemon.log_text()
    );

    let (took, code) = sigterm_and_time(&mut daemon);
    eprintln!("broker down: SIGTERM → exit in {took:?}");
    let log = daemon.log_text();
    assert_eq!(code, Some(0), "log:\n{log}");
    assert!(took < STOP_BUDGET + SLACK, "took {took:?}; log:\n{log}");

    // Checkpointed: no write-ahead log left with pages in it.
    for db in [install.db(), outbox.clone()] {
        let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len,
            0,
            "{} left with {len} bytes; log:\n{log}",
            wal.display()
        );
    }
    // Nothing accepted was lost: every message is still queued, none delivered.
    let conn = rusqlite::Connection::open(&outbox).unwrap();
    let (messages, responses): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM message), \
                    (SELECT count(*) FROM response WHERE status = 0)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        messages >= 2,
        "{messages} messages (a summary and the last one)"
    );
    assert_eq!(responses, 0);
}
