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
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// The protocol version spoken by this build.
pub const PROTOCOL: u32 = 1;

// The answer's types live in the leaf module `health`, shared with the beat, the CLI and
// the heartbeat message without those importing the daemon; re-exported here because
// they are this protocol's vocabulary.
pub use crate::health::{DaemonStatus, DefaultWorker, RecordingWorker, WorkerHealth, WorkerState};

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
