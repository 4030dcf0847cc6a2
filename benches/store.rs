//! metadata.db throughput: how fast the recorder can register files, and how long the
//! management task's queries take once a deployment has 100,000 recordings.
//!
//! Plain `harness = false` bench: `cargo bench --bench store` (set `STORE_BENCH_ROWS` to
//! change the 100,000). It writes real files in a temporary directory on the disk that
//! holds `TMPDIR`, so the fsync figures are that disk's.

use std::path::Path;
use std::time::{Duration, Instant};

use acoupi::store::{audit, Check, Durability, MetadataStore, NewRecording};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

fn recording(deployment: Uuid, i: i64, dir: &Path) -> NewRecording {
    // 60 s files back to back with a millisecond offset, as the recorder names them.
    let start = Timestamp::from_second(1_780_000_000).expect("fixed instant in range")
        + SignedDuration::from_millis(60_000 * i + i % 1000);
    NewRecording {
        id: Uuid::new_v4(),
        path: dir.join(format!("{}.wav", acoupi::audio::name::file_stem(start))),
        datetime: start,
        duration_s: 60.0,
        samplerate_hz: 48_000,
        audio_channels: 1,
        deployment_id: deployment,
        clock_synced: true,
        time_expansion: 1.0,
        bit_depth: 16,
        frames: 2_880_000,
    }
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn insert_rate(dir: &Path, durability: Durability, n: i64) -> f64 {
    let db = dir.join(format!("insert-{durability:?}.db"));
    let mut store = MetadataStore::open_with(&db, durability, Check::Full).expect("open bench db");
    let deployment = store
        .start_deployment("bench", None, None, Timestamp::UNIX_EPOCH)
        .expect("start deployment")
        .id;
    let tmp = dir.join("tmp");
    let started = Instant::now();
    for i in 0..n {
        store
            .insert_recording(&recording(deployment, i, &tmp))
            .expect("insert");
    }
    per_second(n as usize, started.elapsed())
}

fn main() {
    let rows: i64 = std::env::var("STORE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let (tmp, kept) = (dir.path().join("tmp"), dir.path().join("recordings"));

    println!("store bench in {}", dir.path().display());
    for (durability, n) in [(Durability::Full, 500), (Durability::Normal, 5_000)] {
        let rate = insert_rate(dir.path(), durability, n);
        println!(
            "insert_recording, one transaction each, synchronous={durability:?}: {rate:.0} recordings/s ({n} inserts)"
        );
    }

    // A long deployment: all kept but the last 10, still in tmp.
    let db = dir.path().join("metadata.db");
    let mut store =
        MetadataStore::open_with(&db, Durability::Normal, Check::Full).expect("open bench db");
    let deployment = store
        .start_deployment("long", None, None, Timestamp::UNIX_EPOCH)
        .expect("start deployment")
        .id;
    let started = Instant::now();
    let mut last = None;
    for i in 0..rows {
        let new = recording(deployment, i, &tmp);
        store.insert_recording(&new).expect("insert");
        if i < rows - 10 {
            let dest = kept.join(new.path.file_name().expect("file name"));
            store.mark_kept(new.id, &dest).expect("mark kept");
        }
        last = Some(new);
    }
    println!(
        "populated {rows} recordings (insert + mark_kept, synchronous=Normal) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(store);

    for check in [Check::Full, Check::Quick] {
        let started = Instant::now();
        drop(MetadataStore::open_with(&db, Durability::Full, check).expect("reopen"));
        println!(
            "open with Check::{check:?} + migration check at {rows} recordings: {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    let store = MetadataStore::open(&db).expect("reopen");

    let last = last.expect("at least one recording");
    let cutoff = last.datetime - SignedDuration::from_hours(24 * 30);
    let mut samples = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let pending = store.tmp_recordings().expect("tmp recordings");
        let oldest = store.oldest_kept(100).expect("oldest kept");
        let expired = store
            .kept_older_than(cutoff, 1000)
            .expect("kept older than");
        let summary = store.recording_summary(deployment).expect("summary");
        let found = store.find_by_path(&last.path).expect("find by path");
        samples.push(started.elapsed());
        assert_eq!(pending.len(), 10);
        assert_eq!(oldest.len(), 100);
        assert!(expired.len() <= 1000);
        assert_eq!(summary.count, rows as u64);
        assert!(found.is_some());
    }
    println!(
        "management pass over {rows} recordings (tmp_recordings, oldest_kept(100), kept_older_than(30 d, 1000), recording_summary, find_by_path): median {:.2} ms of 20",
        median(samples).as_secs_f64() * 1e3
    );

    let started = Instant::now();
    let report = audit(&store, &kept, &tmp).expect("audit");
    println!(
        "audit over {rows} rows with no files on disk: {:.0} ms ({} rows reported without file)",
        started.elapsed().as_secs_f64() * 1e3,
        report.rows_without_file.len()
    );
}
