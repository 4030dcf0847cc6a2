//! The recorder's integrity checks of metadata.db, and where their result goes.
//!
//! `acoupi run` opens metadata.db with SQLite's `quick_check` (a damaged file stops the
//! start-up); [`start`] stores that result, then checks again once a day in a background
//! thread with the full `integrity_check`. The deep check runs in the background because
//! it reads every index entry: 5.9 s on a file of a million rows here, far longer on a
//! Pi's SD card, and at start-up that time is audio never recorded, at every restart
//! (`quick_check`: 0.56 s on the same file). `deployment status` and `acoupi check` report
//! the last result instead of reading every page themselves, so they cost the same on a
//! year's archive as on a new one. Each daily pass also recounts the recording summary
//! ([`MetadataStore::recount_summary`]), which a foreign `INSERT OR REPLACE` can skew.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::store::metadata::{IntegrityRecord, MetadataStore};
use crate::store::{Check, StoreError};

/// Time between two background checks: often enough that damage is reported within a
/// day, rarely enough that reading every page of a large file costs nothing noticeable.
pub const INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Stores the start-up check's result (`store` was opened with [`Check::Quick`], so it
/// passed) and starts the daily pass on its own connection. A failure to store is logged:
/// it must not stop the recorder.
pub fn start(store: &mut MetadataStore) {
    if let Err(e) = store.record_integrity(Check::Quick, None, Timestamp::now()) {
        tracing::warn!(error = %crate::error::chain(&e), "storing the start-up integrity check failed");
    }
    let path = store.path().to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("integrity".into())
        .spawn(move || daily(&path));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the daily integrity check of metadata.db");
    }
}

fn daily(path: &Path) {
    loop {
        std::thread::sleep(INTERVAL);
        if let Err(e) = pass(path) {
            tracing::warn!(error = %crate::error::chain(&e), "the daily integrity check of metadata.db did not run");
        }
    }
}

/// One background pass: `integrity_check`, its result stored, and the recording summary
/// recounted when the file is sound. Returns the stored result.
pub fn pass(path: &Path) -> Result<IntegrityRecord, StoreError> {
    let (mut store, record) = MetadataStore::check_integrity(path, Check::Full)?;
    match &record.problems {
        Some(problems) => tracing::error!(
            path = %path.display(),
            %problems,
            "metadata.db fails SQLite's integrity_check: stop acoupi, move the file aside and run `acoupi check`; recordings on disk are kept"
        ),
        None => {
            if store.recount_summary()? {
                tracing::warn!(path = %path.display(), "the recording summary disagreed with the rows (another program replaced rows); recounted");
            }
        }
    }
    Ok(record)
}
