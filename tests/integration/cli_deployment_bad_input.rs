//! `acoupi deployment` and `acoupi check` on bad input, end to end in user mode (the
//! same real binary, metadata.db and fake `systemctl` as `cli_deployment`, whose
//! helpers these cases share): each case asserts the exit code and the message.
//!
//! Bad inputs and the exact message each must produce (stderr contains the text; `{cfg}`,
//! `{db}`, `{root}` are this test's paths):
//!
//! | input | command | exit | message |
//! |---|---|---|---|
//! | latitude `abc` | `deployment start` | 2 | `--latitude "abc": "abc" is not a number in degrees` |
//! | latitude `91` | `deployment start` | 2 | `--latitude "91": must be between -90 and 90 degrees, got 91` |
//! | longitude `181` | `deployment start` | 2 | `--longitude "181": must be between -180 and 180 degrees, got 181` |
//! | unknown field | `config set microphone.samplrate 8000` | 2 | ``unknown field `samplrate` in microphone; did you mean `samplerate`?`` |
//! | malformed RON | `deployment start` | 2 | `{cfg}:LINE:COL: expected comma` and `the configuration at {cfg} is not usable` |
//! | no configuration | `deployment start` | 2 | ``no configuration at {cfg}: run `acoupi setup` `` |
//! | garbage in metadata.db | `deployment start` | 2 | ``metadata.db at {db} is corrupt (…): move it aside and run `acoupi check`; recordings on disk are kept`` |
//! | recordings inside a file | `check` | 1 | `creating storage folder {root}/afile/rec: Not a directory (os error 20); check the path in the configuration and the permissions of its parent` |
//! | device `NoSuchMic` | `check` | 1 | ``microphone "NoSuchMic": no capture device matches "NoSuchMic"; cards: …; run `acoupi devices` to see what is connected`` |
//! | start twice | `deployment start` | 1 | ``a deployment is already active: "first" since … UTC; stop it first with `acoupi deployment stop` `` |
//! | not deployed | `deployment stop` | 1 | ``acoupi is not deployed: there is nothing to stop (start one with `acoupi deployment start`)`` |

use crate::cli_deployment::{corrupt_deployment_page, corrupt_message, installed, start_args};
use crate::support;

use support::Install;

/// `deployment start --name s` at a latitude and longitude, as a table's static args.
macro_rules! start_s {
    ($lat:literal, $lon:literal) => {
        &[
            "deployment",
            "start",
            "--name",
            "s",
            "--latitude",
            $lat,
            "--longitude",
            $lon,
        ]
    };
}

/// One row of the bad-input table.
struct Case {
    what: &'static str,
    prepare: fn(&Install),
    args: &'static [&'static str],
    code: i32,
    expect: fn(&Install) -> Vec<String>,
}

fn no_prepare(_: &Install) {}

#[test]
fn bad_inputs_fail_with_the_exact_message_and_exit_code() {
    let cases = [
        Case {
            what: "latitude not a number",
            prepare: no_prepare,
            args: start_s!("abc", "0"),
            code: 2,
            expect: |_| vec![r#"error: --latitude "abc": "abc" is not a number in degrees"#.into()],
        },
        Case {
            what: "latitude out of range",
            prepare: no_prepare,
            args: start_s!("91", "0"),
            code: 2,
            expect: |_| {
                vec![r#"error: --latitude "91": must be between -90 and 90 degrees, got 91"#.into()]
            },
        },
        Case {
            what: "longitude out of range",
            prepare: no_prepare,
            args: start_s!("0", "181"),
            code: 2,
            expect: |_| {
                vec![
                    r#"error: --longitude "181": must be between -180 and 180 degrees, got 181"#
                        .into(),
                ]
            },
        },
        Case {
            what: "unknown configuration field",
            prepare: no_prepare,
            args: &["config", "set", "microphone.samplrate", "8000"],
            code: 2,
            expect: |_| {
                vec![
                    "error: unknown field `samplrate` in microphone; did you mean `samplerate`?"
                        .into(),
                ]
            },
        },
        Case {
            what: "malformed RON",
            prepare: |i| {
                let text = std::fs::read_to_string(i.config_file()).unwrap();
                let broken = text.replacen("samplerate: 8000,", "samplerate: 8000", 1);
                assert_ne!(text, broken);
                std::fs::write(i.config_file(), broken).unwrap();
            },
            args: start_s!("0", "0"),
            code: 2,
            expect: |i| {
                // The parser stops at the token after the missing comma: the next line.
                let text = std::fs::read_to_string(i.config_file()).unwrap();
                let lines: Vec<&str> = text.lines().collect();
                let at = lines
                    .iter()
                    .position(|l| l.contains("samplerate: 8000"))
                    .unwrap();
                let next = lines[at + 1];
                let col = next.len() - next.trim_start().len() + 1;
                let cfg = i.config_file().display().to_string();
                vec![
                    format!("error: {cfg}:{}:{col}: expected comma", at + 2),
                    format!("error: the configuration at {cfg} is not usable"),
                ]
            },
        },
        Case {
            what: "no configuration",
            prepare: |i| std::fs::remove_file(i.config_file()).unwrap(),
            args: start_s!("0", "0"),
            code: 2,
            expect: |i| {
                vec![format!(
                    "error: no configuration at {}: run `acoupi setup`",
                    i.config_file().display()
                )]
            },
        },
        Case {
            what: "garbage in metadata.db",
            prepare: |i| {
                let mut args = start_args("site", "1", "2");
                args.push("--no-check");
                i.ok(&args);
                i.ok(&["deployment", "stop"]);
                corrupt_deployment_page(&i.db());
            },
            args: start_s!("0", "0"),
            code: 2,
            expect: |i| {
                vec![
                    format!("error: {}", corrupt_message(i)),
                    "): move it aside and run `acoupi check`; recordings on disk are kept".into(),
                ]
            },
        },
        Case {
            what: "recordings folder inside a regular file",
            prepare: |i| {
                let file = i.root().join("afile");
                std::fs::write(&file, "not a folder").unwrap();
                let rec = file.join("rec").display().to_string();
                i.ok(&["config", "set", "paths.recordings", &rec]);
            },
            args: &["check"],
            code: 1,
            expect: |i| {
                vec![format!(
                    "error: creating storage folder {}: Not a directory (os error 20); check the path in the configuration and the permissions of its parent",
                    i.root().join("afile/rec").display()
                )]
            },
        },
        Case {
            what: "microphone missing",
            prepare: |i| {
                i.ok(&["config", "set", "microphone.device_name", "NoSuchMic"]);
            },
            args: &["check"],
            code: 1,
            expect: |_| {
                vec![
                    r#"error: microphone "NoSuchMic": no capture device matches "NoSuchMic"; cards: "#
                        .into(),
                    "; run `acoupi devices` to see what is connected\n".into(),
                    "error: health checks failed".into(),
                ]
            },
        },
        Case {
            what: "start twice",
            prepare: |i| {
                let mut args = start_args("first", "1", "2");
                args.push("--no-check");
                i.ok(&args);
            },
            args: &[
                "deployment",
                "start",
                "--name",
                "s",
                "--latitude",
                "0",
                "--longitude",
                "0",
                "--no-check",
            ],
            code: 1,
            expect: |_| {
                vec![
                    "error: a deployment is already active: \"first\" since ".into(),
                    " UTC; stop it first with `acoupi deployment stop`".into(),
                ]
            },
        },
        Case {
            what: "stop when not deployed",
            prepare: no_prepare,
            args: &["deployment", "stop"],
            code: 1,
            expect: |_| {
                vec!["error: acoupi is not deployed: there is nothing to stop (start one with `acoupi deployment start`)".into()]
            },
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let i = installed();
        (case.prepare)(&i);
        let o = i.run(case.args);
        if o.code != Some(case.code) {
            failures.push(format!(
                "{}: exit {:?}, want {}; stderr:\n{}",
                case.what, o.code, case.code, o.stderr
            ));
        }
        for needle in (case.expect)(&i) {
            if !o.stderr.contains(&needle) {
                failures.push(format!(
                    "{}: stderr lacks {needle:?}; stderr:\n{}",
                    case.what, o.stderr
                ));
            }
        }
        // A refused command changes no service.
        assert!(
            !i.systemctl_log()
                .contains("start acoupi.service acoupi-beat.service\n")
                || case.what == "start twice"
                || case.what == "garbage in metadata.db",
            "{}: services were started",
            case.what
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
