//! Files and their rows: registering what a crash left in the temporary directory,
//! and rows metadata.db could not take yet (kept and retried), with the disk-full pause
//! they start and end.

use crate::audio::{repair_tmp_dir, FinishedFile, RepairOutcome};
use crate::daemon::errors::ErrorKind;
use crate::store::metadata::{Gap, NewRecording};
use crate::store::StoreError;
use crate::system::clock;
use jiff::Timestamp;

use super::Daemon;

/// A row metadata.db could not take when it was due (a full disk, a lock held past the
/// busy timeout). Kept in memory and retried before every management pass, so a file is
/// not left without a row until the next restart; if the daemon stops first, start-up
/// finds the file without a row and registers it then.
pub(super) enum Unstored {
    /// A finished recording; `kept` when the file already lies in the recordings root.
    Recording { row: NewRecording, kept: bool },
    /// A capture gap.
    Gap(Gap),
}

impl Unstored {
    pub(super) fn describe(&self) -> String {
        match self {
            Unstored::Recording { row, .. } => format!("recording {}", row.path.display()),
            Unstored::Gap(g) => format!("{} gap from {}", g.reason, g.started_on),
        }
    }
}

impl Daemon {
    /// Registers what a crash left in the temporary directory: repaired `.part` files and
    /// finished `.wav` files whose row was never written.
    pub(super) fn recover_tmp_dir(&mut self) -> anyhow::Result<()> {
        // Every whole frame that reached the disk is kept, however short the file.
        let context = &self.program.management.guano;
        for outcome in repair_tmp_dir(&self.program.paths.tmp_audio, context) {
            match outcome {
                RepairOutcome::Recovered(file) => {
                    tracing::warn!(path = %file.path.display(), frames = file.frames, start = %file.start, approximate = file.start_approximate, "recovered an interrupted recording");
                    if !file.start_approximate {
                        self.kept_until = self.kept_until.max(Some(file.end()));
                    }
                    let row = self.new_row(&file);
                    self.store_or_keep(Unstored::Recording { row, kept: false });
                }
                RepairOutcome::Deleted { path, bytes } => {
                    tracing::warn!(path = %path.display(), bytes, "removed an interrupted recording without a whole frame of audio: nothing to keep");
                }
                RepairOutcome::Failed { path, error } => {
                    tracing::error!(path = %path.display(), %error, "could not repair an interrupted recording; left in place");
                    self.errors.record(ErrorKind::RepairFailed);
                }
            }
        }
        // Finished files without a row: a crash between the rename and the insert (in
        // tmp/), or during a move or a retention delete (in recordings/), or a row the
        // last run could not write. Nothing is deleted here: each is registered again and
        // the management task decides. A row that cannot be written now (a full disk) is
        // retried while running: refusing to start would record nothing at all.
        let recordings = self.program.paths.recordings.clone();
        let audit = crate::store::audit(&self.store, &recordings, &self.program.paths.tmp_audio)?;
        for path in audit.files_without_row {
            let file = match crate::audio::repair::read_finished(&path) {
                Ok(f) => f,
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "unreadable recording without a row; left in place");
                    self.errors.record(ErrorKind::RepairFailed);
                    continue;
                }
            };
            tracing::warn!(path = %path.display(), "registering a finished recording that had no row");
            let row = self.new_row(&file);
            let kept = path.starts_with(&recordings);
            self.store_or_keep(Unstored::Recording { row, kept });
        }
        Ok(())
    }

    /// The row of a finished file, as a recording of the active deployment. Its id is
    /// fixed here, so storing it again after a failure cannot make a second row.
    pub(super) fn new_row(&self, file: &FinishedFile) -> NewRecording {
        // A start estimated from the file's last write is not a synchronised time,
        // whatever the clock says now.
        let synced =
            !file.start_approximate && clock::clock_sync().map(|c| c.synchronised).unwrap_or(false);
        NewRecording::from_file(file, self.deployment.id, synced)
    }

    /// Writes one row (a recording is marked kept too when its file already lies in the
    /// recordings root). Safe to repeat: the insert is idempotent by id.
    pub(super) fn store_row(&mut self, item: &Unstored) -> Result<(), StoreError> {
        match item {
            Unstored::Recording { row, kept } => {
                self.store.register_recording(row, *kept)?;
            }
            Unstored::Gap(gap) => self.store.insert_gap(gap)?,
        }
        Ok(())
    }

    /// Writes a row now, or keeps it for the next management pass when metadata.db
    /// cannot take it yet; a full disk also pauses recording. A row the store refuses
    /// (a value it does not accept) is logged and dropped: retrying would not change it.
    pub(super) fn store_or_keep(&mut self, item: Unstored) {
        let Err(e) = self.store_row(&item) else {
            return;
        };
        let error = crate::error::chain(&e);
        if e.is_disk_full() {
            tracing::warn!(what = %item.describe(), %error, "metadata.db is full: the row waits for space");
            self.disk_full(&error);
        } else {
            tracing::error!(what = %item.describe(), %error, "storing a row failed");
            self.failed(ErrorKind::StoreFailed, error);
        }
        if e.is_transient() {
            self.unstored.push(item);
        }
    }

    /// Retries the rows metadata.db could not take earlier, oldest first. Returns false
    /// when the disk is still too full for one of them.
    pub(super) fn store_unstored(&mut self) -> bool {
        let mut room = true;
        for item in std::mem::take(&mut self.unstored) {
            match self.store_row(&item) {
                Ok(()) => {
                    tracing::info!(what = %item.describe(), "stored a row that could not be written earlier")
                }
                Err(e) if e.is_transient() => {
                    room &= !e.is_disk_full();
                    self.unstored.push(item);
                }
                Err(e) => {
                    let error = crate::error::chain(&e);
                    tracing::error!(what = %item.describe(), %error, "storing a row failed");
                    self.failed(ErrorKind::StoreFailed, error);
                }
            }
        }
        room
    }

    /// The disk is full: pause recording. Counted and logged once per pause, however
    /// many writes are refused meanwhile.
    pub(super) fn disk_full(&mut self, cause: &str) {
        self.last_error = Some(format!("disk full: {cause}"));
        if !self.pause.begin(Timestamp::now()) {
            return;
        }
        self.errors.record(ErrorKind::DiskFull);
        tracing::error!(
            cause,
            root = %self.program.paths.recordings.display(),
            "disk full: recording paused until space returns"
        );
    }

    /// There is room again: resume recording and store the pause as a gap.
    pub(super) fn disk_has_room(&mut self) {
        let Some(since) = self.pause.end() else {
            return;
        };
        let now = Timestamp::now();
        tracing::info!(
            paused_s = now.duration_since(since).as_secs(),
            "free space is back: recording resumes"
        );
        self.store_or_keep(Unstored::Gap(Gap {
            deployment_id: self.deployment.id,
            started_on: since,
            ended_on: now.max(since),
            reason: "disk_full".into(),
        }));
    }
}
