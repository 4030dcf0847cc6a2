//! `acoupi beat` as systemd runs it: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, a real
//! metadata.db, and a real `acoupi run` to ask (or not) over the control socket.
//!
//! `heartbeat.interval` cannot go below 10 s (validation: faster only wears the SD card),
//! so the test takes two beats, about 11 s: the first with no recorder ("down"), the
//! second with one recording from the FIFO ("ok").

use crate::support;

use std::time::{Duration, Instant};

use acoupi::store::{Heartbeat, MetadataStore};
use nix::sys::signal::Signal;
use support::feeder::Feeder;
use support::{Install, Notify};

fn heartbeats(i: &Install) -> Vec<Heartbeat> {
    MetadataStore::open(&i.db())
        .and_then(|s| s.heartbeats_since(jiff::Timestamp::MIN))
        .unwrap_or_default()
}

fn wait_heartbeats(i: &Install, n: usize, timeout: Duration) -> Vec<Heartbeat> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = heartbeats(i);
        if rows.len() >= n || Instant::now() >= deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn heartbeats_say_down_without_a_recorder_and_ok_with_one_and_the_watchdog_is_fed() {
    let i = Install::new();
    i.setup(&["heartbeat.interval=10"]);
    i.deploy("beat site");
    let notify = Notify::bind(i.root());
    let t0 = Instant::now();
    let mut beat = i.spawn_daemon("beat", &notify);
    notify.expect_ready(t0, Duration::from_secs(5), &beat);

    // The first beat is taken at once, with no recorder to answer.
    let rows = wait_heartbeats(&i, 1, Duration::from_secs(3));
    assert_eq!(rows.len(), 1, "log:\n{}", beat.log_text());
    let down = &rows[0].payload;
    assert_eq!(down["status"], "down", "{down:#}");
    assert!(down["workers"].is_null(), "{down:#}");
    assert!(down["metrics"].is_object(), "no vital signs in {down:#}");
    assert!(notify
        .wait_for(t0, Duration::from_secs(1), |l| l
            == "STATUS=last heartbeat: recorder down")
        .is_some());

    // A recorder comes up before the next beat.
    let feeder = Feeder::start(&i.fifo, 0);
    let run_notify = Notify::bind(&i.root().join("run"));
    let t1 = Instant::now();
    let mut run = i.spawn_daemon("run", &run_notify);
    run_notify.expect_ready(t1, Duration::from_secs(5), &run);
    assert!(feeder.wait_written(4 * support::CHUNK, Duration::from_secs(3)));
    let rows = wait_heartbeats(&i, 2, Duration::from_secs(12));
    assert_eq!(rows.len(), 2, "log:\n{}", beat.log_text());
    let ok = &rows[1].payload;
    assert_eq!(ok["status"], "ok", "{ok:#}");
    assert_eq!(ok["workers"]["recording"]["health"], "ok", "{ok:#}");
    assert_eq!(ok["workers"]["default"]["health"], "ok", "{ok:#}");
    assert_eq!(ok["workers"]["pid"], run.child.id(), "{ok:#}");
    // By the second beat the recorder has kept files (1 s each, 10 s of audio flowing):
    // the heartbeat counts today's recordings and names the newest, as metadata.db does.
    let store = acoupi::store::metadata::MetadataStore::open(&i.db()).unwrap();
    let in_db = store.count_recordings_since(jiff::Timestamp::MIN).unwrap();
    let newest = store
        .last_recording()
        .unwrap()
        .map(|r| r.datetime.to_string());
    drop(store);
    let today = ok["recordings_today"].as_u64().expect("recordings_today");
    assert!(
        today >= 1 && today <= in_db,
        "{today} today, {in_db} in the database: {ok:#}"
    );
    let last = ok["last_recording"].as_str().expect("last_recording");
    assert!(
        newest.as_deref() >= Some(last),
        "{last} vs newest {newest:?}"
    );
    assert_eq!(down["recordings_today"], 0, "{down:#}");
    assert!(down["last_recording"].is_null(), "{down:#}");
    let gap = rows[1].created_on.duration_since(rows[0].created_on);
    eprintln!("heartbeat interval seen: {gap:?}");
    assert!(
        gap >= jiff::SignedDuration::from_millis(9_500)
            && gap <= jiff::SignedDuration::from_millis(11_000),
        "heartbeats {gap:?} apart, configured 10 s"
    );
    assert!(notify
        .wait_for(t0, Duration::from_secs(1), |l| l
            == "STATUS=last heartbeat: recorder ok")
        .is_some());

    // Its own watchdog is fed every WATCHDOG_USEC / 3 = 1 s throughout.
    let pings = notify.times_of("WATCHDOG=1");
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("beat watchdog gaps: {gaps:?}");
    assert!(pings.len() >= 9, "{} pings in ~10 s", pings.len());
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(800) && *g <= Duration::from_millis(1300),
            "ping gap {g:?}: {gaps:?}"
        );
    }

    let t2 = Instant::now();
    beat.stop_cleanly(Duration::from_secs(5));
    assert!(notify
        .wait_for(t2, Duration::from_secs(1), |l| l == "STOPPING=1")
        .is_some());
    run.stop_cleanly(Duration::from_secs(5));
}

/// `acoupi config set` reaches a running beat too (SIGHUP through its pid file): the new
/// heartbeat interval takes effect without a restart, and a configuration broken by hand
/// is refused while the beat goes on. SIGHUP is also what `systemctl reload` sends; before
/// the beat handled it, it killed the daemon.
#[test]
fn sighup_reloads_the_beat_and_a_broken_configuration_is_refused() {
    let i = Install::new();
    i.setup(&["heartbeat.interval=60"]);
    i.deploy("beat reload");
    let notify = Notify::bind(i.root());
    let mut beat = i.spawn_daemon("beat", &notify);
    assert_eq!(wait_heartbeats(&i, 1, Duration::from_secs(5)).len(), 1);
    assert!(i.home.join("beat.pid").exists());

    let t1 = Instant::now();
    let out = i.ok(&["config", "set", "heartbeat.interval", "10"]);
    assert!(out.stdout.contains("reloaded running beat"), "{out:#?}");
    notify.expect_ready(t1, Duration::from_secs(5), &beat);
    assert_eq!(notify.times_of("RELOADING=1").len(), 1);
    // A beat at once with the new settings, then one every 10 s instead of 60 s.
    let rows = wait_heartbeats(&i, 3, Duration::from_secs(15));
    assert_eq!(rows.len(), 3, "log:\n{}", beat.log_text());
    let gap = rows[2].created_on.duration_since(rows[1].created_on);
    assert!(
        gap >= jiff::SignedDuration::from_millis(9_500)
            && gap <= jiff::SignedDuration::from_millis(11_000),
        "heartbeats {gap:?} apart after the reload to 10 s"
    );

    std::fs::write(i.config_file(), "(heartbeat: (interval: \"often\"))\n").unwrap();
    let t2 = Instant::now();
    beat.signal(Signal::SIGHUP);
    notify.expect_ready(t2, Duration::from_secs(5), &beat);
    assert!(
        beat.log_text().contains("reload refused"),
        "{}",
        beat.log_text()
    );
    assert!(
        beat.wait_exit(Duration::from_millis(500)).is_none(),
        "the beat exited on a broken reload"
    );
    beat.stop_cleanly(Duration::from_secs(5));
    assert!(
        !i.home.join("beat.pid").exists(),
        "the pid file outlived the beat"
    );
}

/// Issue 11: with `systemctl restart` refused, the beat used to SIGKILL whatever pid
/// `run/acoupi.pid` held, and a stale file killed an unrelated `sleep`. Now only an
/// `acoupi run` process is killed (systemd's `MainPID` first, then the pid file), and a
/// pid file naming anything else is left alone, saying so. Three beats with no recorder
/// ("down") at 0, 10 and 20 s make the supervisor act.
#[test]
fn issue_11_a_refused_restart_never_kills_the_stranger_a_stale_pid_file_names() {
    let i = Install::new();
    i.setup(&["heartbeat.interval=10"]);
    i.deploy("stale pid");
    let mut stranger = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("sleep");
    write_recorder_pid(&i, stranger.id());
    let beat = beat_with_restart_refused(&i, "beat-stale.log");
    let refused = "no running `acoupi run` process found";
    assert!(
        support::wait_until(Duration::from_secs(35), || beat
            .log_text()
            .contains(refused)),
        "the supervisor did not act; log:\n{}",
        beat.log_text()
    );
    let alive = stranger.try_wait().unwrap().is_none();
    stranger.kill().ok();
    stranger.wait().ok();
    assert!(
        alive,
        "the beat killed an unrelated process; log:\n{}",
        beat.log_text()
    );
    let calls = i.systemctl_log();
    for call in [
        "--user restart acoupi.service",
        "--user kill --kill-whom=main --signal=SIGKILL acoupi.service",
        "--user show --property=MainPID acoupi.service",
    ] {
        assert!(calls.contains(call), "no `{call}` in:\n{calls}");
    }
}

/// Issue 11, the other half: the beat prefers the pid systemd names (`MainPID`) over
/// the pid file, and kills it only when it is an `acoupi run` process. Here `MainPID`
/// (set through the fake systemctl) names a stand-in started as `acoupi run` (a shell
/// named `acoupi` running a script named `run`), while the pid file names a stranger:
/// the stand-in is SIGKILLed, the stranger lives.
#[test]
fn issue_11_a_refused_restart_kills_the_main_pid_systemd_names_when_it_is_acoupi_run() {
    use std::os::unix::process::ExitStatusExt;
    let i = Install::new();
    i.setup(&["heartbeat.interval=10"]);
    i.deploy("main pid");
    let bin = i.root().join("standin");
    std::fs::create_dir_all(&bin).unwrap();
    let sh = std::process::Command::new("sh")
        .args(["-c", "command -v sh"])
        .output()
        .unwrap()
        .stdout;
    std::os::unix::fs::symlink(String::from_utf8(sh).unwrap().trim(), bin.join("acoupi")).unwrap();
    // A loop of short sleeps: nothing outlives the stand-in by more than a second.
    std::fs::write(bin.join("run"), "while :; do sleep 1; done\n").unwrap();
    let mut recorder = std::process::Command::new(bin.join("acoupi"))
        .arg("run")
        .current_dir(&bin)
        .spawn()
        .expect("stand-in");
    let mut stranger = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("sleep");
    write_recorder_pid(&i, stranger.id());
    std::fs::create_dir_all(&i.state).unwrap();
    std::fs::write(
        i.state.join("acoupi.service.prop.MainPID"),
        format!("{}\n", recorder.id()),
    )
    .unwrap();
    let beat = beat_with_restart_refused(&i, "beat-main-pid.log");
    let mut killed = None;
    support::wait_until(Duration::from_secs(35), || {
        killed = recorder.try_wait().unwrap();
        killed.is_some()
    });
    let alive = stranger.try_wait().unwrap().is_none();
    stranger.kill().ok();
    stranger.wait().ok();
    if killed.is_none() {
        recorder.kill().ok();
        recorder.wait().ok();
    }
    assert_eq!(
        killed.and_then(|s| s.signal()),
        Some(nix::sys::signal::Signal::SIGKILL as i32),
        "the `acoupi run` stand-in was not killed; log:\n{}",
        beat.log_text()
    );
    assert!(
        alive,
        "the beat killed the pid file's stranger; log:\n{}",
        beat.log_text()
    );
}

/// The recorder's pid file, naming `pid` (a stale one, in these tests).
fn write_recorder_pid(i: &Install, pid: u32) {
    std::fs::create_dir_all(i.home.join("run")).unwrap();
    std::fs::write(i.home.join("run/acoupi.pid"), format!("{pid}\n")).unwrap();
}

/// `acoupi beat` with a `systemctl restart` that is refused, logging to `log_name`.
fn beat_with_restart_refused(i: &Install, log_name: &str) -> support::Daemon {
    let log = i.root().join(log_name);
    let child = i
        .cmd(&["beat"])
        .env("ACOUPI_LOG", "info")
        .env("FAKE_SYSTEMCTL_FAIL", "restart")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawning the beat");
    support::Daemon { child, log }
}
