//! systemd notifications (`sd_notify`). Every call is a no-op outside systemd
//! (no `NOTIFY_SOCKET`), and a failed send is logged, never fatal: the watchdog then
//! does its job.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// `READY=1`: start-up (or a reload) is complete.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// `RELOADING=1` with the monotonic timestamp systemd requires.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// `STATUS=…`: one line saying what the daemon is doing.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `WATCHDOG=1`: progress was made since the last ping.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The armed watchdog timeout (`WatchdogSec`), or `None` when there is none.
pub fn watchdog_timeout() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}
