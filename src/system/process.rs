//! Whose pid is it? Pids come from pid files (`run/acoupi.pid`, `beat.pid`) and from
//! systemd's `MainPID`; a pid file outlives its process after a crash or power cut, and
//! the kernel hands the number to the next program. Before a pid is signalled, the CLI
//! (SIGHUP on a configuration change) and the beat (SIGKILL of a stuck recorder) ask
//! [`is_acoupi`] whether it still names one of our processes, from `/proc/PID/cmdline`.

use std::path::Path;

use nix::unistd::Pid;

/// True when `pid` is a live process started as `acoupi …` (its program file name starts
/// with `acoupi`) and, with `role`, as `acoupi ROLE` (`run` for the recorder, `beat`).
/// A zombie or a kernel thread has an empty command line and is never ours.
pub fn is_acoupi(pid: Pid, role: Option<&str>) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next().unwrap_or_default();
    let named_acoupi = Path::new(&program)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("acoupi"));
    named_acoupi && role.is_none_or(|r| args.next().as_deref() == Some(r))
}

/// The pid written in `path` when it names a live acoupi process (in `role`, if given);
/// `None` for no file, no number, or a stale pid now used by another program.
pub fn pid_from_file(path: &Path, role: Option<&str>) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    let raw: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
    let pid = Pid::from_raw(raw);
    is_acoupi(pid, role).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_started_as_acoupi_in_the_given_role_counts() {
        // This test binary is `…/deps/acoupi-<hash>`: an acoupi process, but not `run`.
        let me = Pid::this();
        assert!(is_acoupi(me, None));
        assert!(!is_acoupi(me, Some("run")));
        let mut sleep = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep");
        let other = Pid::from_raw(sleep.id() as i32);
        assert!(!is_acoupi(other, None), "sleep is not acoupi");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acoupi.pid");
        std::fs::write(&file, format!("{other}\n")).unwrap();
        assert_eq!(pid_from_file(&file, None), None, "a stale pid file");
        std::fs::write(&file, format!("{me}\n")).unwrap();
        assert_eq!(pid_from_file(&file, None), Some(me));
        assert_eq!(pid_from_file(&file, Some("run")), None);
        std::fs::write(&file, "-1\n").unwrap();
        assert_eq!(pid_from_file(&file, None), None);
        sleep.kill().unwrap();
        sleep.wait().unwrap();
    }
}
