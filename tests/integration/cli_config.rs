//! `acoupi setup` and `acoupi config` through the real binary in user mode
//! (`ACOUPI_HOME` = a temporary directory): files written, messages, exit codes, and that
//! a rejected change leaves the file and its backup alone.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config/acoupi.ron")
    }

    fn bak(&self) -> PathBuf {
        self.dir.path().join("config/acoupi.ron.bak")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_acoupi"))
            .args(args)
            .env("ACOUPI_HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("running acoupi")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs and expects exit code 2; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        String::from_utf8(out.stderr).expect("utf-8 output")
    }

    /// A home with a configuration written by setup.
    fn set_up() -> Home {
        let home = Home::new();
        home.ok(&[
            "setup",
            "--no-prompt",
            "--set",
            "microphone.device_name=UltraMic",
        ]);
        home
    }
}

#[test]
fn setup_no_prompt_with_set_writes_a_file_that_loads() {
    let home = Home::new();
    let out = home.ok(&[
        "setup",
        "--no-prompt",
        "--set",
        "microphone.device_name=UltraMic",
        "--set",
        "recording.duration=5",
        "--set",
        "recording.schedule.0.start=sunset-30m",
    ]);
    assert!(
        out.contains(&format!("wrote {}", home.config().display())),
        "{out}"
    );
    let c = acoupi::config::load(&home.config()).expect("setup wrote a valid file");
    assert_eq!(c.microphone.device_name, "UltraMic");
    assert_eq!(c.recording.duration, 5);
    assert_eq!(c.recording.schedule[0].start.to_string(), "sunset-30m");
    let text = fs::read_to_string(home.config()).unwrap();
    assert!(
        text.starts_with("// acoupi program configuration."),
        "{text}"
    );
}

#[test]
fn setup_without_device_name_says_which_set_to_use() {
    let home = Home::new();
    let err = home.fails(&["setup", "--no-prompt"]);
    assert_eq!(
        err,
        "error: microphone.device_name is required: pass --set microphone.device_name=<name> (`acoupi devices` lists the microphones)\n"
    );
    assert!(!home.config().exists());
}

#[test]
fn setup_refuses_to_overwrite_without_force() {
    let home = Home::set_up();
    let before = fs::read(home.config()).unwrap();
    let err = home.fails(&[
        "setup",
        "--no-prompt",
        "--set",
        "microphone.device_name=USB",
    ]);
    assert!(err.contains("a configuration already exists at"), "{err}");
    assert!(err.contains("pass --force"), "{err}");
    assert_eq!(fs::read(home.config()).unwrap(), before);
    home.ok(&[
        "setup",
        "--no-prompt",
        "--force",
        "--set",
        "microphone.device_name=USB",
    ]);
    assert_eq!(fs::read(home.bak()).unwrap(), before);
    assert_eq!(
        home.ok(&["config", "get", "microphone.device_name"]),
        "\"USB\"\n"
    );
}

#[test]
fn setup_rejects_programs_not_in_this_build() {
    let home = Home::new();
    let err = home.fails(&["setup", "--no-prompt", "--program", "detector"]);
    assert_eq!(
        err,
        "error: unknown program `detector`: the available programs are `default` and `connected`\n"
    );
}

#[test]
fn get_set_round_trip_with_list_index_and_solar_bound() {
    let home = Home::set_up();
    home.ok(&["config", "set", "recording.schedule.0.end", "sunset-30m"]);
    home.ok(&["config", "set", "microphone.samplerate", "96000"]);
    home.ok(&[
        "config",
        "set",
        "recording.schedule.1",
        "(start: \"sunrise-1h\", end: \"09:00\")",
    ]);
    assert_eq!(
        home.ok(&["config", "get", "recording.schedule.0.end"]),
        "\"sunset-30m\"\n"
    );
    assert_eq!(
        home.ok(&["config", "get", "microphone.samplerate"]),
        "96000\n"
    );
    assert_eq!(
        home.ok(&["config", "get", "recording.schedule.1", "--json"]),
        "{\n  \"start\": \"sunrise-1h\",\n  \"end\": \"09:00\"\n}\n"
    );
    let c = acoupi::config::load(&home.config()).unwrap();
    assert_eq!(c.recording.schedule.len(), 2);
    assert_eq!(c.microphone.samplerate, 96_000);
    // The whole configuration printed by `get` is the file format.
    let whole = home.ok(&["config", "get"]);
    assert_eq!(
        acoupi::config::parse(&whole, Path::new("stdout")).unwrap(),
        c
    );
    let json: serde_json::Value =
        serde_json::from_str(&home.ok(&["config", "get", "--json"])).unwrap();
    assert_eq!(json["recording"]["schedule"][0]["end"], "sunset-30m");
}

#[test]
fn set_inside_unset_section_creates_it_with_defaults() {
    let home = Home::set_up();
    assert_eq!(home.ok(&["config", "get", "recording_saving"]), "None\n");
    home.ok(&["config", "set", "recording_saving.starttime", "18:30"]);
    let c = acoupi::config::load(&home.config()).unwrap();
    let saving = c.recording_saving.expect("section created");
    assert_eq!(saving.starttime.unwrap().to_string(), "18:30");
    assert_eq!(saving.endtime.unwrap().to_string(), "20:00");
}

#[test]
fn unknown_field_suggests_the_nearest_name() {
    let home = Home::set_up();
    let err = home.fails(&["config", "set", "microphone.samplerat", "5"]);
    assert_eq!(
        err,
        "error: unknown field `samplerat` in microphone; did you mean `samplerate`?\n"
    );
    let err = home.fails(&["config", "get", "recording.schedule.4"]);
    assert_eq!(
        err,
        "error: index 4 is out of range: recording.schedule has 1 entry\n"
    );
}

#[test]
fn malformed_ron_reports_file_line_and_column() {
    let home = Home::set_up();
    fs::write(
        home.config(),
        "(\n    timezone: \"UTC\"\n    microphone: (device_name: \"X\"),\n)\n",
    )
    .unwrap();
    let err = home.fails(&["config", "get"]);
    let expected = format!("error: {}:3:5: ", home.config().display());
    assert!(err.starts_with(&expected), "{err}");
    fs::write(
        home.config(),
        "(\n  microphone: (\n    samplerat: 1,\n  ),\n)\n",
    )
    .unwrap();
    let err = home.fails(&["config", "get"]);
    assert!(
        err.contains(":3:")
            && err.contains("unknown field `samplerat` in microphone; did you mean `samplerate`?"),
        "{err}"
    );
}

#[test]
fn missing_configuration_says_to_run_setup() {
    let home = Home::new();
    let err = home.fails(&["config", "get"]);
    assert_eq!(
        err,
        format!(
            "error: no configuration at {}: run `acoupi setup`\n",
            home.config().display()
        )
    );
}

#[test]
fn invalid_values_are_rejected_and_leave_file_and_backup_alone() {
    let home = Home::set_up();
    home.ok(&["config", "set", "microphone.samplerate", "96000"]);
    let file = fs::read(home.config()).unwrap();
    let bak = fs::read(home.bak()).unwrap();
    assert_ne!(file, bak);
    for (field, value, needle) in [
        (
            "microphone.samplerate",
            "abc",
            "invalid value \"abc\" for microphone.samplerate: expected a whole number",
        ),
        (
            "microphone.samplerate",
            "1000000",
            "microphone.samplerate must be between 8000 and 384000 Hz, got 1000000",
        ),
        (
            "timezone",
            "Mars/Olympus",
            "timezone \"Mars/Olympus\" is not a known IANA time zone",
        ),
        (
            "recording.duration",
            "60",
            "recording.duration (60 s) is longer than recording.interval (10 s)",
        ),
        (
            "recording.schedule.0.start",
            "25:00",
            "recording.schedule.0.start",
        ),
    ] {
        let err = home.fails(&["config", "set", field, value]);
        assert!(err.contains(needle), "{field}={value}: {err}");
        assert_eq!(
            fs::read(home.config()).unwrap(),
            file,
            "{field}={value} changed the file"
        );
        assert_eq!(
            fs::read(home.bak()).unwrap(),
            bak,
            "{field}={value} clobbered the backup"
        );
    }
}

#[test]
fn import_installs_a_valid_file_and_keeps_the_last_good_one() {
    let home = Home::set_up();
    let before = fs::read(home.config()).unwrap();
    let boot = home.dir.path().join("boot-acoupi.ron");
    fs::write(&boot, home.ok(&["config", "example"])).unwrap();
    fs::write(
        &boot,
        fs::read_to_string(&boot).unwrap().replace(
            "deployment: None,",
            "deployment: (name: \"hedge\", latitude: 51.5, longitude: -0.1),",
        ),
    )
    .unwrap();
    let out = home.ok(&["config", "import", boot.to_str().unwrap()]);
    assert!(
        out.contains("the file carries a deployment: hedge (51.5, -0.1)"),
        "{out}"
    );
    assert_eq!(fs::read(home.config()).unwrap(), fs::read(&boot).unwrap());
    let last_good = home.dir.path().join("config/acoupi.ron.last-good");
    assert_eq!(fs::read(last_good).unwrap(), before);
}

#[test]
fn import_rejects_an_invalid_file_and_installs_nothing() {
    let home = Home::set_up();
    let before = fs::read(home.config()).unwrap();
    let boot = home.dir.path().join("boot-acoupi.ron");
    fs::write(
        &boot,
        "(microphone: (device_name: \"USB\"), heartbeat: (interval: 1))\n",
    )
    .unwrap();
    let err = home.fails(&["config", "import", boot.to_str().unwrap()]);
    assert!(
        err.contains("heartbeat.interval must be at least 10 seconds"),
        "{err}"
    );
    assert!(err.contains(&boot.display().to_string()), "{err}");
    assert_eq!(fs::read(home.config()).unwrap(), before);
    assert!(!home.dir.path().join("config/acoupi.ron.last-good").exists());
}

#[test]
fn set_sends_sighup_to_the_running_recorder_and_beat_and_to_nothing_else() {
    let home = Home::set_up();
    let run = home.dir.path().join("run");
    fs::create_dir_all(&run).unwrap();
    // Stand-ins started as `acoupi-standin run` and `acoupi-standin beat`: a shell under
    // a name like acoupi's, running the script file named after the role (in its working
    // folder); SIGHUP's default action ends it, which the test sees. A symlink, not a
    // copy: the kernel names a process after the path it was started by, and an
    // executable just written can still be open for writing in a child another test
    // thread forks (`Text file busy`).
    let scripts = home.dir.path().join("standin");
    fs::create_dir_all(&scripts).unwrap();
    let standin = scripts.join("acoupi-standin");
    std::os::unix::fs::symlink("/bin/sh", &standin).unwrap();
    for role in ["run", "beat"] {
        fs::write(scripts.join(role), "sleep 600\n").unwrap();
    }
    let start = |role: &str| {
        Command::new(&standin)
            .arg(role)
            .current_dir(&scripts)
            .spawn()
            .expect(role)
    };
    let (mut recorder, mut beat) = (start("run"), start("beat"));
    fs::write(run.join("acoupi.pid"), format!("{}\n", recorder.id())).unwrap();
    fs::write(home.dir.path().join("beat.pid"), format!("{}\n", beat.id())).unwrap();
    let out = home.ok(&["config", "set", "microphone.samplerate", "96000"]);
    assert_eq!(out, "reloaded running recorder\nreloaded running beat\n");
    for child in [&mut recorder, &mut beat] {
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(nix::sys::signal::Signal::SIGHUP as i32)
        );
    }
    // Now the pid files are stale: nothing to reload, nothing said.
    let out = home.ok(&["config", "set", "microphone.samplerate", "48000"]);
    assert_eq!(out, "");
    // A stale pid reused by another program is not signalled.
    let mut other = Command::new("sleep").arg("600").spawn().expect("sleep");
    fs::write(run.join("acoupi.pid"), format!("{}\n", other.id())).unwrap();
    let out = home.ok(&["config", "set", "microphone.samplerate", "96000"]);
    assert_eq!(out, "");
    assert!(other.try_wait().unwrap().is_none(), "sleep was signalled");
    other.kill().unwrap();
    other.wait().unwrap();
    // An acoupi process in another role (here the beat's stand-in, named in the
    // recorder's pid file) is not the recorder: not signalled.
    let mut beat = start("beat");
    fs::write(run.join("acoupi.pid"), format!("{}\n", beat.id())).unwrap();
    let out = home.ok(&["config", "set", "microphone.samplerate", "48000"]);
    assert_eq!(out, "");
    assert!(
        beat.try_wait().unwrap().is_none(),
        "the beat was signalled as the recorder"
    );
    beat.kill().unwrap();
    beat.wait().unwrap();
}

#[test]
fn setup_without_a_terminal_does_not_prompt() {
    // stdin is /dev/null: no dialogue even without --no-prompt.
    let home = Home::new();
    home.ok(&[
        "setup",
        "--set",
        "microphone.device_name=hw:CARD=UltraMic,DEV=0",
    ]);
    let c = acoupi::config::load(&home.config()).unwrap();
    assert_eq!(c.microphone.device_name, "hw:CARD=UltraMic,DEV=0");
    let err = Home::new().fails(&["setup"]);
    assert!(err.contains("microphone.device_name is required"), "{err}");
}

#[test]
fn negative_values_and_sections_are_accepted_on_the_command_line() {
    let home = Home::set_up();
    home.ok(&[
        "config",
        "set",
        "deployment",
        "(name: \"hedge\", latitude: -33.9, longitude: -70.6)",
    ]);
    home.ok(&["config", "set", "deployment.longitude", "-71.5"]);
    assert_eq!(
        home.ok(&["config", "get", "deployment.longitude"]),
        "-71.5\n"
    );
    let err = home.fails(&["config", "set", "deployment.latitude", "-91"]);
    assert_eq!(
        err,
        "error: deployment.latitude must be between -90 and 90 degrees, got -91; nothing was written\n"
    );
}

/// Issue 11: eight (here twelve) concurrent `config set` on different fields all exited
/// 0 and five values were lost: each read the file, changed its field and wrote the
/// whole file back over the others. Writers now hold a lock across read-modify-write.
#[test]
fn concurrent_sets_on_different_fields_all_keep_their_value() {
    let home = Home::set_up();
    let changes = [
        ("microphone.samplerate", "16000", "16000"),
        ("microphone.audio_channels", "2", "2"),
        ("microphone.time_expansion", "10", "10.0"),
        ("microphone.bit_depth", "24", "24"),
        ("recording.duration", "2", "2"),
        ("recording.start_date", "2026-05-01", "\"2026-05-01\""),
        ("recording.end_date", "2027-05-01", "\"2027-05-01\""),
        ("retention.max_age_days", "33", "33"),
        ("retention.min_free_space_mb", "10", "10"),
        ("heartbeat.interval", "77", "77"),
        ("timezone", "UTC", "\"UTC\""),
        ("recording_saving.frequency_interval", "45", "45"),
    ];
    let children: Vec<_> = changes
        .iter()
        .map(|(field, value, _)| {
            Command::new(env!("CARGO_BIN_EXE_acoupi"))
                .args(["config", "set", field, value])
                .env("ACOUPI_HOME", home.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawning acoupi config set")
        })
        .collect();
    for (child, (field, ..)) in children.into_iter().zip(&changes) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "config set {field}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lost: Vec<String> = changes
        .iter()
        .filter_map(|(field, _, shown)| {
            let got = home.ok(&["config", "get", field, "--json"]);
            (got.trim() != *shown).then(|| format!("{field}: {}", got.trim()))
        })
        .collect();
    assert!(lost.is_empty(), "values lost: {lost:?}");
    assert!(
        !home.dir.path().join("config").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp"))
    );
}

/// Issue 11: Notepad's "UTF-8 with BOM" was refused with `expected opening '('`. The
/// configuration in place with a BOM and CRLF line ends reads, and `config set` writes
/// it back; a BOM file imports (installed without the mark) and validates.
#[test]
fn a_file_with_a_byte_order_mark_and_crlf_is_accepted_everywhere() {
    let home = Home::set_up();
    let windows = |text: &str| {
        let crlf = text.replace('\n', "\r\n");
        [b"\xEF\xBB\xBF".as_slice(), crlf.as_bytes()].concat()
    };
    let text = fs::read_to_string(home.config()).unwrap();
    fs::write(home.config(), windows(&text)).unwrap();
    assert_eq!(
        home.ok(&["config", "get", "microphone.device_name"]).trim(),
        "\"UltraMic\""
    );
    home.ok(&["config", "set", "recording.duration", "4"]);
    assert_eq!(
        home.ok(&["config", "get", "recording.duration"]).trim(),
        "4"
    );
    // `acoupi devices` read the file with a reader of its own and gave up on the mark.
    let devices = home.run(&["devices"]);
    let stderr = String::from_utf8_lossy(&devices.stderr);
    assert!(
        String::from_utf8_lossy(&devices.stdout).contains("configured device \"UltraMic\""),
        "{devices:?}"
    );
    assert!(!stderr.contains("not marking"), "{stderr}");

    let boot = home.dir.path().join("boot-acoupi.ron");
    let site = "(\n    microphone: (device_name: \"USB\"),\n)\n";
    fs::write(&boot, windows(site)).unwrap();
    home.ok(&["config", "validate", boot.to_str().unwrap()]);
    home.ok(&["config", "import", boot.to_str().unwrap()]);
    assert_eq!(
        fs::read(home.config()).unwrap(),
        site.replace('\n', "\r\n").into_bytes()
    );
    assert_eq!(
        home.ok(&["config", "get", "microphone.device_name"]).trim(),
        "\"USB\""
    );
}
