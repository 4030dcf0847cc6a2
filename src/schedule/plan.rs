//! What the recording worker should do at a given instant, and where instants come from.
//!
//! The capture thread asks a [`Planner`] "what now?" with the time of the sample it is
//! about to write (stream time, not wall time, so cuts fall on exact sample boundaries).

use jiff::Timestamp;

/// What the recording worker should be doing at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// A file covering `[start, end)` should be being written. `start` is the slot start
    /// (aligned to the interval); a recorder that asks mid-slot (just started, or recovered)
    /// starts its file at once, at `max(t, start)`.
    Record {
        /// Start of the slot.
        start: Timestamp,
        /// End of the file (exclusive).
        end: Timestamp,
    },
    /// A window is open but no file is due before `until` (between duty-cycle files):
    /// keep the stream open, discard samples.
    Listen {
        /// When the next file starts.
        until: Timestamp,
    },
    /// No window is open: close the stream until `until` (`None`: never again, e.g. past
    /// the configured end date).
    Idle {
        /// When the next window opens.
        until: Option<Timestamp>,
    },
}

/// Something that knows the schedule. Implemented by `Schedule`; the capture thread holds
/// an `Arc<dyn Planner>` so it never depends on configuration types.
pub trait Planner: Send + Sync {
    /// The plan at instant `t`.
    fn plan_at(&self, t: Timestamp) -> Plan;
}

/// A source of the current time, injectable so schedule logic is tested at fixed dates.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
