//! `acoupi audit`'s findings: rows ↔ files, each file's header against its row, the GUANO
//! chunk, and SQLite's integrity check of metadata.db and messages.db.
//!
//! # Safe while recording
//! The database is read through [`open_for_reading`] (no write lock, no migration) and
//! nothing is written anywhere. The recorder and the management task change rows and
//! files between our reads, so a disagreement is only a finding if it survives a second
//! look: a row whose file seems gone is read again (a move updates the row after the file
//! is in place; retention deletes the row first), and a file that seems to have no row is
//! looked up twice more, the last time after [`AuditOptions::settle`] (retention unlinks
//! the file just after deleting its row). A file in the recordings root named like a
//! temporary recording that still has its row and file is a move in progress (the file
//! is renamed into place, the directory synced, then the row follows), not an orphan.
//! A `*.wav` in the temporary directory modified within [`AuditOptions::tmp_grace`] is
//! not counted at all: the recorder renames a file there a moment before its row is
//! written, and it may wait in memory while the disk is full. `*.wav.part` files are
//! captures in progress and never looked at.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::rows::{self, AuditRow};
use super::walk::{wav_files, wav_files_since, WavFile};
use crate::audio::inspect::{inspect, WavFacts};
use crate::audio::wav::{WavError, WavSpec};
use crate::store::db::{integrity_problems, open_for_reading, Check};
use crate::store::StoreError;

/// What to audit. [`AuditOptions::new`] gives the defaults `acoupi audit` uses.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// metadata.db. A file that does not exist yet holds no rows (nothing was recorded).
    pub metadata_db: PathBuf,
    /// messages.db of the connected program, checked for integrity when it exists.
    pub messages_db: Option<PathBuf>,
    /// The kept recordings root, walked recursively.
    pub recordings: PathBuf,
    /// The temporary audio directory.
    pub tmp_audio: PathBuf,
    /// Run SQLite's full `integrity_check` (about 1.5 s at 100,000 recordings). `acoupi
    /// check` turns it off: it checks metadata.db when it opens it.
    pub integrity: bool,
    /// A `*.wav` in the temporary directory younger than this may not have its row yet.
    pub tmp_grace: Duration,
    /// How long to wait before the last look at a file that seems to have no row.
    pub settle: Duration,
    /// Audit only the recordings that started at or after this instant, and of the kept
    /// files only the day folders (`YYYY/MM/DD`, UTC) from its date on: `acoupi check`
    /// audits the last two days, so it costs the same after a year in the field.
    /// `None` (`acoupi audit`): everything.
    pub since: Option<jiff::Timestamp>,
}

impl AuditOptions {
    /// Full audit of these storages, with a one-minute grace for temporary files (the
    /// recorder writes a row within a second of the rename unless the disk is full).
    pub fn new(metadata_db: PathBuf, recordings: PathBuf, tmp_audio: PathBuf) -> Self {
        AuditOptions {
            metadata_db,
            messages_db: None,
            recordings,
            tmp_audio,
            integrity: true,
            tmp_grace: Duration::from_secs(60),
            settle: Duration::from_millis(300),
            since: None,
        }
    }
}

/// The kinds of finding, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// SQLite's integrity check failed (the path is the database).
    DamagedDatabase,
    /// A row whose file is gone, not yet marked by `audit --repair`.
    MissingFile,
    /// A row marked missing whose file is there again.
    FileBack,
    /// A finished WAV file with no row.
    OrphanFile,
    /// A `.wav` that is not a readable WAV file.
    UnreadableWav,
    /// A file shorter than its header says.
    Truncated,
    /// A header that disagrees with the row (frames, duration, samplerate, channels).
    HeaderMismatch,
    /// No GUANO metadata chunk after the audio.
    NoGuano,
}

impl FindingKind {
    /// Every kind, in report order.
    pub const ALL: [FindingKind; 8] = [
        FindingKind::DamagedDatabase,
        FindingKind::MissingFile,
        FindingKind::FileBack,
        FindingKind::OrphanFile,
        FindingKind::UnreadableWav,
        FindingKind::Truncated,
        FindingKind::HeaderMismatch,
        FindingKind::NoGuano,
    ];

    /// The name used in JSON (`missing_file`, ...).
    pub fn key(self) -> &'static str {
        match self {
            FindingKind::DamagedDatabase => "damaged_database",
            FindingKind::MissingFile => "missing_file",
            FindingKind::FileBack => "file_back",
            FindingKind::OrphanFile => "orphan_file",
            FindingKind::UnreadableWav => "unreadable_wav",
            FindingKind::Truncated => "truncated",
            FindingKind::HeaderMismatch => "header_mismatch",
            FindingKind::NoGuano => "no_guano",
        }
    }

    /// What the finding means, for a person.
    pub fn describe(self) -> &'static str {
        match self {
            FindingKind::DamagedDatabase => "database(s) failing SQLite's integrity check",
            FindingKind::MissingFile => "recording row(s) whose file is gone",
            FindingKind::FileBack => "row(s) marked missing whose file is back",
            FindingKind::OrphanFile => "WAV file(s) without a row",
            FindingKind::UnreadableWav => "WAV file(s) that cannot be read",
            FindingKind::Truncated => "WAV file(s) shorter than their header says",
            FindingKind::HeaderMismatch => "WAV header(s) disagreeing with their row",
            FindingKind::NoGuano => "WAV file(s) without GUANO metadata",
        }
    }

    /// Whether `audit --repair` resolves it.
    pub fn repairable(self) -> bool {
        matches!(
            self,
            FindingKind::MissingFile | FindingKind::FileBack | FindingKind::OrphanFile
        )
    }

    /// What to do about it.
    pub fn fix(self) -> &'static str {
        match self {
            FindingKind::DamagedDatabase => {
                "stop acoupi, move the file aside and run `acoupi check`; recordings on disk are kept"
            }
            FindingKind::MissingFile => {
                "put the file back, or run `acoupi audit --repair` to mark the loss (the row is kept)"
            }
            FindingKind::FileBack | FindingKind::OrphanFile => "run `acoupi audit --repair`",
            FindingKind::UnreadableWav => {
                "copy the file off the card to look at it; acoupi cannot register it"
            }
            FindingKind::Truncated => {
                "the end of the recording is lost; copy the file off the card before it is overwritten"
            }
            FindingKind::HeaderMismatch => "compare the file with its row before trusting either",
            FindingKind::NoGuano => {
                "the audio is intact; tools that need GUANO get time and place from the row"
            }
        }
    }
}

/// One finding: its kind, the file (or database) and what exactly is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditFinding {
    /// The kind.
    pub kind: FindingKind,
    /// The file, or the database for [`FindingKind::DamagedDatabase`].
    pub path: PathBuf,
    /// Details (the numbers that disagree, SQLite's report, the read error).
    pub detail: String,
}

/// Everything one audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Whether metadata.db exists (a fresh installation has none until it records).
    pub metadata_db_exists: bool,
    /// Recording rows with a path.
    pub rows: u64,
    /// Rows marked missing by an earlier repair whose file is still gone: known losses,
    /// not findings.
    pub marked_missing: u64,
    /// Finished WAV files found.
    pub files: u64,
    /// Temporary files too young to judge (see [`AuditOptions::tmp_grace`]).
    pub recent_skipped: u64,
    /// The findings, sorted by kind and path.
    pub findings: Vec<AuditFinding>,
}

impl AuditReport {
    /// No findings.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings of one kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &AuditFinding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// How many findings of one kind.
    pub fn count(&self, kind: FindingKind) -> usize {
        self.of_kind(kind).count()
    }
}

/// Runs the audit. Writes nothing and takes no write lock. An error means the audit
/// could not run (a database that cannot be opened or read, a directory that cannot be
/// listed); a damaged database is a finding.
pub fn run_audit(opts: &AuditOptions) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    if let Some(messages) = opts.messages_db.as_deref().filter(|p| p.exists()) {
        if opts.integrity {
            check_integrity(messages, &mut report)?;
        }
    }
    let db = opts.metadata_db.as_path();
    report.metadata_db_exists = db.exists();
    let conn = if report.metadata_db_exists {
        let conn = open_for_reading(db)?;
        if opts.integrity && check_integrity(db, &mut report)? {
            // Rows read from a damaged file cannot be trusted: compare nothing.
            report
                .findings
                .sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
            return Ok(report);
        }
        Some(conn)
    } else {
        None
    };
    let rows = match &conn {
        Some(conn) => rows::audit_rows(conn, db, opts.since)?,
        None => Vec::new(),
    };
    // Rows first, then files: a file that appears between the two has its row written
    // after it, and the re-check below finds that row.
    let files = match opts.since {
        None => wav_files(&opts.recordings, &opts.tmp_audio)?,
        Some(since) => wav_files_since(&opts.recordings, &opts.tmp_audio, since)?,
    };
    report.rows = rows.len() as u64;
    report.files = files.len() as u64;
    let row_paths: HashSet<&Path> = rows.iter().map(|r| r.path.as_path()).collect();

    for row in &rows {
        let present = row.path.is_file();
        match (&row.missing_since, present) {
            (Some(since), true) => report.findings.push(AuditFinding {
                kind: FindingKind::FileBack,
                path: row.path.clone(),
                detail: format!("marked missing since {since}"),
            }),
            (Some(_), false) => report.marked_missing += 1,
            (None, true) => report.findings.extend(check_file(&row.path, Some(row))),
            (None, false) => {
                let still_missing = match &conn {
                    Some(conn) => rows::current_path(conn, db, &row.id)?
                        .is_some_and(|p| p == row.path && !p.is_file()),
                    None => true,
                };
                if still_missing {
                    report.findings.push(AuditFinding {
                        kind: FindingKind::MissingFile,
                        path: row.path.clone(),
                        detail: "the row points at a file that does not exist".into(),
                    });
                }
            }
        }
    }
    let now = SystemTime::now();
    let mut orphans = Vec::new();
    for file in files
        .iter()
        .filter(|f| !row_paths.contains(f.path.as_path()))
    {
        if too_recent(file, now, opts.tmp_grace) {
            report.recent_skipped += 1;
        } else {
            orphans.push(file.path.as_path());
        }
    }
    // A second look, then a third after a moment for what survives it: retention deletes
    // the row a moment before the file.
    let still_orphan = |path: &Path| -> Result<bool, StoreError> {
        Ok(path.is_file()
            && match &conn {
                Some(conn) => !rows::has_row_or_is_moving(conn, db, path, &opts.tmp_audio)?,
                None => true,
            })
    };
    for look in 0..2 {
        if look > 0 && !orphans.is_empty() {
            std::thread::sleep(opts.settle);
        }
        let mut kept = Vec::with_capacity(orphans.len());
        for path in orphans {
            if still_orphan(path)? {
                kept.push(path);
            }
        }
        orphans = kept;
    }
    for path in orphans {
        report.findings.push(AuditFinding {
            kind: FindingKind::OrphanFile,
            path: path.to_path_buf(),
            detail: "no recording row points at this file".into(),
        });
        report.findings.extend(check_file(path, None));
    }
    report
        .findings
        .sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    Ok(report)
}

/// A temporary file the recorder may not have registered yet.
fn too_recent(file: &WavFile, now: SystemTime, grace: Duration) -> bool {
    file.in_tmp
        && file
            .modified
            .is_some_and(|m| now.duration_since(m).map_or(true, |age| age < grace))
}

/// Adds a [`FindingKind::DamagedDatabase`] finding when `db` fails the full check;
/// returns whether it did.
fn check_integrity(db: &Path, report: &mut AuditReport) -> Result<bool, StoreError> {
    let conn = open_for_reading(db)?;
    let problems = match integrity_problems(&conn, db, Check::Full) {
        Ok(problems) => problems,
        // SQLite refusing the file as malformed is the same finding.
        Err(StoreError::Corrupt { detail, .. }) => Some(detail),
        Err(e) => return Err(e),
    };
    let Some(detail) = problems else {
        return Ok(false);
    };
    report.findings.push(AuditFinding {
        kind: FindingKind::DamagedDatabase,
        path: db.to_path_buf(),
        detail,
    });
    Ok(true)
}

/// The header, length and GUANO findings of one file, compared with its row if it has one.
fn check_file(path: &Path, row: Option<&AuditRow>) -> Vec<AuditFinding> {
    let finding = |kind, detail| AuditFinding {
        kind,
        path: path.to_path_buf(),
        detail,
    };
    let facts = match inspect(path) {
        Ok(facts) => facts,
        // Gone since it was listed: a move or retention finished meanwhile.
        Err(WavError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Vec::new()
        }
        Err(WavError::Malformed { why, .. }) => {
            return vec![finding(FindingKind::UnreadableWav, why.to_string())]
        }
        Err(e) => return vec![finding(FindingKind::UnreadableWav, crate::error::chain(&e))],
    };
    let mut found = Vec::new();
    if facts.is_truncated() {
        found.push(finding(
            FindingKind::Truncated,
            format!(
                "holds {} of the {} frames its header claims (its GUANO chunk, if any, went with the end)",
                facts.frames_present, facts.frames
            ),
        ));
    } else if !facts.has_guano {
        found.push(finding(
            FindingKind::NoGuano,
            "no `guan` chunk after the audio".into(),
        ));
    }
    if let Some(row) = row {
        let disagreements = compare(&facts, row);
        if !disagreements.is_empty() {
            found.push(finding(
                FindingKind::HeaderMismatch,
                disagreements.join("; "),
            ));
        }
    }
    found
}

/// Where the header and the row disagree, one phrase each.
fn compare(facts: &WavFacts, row: &AuditRow) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(frames) = row.frames {
        if u64::try_from(frames).ok() != Some(facts.frames) {
            out.push(format!("header has {} frames, row {frames}", facts.frames));
        }
    }
    if let Some(channels) = row.audio_channels {
        if i64::from(facts.channels) != channels {
            out.push(format!(
                "header has {} channel(s), row {channels}",
                facts.channels
            ));
        }
    }
    let rate = row
        .samplerate_hz
        .and_then(|r| u32::try_from(r).ok())
        .filter(|r| *r > 0);
    if let Some(rate) = rate {
        // The header holds the real rate divided by any time expansion, as written.
        let expected = WavSpec {
            samplerate: rate,
            channels: facts.channels,
            bit_depth: facts.bit_depth,
            time_expansion: row.time_expansion.unwrap_or(1.0),
        }
        .header_rate();
        if facts.header_rate != expected {
            out.push(format!(
                "header rate is {} Hz, the row's {rate} Hz implies {expected} Hz",
                facts.header_rate
            ));
        }
        if let Some(duration) = row.duration_s {
            let measured = facts.frames as f64 / f64::from(rate);
            // One frame plus a millisecond: the row's duration is frames / rate, rounded.
            if (duration - measured).abs() > 1.0 / f64::from(rate) + 0.001 {
                out.push(format!("header holds {measured:.3} s, row {duration:.3} s"));
            }
        }
    }
    out
}
