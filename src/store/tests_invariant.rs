//! Randomised rows ↔ files invariant: record, keep, delete and crash in any order, with
//! real files, and `audit()` stays clean after every step (and after each crash, once the
//! start-up pass has run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;
use uuid::Uuid;

use super::tests::{at, new_recording};
use super::*;

/// Deterministic xorshift64*: reproducible sequences without a dev-dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// A device: storages on disk and what the WAV headers would tell the recorder's repair.
struct Device {
    root: tempfile::TempDir,
    store: Option<MetadataStore>,
    deployment: Uuid,
    headers: HashMap<PathBuf, NewRecording>,
    next_start: Timestamp,
}

impl Device {
    fn db(&self) -> PathBuf {
        self.root.path().join("metadata.db")
    }
    fn tmp(&self) -> PathBuf {
        self.root.path().join("tmp")
    }
    fn recordings(&self) -> PathBuf {
        self.root.path().join("recordings")
    }
    fn store(&mut self) -> &mut MetadataStore {
        // Always reopened right after a crash; `None` only between the two.
        self.store.as_mut().expect("store is open")
    }

    /// Where the management task puts a kept file: a pure function of the recording.
    fn destination(&self, recording: &Recording) -> PathBuf {
        let name = recording.path.as_ref().and_then(|p| p.file_name()).unwrap();
        self.recordings()
            .join(recording.datetime.strftime("%Y/%m/%d").to_string())
            .join(name)
    }

    /// Step one of recording: the finished file appears in tmp.
    fn write_file(&mut self, rng: &mut Rng) -> NewRecording {
        let start = self.next_start;
        self.next_start = start + SignedDuration::from_millis(60_000 + rng.below(999) as i64);
        let name = format!("{}.wav", crate::audio::name::file_stem(start));
        let new = new_recording(self.deployment, start, self.tmp().join(name));
        std::fs::write(&new.path, b"RIFF....WAVE").unwrap();
        self.headers.insert(new.path.clone(), new.clone());
        new
    }

    fn pick(&self, from: Vec<Recording>, rng: &mut Rng) -> Option<Recording> {
        (!from.is_empty()).then(|| from[rng.below(from.len())].clone())
    }

    /// Step one of keeping: the file moves to its destination.
    fn move_file(&mut self, rng: &mut Rng) -> Option<(Recording, PathBuf)> {
        let tmp = self.store().tmp_recordings().unwrap();
        let recording = self.pick(tmp, rng)?;
        let dest = self.destination(&recording);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::rename(recording.path.as_ref().unwrap(), &dest).unwrap();
        Some((recording, dest))
    }

    /// Step one of deleting: the file goes.
    fn remove_file(&mut self, rng: &mut Rng) -> Option<Recording> {
        let mut all = self.store().tmp_recordings().unwrap();
        all.extend(self.store().oldest_kept(usize::MAX).unwrap());
        let recording = self.pick(all, rng)?;
        std::fs::remove_file(recording.path.as_ref().unwrap()).unwrap();
        Some(recording)
    }

    /// The process dies: the connection goes without any goodbye, and another writer
    /// that had a transaction open dies with it.
    fn crash_and_restart(&mut self) {
        let doomed = Connection::open(self.db()).unwrap();
        doomed.execute_batch("BEGIN IMMEDIATE").unwrap();
        drop(self.store.take());
        let ghost = new_recording(
            self.deployment,
            at("2099-01-01T00:00:00Z"),
            self.tmp().join("ghost.wav"),
        );
        doomed
            .execute(
                "INSERT INTO recording (id, path, datetime, duration_s, samplerate_hz, deployment_id, state)
                 VALUES (?1, ?2, '2099-01-01T00:00:00.000000+00:00', 1.0, 8000, ?3, 'tmp')",
                (
                    ghost.id.as_bytes(),
                    ghost.path.to_str().unwrap(),
                    self.deployment.as_bytes(),
                ),
            )
            .unwrap();
        drop(doomed);
        self.store =
            Some(MetadataStore::open_with(&self.db(), Durability::Normal, Check::Full).unwrap());
        assert!(self.store().recording(ghost.id).unwrap().is_none());
    }

    /// What the daemon does at start-up: the recorder re-registers finished files it
    /// finds without a row (it reads their headers); the management task finishes moves
    /// whose file is already at its destination and forgets recordings whose file is gone.
    fn start_up_pass(&mut self) {
        let before = audit(
            self.store.as_ref().unwrap(),
            &self.recordings(),
            &self.tmp(),
        )
        .unwrap();
        for file in &before.files_without_row {
            if file.starts_with(self.tmp()) {
                let header = self.headers[file].clone();
                self.store().insert_recording(&header).unwrap();
            }
        }
        for recording in self.store().tmp_recordings().unwrap() {
            let path = recording.path.clone().unwrap();
            if path.is_file() {
                continue;
            }
            let dest = self.destination(&recording);
            if dest.is_file() {
                self.store().mark_kept(recording.id, &dest).unwrap();
            } else {
                self.store().delete_recording(recording.id).unwrap();
            }
        }
        for kept in self.store().oldest_kept(usize::MAX).unwrap() {
            if !kept.path.as_ref().unwrap().is_file() {
                self.store().delete_recording(kept.id).unwrap();
            }
        }
    }

    fn audit(&self) -> Audit {
        audit(
            self.store.as_ref().unwrap(),
            &self.recordings(),
            &self.tmp(),
        )
        .unwrap()
    }

    fn files(&self) -> usize {
        let count = |dir: &Path| {
            walk(dir)
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "wav"))
                .count()
        };
        count(&self.tmp()) + count(&self.recordings())
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The row half of an operation whose file half is done.
enum Pending {
    Insert(NewRecording),
    Keep(Uuid, PathBuf),
    Delete(Uuid),
}

fn run(seed: u64, steps: usize) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("tmp")).unwrap();
    std::fs::create_dir(root.path().join("recordings")).unwrap();
    // A capture in progress is not the audit's business.
    std::fs::write(root.path().join("tmp/now.wav.part"), b"RIFF").unwrap();
    let db = root.path().join("metadata.db");
    let mut store = MetadataStore::open_with(&db, Durability::Normal, Check::Full).unwrap();
    let start = at("2026-11-26T00:00:00Z");
    let deployment = store
        .start_deployment("site", None, None, start)
        .unwrap()
        .id;
    let mut device = Device {
        root,
        store: Some(store),
        deployment,
        headers: HashMap::new(),
        next_start: start,
    };
    let mut rng = Rng(seed);
    let mut crashes = 0;
    for step in 0..steps {
        let crash = rng.below(8) == 0;
        let op = rng.below(4);
        // Step one (the file) happens now; step two (the row) unless the process dies.
        let pending = match op {
            0 | 1 => Some(Pending::Insert(device.write_file(&mut rng))),
            2 => device
                .move_file(&mut rng)
                .map(|(recording, dest)| Pending::Keep(recording.id, dest)),
            _ => device
                .remove_file(&mut rng)
                .map(|recording| Pending::Delete(recording.id)),
        };
        if crash {
            crashes += 1;
            device.crash_and_restart();
            if pending.is_some() {
                assert!(
                    !device.audit().is_clean(),
                    "seed {seed} step {step}: audit missed a half-done op"
                );
            }
            device.start_up_pass();
        } else {
            let store = device.store();
            match pending {
                Some(Pending::Insert(new)) => drop(store.insert_recording(&new).unwrap()),
                Some(Pending::Keep(id, dest)) => drop(store.mark_kept(id, &dest).unwrap()),
                Some(Pending::Delete(id)) => assert!(store.delete_recording(id).unwrap()),
                None => {}
            }
        }
        let audit = device.audit();
        assert!(
            audit.is_clean(),
            "seed {seed} step {step} op {op}: {audit:?}"
        );
        let rows = device.store().tmp_recordings().unwrap().len()
            + device.store().oldest_kept(usize::MAX).unwrap().len();
        assert_eq!(rows, device.files(), "seed {seed} step {step}");
    }
    assert!(crashes > 0, "seed {seed} never crashed");
}

#[test]
fn random_operations_and_crashes_keep_rows_and_files_in_step() {
    for seed in [1, 0x5eed, 0xdead_beef] {
        run(seed, 200);
    }
}

#[test]
fn audit_reports_stray_rows_and_files() {
    let root = tempfile::tempdir().unwrap();
    let (tmp, recordings) = (root.path().join("tmp"), root.path().join("recordings"));
    std::fs::create_dir_all(recordings.join("2026/11/26")).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    let mut store =
        MetadataStore::open_with(&root.path().join("m.db"), Durability::Normal, Check::Full)
            .unwrap();
    let dep = store
        .start_deployment("site", None, None, at("2026-11-26T00:00:00Z"))
        .unwrap()
        .id;
    let lost = new_recording(dep, at("2026-11-26T01:00:00Z"), tmp.join("lost.wav"));
    store.insert_recording(&lost).unwrap();
    let stray = recordings.join("2026/11/26/stray.wav");
    std::fs::write(&stray, b"RIFF").unwrap();
    std::fs::write(recordings.join("notes.txt"), b"not audio").unwrap();
    let report = audit(&store, &recordings, &tmp).unwrap();
    assert_eq!(report.rows_without_file, vec![lost.path]);
    assert_eq!(report.files_without_row, vec![stray]);
    assert!(!report.is_clean());
}
