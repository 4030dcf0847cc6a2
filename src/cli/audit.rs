//! `acoupi audit [--repair] [--json]`: are all recordings where metadata.db says, does
//! every file have its row, and do the files and the databases hold what they should.
//!
//! The work is [`mod@crate::store::audit`]; this file chooses the storages from the
//! configuration, prints a summary or one JSON object, and picks the exit code: 0 clean,
//! 1 findings remain ([`Refused`]), 2 the audit could not run. Without `--repair` it
//! writes nothing and takes no database lock, so it is safe while `acoupi run` records.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Map, Value};

use super::Refused;
use crate::store::audit::{repair, AuditOptions, AuditReport, FindingKind, RepairReport};
use crate::store::run_audit;
use crate::system::layout::Layout;

/// How many paths per kind the summary shows; `--json` lists them all.
const SHOWN: usize = 5;

/// `acoupi audit` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Register WAV files that have no row and mark rows whose file is gone (never
    /// deletes a file or a row).
    #[arg(long)]
    pub repair: bool,
    /// Print one JSON object (counts, paths per finding kind, what was repaired).
    #[arg(long)]
    pub json: bool,
}

/// The audit options for this installation's configured storages.
pub fn options(layout: &Layout, config: &crate::config::schema::Config) -> AuditOptions {
    let paths = layout.storage_paths(&config.paths);
    let configured = config
        .messaging
        .as_ref()
        .and_then(|m| m.messages_db.as_deref());
    let messages = layout.messages_db(&paths, configured);
    let mut opts = AuditOptions::new(paths.db_metadata, paths.recordings, paths.tmp_audio);
    opts.messages_db = Some(messages);
    opts
}

/// Runs `acoupi audit`.
pub fn run(layout: &Layout, args: AuditArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&layout.config_file)?;
    let opts = options(layout, &config);
    let audit = |opts: &AuditOptions| {
        run_audit(opts).with_context(|| {
            format!(
                "auditing {} and the recordings under {}",
                opts.metadata_db.display(),
                opts.recordings.display()
            )
        })
    };
    let first = audit(&opts)?;
    let damaged_store = first
        .of_kind(FindingKind::DamagedDatabase)
        .any(|f| f.path == opts.metadata_db);
    let (report, repaired) = if args.repair && !damaged_store && needs_repair(&first) {
        let done = repair(&opts, &first)
            .with_context(|| format!("repairing {}", opts.metadata_db.display()))?;
        // Run as root, the repair may have created `-wal`/`-shm` files the recorder
        // (user `acoupi`) must be able to write.
        crate::system::storage::hand_over_db_to_service(layout, &opts.metadata_db)?;
        (audit(&opts)?, Some(done))
    } else if args.repair {
        (first, Some(RepairReport::default()))
    } else {
        (first, None)
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&opts, &report, repaired.as_ref()))?
        );
    } else {
        print_summary(&opts, &report, repaired.as_ref())?;
    }
    if report.is_clean() {
        return Ok(());
    }
    if args.repair && damaged_store {
        return Err(Refused(format!(
            "{} is damaged, so nothing was repaired: {}",
            opts.metadata_db.display(),
            FindingKind::DamagedDatabase.fix()
        ))
        .into());
    }
    Err(Refused(refusal(&report, args.repair)).into())
}

fn needs_repair(report: &AuditReport) -> bool {
    report.findings.iter().any(|f| f.kind.repairable())
}

/// The one-line error: how many findings of which kinds, and the next step.
fn refusal(report: &AuditReport, repaired: bool) -> String {
    let kinds: Vec<String> = FindingKind::ALL
        .iter()
        .filter(|k| report.count(**k) > 0)
        .map(|k| format!("{} {}", report.count(*k), k.key()))
        .collect();
    let hint = if !repaired && needs_repair(report) {
        "; run `acoupi audit --repair`, see the fixes above"
    } else {
        "; see the fixes above"
    };
    format!(
        "audit found {} problem(s) ({}){hint}",
        report.findings.len(),
        kinds.join(", ")
    )
}

fn print_summary(
    opts: &AuditOptions,
    report: &AuditReport,
    repaired: Option<&RepairReport>,
) -> Result<(), super::out::StdoutError> {
    if report.metadata_db_exists {
        println!(
            "{}: {} recording row(s), {} WAV file(s)",
            opts.metadata_db.display(),
            report.rows,
            report.files
        );
    } else {
        println!(
            "{} does not exist yet (nothing recorded); {} WAV file(s)",
            opts.metadata_db.display(),
            report.files
        );
    }
    if report.marked_missing > 0 {
        println!(
            "{} row(s) marked missing by an earlier repair (known losses)",
            report.marked_missing
        );
    }
    if report.recent_skipped > 0 {
        println!(
            "{} file(s) in {} too recent to judge (the recorder may not have stored their row yet)",
            report.recent_skipped,
            opts.tmp_audio.display()
        );
    }
    if let Some(done) = repaired {
        println!(
            "repaired: {} file(s) registered, {} row(s) marked missing, {} mark(s) cleared",
            done.registered.len(),
            done.marked_missing,
            done.unmarked
        );
        for n in &done.not_registered {
            println!(
                "  {} {}: {}",
                super::style::yellow("not registered:"),
                n.path.display(),
                n.reason
            );
        }
    }
    for kind in FindingKind::ALL {
        let findings: Vec<_> = report.of_kind(kind).collect();
        if findings.is_empty() {
            continue;
        }
        println!(
            "{} {} {}",
            super::style::red(&format!("{}:", kind.key())),
            findings.len(),
            kind.describe()
        );
        for f in findings.iter().take(SHOWN) {
            println!("  {} ({})", f.path.display(), f.detail);
        }
        if findings.len() > SHOWN {
            println!(
                "  … and {} more (`--json` lists all)",
                findings.len() - SHOWN
            );
        }
        println!("  fix: {}", kind.fix());
    }
    if report.is_clean() {
        println!("{}", super::style::green("Audit clean"));
    }
    Ok(())
}

fn paths_json(paths: impl Iterator<Item = PathBuf>) -> Value {
    Value::Array(paths.map(|p| json!(p)).collect())
}

fn to_json(opts: &AuditOptions, report: &AuditReport, repaired: Option<&RepairReport>) -> Value {
    let mut counts = Map::new();
    let mut paths = Map::new();
    for kind in FindingKind::ALL {
        counts.insert(kind.key().into(), json!(report.count(kind)));
        paths.insert(
            kind.key().into(),
            paths_json(report.of_kind(kind).map(|f| f.path.clone())),
        );
    }
    let existing = |p: &Option<PathBuf>| {
        p.as_deref()
            .filter(|p| Path::exists(p))
            .map(|p| json!(p))
            .unwrap_or(Value::Null)
    };
    json!({
        "clean": report.is_clean(),
        "metadata_db": opts.metadata_db,
        "metadata_db_exists": report.metadata_db_exists,
        "messages_db": existing(&opts.messages_db),
        "recordings": opts.recordings,
        "tmp_audio": opts.tmp_audio,
        "rows": report.rows,
        "files": report.files,
        "marked_missing": report.marked_missing,
        "recent_skipped": report.recent_skipped,
        "counts": counts,
        "paths": paths,
        "findings": report.findings,
        "repaired": repaired.map(|r| json!({
            "registered": r.registered.len(),
            "marked_missing": r.marked_missing,
            "unmarked": r.unmarked,
            "not_registered": r.not_registered,
            "registered_paths": r.registered,
        })),
    })
}
