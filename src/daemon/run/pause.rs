//! The disk-full pause: whether recording is paused because a write found no room, and
//! since when. One value, owned here: the default worker begins and ends it, the capture
//! thread reads it through [`Gate`], the schedule it plans with.
//!
//! It used to be two (the daemon's "paused since" and an `AtomicBool` in the gate, kept
//! in step by hand, and copied across a reload). Now a reload hands the same [`Pause`] to
//! the next configuration's gate, so a pause outlives the configuration it began under
//! without anyone remembering to carry it over.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

use crate::schedule::plan::{Plan, Planner};
use crate::schedule::Schedule;

/// How far ahead a disk-full pause tells the capture thread it is idle: at that point
/// it opens the microphone to ask the plan again. It is not how long the pause lasts:
/// the management pass that finds room again lifts it (run at the next tick once the
/// storages have room, at the latest at the next interval), and the idle capture thread
/// asks the plan every second meanwhile, so recording resumes about two seconds after
/// space is back. It used to sleep through the whole 30 s whatever happened meanwhile.
const DISK_FULL_RETRY: Duration = Duration::from_secs(30);

/// Whether recording is paused for a full disk, and since when.
#[derive(Debug, Default)]
pub(super) struct Pause {
    /// When the pause began; `None` while there is room.
    ///
    /// A std `Mutex`, not an atomic flag beside a timestamp: the instant and the fact of
    /// the pause are one value and cannot disagree. The critical sections are a read or
    /// a write of that value, never held across `.await`; the capture thread takes the
    /// lock once per plan, uncontended but for the instant the default worker flips it.
    since: Mutex<Option<Timestamp>>,
}

impl Pause {
    fn since_guard(&self) -> std::sync::MutexGuard<'_, Option<Timestamp>> {
        // A panic while holding the lock cannot leave an `Option` half-written.
        self.since.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pauses recording from `now`. False when a pause is already under way: one pause
    /// is counted and logged once, however many writes are refused meanwhile.
    pub(super) fn begin(&self, now: Timestamp) -> bool {
        let mut since = self.since_guard();
        if since.is_some() {
            return false;
        }
        *since = Some(now);
        true
    }

    /// Lifts the pause; returns when it began (`None`: there was none).
    pub(super) fn end(&self) -> Option<Timestamp> {
        self.since_guard().take()
    }

    /// True while recording is paused.
    pub(super) fn is_paused(&self) -> bool {
        self.since_guard().is_some()
    }
}

/// The schedule, closed while the disk is full: what the capture thread plans with.
pub(super) struct Gate {
    /// The configuration's schedule.
    pub(super) schedule: Schedule,
    /// The daemon's pause, shared by every gate the daemon builds (one per configuration).
    pub(super) pause: Arc<Pause>,
}

impl Planner for Gate {
    fn plan_at(&self, t: Timestamp) -> Plan {
        if self.pause.is_paused() {
            let until = t.checked_add(DISK_FULL_RETRY).ok();
            return Plan::Idle { until };
        }
        self.schedule.plan_at(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn gate(pause: &Arc<Pause>) -> Gate {
        let recording = crate::config::Config::default().recording;
        Gate {
            schedule: Schedule::new(&recording, jiff::tz::TimeZone::UTC, None).unwrap(),
            pause: pause.clone(),
        }
    }

    #[test]
    fn a_pause_begins_once_and_ends_with_its_first_instant() {
        let pause = Pause::default();
        assert!(!pause.is_paused());
        assert!(pause.begin(at("2026-06-01T10:00:00Z")));
        assert!(!pause.begin(at("2026-06-01T10:00:05Z")), "counted once");
        assert!(pause.is_paused());
        assert_eq!(pause.end(), Some(at("2026-06-01T10:00:00Z")));
        assert!(!pause.is_paused());
        assert_eq!(pause.end(), None);
    }

    #[test]
    fn every_gate_sharing_the_pause_is_closed_while_it_lasts() {
        let pause = Arc::new(Pause::default());
        // The gate of the configuration before a reload, and the one after it.
        let (old, new) = (gate(&pause), gate(&pause));
        let t = at("2026-06-01T10:00:00Z");
        // Inside the default 06:00–22:30 window, at a slot's start.
        let open = new.schedule.plan_at(t);
        assert!(matches!(open, Plan::Record { .. }), "{open:?}");
        assert!(pause.begin(t));
        let closed = Plan::Idle {
            until: Some(at("2026-06-01T10:00:30Z")),
        };
        assert_eq!(old.plan_at(t), closed);
        assert_eq!(new.plan_at(t), closed);
        pause.end();
        assert_eq!(new.plan_at(t), open);
    }
}
