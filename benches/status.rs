//! How long `acoupi deployment status --json` takes while the recorder is up: the whole
//! command, as an operator or a script sees it (process start, two `systemctl` calls, the
//! control socket round trip, the configuration and a quick check of metadata.db).
//! The requirement is under 100 ms.
//!
//! Plain `harness = false` bench: `cargo bench --bench status` (`STATUS_BENCH_RUNS`
//! changes the 20 runs). The recorder is the real `acoupi run`, capturing from a FIFO fed
//! in real time as in `tests/daemon_run.rs`; `systemctl` is the fake from
//! `tests/support`, a shell script like the real one is a separate process.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::feeder::Feeder;
use support::{Install, Notify};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let runs: usize = std::env::var("STATUS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let install = Install::new();
    install.setup(&[]);
    install.deploy("bench");
    let notify = Notify::bind(install.root());
    let feeder = Feeder::start(&install.fifo, 0);
    let t0 = Instant::now();
    let daemon = install.spawn_daemon("run", &notify);
    if notify
        .wait_for(t0, Duration::from_secs(10), |l| l == "READY=1")
        .is_none()
    {
        eprintln!("the recorder did not start; log:\n{}", daemon.log_text());
        std::process::exit(1);
    }
    // Let it record a little so the answer has something to say.
    feeder.wait_written(2 * support::RATE, Duration::from_secs(5));

    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let out = install.run(&["deployment", "status", "--json"]);
        times.push(t.elapsed());
        let json: serde_json::Value = match serde_json::from_str(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("status printed no JSON ({e}): {out:#?}");
                std::process::exit(1);
            }
        };
        if json["workers"]["status"] != "available" {
            eprintln!("the recorder did not answer: {json:#}");
            std::process::exit(1);
        }
    }
    times.sort();
    let median = percentile(&times, 0.5);
    let p95 = percentile(&times, 0.95);
    println!(
        "deployment status --json, recorder up, {runs} runs: median {:.1} ms, p95 {:.1} ms, max {:.1} ms (requirement < 100 ms)",
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    if p95 >= Duration::from_millis(100) {
        println!("  over the requirement");
    }
}
