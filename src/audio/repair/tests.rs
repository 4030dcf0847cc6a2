//! Repair of crash leftovers, on `.part` files the real writer wrote and a crash cut.

use super::*;
use crate::audio::guano::Guano;
use crate::audio::wav::{WavSpec, WavWriter};

fn spec() -> WavSpec {
    WavSpec {
        samplerate: 8000,
        channels: 2,
        bit_depth: 16,
        time_expansion: 1.0,
    }
}

/// 'n' stereo frames of a counter.
fn frames(n: usize) -> Vec<u8> {
    (0..n * 2).flat_map(|i| (i as i16).to_le_bytes()).collect()
}

fn check_recovered(o: &RepairOutcome) -> &FinishedFile {
    match o {
        RepairOutcome::Recovered(f) => f,
        other => panic!("expected a recovered file, got {other:?}"),
    }
}

#[test]
fn part_file_is_recovered_after_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let start: Timestamp = "2026-03-01T12:00:00.250Z".parse().unwrap();
    let mut w = WavWriter::create(dir.path(), start, spec()).unwrap();
    w.write(&frames(12_000)).unwrap();
    let part = w.part_path().to_path_buf();
    drop(w); // crash: never finished
             // A torn last frame, as a power cut mid-write leaves it.
    let mut bytes = std::fs::read(&part).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&part, bytes).unwrap();

    let out = repair_tmp_dir(dir.path(), &GuanoContext::default());
    assert_eq!(out.len(), 1);
    let f = check_recovered(&out[0]);
    assert_eq!(f.frames, 12_000);
    assert_eq!(f.start, start);
    assert!(!part.exists());
    let mut r = hound::WavReader::open(&f.path).unwrap();
    let got: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let want: Vec<i16> = (0..24_000).map(|i| i as i16).collect();
    assert_eq!(got, want);
}

fn context() -> GuanoContext {
    GuanoContext {
        model: "hw:CARD=UltraMic,DEV=0".into(),
        serial: Some("pi-1234".into()),
        position: Some((51.5, -0.12)),
        deployment_name: Some("wood".into()),
    }
}

/// A `.part` as a crash leaves it: `n` frames written, never finished.
fn crashed_part(dir: &Path, start: Timestamp, n: usize) -> PathBuf {
    let mut w = WavWriter::create(dir, start, spec()).unwrap();
    w.write(&frames(n)).unwrap();
    let part = w.part_path().to_path_buf();
    drop(w);
    part
}

/// The GUANO fields of a finished file, read back with this module's reader.
fn guano_of(path: &Path) -> Vec<(String, String)> {
    let text = read_guano_text(path)
        .unwrap()
        .unwrap_or_else(|| panic!("no GUANO chunk in {}", path.display()));
    guano::parse(&text)
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

// Issue 11: a `.part` shorter than one period (0.1 s) was deleted, losing real audio.
#[test]
fn issue_11_a_part_shorter_than_one_period_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let start: Timestamp = "2026-03-01T12:00:00.250Z".parse().unwrap();
    let part = crashed_part(dir.path(), start, 228);
    let out = repair_tmp_dir(dir.path(), &context());
    let f = check_recovered(&out[0]);
    assert_eq!(
        (f.frames, f.start, f.start_approximate),
        (228, start, false)
    );
    assert!(!part.exists());
    let bytes = std::fs::read(&f.path).unwrap();
    assert_eq!(
        &bytes[44..44 + 228 * 4],
        &frames(228)[..],
        "samples byte-exact"
    );
    let g = guano_of(&f.path);
    assert_eq!(field(&g, "Length"), Some("0.028500"));
    assert_eq!(
        field(&g, "Timestamp"),
        Some("2026-03-01T12:00:00.250+00:00")
    );
}

// Issue 11: a crash leaves no GUANO chunk; repair writes the one `finish` writes, so a
// repaired file is byte for byte the file an orderly stop would have made.
#[test]
fn issue_11_repair_writes_the_guano_chunk_the_writer_writes() {
    let (crashed, finished) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let start: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    // 1001 frames of 4 bytes, plus a torn last frame the repair must cut.
    let part = crashed_part(crashed.path(), start, 1001);
    let mut torn = OpenOptions::new().append(true).open(&part).unwrap();
    std::io::Write::write_all(&mut torn, &[9, 9]).unwrap();
    let out = repair_tmp_dir(crashed.path(), &context());
    let repaired = check_recovered(&out[0]);

    let mut w = WavWriter::create(finished.path(), start, spec()).unwrap();
    w.write(&frames(1001)).unwrap();
    let c = context();
    let (expected, _) = w
        .finish(|name, n| Guano {
            position: c.position,
            model: c.model.clone(),
            serial: c.serial.clone(),
            deployment_name: c.deployment_name.clone(),
            ..Guano::for_test(name, n, start)
        })
        .unwrap();
    assert_eq!(
        std::fs::read(&repaired.path).unwrap(),
        std::fs::read(&expected).unwrap()
    );
    let g = guano_of(&repaired.path);
    assert_eq!(field(&g, "Length"), Some("0.125125"));
    assert_eq!(
        field(&g, "Timestamp"),
        Some("2026-03-01T12:00:00.000+00:00")
    );
    assert_eq!(field(&g, "Acoupi|Deployment Name"), Some("wood"));
    assert_eq!(
        hound::WavReader::open(&repaired.path).unwrap().duration(),
        1001
    );
}

// Issue 11: a `.part` whose name holds no time was filed under 1970-01-01.
#[test]
fn issue_11_a_part_without_a_time_in_its_name_starts_at_its_last_write_less_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let written = crashed_part(dir.path(), Timestamp::UNIX_EPOCH, 16_000);
    let part = dir.path().join("capture.wav.part");
    std::fs::rename(&written, &part).unwrap();
    // The last write 2 s (16000 frames at 8 kHz) after the first sample.
    let last_write: Timestamp = "2026-03-01T12:00:02Z".parse().unwrap();
    File::options()
        .write(true)
        .open(&part)
        .unwrap()
        .set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(last_write.as_second() as u64),
        )
        .unwrap();
    let out = repair_tmp_dir(dir.path(), &context());
    let f = check_recovered(&out[0]);
    let start: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    assert_eq!(
        (f.start, f.start_approximate, f.frames),
        (start, true, 16_000)
    );
    assert_eq!(f.path, dir.path().join("capture.wav"));
    let g = guano_of(&f.path);
    assert_eq!(
        field(&g, "Timestamp"),
        Some("2026-03-01T12:00:00.000+00:00")
    );
    // Registered again later (no row yet), the start comes back from GUANO.
    let again = read_finished(&f.path).unwrap();
    assert_eq!((again.start, again.frames), (start, 16_000));
}

// Issue 11: an empty `.part` (a crash right after creating it) was never removed.
#[test]
fn issue_11_parts_without_a_whole_frame_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("20260301_120000_000.wav.part");
    std::fs::write(&empty, b"").unwrap();
    let header_only = crashed_part(dir.path(), "2026-03-01T12:00:01Z".parse().unwrap(), 0);
    let cut = crashed_part(dir.path(), "2026-03-01T12:00:02Z".parse().unwrap(), 0);
    let header = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &header[..20]).unwrap();
    let half_frame = crashed_part(dir.path(), "2026-03-01T12:00:03Z".parse().unwrap(), 0);
    let mut f = OpenOptions::new().append(true).open(&half_frame).unwrap();
    std::io::Write::write_all(&mut f, &[1, 2, 3]).unwrap();

    let out = repair_tmp_dir(dir.path(), &context());
    assert_eq!(out.len(), 4);
    for o in &out {
        assert!(matches!(o, RepairOutcome::Deleted { .. }), "{o:?}");
    }
    for p in [&empty, &header_only, &cut, &half_frame] {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn crash_after_guano_keeps_audio_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = WavWriter::create(dir.path(), Timestamp::UNIX_EPOCH, spec()).unwrap();
    w.write(&frames(1001)).unwrap();
    let (done, _) = w
        .finish(|name, n| Guano {
            time_expansion: 2.0,
            ..Guano::for_test(name, n, Timestamp::UNIX_EPOCH)
        })
        .unwrap();
    // Simulate a crash between writing GUANO and the rename.
    let part = dir.path().join("19700101_000000_000.wav.part");
    std::fs::rename(&done, &part).unwrap();
    let out = repair_tmp_dir(dir.path(), &GuanoContext::default());
    let f = check_recovered(&out[0]);
    assert_eq!(
        (f.frames, f.samplerate, f.time_expansion),
        (1001, 8000, 2.0)
    );
    assert_eq!(hound::WavReader::open(&f.path).unwrap().duration(), 1001);
}

#[test]
fn a_non_wav_part_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.wav.part");
    std::fs::write(&p, b"not audio at all").unwrap();
    let short = dir.path().join("y.wav.part");
    std::fs::write(&short, b"RIFX").unwrap();
    let out = repair_tmp_dir(dir.path(), &GuanoContext::default());
    assert!(matches!(
        &out[..],
        [RepairOutcome::Failed { .. }, RepairOutcome::Failed { .. }]
    ));
    assert!(p.exists() && short.exists());
}

// Issue 11 (found by `make soak`): a file finished on a full disk has no GUANO chunk (the
// writer leaves it out); the management pass adds it later, and the file is then byte for
// byte the one a roomy disk would have given.
#[test]
fn a_missing_guano_chunk_is_added_back_as_the_writer_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let start: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    let mut w = WavWriter::create(dir.path(), start, spec()).unwrap();
    w.write(&frames(1001)).unwrap();
    let c = context();
    let (expected, _) = w
        .finish(|name, n| c.guano(start, 8000, n, name.into(), 1.0))
        .unwrap();
    let full = std::fs::read(&expected).unwrap();
    // What `finish` leaves on a full disk: the audio, a header that counts only it.
    let data = 1001 * 4;
    let mut cut = full[..44 + data].to_vec();
    cut[4..8].copy_from_slice(&(36 + data as u32).to_le_bytes());
    let path = dir.path().join("cut.wav");
    std::fs::write(&path, &cut).unwrap();
    assert_eq!(read_guano_text(&path).unwrap(), None);

    assert!(add_missing_guano(&path, &c, start).unwrap());
    let fixed = std::fs::read(&path).unwrap();
    let g = guano_of(&path);
    assert_eq!(field(&g, "Original Filename"), Some("cut.wav"));
    // Audio and sizes as the writer leaves them; the RIFF size counts the new chunk.
    assert!(
        fixed[8..44 + data] == full[8..44 + data],
        "audio or data size changed"
    );
    let riff = u32::from_le_bytes(fixed[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff + 8, fixed.len());
    assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 1001);
    assert_eq!(field(&g, "Length"), Some("0.125125"));
    assert_eq!(field(&g, "Acoupi|Deployment Name"), Some("wood"));
    // A file that has its chunk is left alone.
    let before = std::fs::read(&path).unwrap();
    assert!(!add_missing_guano(&path, &c, start).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
