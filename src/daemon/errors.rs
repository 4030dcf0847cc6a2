//! The errors `acoupi run` met, counted by kind, for the connected program's summaries.
//!
//! The recording and default workers record each failure here as it happens (the log
//! says what it was); the messaging thread reads the running totals when it builds a
//! summary and reports what changed since the previous one. Counting by kind rather than
//! keeping messages keeps a summary small over a mobile link however often a failure
//! repeats, and tells a researcher at a glance which part of the station needs a visit.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What failed. The names are the keys of a summary's `errors.kinds` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The microphone disappeared or failed to open.
    DeviceLost,
    /// A file was cut short because the disk was full.
    DiskFull,
    /// Writing a recording failed for another reason.
    WriteFailed,
    /// A finished file or a gap could not be stored in metadata.db.
    StoreFailed,
    /// A management pass (saving filters, moves, retention) failed.
    ManagementFailed,
    /// A reload was refused or capture could not restart after one.
    ReloadFailed,
    /// An interrupted recording could not be repaired or read after a crash.
    RepairFailed,
}

impl ErrorKind {
    /// The name used in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::DeviceLost => "device_lost",
            ErrorKind::DiskFull => "disk_full",
            ErrorKind::WriteFailed => "write_failed",
            ErrorKind::StoreFailed => "store_failed",
            ErrorKind::ManagementFailed => "management_failed",
            ErrorKind::ReloadFailed => "reload_failed",
            ErrorKind::RepairFailed => "repair_failed",
        }
    }
}

/// Running totals of errors since the daemon started, shared between threads.
#[derive(Debug, Default)]
pub struct ErrorTally {
    totals: Mutex<BTreeMap<ErrorKind, u64>>,
}

/// A copy of the totals at one moment.
pub type ErrorCounts = BTreeMap<ErrorKind, u64>;

impl ErrorTally {
    /// Counts one error of `kind`.
    pub fn record(&self, kind: ErrorKind) {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        *totals.entry(kind).or_default() += 1;
    }

    /// The totals so far.
    pub fn snapshot(&self) -> ErrorCounts {
        self.totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What `now` counts beyond `before`, by kind name, leaving out kinds that did not grow.
pub fn counted_since(before: &ErrorCounts, now: &ErrorCounts) -> Vec<(String, u64)> {
    now.iter()
        .map(|(kind, n)| {
            (
                kind,
                n.saturating_sub(before.get(kind).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| (kind.as_str().to_owned(), n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_grew_since_the_last_snapshot_is_reported() {
        let tally = ErrorTally::default();
        tally.record(ErrorKind::DeviceLost);
        tally.record(ErrorKind::DeviceLost);
        let first = tally.snapshot();
        assert_eq!(
            counted_since(&ErrorCounts::new(), &first),
            [("device_lost".to_owned(), 2)]
        );
        tally.record(ErrorKind::DiskFull);
        tally.record(ErrorKind::DeviceLost);
        let second = tally.snapshot();
        assert_eq!(
            counted_since(&first, &second),
            [("device_lost".to_owned(), 1), ("disk_full".to_owned(), 1)]
        );
        assert!(counted_since(&second, &tally.snapshot()).is_empty());
    }
}
