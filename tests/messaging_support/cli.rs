//! The real `acoupi` binary in user mode for the connected program: an isolated
//! `ACOUPI_HOME`, its ALSA configuration, `setup` with the recorder settings the tests
//! share, and the check of what `acoupi check` printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The last line of a failed `acoupi check`, printed by `main` after the findings.
pub const CHECKS_FAILED: &str = "error: health checks failed";

/// An `ACOUPI_HOME` with an ALSA configuration: `fifocap` reads `in.fifo`, `nullcap`
/// is a silent device for `acoupi check`.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("in.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let conf = format!(
            "pcm.nullpcm {{ type null }}\n\
             pcm.nullcap {{ type null }}\n\
             pcm.fifocap {{ type file slave.pcm \"nullpcm\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n",
            fifo.display()
        );
        std::fs::write(dir.path().join("asound.conf"), conf).unwrap();
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `acoupi ARGS` in this home, without colour or systemd variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acoupi"));
        cmd.args(args)
            .env("ACOUPI_HOME", self.path())
            .env("ALSA_CONFIG_PATH", self.path().join("asound.conf"))
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null());
        cmd
    }

    pub fn acoupi(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `acoupi config set FIELD VALUE`, which must succeed.
    pub fn config_set(&self, field: &str, value: &str) {
        let out = self.acoupi(&["config", "set", field, value]);
        assert!(out.status.success(), "{}", text(&out));
    }

    pub fn config_file(&self) -> PathBuf {
        self.path().join("config/acoupi.ron")
    }

    pub fn messages_db(&self) -> PathBuf {
        self.path().join("storages/messages.db")
    }

    pub fn metadata_db(&self) -> PathBuf {
        self.path().join("storages/metadata.db")
    }
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `acoupi setup --program connected` with the recorder settings every test shares
/// (8 kHz, 1 s files back to back, UTC) plus `extra` `--set` assignments.
pub fn setup(home: &Home, device: &str, extra: &[String]) {
    let mut args: Vec<String> = [
        "setup",
        "--no-prompt",
        "--program",
        "connected",
        "--set",
        &format!("microphone.device_name={device}"),
        "--set",
        "microphone.samplerate=8000",
        "--set",
        "recording.duration=1",
        "--set",
        "recording.interval=1",
        "--set",
        "recording.schedule=[]",
        "--set",
        "timezone=UTC",
        "--set",
        "retention.min_free_space_mb=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for e in extra {
        args.push("--set".into());
        args.push(e.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = home.acoupi(&refs);
    assert!(out.status.success(), "{}", text(&out));
}

/// Runs `acoupi check` and requires that it refused (exit code 1) with `expected` as its
/// only finding of severity error: the `error:` lines on stderr are exactly `expected`
/// and [`CHECKS_FAILED`]. Warnings (clock, units) may come and go.
pub fn check_fails_with(home: &Home, expected: &str) -> Output {
    let out = home.acoupi(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors, [expected, CHECKS_FAILED], "{}", text(&out));
    out
}

/// Runs `acoupi check` and requires that it passed.
pub fn check_passes(home: &Home) -> Output {
    let out = home.acoupi(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Health checks passed"),
        "{}",
        text(&out)
    );
    out
}
