//! `acoupi run` on a full disk, end to end: metadata.db, the temporary audio and the
//! recordings share one small tmpfs (a Pi's single SD card in miniature), which the test
//! fills with a file of its own until `ENOSPC` while the real daemon records a counter
//! ramp through the ALSA `file` plugin, as in `daemon_run.rs`.
//!
//! Mounting the tmpfs needs root with `CAP_SYS_ADMIN`, as the tests and CI run. Without
//! it the tests fail and say so: a skipped test would pass without having proved the one
//! path it exists for.
//!
//! `retention.min_free_space_mb` is 0, so retention never deletes a recording to make
//! room: what is watched is the write path, the pause and the way back. Retention
//! freeing space is covered by the management task's own tests.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acoupi::store::{audit, MetadataStore, RecordingState};
use support::disk::{available, fill, Tmpfs};
use support::feeder::Feeder;
use support::{part_files, part_frames, wait_until, wav_files, wav_samples, Install, Notify};
use support::{ramp, RATE};

/// Small enough to fill in a moment, large enough for metadata.db and a few dozen 1 s
/// files of 8 kHz mono 16-bit audio (16 KB each).
const DISK_SIZE: &str = "2m";
/// The daemon's management interval: a pass sees the disk at least this often.
const MANAGEMENT_INTERVAL: Duration = Duration::from_secs(10);
/// Space back → recording again: a tick notices the room (1 s with the test's
/// `WATCHDOG_USEC`), the capture thread asks its plan again (1 s), the PCM opens.
const RESUME_WITHIN: Duration = Duration::from_secs(5);

/// A deployed user-mode installation whose storages all live on a small tmpfs.
/// Field order is drop order: the daemon is killed before the tmpfs is unmounted, and
/// the tmpfs unmounted before the installation's temporary directory is removed.
struct Station {
    daemon: support::Daemon,
    notify: Notify,
    feeder: Feeder,
    tmp: PathBuf,
    recordings: PathBuf,
    db: PathBuf,
    disk: Tmpfs,
    install: Install,
}

impl Station {
    /// Installs, deploys and starts the recorder; returns once it said READY and has
    /// finished `files` files.
    fn start(name: &str, files: usize) -> Station {
        let install = Install::new();
        let disk = Tmpfs::mount(install.root().join("disk"), DISK_SIZE);
        let tmp = disk.dir.join("tmp");
        let recordings = disk.dir.join("recordings");
        let db = disk.dir.join("metadata.db");
        install.setup(&[
            &format!("paths.tmp_audio={}", tmp.display()),
            &format!("paths.recordings={}", recordings.display()),
            &format!("paths.db_metadata={}", db.display()),
            "retention.min_free_space_mb=0",
        ]);
        install.deploy(name);
        let notify = Notify::bind(install.root());
        let feeder = Feeder::start(&install.fifo, 0);
        let t0 = Instant::now();
        let daemon = install.spawn_daemon("run", &notify);
        let s = Station {
            daemon,
            notify,
            feeder,
            tmp,
            recordings,
            db,
            disk,
            install,
        };
        s.notify
            .expect_ready(t0, Duration::from_secs(10), &s.daemon);
        assert!(
            wait_until(Duration::from_secs(8), || s.wavs().len() >= files),
            "fewer than {files} files; log:\n{}",
            s.daemon.log_text()
        );
        s
    }

    /// Every finished file, in the temporary directory or kept, by name (= start).
    fn wavs(&self) -> Vec<PathBuf> {
        let mut files = wav_files(&self.tmp);
        files.extend(wav_files(&self.recordings));
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        files
    }

    fn wav_named(&self, name: &str) -> Option<PathBuf> {
        self.wavs().into_iter().find(|f| stem(f) == name)
    }

    fn status(&self) -> serde_json::Value {
        self.install.control_status()
    }

    /// Fills the disk while a file is young (under 0.3 s of audio, its second 4 KiB
    /// page not yet needed), so that the first write refused is in the middle of that
    /// file. Returns the file's stem and when the disk was full.
    fn fill_during_a_file(&self) -> (String, Instant, jiff::Timestamp) {
        let mut young = None;
        assert!(
            wait_until(Duration::from_secs(3), || {
                young = part_files(&self.tmp)
                    .into_iter()
                    .find(|p| (1..=RATE * 3 / 10).contains(&part_frames(p)));
                young.is_some()
            }),
            "no young .part in {}",
            self.tmp.display()
        );
        let cut_stem = stem(&young.unwrap());
        let free = available(&self.disk.dir);
        let (at, wall) = (Instant::now(), jiff::Timestamp::now());
        let size = fill(&self.filler());
        eprintln!("filled {size} bytes ({free} were free) while {cut_stem} was being written");
        assert_eq!(available(&self.disk.dir), 0);
        (cut_stem, at, wall)
    }

    fn filler(&self) -> PathBuf {
        self.disk.dir.join("filler")
    }

    /// Waits up to `within` until the control socket, and then `STATUS=`, say
    /// recording is paused because the disk is full.
    fn wait_disk_full_status(&self, since: Instant, within: Duration) {
        let mut status = serde_json::Value::Null;
        assert!(
            wait_until(within, || {
                status = self.status();
                status["recording"]["detail"] == "disk full: recording paused until space returns"
            }),
            "status never said disk full: {status:#}\nlog:\n{}",
            self.daemon.log_text()
        );
        assert_eq!(status["recording"]["state"], "disk-full", "{status:#}");
        assert_eq!(status["recording"]["health"], "notok", "{status:#}");
        assert!(
            self.notify
                .wait_for(since, Duration::from_secs(3), |l| {
                    l == "STATUS=disk full: recording paused until space returns"
                })
                .is_some(),
            "no STATUS= for the full disk: {:?}",
            self.notify.messages()
        );
    }

    /// Removes the filler and waits until the recorder records again; returns when
    /// the space came back and how long recording took to resume.
    fn free_space(&mut self) -> (jiff::Timestamp, Duration) {
        // While paused the microphone is closed, which ended the feeder's writes (the
        // FIFO lost its reader): start a new one where the old one stopped, for the
        // capture thread to reopen.
        assert!(
            wait_until(Duration::from_secs(3), || self.feeder.stopped()),
            "the microphone stayed open during the pause"
        );
        std::fs::remove_file(self.filler()).unwrap();
        let (at, wall) = (Instant::now(), jiff::Timestamp::now());
        self.feeder = Feeder::start(&self.install.fifo, self.feeder.written());
        let mut status = serde_json::Value::Null;
        assert!(
            wait_until(RESUME_WITHIN, || {
                status = self.status();
                status["recording"]["state"] == "recording"
            }),
            "recording did not resume within {RESUME_WITHIN:?}: {status:#}\nlog:\n{}",
            self.daemon.log_text()
        );
        (wall, at.elapsed())
    }

    /// SIGTERM; the recorder must say STOPPING=1 and exit 0 within 5 s.
    fn stop(&mut self) {
        let t = Instant::now();
        self.daemon.stop_cleanly(Duration::from_secs(5));
        assert!(self
            .notify
            .wait_for(t, Duration::from_secs(1), |l| l == "STOPPING=1")
            .is_some());
    }

    /// After the last stop: no `.part`, nothing left in tmp/, every file has its row and
    /// every row its file, each row's frame count is its file's, each file's header
    /// matches its length, and metadata.db passes `integrity_check`. Returns the kept
    /// files. Every kept file has its GUANO chunk.
    fn assert_store_matches_disk(&self, log: &str) -> Vec<PathBuf> {
        assert!(
            part_files(&self.tmp).is_empty(),
            "{:?}",
            part_files(&self.tmp)
        );
        assert!(
            wav_files(&self.tmp).is_empty(),
            "{:?}",
            wav_files(&self.tmp)
        );
        let store = MetadataStore::open(&self.db).unwrap();
        let a = audit(&store, &self.recordings, &self.tmp).unwrap();
        assert!(a.is_clean(), "rows and files disagree: {a:#?}\nlog:\n{log}");
        let files = wav_files(&self.recordings);
        let rows = store.recordings_since(jiff::Timestamp::MIN).unwrap();
        assert_eq!(rows.len(), files.len(), "rows {rows:#?}\nfiles {files:#?}");
        for f in &files {
            // A `_1` suffix would mean a recording was kept twice (a move left half done
            // on the full disk, then registered again as a file of its own).
            assert_eq!(stem(f).split('_').count(), 3, "{}", f.display());
            let row = store.find_by_path(f).unwrap().expect("row");
            assert_eq!(row.state, Some(RecordingState::Kept), "{}", f.display());
            let frames = hound::WavReader::open(f).unwrap().duration();
            assert_eq!(row.frames, Some(u64::from(frames)), "{}", f.display());
            assert_riff_matches_length(f);
            // The chunk a full disk cut off went back in before the file was kept.
            assert!(
                acoupi::audio::repair::read_guano_text(f).unwrap().is_some(),
                "{} was kept without GUANO\nlog:\n{log}",
                f.display()
            );
        }
        drop(store);
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        files
    }

    /// The `disk_full` gaps stored in metadata.db.
    fn disk_full_gaps(&self) -> Vec<acoupi::store::Gap> {
        let store = MetadataStore::open(&self.db).unwrap();
        let gaps = store.gaps_since(jiff::Timestamp::MIN).unwrap();
        gaps.into_iter()
            .filter(|g| g.reason == "disk_full")
            .collect()
    }
}

/// The RIFF size covers the whole file (data, padding, GUANO): the header was written
/// after the last audio, as `wav_samples` checks for the data size.
fn assert_riff_matches_length(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff + 8, bytes.len(), "{}: RIFF size", path.display());
}

/// The files, in order, hold consecutive ramp samples; returns the first sample's value
/// and the number of samples.
fn assert_contiguous_ramp(files: &[PathBuf]) -> (i16, u64) {
    let mut first = None;
    let mut next: Option<i16> = None;
    let mut n = 0u64;
    for f in files {
        for (i, s) in wav_samples(f).into_iter().enumerate() {
            if let Some(want) = next {
                assert_eq!(s, want, "{} sample {i} breaks the ramp", f.display());
            }
            first.get_or_insert(s);
            next = Some(s.wrapping_add(1));
            n += 1;
        }
    }
    (first.expect("no samples"), n)
}

/// `20261126_064943_000` for `…/20261126_064943_000.wav` or `….wav.part`.
fn stem(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy();
    name.split('.').next().unwrap().to_string()
}

#[test]
fn a_full_disk_cuts_the_file_pauses_recording_and_loses_no_file_or_row() {
    let mut s = Station::start("disk full", 3);

    let (cut_stem, filled_at, filled_wall) = s.fill_during_a_file();

    // The file in progress is cut short but whole, and the recorder says why.
    s.wait_disk_full_status(filled_at, Duration::from_secs(3));
    assert!(
        wait_until(Duration::from_secs(3), || s.wav_named(&cut_stem).is_some()),
        "{cut_stem} was not finished; log:\n{}",
        s.daemon.log_text()
    );
    let cut_file = s.wav_named(&cut_stem).unwrap();
    let cut_frames = wav_samples(&cut_file).len() as u64;
    assert_riff_matches_length(&cut_file);
    assert!(
        (1..RATE).contains(&cut_frames),
        "{cut_stem} holds {cut_frames} frames: not cut short"
    );
    eprintln!(
        "cut short at {cut_frames} frames ({} bytes on disk)",
        std::fs::metadata(&cut_file).unwrap().len()
    );

    // The default worker goes on completing its passes on a full disk: a pass that can
    // move nothing and write no row is not a stall, and the watchdog must not treat it as
    // one (systemd would restart the recorder for as long as the disk stays full). Wait
    // for a pass that started after the disk filled.
    let mut status = serde_json::Value::Null;
    let pass_on_full_disk = wait_until(MANAGEMENT_INTERVAL + Duration::from_secs(3), || {
        status = s.status();
        let age = status["default"]["last_pass_age_s"].as_u64();
        age.is_some_and(|age| age + 1 < filled_at.elapsed().as_secs())
    });
    assert!(
        pass_on_full_disk,
        "no management pass completed on the full disk: {status:#}\nlog:\n{}",
        s.daemon.log_text()
    );
    assert_eq!(status["default"]["health"], "ok", "{status:#}");
    assert_eq!(status["recording"]["state"], "disk-full", "{status:#}");
    // However many slots passed meanwhile, no `.part` was left behind and nothing new
    // was recorded.
    assert!(part_files(&s.tmp).is_empty(), "{:?}", part_files(&s.tmp));
    assert_eq!(stem(s.wavs().last().unwrap()), cut_stem);

    // Space comes back: recording resumes without a restart.
    let (freed_wall, resumed_after) = s.free_space();
    eprintln!(
        "disk full for {:?}; recording resumed {resumed_after:?} after the filler was removed",
        filled_at.elapsed() - resumed_after
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            s.wavs().iter().filter(|f| stem(f) > cut_stem).count() >= 2
        }),
        "no files after the pause; log:\n{}",
        s.daemon.log_text()
    );

    // Pings went on all along: the daemon was never judged stuck.
    let pings: Vec<Instant> = s
        .notify
        .times_of("WATCHDOG=1")
        .into_iter()
        .filter(|t| *t >= filled_at)
        .collect();
    let longest = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain([pings.first().map_or(Duration::MAX, |t| *t - filled_at)])
        .max()
        .unwrap();
    assert!(
        longest <= Duration::from_millis(1500),
        "the watchdog was withheld for {longest:?} on a full disk"
    );

    s.stop();
    let log = s.daemon.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("management pass failed"), "{log}");
    // One pause, one error; the cut file's row, refused by the full metadata.db, was
    // written by the running daemon once space was back.
    assert_eq!(
        log.matches("disk full: recording paused until space returns")
            .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "stored a row that could not be written earlier what=recording {}",
            s.tmp.join(format!("{cut_stem}.wav")).display()
        )),
        "{log}"
    );
    assert!(
        log.contains("free space is back: recording resumes"),
        "{log}"
    );

    let files = s.assert_store_matches_disk(&log);
    let store = MetadataStore::open(&s.db).unwrap();
    let cut_row = files
        .iter()
        .find(|f| stem(f) == cut_stem)
        .and_then(|f| store.find_by_path(f).unwrap())
        .expect("the cut file has a row");
    assert_eq!(cut_row.frames, Some(cut_frames));
    drop(store);
    // The pause is a gap in the deployment's audio.
    let gaps = s.disk_full_gaps();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let lag = jiff::SignedDuration::from_secs(1);
    assert!(
        gaps[0].started_on >= filled_wall - lag && gaps[0].started_on <= filled_wall + lag,
        "gap {gaps:?}, disk full at {filled_wall}"
    );
    assert!(
        gaps[0].ended_on >= freed_wall && gaps[0].ended_on <= freed_wall + lag * 3,
        "gap {gaps:?}, space back at {freed_wall}"
    );

    // Up to the cut the audio is the ramp from its first sample, without a hole; after
    // the pause it is the ramp again; nothing was recorded while the disk was full.
    let (before, after): (Vec<PathBuf>, Vec<PathBuf>) =
        files.into_iter().partition(|f| stem(f) <= cut_stem);
    let (first, n) = assert_contiguous_ramp(&before);
    assert_eq!(first, ramp(0));
    // The new feeder writes its first 0.2 s at once, and stream time takes a first read
    // to end when it arrives: the first file may be named up to a write (plus a read)
    // before the space came back, never seconds before, as audio from the pause would be.
    let ahead = jiff::SignedDuration::from_millis(500);
    assert!(
        stem(&after[0]) >= acoupi::audio::name::file_stem(freed_wall - ahead),
        "{} was recorded while the disk was full",
        after[0].display()
    );
    assert_contiguous_ramp(&after);
    eprintln!(
        "{} files ({n} samples) up to the cut, {} after the pause",
        before.len(),
        after.len()
    );
}

/// A restart while the disk is still full (systemd after a crash or a kill, a power cut).
/// With not a byte free SQLite cannot open metadata.db, so `acoupi run` exits at once
/// and says why; under systemd (`Restart=always`, `RestartSec=5`) it is tried again
/// until there is room. FIXME: waiting in-process (`STATUS=`, `EXTEND_TIMEOUT_USEC=`)
/// would keep the control socket answering meanwhile. With a little room it comes up,
/// registers the file the full metadata.db refused, records until the disk is full again,
/// pauses, and resumes once space is back; no file is lost on the way.
#[test]
fn a_restart_on_a_full_disk_waits_for_room_and_loses_no_file() {
    let mut s = Station::start("restart while full", 2);
    let (cut_stem, filled_at, _) = s.fill_during_a_file();
    s.wait_disk_full_status(filled_at, Duration::from_secs(3));
    s.stop();
    // Stopped on a full disk: the cut file is whole but has no row yet.
    assert!(part_files(&s.tmp).is_empty(), "{:?}", part_files(&s.tmp));
    let cut_file = s.tmp.join(format!("{cut_stem}.wav"));
    assert!(cut_file.exists(), "log:\n{}", s.daemon.log_text());
    let store = MetadataStore::open(&s.db).unwrap();
    let before = audit(&store, &s.recordings, &s.tmp).unwrap();
    drop(store);
    assert_eq!(before.files_without_row, vec![cut_file.clone()]);
    assert!(before.rows_without_file.is_empty(), "{before:?}");
    // SQLite gave back space on close (a checkpointed WAL is deleted): take it too.
    let freed = fill(&s.filler());
    eprintln!("{freed} bytes freed by the stop taken back");
    assert_eq!(available(&s.disk.dir), 0);

    // Not a byte free: the recorder cannot open metadata.db, and says why.
    s.notify = Notify::bind(&s.install.root().join("second"));
    s.daemon = s.install.spawn_daemon("run", &s.notify);
    let exit = s.daemon.wait_exit(Duration::from_secs(5));
    let log = s.daemon.log_text();
    assert_eq!(exit.and_then(|e| e.code()), Some(2), "{log}");
    let want = format!(
        "error: the disk holding {} is full (0 bytes free)",
        s.disk.dir.display()
    );
    assert!(log.contains(&want), "{log}");
    assert!(cut_file.exists());

    // A little room (what a rotated log might free): it comes up, then fills the disk
    // again and pauses.
    let filler = std::fs::OpenOptions::new()
        .write(true)
        .open(s.filler())
        .unwrap();
    let len = filler.metadata().unwrap().len();
    filler.set_len(len - (160 << 10)).unwrap();
    drop(filler);
    assert!(wait_until(Duration::from_secs(3), || s.feeder.stopped()));
    s.feeder = Feeder::start(&s.install.fifo, s.feeder.written());
    s.notify = Notify::bind(&s.install.root().join("third"));
    let t0 = Instant::now();
    s.daemon = s.install.spawn_daemon("run", &s.notify);
    s.notify
        .expect_ready(t0, Duration::from_secs(10), &s.daemon);
    s.wait_disk_full_status(t0, Duration::from_secs(20));
    eprintln!("full again {:?} after the restart", t0.elapsed());
    assert!(cut_file.exists() || s.wav_named(&cut_stem).is_some());

    let (_, resumed_after) = s.free_space();
    eprintln!("after the restart, recording resumed {resumed_after:?} after space was back");
    let newest = stem(s.wavs().last().unwrap());
    assert!(
        wait_until(Duration::from_secs(4), || {
            s.wavs().iter().filter(|f| stem(f) > newest).count() >= 2
        }),
        "no files after the pause; log:\n{}",
        s.daemon.log_text()
    );
    s.stop();
    let log = s.daemon.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains(&format!(
            "registering a finished recording that had no row path={}",
            cut_file.display()
        )),
        "{log}"
    );
    let files = s.assert_store_matches_disk(&log);
    assert!(files.iter().any(|f| stem(f) == cut_stem), "{files:?}");
    assert_eq!(s.disk_full_gaps().len(), 1, "{:?}", s.disk_full_gaps());
}

/// Issue 11, a soak finding: a file a full disk cut before its GUANO chunk waits in the
/// temporary directory, with its row, while the disk stays full, and is kept with its
/// GUANO once there is room. Kept at once it would have stayed without GUANO for good:
/// nothing looks at a kept file again.
#[test]
fn a_file_cut_before_its_guano_is_kept_only_once_the_guano_is_in() {
    use acoupi::store::metadata::NewRecording;
    use acoupi::tasks::management::Management;

    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(dir.path().join("disk"), "2m");
    let tmp = disk.dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // metadata.db lies elsewhere, with room: the row can follow the file.
    let mut store = MetadataStore::open(&dir.path().join("metadata.db")).unwrap();
    let deployment = store
        .start_deployment("guano", Some(51.5), Some(-0.1), jiff::Timestamp::now())
        .unwrap()
        .id;
    // A file that ends on a page boundary: the chunk needs a new page, so a full tmpfs
    // refuses it (a file with slack in its last page would take it even then).
    let frames: u64 = (8192 - 44) / 2;
    let start = jiff::Timestamp::now();
    let path = tmp.join(format!("{}.wav", acoupi::audio::name::file_stem(start)));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..frames {
        w.write_sample(ramp(i)).unwrap();
    }
    w.finalize().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
    let row = store
        .insert_recording(&NewRecording {
            id: uuid::Uuid::new_v4(),
            path: path.clone(),
            datetime: start,
            duration_s: frames as f64 / RATE as f64,
            samplerate_hz: RATE as u32,
            audio_channels: 1,
            deployment_id: deployment,
            clock_synced: true,
            time_expansion: 1.0,
            bit_depth: 16,
            frames,
        })
        .unwrap();
    // The day folder exists already, as it does after the first file of a day: the move
    // itself needs no room.
    let day = start.strftime("%Y/%m/%d").to_string();
    std::fs::create_dir_all(disk.dir.join("recordings").join(day)).unwrap();
    let filler = disk.dir.join("filler");
    fill(&filler);

    let management = Management::new(disk.dir.join("recordings"), 0);
    let full = management.pass(&mut store, jiff::Timestamp::now()).unwrap();
    assert_eq!(
        (full.kept, full.left_in_tmp, full.disk_full),
        (0, 1, true),
        "{full:?}"
    );
    assert!(
        path.exists(),
        "the file left the temporary directory without GUANO"
    );

    std::fs::remove_file(&filler).unwrap();
    let room = management.pass(&mut store, jiff::Timestamp::now()).unwrap();
    assert_eq!((room.kept, room.disk_full), (1, false), "{room:?}");
    let kept = store.recording(row.id).unwrap().unwrap().path.unwrap();
    assert!(
        acoupi::audio::repair::read_guano_text(&kept)
            .unwrap()
            .is_some(),
        "{} was kept without GUANO",
        kept.display()
    );
    assert_eq!(wav_samples(&kept).len() as u64, frames);
}
