//! Bad input for the cli area: huge numbers on the command line, a closed or full
//! stdout, a configuration that is a link to somebody else's secret, a configuration
//! that cannot be read at all.

use std::path::PathBuf;
use std::process::Stdio;

use super::harness::{assert_no_panic, Case};
use crate::support::{Install, Outcome};

/// A configured installation (no deployment).
fn installed() -> Install {
    let install = Install::new();
    install.setup(&[]);
    install
}

/// `--timeout u64::MAX` overflowed the start deadline and panicked after the units were
/// enabled and started. The parser bounds it and says the range; nothing is touched.
#[test]
fn a_start_timeout_beyond_an_hour_is_refused_before_anything_starts() {
    let install = installed();
    Case::new(&install).refused(
        &[
            "deployment",
            "start",
            "--name",
            "x",
            "--latitude",
            "1",
            "--longitude",
            "1",
            "--no-check",
            "--timeout",
            "18446744073709551615",
        ],
        2,
        "error: invalid value '18446744073709551615' for '--timeout <TIMEOUT>': 18446744073709551615 is not in 0..=3600",
    );
    assert_eq!(install.systemctl_log(), "", "systemctl was called");
}

/// `config get >/dev/full` panicked in `println!`: now one error line and exit 2.
#[test]
fn a_full_stdout_is_an_error_line_not_a_panic() {
    let install = installed();
    let case = Case::new(&install);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for args in [
        &["config", "get"][..],
        &["deployment", "status", "--json"],
        &["config", "example"],
    ] {
        let o: Outcome = install
            .cmd(args)
            .stdout(full.try_clone().unwrap())
            .output()
            .expect("running acoupi")
            .into();
        case.assert_refused(
            &o,
            args,
            2,
            "error: writing to standard output: No space left on device (os error 28)",
        );
    }
}

/// `acoupi deployment status --json | head -c1` panicked when `head` had gone: a reader
/// that leaves is not an error (exit 0, nothing on stderr, as ripgrep does). The pipe's
/// read end is closed before acoupi writes, so every write meets `EPIPE`.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let install = installed();
    let case = Case::new(&install);
    for args in [
        &["deployment", "status", "--json"][..],
        &["deployment", "status"],
        &["config", "get"],
        &["config", "example"],
    ] {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        drop(read);
        let o: Outcome = install
            .cmd(args)
            .stdout(Stdio::from(write))
            .output()
            .expect("running acoupi")
            .into();
        assert_no_panic(&o, args);
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (Some(0), ""),
            "acoupi {args:?}: {o:#?}"
        );
        case.assert_untouched(args);
    }
}

/// A configuration that is a symbolic link to a file outside the configuration folder
/// (here standing for /etc/shadow) leaked the file's first word through the parse error,
/// to a CLI run as root. Such a link is not read at all, and a file that does not start
/// like a configuration is never quoted: the secret appears in no output.
#[test]
fn a_configuration_linked_to_a_foreign_secret_is_neither_read_nor_quoted() {
    // A word RON reads as an identifier, as `root` in /etc/shadow is: the token that leaked.
    const SECRET: &str = "hunter2_shadow_token";
    let install = installed();
    let secret = install.root().join("shadow");
    std::fs::write(&secret, format!("{SECRET}:$y$j9T$x:19000:0:99999:7:::\n")).unwrap();
    let cfg = install.config_file();
    std::fs::remove_file(&cfg).unwrap();
    std::os::unix::fs::symlink(&secret, &cfg).unwrap();
    let canonical = |p: PathBuf| std::fs::canonicalize(p).unwrap();
    let refusal = format!(
        "error: {} is a symbolic link to {}, outside {}: acoupi does not read configurations kept elsewhere; replace the link with the file itself (`acoupi config import FILE`)",
        cfg.display(),
        canonical(secret.clone()).display(),
        canonical(cfg.parent().unwrap().to_path_buf()).display(),
    );
    let case = Case::new(&install);
    let mut outputs = vec![
        case.refused(&["check"], 1, &refusal),
        case.refused(&["config", "get"], 2, &refusal),
        case.refused(&["config", "set", "heartbeat.interval", "30"], 2, &refusal),
        install.run(&["deployment", "status"]),
        install.run(&["deployment", "status", "--json"]),
    ];
    // The same file, not a link, as `config validate` and `import` take it (a user's
    // argument): refused at its first word, without quoting it.
    outputs.push(case.refused(
        &["config", "validate", secret.to_str().unwrap()],
        2,
        &format!(
            "error: {}:1:1: this is not an acoupi configuration: it must start with `(` (see `acoupi config example`)",
            secret.display()
        ),
    ));
    // The boot partition: a link there, and the reason written on the card.
    let boot = install.root().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::os::unix::fs::symlink(&secret, boot.join("acoupi.ron")).unwrap();
    let error_file = boot.join("acoupi-error.txt");
    let o = install.run(&[
        "boot-import",
        "--source",
        boot.join("acoupi.ron").to_str().unwrap(),
        "--error-file",
        error_file.to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(2), "{o:#?}");
    outputs.push(o);
    let card = std::fs::read_to_string(&error_file).expect("the reason on the card");
    // Refused either as the installed configuration (a link is never written through)
    // or as the card's file (a link leading off the card is never read).
    assert!(card.contains("is a symbolic link"), "{card}");
    assert!(!card.contains(SECRET), "the card holds the secret:\n{card}");
    for o in &outputs {
        assert_no_panic(o, &["(one of the above)"]);
        assert!(
            !o.stdout.contains(SECRET) && !o.stderr.contains(SECRET),
            "the secret leaked: {o:#?}"
        );
    }
    case.assert_untouched(&["(all of the above)"]);
}

/// A configuration that cannot be read (here a folder in its place) said only
/// "reading …/acoupi.ron": the cause is part of the message now, and the fix follows.
#[test]
fn an_unreadable_configuration_says_why() {
    let install = installed();
    let cfg = install.config_file();
    std::fs::remove_file(&cfg).unwrap();
    std::fs::create_dir(&cfg).unwrap();
    let case = Case::new(&install);
    let o = case.refused(
        &["check"],
        1,
        &format!(
            "error: {} is a directory, not a regular file: give the path of a configuration file",
            cfg.display()
        ),
    );
    assert!(
        o.stderr
            .contains("warning: to repair the configuration: correct"),
        "{o:#?}"
    );
    let status = install.run(&["deployment", "status"]);
    assert!(
        status.stdout.contains(&format!(
            "problem : the configuration is broken: {} is a directory, not a regular file",
            cfg.display()
        )),
        "{status:#?}"
    );
}
