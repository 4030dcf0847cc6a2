//! How long `acoupi deployment status --json` and `acoupi check` take while the recorder
//! is up, as metadata.db grows: the whole command, as an operator or a script sees it
//! (process start, `systemctl` calls, the control socket round trip, the configuration,
//! metadata.db). Goals (issue 14): status under 20 ms and check under 50 ms at every
//! size, so a device that has recorded for a year answers as fast as a new one.
//!
//! Plain `harness = false` bench: `cargo bench --bench status`. `STATUS_BENCH_ROWS`
//! (default `0,100000,1000000`: nothing, about 12 days and about 4 months of 10 s files)
//! lists the database sizes, `STATUS_BENCH_RUNS` (default 20) the runs per command. The
//! recorder is the real `acoupi run`, capturing from a FIFO fed in real time as in
//! `tests/integration/daemon_run.rs`; `systemctl` is the fake from `tests/support`, a shell script,
//! a separate process like the real one. Its cost is measured in the same run (the two
//! `show` calls status makes, timed alone), and status is timed again with
//! `ACOUPI_SYSTEMCTL` naming no program (services `unknown`): the command without the
//! double, whose shell script costs 26 ms or more where the real systemctl costs a few.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::feeder::Feeder;
use support::{Install, Notify};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Adds `rows` kept recordings of 10 s, back to back and ending a day ago, to the
/// active deployment, in one transaction of plain SQL (the store's one-row-per-
/// transaction path would take an hour for a million). Returns the file's size.
fn populate(db: &Path, rows: u64) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("opening metadata.db");
    let first = jiff::Timestamp::now().as_second() - 86_400 - rows as i64 * 10;
    conn.execute_batch("BEGIN").expect("begin");
    conn.execute(
        "INSERT INTO recording (id, path, datetime, duration_s, samplerate_hz, audio_channels,
             deployment_id, state, clock_synced, time_expansion, bit_depth, frames)
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         SELECT randomblob(16),
                '/bench/recordings/' || i || '.wav',
                strftime('%Y-%m-%dT%H:%M:%S', ?2 + i * 10, 'unixepoch') || '.000000+00:00',
                10.0, 8000, 1,
                (SELECT id FROM deployment WHERE ended_on IS NULL),
                'kept', 1, 1.0, 16, 80000
         FROM n",
        (rows as i64, first),
    )
    .expect("inserting recordings");
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("commit");
    std::fs::metadata(db).expect("metadata.db").len()
}

/// Times `runs` runs of what status asks the fake systemctl: one `show` per unit.
fn time_systemctl(install: &Install, runs: usize) -> Vec<Duration> {
    let fake = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake-systemctl");
    let props = "--property=LoadState,ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStatus";
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        for unit in ["acoupi.service", "acoupi-beat.service"] {
            let out = std::process::Command::new(fake)
                .args(["--user", "show", props, unit])
                .env("FAKE_SYSTEMCTL_STATE", &install.state)
                .env("FAKE_SYSTEMCTL_LOG", &install.log)
                .env("FAKE_SYSTEMCTL_UNIT_PATH", install.unit_dir())
                .output()
                .expect("running the fake systemctl");
            assert!(out.status.success(), "fake systemctl: {out:?}");
        }
        times.push(t.elapsed());
    }
    times.sort();
    times
}

/// Times `runs` runs of `acoupi ARGS`; `ok` judges each run's output.
fn time(
    install: &Install,
    args: &[&str],
    runs: usize,
    ok: impl Fn(&support::Outcome) -> bool,
) -> Vec<Duration> {
    time_with(install, args, &[], runs, ok)
}

/// [`time`] with extra environment variables.
fn time_with(
    install: &Install,
    args: &[&str],
    env: &[(&str, &str)],
    runs: usize,
    ok: impl Fn(&support::Outcome) -> bool,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let out = install.run_with(args, env);
        times.push(t.elapsed());
        if !ok(&out) {
            eprintln!("acoupi {args:?} gave an unexpected answer: {out:#?}");
            std::process::exit(1);
        }
    }
    times.sort();
    times
}

fn line(what: &str, times: &[Duration], goal_ms: u64) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p95 = percentile(times, 0.95);
    format!(
        "{what}: median {:.1} ms, p95 {:.1} ms, max {:.1} ms (goal < {goal_ms} ms){}",
        ms(percentile(times, 0.5)),
        ms(p95),
        ms(times[times.len() - 1]),
        if p95 >= Duration::from_millis(goal_ms) {
            "  OVER THE GOAL"
        } else {
            ""
        }
    )
}

fn main() {
    let runs = env_list("STATUS_BENCH_RUNS", &[20])[0].max(1) as usize;
    for rows in env_list("STATUS_BENCH_ROWS", &[0, 100_000, 1_000_000]) {
        let install = Install::new();
        install.setup(&[]);
        install.deploy("bench");
        let t = Instant::now();
        let size = populate(&install.db(), rows);
        let filled = t.elapsed();
        let notify = Notify::bind(install.root());
        let feeder = Feeder::start(&install.fifo, 0);
        let t0 = Instant::now();
        let daemon = install.spawn_daemon("run", &notify);
        if notify
            .wait_for(t0, Duration::from_secs(300), |l| l == "READY=1")
            .is_none()
        {
            eprintln!("the recorder did not start; log:\n{}", daemon.log_text());
            std::process::exit(1);
        }
        // The start-up integrity_check reads every page: what a restart costs in audio.
        let ready = t0.elapsed();
        // Let it record a little so the answers have something to say.
        feeder.wait_written(2 * support::RATE, Duration::from_secs(5));
        println!(
            "metadata.db with {rows} recordings: {:.1} MB (filled in {:.1} s), recorder up (ready {:.1} s after its start)",
            size as f64 / 1e6,
            filled.as_secs_f64(),
            ready.as_secs_f64()
        );
        let status = time(&install, &["deployment", "status", "--json"], runs, |o| {
            serde_json::from_str::<serde_json::Value>(&o.stdout)
                .is_ok_and(|v| v["workers"]["status"] == "available")
        });
        println!("  {}", line("deployment status --json", &status, 20));
        let systemctl = time_systemctl(&install, runs);
        println!(
            "  {}",
            line("  of which the fake systemctl (2 × show)", &systemctl, 20)
        );
        let alone = time_with(
            &install,
            &["deployment", "status", "--json"],
            &[("ACOUPI_SYSTEMCTL", "/nonexistent/systemctl")],
            runs,
            |o| {
                serde_json::from_str::<serde_json::Value>(&o.stdout).is_ok_and(|v| {
                    v["workers"]["status"] == "available" && v["services"]["acoupi"] == "unknown"
                })
            },
        );
        println!(
            "  {}",
            line(
                "deployment status --json without systemctl (no such program)",
                &alone,
                20
            )
        );
        // `check` may find something to say about the test machine (exit 1); what
        // matters is that it ran to the end (exit 0 or 1, never 2).
        let check = time(&install, &["check"], runs, |o| {
            matches!(o.code, Some(0 | 1))
        });
        println!("  {}", line("check", &check, 50));
    }
}
