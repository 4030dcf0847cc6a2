//! `make soak`: the real recorder of the connected program, with a real mosquitto and
//! its storages on a small tmpfs, under a randomized loop of the faults a field device
//! meets, for a bounded time; then an account of what was lost, which must be nothing.
//!
//! The faults ([`Fault`]): `kill -9` and a restart, SIGTERM while capture is stalled, the
//! disk filled to the last byte and freed, the broker killed and restarted, a storm of
//! concurrent `config set`, and a torn `.part` left in the temporary folder before a
//! crash. The account ([`tally`]): the kept audio is the feeder's counter ramp with no
//! sample repeated or reordered and no hole that an interruption does not explain; rows
//! and files agree (`acoupi audit`); every torn `.part` became a recording holding every
//! whole frame it had; every accepted `config set` is in the file; every stop took under
//! [`STOP_LIMIT`]; every model output with a detection (the tiny model runs on every
//! recording) became a detection message.
//!
//! `SOAK_SECONDS` (default 120) bounds the loop, `SOAK_SEED` (default: the clock)
//! repeats the sequence of faults and `SOAK_FAULTS` (e.g. `Kill9,DiskFull`) limits them. Mounting the tmpfs needs root with `CAP_SYS_ADMIN`. Ignored by
//! `cargo test`; `make soak` runs it in release mode.

#[path = "../connected_support/mod.rs"]
mod connected_support;
#[path = "../messaging_support/mod.rs"]
mod messaging_support;
#[path = "../support/mod.rs"]
mod support;

mod tally;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use messaging_support::Broker;
use nix::sys::signal::Signal;
use support::disk::{fill, Tmpfs};
use support::feeder::Feeder;
use support::{wav_files, Daemon, Install, Notify};

/// The longest a SIGTERM may take to end the recorder, in any state (issue 11: 2 s).
pub const STOP_LIMIT: Duration = Duration::from_secs(2);
/// Start-up, repair and the first management pass included.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// Storages: a few hundred 1 s files of 8 kHz mono (16 KB each) and the databases.
const DISK_SIZE: &str = "24m";

/// One kind of fault, chosen at random each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL, then a restart as systemd's `Restart=always` would.
    Kill9,
    /// The microphone stops delivering, then SIGTERM; a restart once it has stopped.
    TermWhileStalled,
    /// The storages' file system filled to the last byte for a few seconds.
    DiskFull,
    /// The broker killed for a few seconds.
    BrokerDown,
    /// Eight `config set` at once, each on its own field.
    ConfigStorm,
    /// A torn `.part` (a real recording cut at a random byte) left behind by a crash.
    TornPart,
}

const FAULTS: [Fault; 6] = [
    Fault::Kill9,
    Fault::TermWhileStalled,
    Fault::DiskFull,
    Fault::BrokerDown,
    Fault::ConfigStorm,
    Fault::TornPart,
];

/// Fields a storm sets, each with the range its random values come from: none changes
/// what is recorded or kept (no retention below ten years).
const STORM_FIELDS: [(&str, u32, u32); 8] = [
    ("retention.max_age_days", 3650, 3700),
    ("heartbeat.interval", 10, 60),
    ("messaging.prune_after_days", 30, 60),
    ("messaging.max_messages", 100, 200),
    ("messaging.heartbeat_interval", 10, 60),
    ("messaging.mqtt.keep_alive", 30, 60),
    ("messaging.mqtt.timeout", 2, 5),
    ("messaging.summary_interval", 10, 30),
];

/// A small, seeded generator (xorshift64*): a run is repeatable from its seed.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// What the loop did and saw, for the account.
#[derive(Debug, Default)]
pub struct Log {
    /// Faults injected, by kind.
    pub injected: BTreeMap<Fault, u32>,
    /// Starts of the recorder after the first (each may leave a hole in the audio).
    pub restarts: u32,
    /// SIGTERM to exit, every stop.
    pub stop_times: Vec<Duration>,
    /// Stops that did not end in exit code 0 within [`STOP_LIMIT`] (then: SIGKILL).
    pub bad_stops: Vec<String>,
    /// Torn `.part` files left behind: name and the whole frames they held.
    pub torn: Vec<(String, u64)>,
    /// `config set` calls accepted whose value was not in the file afterwards.
    pub config_values_lost: Vec<String>,
    /// `config set` calls refused (a storm must not be refused either).
    pub config_refused: Vec<String>,
}

/// The installation, the microphone, the broker and the running recorder. Field order
/// is drop order: the daemon dies before the tmpfs is unmounted and the folder removed.
struct Station {
    daemon: Option<Daemon>,
    notify: Notify,
    feeder: Feeder,
    broker: Broker,
    disk: Tmpfs,
    install: Install,
}

impl Station {
    fn new() -> Station {
        let broker = Broker::start();
        let install = Install::new();
        let disk = Tmpfs::mount(install.root().join("disk"), DISK_SIZE);
        let tiny = support::detection::TinyModel::write(&install);
        connected_support::setup_connected(
            &install,
            &[
                connected_support::mqtt_settings(broker.port, 2),
                tiny.settings(false),
                vec![
                    format!("paths.tmp_audio={}", disk.dir.join("tmp").display()),
                    format!("paths.recordings={}", disk.dir.join("recordings").display()),
                    format!(
                        "paths.db_metadata={}",
                        disk.dir.join("metadata.db").display()
                    ),
                    "retention.min_free_space_mb=0".into(),
                ],
            ]
            .concat(),
        );
        connected_support::set_deployment(&install, "soak");
        let notify = Notify::bind(install.root());
        let feeder = Feeder::reopening(&install.fifo, 0);
        let mut s = Station {
            daemon: None,
            notify,
            feeder,
            broker,
            disk,
            install,
        };
        s.start();
        s
    }

    fn tmp(&self) -> PathBuf {
        self.disk.dir.join("tmp")
    }

    fn recordings(&self) -> PathBuf {
        self.disk.dir.join("recordings")
    }

    fn db(&self) -> PathBuf {
        self.disk.dir.join("metadata.db")
    }

    /// Starts the recorder and waits for READY=1.
    fn start(&mut self) {
        let t0 = Instant::now();
        let daemon = self.install.spawn_daemon("run", &self.notify);
        let ready = self
            .notify
            .wait_for(t0, READY_WITHIN, |l| l == "READY=1")
            .is_some();
        assert!(ready, "no READY=1; log:\n{}", daemon.log_text());
        self.daemon = Some(daemon);
    }

    /// SIGTERM and the time to exit; a stop over the limit or not clean is logged and
    /// the process killed.
    fn stop(&mut self, log: &mut Log, what: &str) {
        let mut daemon = self.daemon.take().expect("a running recorder");
        let t = Instant::now();
        daemon.signal(Signal::SIGTERM);
        let status = daemon.wait_exit(Duration::from_secs(15));
        let took = t.elapsed();
        log.stop_times.push(took);
        match status {
            Some(s) if s.code() == Some(0) && took <= STOP_LIMIT => {}
            other => log.bad_stops.push(format!(
                "{what}: {other:?} after {took:?}; log tail:\n{}",
                tail(&daemon.log_text(), 15)
            )),
        }
    }

    fn kill9(&mut self) {
        let mut daemon = self.daemon.take().expect("a running recorder");
        daemon.child.kill().expect("SIGKILL");
        daemon.child.wait().expect("reaping the recorder");
    }

    fn restart(&mut self, log: &mut Log) {
        log.restarts += 1;
        self.start();
    }

    fn inject(&mut self, fault: Fault, rng: &mut Rng, log: &mut Log) {
        *log.injected.entry(fault).or_default() += 1;
        match fault {
            Fault::Kill9 => {
                self.kill9();
                self.restart(log);
            }
            Fault::TermWhileStalled => {
                self.feeder.pause();
                std::thread::sleep(rng.millis(300, 1500));
                self.stop(log, "SIGTERM while stalled");
                self.feeder.resume();
                self.restart(log);
            }
            Fault::DiskFull => {
                let filler = self.disk.dir.join("filler");
                fill(&filler);
                std::thread::sleep(rng.millis(1500, 4000));
                std::fs::remove_file(&filler).expect("removing the filler");
            }
            Fault::BrokerDown => {
                self.broker.kill();
                std::thread::sleep(rng.millis(1000, 5000));
                self.broker.restart();
            }
            Fault::ConfigStorm => self.config_storm(rng, log),
            Fault::TornPart => {
                if let Some(torn) = self.leave_torn_part(rng) {
                    log.torn.push(torn);
                    self.kill9();
                    self.restart(log);
                }
            }
        }
    }

    /// Eight concurrent `config set`, then every value read back from the file.
    fn config_storm(&self, rng: &mut Rng, log: &mut Log) {
        let sets: Vec<(String, String)> = STORM_FIELDS
            .iter()
            .map(|(f, lo, hi)| (f.to_string(), rng.range(*lo as u64, *hi as u64).to_string()))
            .collect();
        let children: Vec<_> = sets
            .iter()
            .map(|(f, v)| {
                self.install
                    .cmd(&["config", "set", f, v])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawning config set")
            })
            .collect();
        let mut accepted = Vec::new();
        for ((f, v), child) in sets.iter().zip(children) {
            let out = child.wait_with_output().expect("config set");
            if out.status.success() {
                accepted.push((f, v));
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                log.config_refused.push(format!("{f}={v}: {}", err.trim()));
            }
        }
        for (f, v) in accepted {
            let got = self.install.run(&["config", "get", f]);
            if got.stdout.trim() != v.as_str() {
                log.config_values_lost
                    .push(format!("{f}: set {v}, file has {:?}", got.stdout.trim()));
            }
        }
    }

    /// Copies a kept recording, cut at a random byte, into the temporary folder as the
    /// `.part` of a file that started yesterday (so it cannot collide with a real one).
    /// Returns its name and the whole frames it holds.
    fn leave_torn_part(&self, rng: &mut Rng) -> Option<(String, u64)> {
        let kept = wav_files(&self.recordings());
        let source = kept.get(rng.range(0, kept.len().max(1) as u64 - 1) as usize)?;
        let bytes = std::fs::read(source).ok()?;
        let data = bytes.len().checked_sub(tally::HEADER)?;
        let cut = tally::HEADER + rng.range(1, data.max(1) as u64) as usize;
        let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24)
            + jiff::SignedDuration::from_millis(rng.range(0, 3_600_000) as i64);
        let name = start.strftime("%Y%m%d_%H%M%S_%3f.wav").to_string();
        std::fs::write(self.tmp().join(format!("{name}.part")), &bytes[..cut]).ok()?;
        Some((name, ((cut - tally::HEADER) / 2) as u64))
    }
}

/// The last `n` lines of a log.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The faults to draw from: all, or those `SOAK_FAULTS` names (`Kill9,DiskFull`), to
/// chase one finding.
fn chosen_faults() -> Vec<Fault> {
    let Ok(names) = std::env::var("SOAK_FAULTS") else {
        return FAULTS.to_vec();
    };
    let chosen: Vec<Fault> = FAULTS
        .into_iter()
        .filter(|f| names.split(',').any(|n| n.trim() == format!("{f:?}")))
        .collect();
    assert!(
        !chosen.is_empty(),
        "SOAK_FAULTS={names:?} names none of {FAULTS:?}"
    );
    chosen
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "minutes long and needs root for a tmpfs: run it with `make soak`"]
fn nothing_is_lost_under_a_random_fault_loop() {
    let seconds = env_u64("SOAK_SECONDS", 120);
    let seed = env_u64(
        "SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("soak: {seconds} s, SOAK_SEED={seed}");
    let faults = chosen_faults();
    eprintln!("soak: faults {faults:?}");
    let mut rng = Rng(seed | 1);
    let mut log = Log::default();
    let mut station = Station::new();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(rng.millis(2000, 6000));
        let fault = faults[rng.range(0, faults.len() as u64 - 1) as usize];
        eprintln!(
            "soak: {:>5.1} s ({}): {fault:?}",
            began.elapsed().as_secs_f64(),
            jiff::Timestamp::now().strftime("%H:%M:%S%.3f")
        );
        station.inject(fault, &mut rng, &mut log);
    }
    // Let the last files finish and the management pass keep them, then stop.
    std::thread::sleep(Duration::from_secs(3));
    station.stop(&mut log, "final SIGTERM");
    let account = tally::Account::take(
        &station.install,
        &station.recordings(),
        &station.tmp(),
        &station.db(),
        // Beside metadata.db, so on the small disk too.
        &station.disk.dir.join("messages.db"),
        &log,
    );
    eprintln!("{}", account.report(seconds, seed, &log));
    let failures = account.failures(&log);
    assert!(
        failures.is_empty(),
        "soak found losses:\n{}",
        failures.join("\n")
    );
}
