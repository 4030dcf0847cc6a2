//! Capture cost: CPU seconds per hour of audio and peak RSS of acoupi's capture → WAV
//! path, next to `arecord` reading the same PCM into a WAV in the same run.
//!
//! Both read through alsa-lib's `file` plugin (not paced in real time), so the numbers
//! are the CPU work per audio second, not a real-time load. Each side runs in its own
//! child process and is measured with `wait4` (user + system time, max RSS): this
//! binary re-executes itself with `--child` to run the recorder. The two sides take
//! turns, several runs each, and the median is printed: on a shared machine single runs
//! vary by tens of percent.
//!
//! Both write into a tmpfs when there is one (`/dev/shm`), as the recorder does on the
//! device (`/run/acoupi/tmp`). On a disk the recorder's per-file fsync makes it pay, in
//! its own CPU time, for the write-back the kernel does for `arecord` later and charges
//! to no one; `CAPTURE_BENCH_TMP=DIR` measures that case.
//!
//! Last, the cost of the capture thread's plan lookups in the daemon: the default
//! configuration's schedule asked at every read for an hour of stream time.
//!
//! `cargo bench --bench capture`; `CAPTURE_BENCH_SECONDS` (audio length, default 300:
//! long enough that start-up costs, a few milliseconds, weigh little), `CAPTURE_BENCH_RUNS`
//! (default 5), `CAPTURE_BENCH_TMP`, `CAPTURE_BENCH_BASELINE=PATH` (the capture bench
//! binary of an earlier build: its recorder takes its turn in the same runs, so a change
//! is measured against what it replaced under the same load).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use acoupi::audio::{spawn_recorder, RecorderConfig, RecorderEvent};
use acoupi::schedule::plan::{Plan, Planner};
use acoupi::schedule::Schedule;
use jiff::{SignedDuration, Timestamp};

/// Gapless 10-second files from the first frame on, `total` seconds in all.
struct Gapless {
    origin: OnceLock<Timestamp>,
    /// The recorder asks once before it opens the PCM; that answer ("record") fixes no
    /// origin, the stream time of the first frame does.
    asked_before_open: AtomicBool,
    total_s: i64,
}

impl Planner for Gapless {
    fn plan_at(&self, t: Timestamp) -> Plan {
        if self.origin.get().is_none() && !self.asked_before_open.swap(true, Ordering::Relaxed) {
            return Plan::Record {
                start: t,
                end: t + SignedDuration::from_secs(10),
            };
        }
        let origin = *self.origin.get_or_init(|| t);
        let k = t.duration_since(origin).as_secs() / 10;
        if k * 10 >= self.total_s {
            return Plan::Idle { until: None };
        }
        let start = origin + SignedDuration::from_secs(k * 10);
        Plan::Record {
            start,
            end: start + SignedDuration::from_secs(10),
        }
    }
}

/// The child side: record `seconds` of `pcm` at `rate` into `dir`.
fn child(pcm: &str, rate: u32, seconds: i64, dir: &Path) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = RecorderConfig {
        device_name: pcm.into(),
        samplerate: rate,
        channels: 1,
        format: None,
        bit_depth: 16,
        time_expansion: 1.0,
        tmp_dir: dir.to_path_buf(),
        deployment_name: None,
        position: None,
        serial: None,
        kept_until: None,
    };
    let planner = Arc::new(Gapless {
        origin: OnceLock::new(),
        asked_before_open: AtomicBool::new(false),
        total_s: seconds,
    });
    let sink = move |e| drop(tx.send(e));
    let h = spawn_recorder(cfg, planner, sink, Arc::new(AtomicBool::new(false)))
        .map_err(|e| e.to_string())?;
    h.join()
        .map_err(|_| "recorder thread panicked".to_string())?;
    let mut frames = 0;
    while let Ok(e) = rx.try_recv() {
        if let RecorderEvent::FileFinished(f) = e {
            frames += f.frames;
        }
    }
    let want = rate as u64 * seconds as u64;
    if frames != want {
        return Err(format!("recorded {frames} frames, expected {want}"));
    }
    Ok(())
}

/// Writes `frames` of an S16_LE counter in small pieces: a child's max RSS starts at the
/// spawning process's peak (exec keeps the old `hiwater_rss`), so this process stays small.
fn write_counter(path: &Path, frames: usize) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..frames {
        w.write_all(&(i as i16).to_le_bytes())?;
    }
    w.flush()
}

/// This process's peak RSS in KiB: the floor under both children's numbers.
fn own_peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) and max RSS in KiB of a finished child.
fn wait_measured(mut cmd: Command) -> Result<(f64, i64, f64), String> {
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("spawning {cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is a POD struct the call fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed().as_secs_f64();
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed (status {status})"));
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss, wall))
}

/// The median of `v` (not empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Clears `dir` of the files a run left.
fn empty(dir: &Path) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let p = e.map_err(|e| e.to_string())?.path();
        std::fs::remove_file(&p).map_err(|e| format!("{p:?}: {e}"))?;
    }
    Ok(())
}

/// Microseconds of CPU per hour of stream time that the daemon's planner (the default
/// configuration's schedule, London) costs the capture thread asking at every read
/// (`reads_per_s`), with the last answer kept as `Schedule` does, and with every answer
/// worked out again (a fresh copy per ask, as before it kept one).
fn plan_lookup_us_per_hour(reads_per_s: i64) -> (f64, f64) {
    let config = acoupi::config::Config::default();
    let tz = jiff::tz::TimeZone::get("Europe/London").expect("tz");
    let location = Some(acoupi::schedule::Location {
        latitude: 51.5,
        longitude: -0.12,
    });
    let schedule = Schedule::new(&config.recording, tz, location).expect("schedule");
    let start: Timestamp = "2026-06-01T00:00:00Z".parse().expect("ts");
    let step = SignedDuration::from_nanos(1_000_000_000 / reads_per_s);
    let asks = 3600 * reads_per_s;
    let time = |fresh: bool| {
        let started = Instant::now();
        let mut t = start;
        for _ in 0..asks {
            let plan = if fresh {
                schedule.clone().plan_at(t)
            } else {
                schedule.plan_at(t)
            };
            std::hint::black_box(plan);
            t += step;
        }
        started.elapsed().as_secs_f64() * 1e6
    };
    (time(false), time(true))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let get = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        let rate = get(2).parse().map_err(|_| "bad rate")?;
        let secs = get(3).parse().map_err(|_| "bad seconds")?;
        return child(&get(1), rate, secs, Path::new(&get(4)));
    }
    let env_num = |k: &str, default: i64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let seconds = env_num("CAPTURE_BENCH_SECONDS", 300);
    let runs = env_num("CAPTURE_BENCH_RUNS", 5).max(1);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out_root = match std::env::var_os("CAPTURE_BENCH_TMP") {
        Some(d) => PathBuf::from(d),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => dir.path().to_path_buf(),
    };
    let out_dir = tempfile::tempdir_in(&out_root).map_err(|e| format!("{out_root:?}: {e}"))?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    println!(
        "capture → WAV, {seconds} s of audio, mono S16_LE, file plugin (not real-time paced), \
         WAV files in {}, median of {runs} runs each",
        out_root.display()
    );
    println!(
        "{:>8}  {:>8}  {:>14}  {:>12}  {:>9}",
        "rate", "tool", "CPU s/audio h", "peak RSS KiB", "wall s"
    );
    for rate in [48_000u32, 384_000] {
        let pcm = format!("cap{rate}");
        let input: PathBuf = dir.path().join(format!("{pcm}.raw"));
        let frames = rate as usize * seconds as usize;
        write_counter(&input, frames).map_err(|e| e.to_string())?;
        let conf = dir.path().join(format!("{pcm}.conf"));
        std::fs::write(
            &conf,
            format!(
                "pcm.nullpcm {{ type null }}\npcm.{pcm} {{ type file slave.pcm \"nullpcm\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n",
                input.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let out = out_dir.path();

        let baseline = std::env::var_os("CAPTURE_BENCH_BASELINE").map(PathBuf::from);
        let (mut ours_runs, mut arecord_runs, mut base_runs) = (Vec::new(), Vec::new(), Vec::new());
        let recorder = |exe: &Path| {
            let mut c = Command::new(exe);
            c.env("ALSA_CONFIG_PATH", &conf).args([
                "--child",
                &pcm,
                &rate.to_string(),
                &seconds.to_string(),
                &out.display().to_string(),
            ]);
            c
        };
        for _ in 0..runs {
            ours_runs.push(wait_measured(recorder(&me))?);
            empty(out)?;
            if let Some(b) = &baseline {
                base_runs.push(wait_measured(recorder(b))?);
                empty(out)?;
            }

            let mut arecord = Command::new("arecord");
            arecord.env("ALSA_CONFIG_PATH", &conf).args([
                "-q",
                "-D",
                &pcm,
                "-f",
                "S16_LE",
                "-c",
                "1",
                "-r",
                &rate.to_string(),
                "-s",
                &frames.to_string(),
                &out.join("arecord.wav").display().to_string(),
            ]);
            arecord_runs.push(wait_measured(arecord)?);
            empty(out)?;
        }
        std::fs::remove_file(&input).map_err(|e| e.to_string())?;
        let summary = |r: &[(f64, i64, f64)]| {
            (
                median(r.iter().map(|x| x.0).collect()),
                r.iter().map(|x| x.1).max().unwrap_or(0),
                median(r.iter().map(|x| x.2).collect()),
            )
        };
        let (cpu_a, rss_a, wall_a) = summary(&ours_runs);
        let (cpu_r, rss_r, wall_r) = summary(&arecord_runs);
        let per_hour = |cpu: f64| cpu * 3600.0 / seconds as f64;
        if !base_runs.is_empty() {
            let (cpu_b, rss_b, wall_b) = summary(&base_runs);
            println!(
                "{rate:>8}  {:>8}  {:>14.3}  {rss_b:>12}  {wall_b:>9.3}  (ratio to arecord {:.2}x)",
                "baseline",
                per_hour(cpu_b),
                cpu_b / cpu_r.max(1e-6)
            );
        }
        println!(
            "{rate:>8}  {:>8}  {:>14.3}  {rss_a:>12}  {wall_a:>9.3}",
            "acoupi",
            per_hour(cpu_a)
        );
        println!(
            "{rate:>8}  {:>8}  {:>14.3}  {rss_r:>12}  {wall_r:>9.3}",
            "arecord",
            per_hour(cpu_r)
        );
        println!(
            "{rate:>8}  {:>8}  {:>14.2}x {:>11.2}x",
            "ratio",
            cpu_a / cpu_r.max(1e-6),
            rss_a as f64 / rss_r.max(1) as f64
        );
    }
    println!(
        "peak RSS floor (this bench process, inherited through spawn): {} KiB",
        own_peak_rss_kib()
    );
    for reads_per_s in [10, 5] {
        let (kept, fresh) = plan_lookup_us_per_hour(reads_per_s);
        println!(
            "plan lookups, default schedule, {reads_per_s} reads/s: {:.4} CPU s per audio hour \
             (every answer worked out again: {:.4} s)",
            kept / 1e6,
            fresh / 1e6
        );
    }
    Ok(())
}
