//! The control socket: how the CLI and `acoupi beat` ask the running recorder what it is
//! doing, without touching the microphone or the databases.
//!
//! Protocol (stable, versioned by `DaemonStatus::protocol`): the client connects to
//! `<runtime dir>/acoupi.sock`, writes one line `status\n`, and reads one line of JSON, a
//! [`DaemonStatus`]. The socket is group-readable (mode 0660) so operators in the `audio`
//! group can run `acoupi deployment status` without root. [`query`] is the client side;
//! [`bind`] and [`answer`] are the server side `acoupi run` uses.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// The protocol version spoken by this build.
pub const PROTOCOL: u32 = 1;

word_enum! {
    /// Health of one worker as the daemon judges it; the words are the protocol's, the
    /// status output's and the heartbeat's.
    pub enum WorkerHealth {
        /// Making progress as it should.
        Ok => "ok",
        /// Stalled, failing or waiting on something it needs (device, disk space).
        Notok => "notok",
    }
}

/// What the recording worker reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingWorker {
    /// Overall judgement.
    pub health: WorkerHealth,
    /// Current state: `recording`, `listening`, `idle`, `device-missing`, `disk-full`, `stalled`.
    pub state: String,
    /// Human-readable detail, e.g. "recording 12/60 s" or "idle until 18:40 (Europe/London)".
    pub detail: String,
    /// The PCM being captured.
    pub device: String,
    /// Frames captured since the daemon started.
    pub frames: u64,
    /// Overruns recovered since the daemon started.
    pub xruns: u64,
    /// Files finished since the daemon started.
    pub files: u64,
}

/// What the default worker (management and other periodic tasks) reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefaultWorker {
    /// Overall judgement.
    pub health: WorkerHealth,
    /// Seconds since the last completed management pass.
    pub last_pass_age_s: Option<u64>,
    /// The last error of a periodic task, if any.
    pub last_error: Option<String>,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// Protocol version ([`PROTOCOL`]).
    pub protocol: u32,
    /// The daemon's process id.
    pub pid: u32,
    /// When the daemon started (RFC 3339, UTC).
    pub started_at: String,
    /// The recording worker.
    pub recording: RecordingWorker,
    /// The default worker.
    pub default: DefaultWorker,
    /// The detection worker, when a model is configured and loaded (absent from the
    /// answers of recorders that predate it, hence optional both ways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionWorker>,
}

/// What the detection worker reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionWorker {
    /// The model's name.
    pub model: String,
    /// Recordings the model has finished with since the daemon started.
    pub analysed: u64,
    /// Recordings not analysed because the model was behind (the skip rule,
    /// `detection::worker`).
    pub skipped: u64,
    /// Recordings the model failed on.
    pub failed: u64,
    /// Recordings waiting for the model now.
    pub waiting: u64,
    /// How many may wait before new ones are skipped.
    pub capacity: u64,
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody listens on the socket: the daemon is not running.
    #[error("the recorder is not running (no answer on {path}): {source}")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered something unreadable or not in time.
    #[error("the recorder at {path} did not answer properly: {reason}")]
    BadAnswer {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Asks the daemon listening on `socket` for its status, waiting at most `timeout`.
pub fn query(socket: &Path, timeout: Duration) -> Result<DaemonStatus, ControlError> {
    let bad = |reason: String| ControlError::BadAnswer {
        path: socket.to_path_buf(),
        reason,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| ControlError::NotRunning {
        path: socket.to_path_buf(),
        source,
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| bad(e.to_string()))?;
    stream
        .write_all(b"status\n")
        .map_err(|e| bad(format!("sending the request: {e}")))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| bad(format!("reading the answer: {e}")))?;
    serde_json::from_str(&line).map_err(|e| bad(format!("unreadable answer: {e}")))
}

/// Binds the control socket, replacing a stale one left by a crash, group-readable.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the stale socket {}", path.display()))
        }
        _ => {}
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Answers one client of the socket with `answer` if it asked for `status`.
pub async fn answer(stream: tokio::net::UnixStream, answer: String) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::BufReader::new(read).read_line(&mut line),
    )
    .await;
    let reply = match (read, line.trim()) {
        (Ok(Ok(_)), "status") => answer,
        _ => r#"{"error":"unknown request; send `status`"}"#.to_string(),
    };
    let _ = write.write_all(format!("{reply}\n").as_bytes()).await;
}
