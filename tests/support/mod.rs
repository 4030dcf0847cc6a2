//! Shared by the binary-level tests (`daemon_*`, `cli_deployment*`, `benches/status.rs`):
//! an isolated user-mode installation and a real-time audio source.
//!
//! [`Install`] is one `ACOUPI_HOME` with its own fake `systemctl` state, unit folder and
//! ALSA configuration; everything goes to the child's environment, never to this
//! process's, so tests run in parallel. [`feeder::Feeder`] writes a counter ramp into the FIFO the
//! ALSA `file` plugin reads, at real-time pace: capture blocks when it pauses, a real
//! stall. [`Notify`] is the `NOTIFY_SOCKET` systemd would listen on.
//!
//! It knows nothing about what a test asserts; it only sets things up and observes.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The test microphone's rate: 8 kHz mono s16.
pub const RATE: u64 = 8000;
/// Frames per FIFO write: 0.2 s, the recorder's read size at 8 kHz (two 0.1 s periods,
/// `device::READ_US` capped at a quarter of the 1 s buffer). A write of 3200 bytes
/// (≤ `PIPE_BUF`) is atomic, so every read gets a whole write: the `file` plugin would
/// otherwise pad a short read with stale bytes.
pub const CHUNK: u64 = 1600;
/// How often the feeder writes a [`CHUNK`]: real-time pace.
pub const CHUNK_EVERY: std::time::Duration = std::time::Duration::from_millis(CHUNK * 1000 / RATE);
/// Header bytes of a 16-bit mono WAV file.
pub const WAV_HEADER: u64 = 44;
/// `WATCHDOG_USEC` for daemon tests: pings every 1 s, stall after 1.5 s.
pub const WATCHDOG_USEC: u64 = 3_000_000;

pub mod detection;
pub mod disk;
pub mod feeder;

const FAKE_SYSTEMCTL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake-systemctl");

/// The value of ramp sample `n`: a 16-bit counter, so a lost, repeated or reordered
/// sample anywhere shows as a mismatch.
pub fn ramp(n: u64) -> i16 {
    n as u16 as i16
}

/// What a finished command left.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Outcome {
        Outcome {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// One user-mode installation in a temporary directory.
pub struct Install {
    dir: tempfile::TempDir,
    /// `ACOUPI_HOME`.
    pub home: PathBuf,
    /// `XDG_CONFIG_HOME` (user units go to `systemd/user` below it).
    pub xdg: PathBuf,
    /// The fake systemctl's state folder.
    pub state: PathBuf,
    /// The fake systemctl's call log.
    pub log: PathBuf,
    /// The FIFO the `filecap` PCM reads.
    pub fifo: PathBuf,
    /// `ALSA_CONFIG_PATH`.
    pub alsa_conf: PathBuf,
}

impl Install {
    /// A fresh installation; nothing is configured yet.
    pub fn new() -> Install {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let fifo = root.join("mic.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let alsa_conf = root.join("asound.conf");
        std::fs::write(
            &alsa_conf,
            format!(
                "pcm.nullpcm {{ type null }}\n\
                 pcm.filecap {{ type file slave.pcm \"nullpcm\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n",
                fifo.display()
            ),
        )
        .expect("asound.conf");
        Install {
            home: root.join("home"),
            xdg: root.join("xdg"),
            state: root.join("systemctl-state"),
            log: root.join("systemctl.log"),
            fifo,
            alsa_conf,
            dir,
        }
    }

    /// Points `filecap` at a regular file holding 2 s of ramp instead of the FIFO, for
    /// commands that only open the microphone briefly (`check`).
    pub fn mic_from_file(&self) {
        let raw = self.root().join("mic.raw");
        let bytes: Vec<u8> = (0..2 * RATE).flat_map(|i| ramp(i).to_le_bytes()).collect();
        std::fs::write(&raw, bytes).expect("mic.raw");
        let conf = std::fs::read_to_string(&self.alsa_conf).expect("asound.conf");
        let fifo = self.fifo.display().to_string();
        std::fs::write(
            &self.alsa_conf,
            conf.replace(&fifo, &raw.display().to_string()),
        )
        .expect("asound.conf");
    }

    /// The temporary directory everything lives in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `acoupi ARGS` in this installation's environment (no systemd variables).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_acoupi"));
        c.args(args)
            .env("ACOUPI_HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.xdg)
            .env("ACOUPI_SYSTEMCTL", FAKE_SYSTEMCTL)
            .env("FAKE_SYSTEMCTL_STATE", &self.state)
            .env("FAKE_SYSTEMCTL_LOG", &self.log)
            .env("FAKE_SYSTEMCTL_UNIT_PATH", self.unit_dir())
            .env("ALSA_CONFIG_PATH", &self.alsa_conf)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("ACOUPI_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Runs `acoupi ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(args, &[])
    }

    /// Runs `acoupi ARGS` with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("running acoupi").into()
    }

    /// Runs `acoupi ARGS` and requires exit code 0.
    pub fn ok(&self, args: &[&str]) -> Outcome {
        let o = self.run(args);
        assert_eq!(o.code, Some(0), "acoupi {args:?} failed: {o:#?}");
        o
    }

    /// `acoupi setup` for the `filecap` PCM: 8 kHz, 1 s files back to back, around the
    /// clock, plus `extra` `--set` assignments.
    pub fn setup(&self, extra: &[&str]) {
        self.setup_program("default", extra);
    }

    /// [`Install::setup`] for `program` (`default` or `connected`).
    pub fn setup_program(&self, program: &str, extra: &[&str]) {
        let mut args = vec![
            "setup",
            "--no-prompt",
            "--program",
            program,
            "--set",
            "microphone.device_name=filecap",
            "--set",
            "microphone.samplerate=8000",
            "--set",
            "recording.duration=1",
            "--set",
            "recording.interval=1",
            "--set",
            "recording.schedule=[]",
        ];
        for e in extra {
            args.push("--set");
            args.push(e);
        }
        self.ok(&args);
    }

    /// `acoupi deployment start` without the health check (the FIFO has no writer yet).
    pub fn deploy(&self, name: &str) {
        self.ok(&Install::deploy_args(name));
    }

    /// The arguments of [`Install::deploy`], for a test that expects them refused.
    pub fn deploy_args(name: &str) -> [&str; 10] {
        [
            "deployment",
            "start",
            "--name",
            name,
            "--latitude",
            "51.5",
            "--longitude",
            "-0.12",
            "--no-check",
            "--no-block",
        ]
    }

    /// The configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.home.join("config/acoupi.ron")
    }

    /// metadata.db (default paths).
    pub fn db(&self) -> PathBuf {
        self.home.join("storages/metadata.db")
    }

    /// The kept recordings root (default paths).
    pub fn recordings(&self) -> PathBuf {
        self.home.join("storages/recordings")
    }

    /// The temporary audio directory (default paths).
    pub fn tmp_audio(&self) -> PathBuf {
        self.home.join("run/tmp")
    }

    /// The control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.home.join("run/acoupi.sock")
    }

    /// Where user units are written.
    pub fn unit_dir(&self) -> PathBuf {
        self.xdg.join("systemd/user")
    }

    /// The fake systemctl's call log so far.
    pub fn systemctl_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts `acoupi SUBCOMMAND` (`run` or `beat`) as systemd would: `NOTIFY_SOCKET`,
    /// `WATCHDOG_USEC`, log level info, stderr to a file.
    pub fn spawn_daemon(&self, subcommand: &str, notify: &Notify) -> Daemon {
        let log = self.root().join(format!(
            "{subcommand}-{}.log",
            DAEMONS.fetch_add(1, Ordering::Relaxed)
        ));
        let stderr = std::fs::File::create(&log).expect("daemon log");
        let child = self
            .cmd(&[subcommand])
            .env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
            .env("ACOUPI_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawning the daemon");
        Daemon { child, log }
    }

    /// Asks the running recorder for its status over the control socket, speaking the
    /// raw protocol: one line `status`, one line of JSON back.
    pub fn control_status(&self) -> serde_json::Value {
        let mut s = UnixStream::connect(self.control_socket()).expect("connecting");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"status\n").expect("sending status");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("reading");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
    }
}

static DAEMONS: AtomicU64 = AtomicU64::new(0);

/// A deployed installation with audio flowing into a running recorder that said READY.
/// Bind every field a test keeps: dropping the feeder ends the audio, dropping the
/// daemon kills it.
pub struct Running {
    /// Set up with the defaults; the deployment is started.
    pub install: Install,
    /// The recorder's `NOTIFY_SOCKET`.
    pub notify: Notify,
    /// The audio: the counter ramp from sample 0, at real-time pace.
    pub feeder: feeder::Feeder,
    /// `acoupi run`.
    pub daemon: Daemon,
    /// When `READY=1` came.
    pub ready_at: Instant,
}

impl Running {
    /// Sets up a new installation, starts deployment `name`, then `acoupi run` on the
    /// ramp, and waits up to 10 s for `READY=1`.
    pub fn start(name: &str) -> Running {
        let install = Install::new();
        install.setup(&[]);
        install.deploy(name);
        let notify = Notify::bind(install.root());
        let feeder = feeder::Feeder::start(&install.fifo, 0);
        let t0 = Instant::now();
        let daemon = install.spawn_daemon("run", &notify);
        let ready_at = notify.expect_ready(t0, Duration::from_secs(10), &daemon);
        Running {
            install,
            notify,
            feeder,
            daemon,
            ready_at,
        }
    }
}

/// A daemon child process; killed (SIGKILL, by pid) if still running when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Its stderr (the log).
    pub log: PathBuf,
}

impl Daemon {
    /// Sends a signal to this child.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signalling the daemon");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as systemd stops a unit, and asserts the process exits with status
    /// 0 within `timeout`; panics with the log otherwise.
    #[track_caller]
    pub fn stop_cleanly(&mut self, timeout: Duration) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.wait_exit(timeout);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "{status:?} {timeout:?} after SIGTERM; log:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `NOTIFY_SOCKET` listener: every line of every datagram, with its arrival time.
pub struct Notify {
    /// The socket path.
    pub path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
}

impl Notify {
    /// Binds `notify.sock` in `dir` and starts collecting.
    pub fn bind(dir: &Path) -> Notify {
        std::fs::create_dir_all(dir).expect("notify socket folder");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("binding NOTIFY_SOCKET");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (messages.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mut m = m.lock().unwrap();
                    m.extend(text.lines().map(|l| (at, l.to_string())));
                }
            }
        });
        Notify {
            path,
            messages,
            stop,
        }
    }

    /// Every line received so far.
    pub fn messages(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }

    /// Arrival times of lines equal to `line`.
    pub fn times_of(&self, line: &str) -> Vec<Instant> {
        self.messages()
            .into_iter()
            .filter(|(_, l)| l == line)
            .map(|(t, _)| t)
            .collect()
    }

    /// Waits up to `timeout` for a line matching `pred` that arrived after `after`.
    pub fn wait_for(
        &self,
        after: Instant,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let hit = self
                .messages()
                .into_iter()
                .find(|(t, l)| *t >= after && pred(l));
            if hit.is_some() || Instant::now() >= deadline {
                return hit;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for a `READY=1` sent at or after `after` (a start or a
    /// reload) and returns when it came; panics with `daemon`'s log if none did.
    #[track_caller]
    pub fn expect_ready(&self, after: Instant, timeout: Duration, daemon: &Daemon) -> Instant {
        match self.wait_for(after, timeout, |l| l == "READY=1") {
            Some((at, _)) => at,
            None => panic!("no READY=1 within {timeout:?}; log:\n{}", daemon.log_text()),
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Polls `cond` every 10 ms for up to `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `*.wav` files under `dir`, recursively, sorted by file name (= start time).
pub fn wav_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "wav") {
                out.push(p);
            }
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    out
}

/// The `*.wav.part` files in `dir`.
pub fn part_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".wav.part"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A WAV file's samples after checking it is 8 kHz mono 16-bit and hound can read it.
pub fn wav_samples(path: &Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("hound cannot open {}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (RATE as u32, 1, 16),
        "{}",
        path.display()
    );
    let samples: Vec<i16> = r
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(
        samples.len() as u32,
        r.duration(),
        "{}: data size disagrees with the samples read",
        path.display()
    );
    samples
}

/// Frames held by a `.wav.part` file, from its length.
pub fn part_frames(path: &Path) -> u64 {
    std::fs::metadata(path)
        .map(|m| m.len().saturating_sub(WAV_HEADER) / 2)
        .unwrap_or(0)
}

/// Runs `cmd` to its end and returns its output; panics with both streams if it could not
/// start or did not exit 0. For the scripts and tools a test drives (mkfs, debugfs, …).
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs one test of this test binary again, alone, in a child process with `key=value`
/// added to its environment, and returns the child's output. For a test that needs a
/// process of its own: one that crashes on purpose, or one that measures the process
/// (peak RSS). The test tells child from parent by `key`.
///
/// `module` is the test's `module_path!()` (the binary's name first, which libtest's
/// test names leave out) and `test` its function name.
pub fn rerun_alone(module: &str, test: &str, key: &str, value: &OsStr) -> Output {
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    let name = format!("{module}::{test}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(key, value)
        .output()
        .unwrap();
    // libtest exits 0 when the filter matches nothing: make sure the test ran.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("running 0 tests"),
        "no test named {name} in this binary:\n{stdout}"
    );
    out
}
