//! `acoupi audit --repair`: acts on an [`AuditReport`] without ever deleting a file or a
//! row.
//!
//! - A file without a row is registered exactly as the daemon's start-up repair does it:
//!   read back with [`read_finished`] (header and GUANO, start time from the name), a
//!   row from [`NewRecording::from_file`], stored by
//!   [`MetadataStore::register_recording`] (kept at its place when it lies in the
//!   recordings root; left `tmp` in the temporary directory, where the management task
//!   decides about it as about any new file). Its deployment is the one running when it
//!   started. The clock is recorded as not known to be synchronised: nobody knows now.
//! - A row whose file is gone gets `file_missing_since` (migration 3): the row stays,
//!   the only trace of the recording, and later audits count it as a known loss.
//! - A marked row whose file is back loses its mark.
//!
//! Every step checks the file again just before acting, since the recorder may be running.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use super::report::{AuditOptions, AuditReport, FindingKind};
use super::rows;
use crate::audio::repair::read_finished;
use crate::store::db::{Check, Durability};
use crate::store::{MetadataStore, NewRecording, StoreError};

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Rows newly marked as having lost their file.
    pub marked_missing: u64,
    /// Rows whose missing mark was cleared because the file is back.
    pub unmarked: u64,
    /// Files registered with a new row.
    pub registered: Vec<PathBuf>,
    /// Files left without a row, each with the reason.
    pub not_registered: Vec<NotRegistered>,
}

/// A file the repair could not register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRegistered {
    /// The file.
    pub path: PathBuf,
    /// Why, with what to do.
    pub reason: String,
}

/// Repairs what `report` found. Takes metadata.db's write lock one short transaction at a
/// time, so a running recorder waits at most a moment. Does not create metadata.db: with
/// no database there is no deployment to attach a file to.
pub fn repair(opts: &AuditOptions, report: &AuditReport) -> Result<RepairReport, StoreError> {
    let mut done = RepairReport::default();
    let orphans: Vec<&Path> = report
        .of_kind(FindingKind::OrphanFile)
        .map(|f| f.path.as_path())
        .collect();
    if !report.metadata_db_exists {
        done.not_registered = orphans
            .into_iter()
            .map(|p| NotRegistered {
                path: p.to_path_buf(),
                reason: format!(
                    "{} does not exist; start a deployment with `acoupi deployment start`",
                    opts.metadata_db.display()
                ),
            })
            .collect();
        return Ok(done);
    }
    let db = opts.metadata_db.as_path();
    // The audit has just run the full check; a quick one guards against a file replaced
    // in between.
    let mut store = MetadataStore::open_with(db, Durability::Full, Check::Quick)?;
    let now = Timestamp::now();
    for finding in report.of_kind(FindingKind::MissingFile) {
        if !finding.path.exists() && rows::mark_missing(store.conn(), db, &finding.path, now)? {
            done.marked_missing += 1;
        }
    }
    for finding in report.of_kind(FindingKind::FileBack) {
        if finding.path.is_file() && rows::clear_missing(store.conn(), db, &finding.path)? {
            done.unmarked += 1;
        }
    }
    for path in orphans {
        match register(&mut store, opts, path) {
            Ok(true) => done.registered.push(path.to_path_buf()),
            Ok(false) => {}
            Err(reason) => done.not_registered.push(NotRegistered {
                path: path.to_path_buf(),
                reason,
            }),
        }
    }
    Ok(done)
}

/// Registers one file; `Ok(false)` when it has a row or is gone by now.
fn register(store: &mut MetadataStore, opts: &AuditOptions, path: &Path) -> Result<bool, String> {
    if !path.is_file()
        || store
            .find_by_path(path)
            .map_err(|e| crate::error::chain(&e))?
            .is_some()
    {
        return Ok(false);
    }
    let file = read_finished(path).map_err(|e| crate::error::chain(&e))?;
    let deployment = rows::deployment_for(store.conn(), store.path(), file.start)
        .map_err(|e| crate::error::chain(&e))?
        .ok_or_else(|| {
            "no deployment in metadata.db to attach it to; start one with `acoupi deployment start`"
                .to_string()
        })?;
    let row = NewRecording::from_file(&file, deployment, false);
    let kept = path.starts_with(&opts.recordings);
    store
        .register_recording(&row, kept)
        .map_err(|e| crate::error::chain(&e))?;
    Ok(true)
}
