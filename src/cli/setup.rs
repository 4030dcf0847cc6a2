//! `acoupi setup`: write the program configuration, from `--set FIELD=VALUE` options and,
//! on a terminal, by walking the main fields with their defaults.
//!
//! Values go through the same dotted-field coercion and validation as
//! `acoupi config set`, so setup accepts exactly what the file accepts. Prompts read from
//! any `BufRead` and write to any `Write`, so the dialogue is tested without a terminal.
//! Setup does not start anything: `acoupi deployment start` does.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};

use crate::config::schema::{Config, Program};
use crate::config::{self, tree};
use crate::system::layout::Layout;

/// `acoupi setup`
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The program to configure: `default`, or `connected` (also sends heartbeats and
    /// summaries; needs `--set messaging.mqtt.host=…` or `--set messaging.http.base_url=…`).
    #[arg(long, default_value = "default")]
    pub program: String,
    /// Set a field before prompting, e.g. `--set microphone.device_name=UltraMic`
    /// (repeatable; same fields and values as `acoupi config set`).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Do not ask: take `--set` values and defaults; a missing required value is an error.
    #[arg(long)]
    pub no_prompt: bool,
    /// Replace an existing configuration (the current file is kept as `.bak`).
    #[arg(long)]
    pub force: bool,
}

/// The fields walked on a terminal, with what each one means.
const PROMPTED: [(&str, &str); 7] = [
    (
        "microphone.device_name",
        "capture device: a sound card id or part of its name (see `acoupi devices`)",
    ),
    ("microphone.samplerate", "sample rate in Hz (8000 to 384000)"),
    ("microphone.audio_channels", "number of channels"),
    ("recording.duration", "length of each file in seconds"),
    (
        "recording.interval",
        "seconds from the start of one file to the next (equal to duration: no gaps)",
    ),
    (
        "recording.schedule",
        "daily recording windows START..END, comma separated, times as HH:MM or a solar event with an offset (06:00..22:30, sunset-30m..sunrise+30m); `always` records around the clock",
    ),
    (
        "timezone",
        "IANA time zone of the schedule (Europe/London, UTC, ...)",
    ),
];

/// The fields walked on a terminal for the connected program; an empty answer skips a
/// messenger, but one of them is required.
const CONNECTED_PROMPTED: [(&str, &str); 2] = [
    (
        "messaging.mqtt.host",
        "MQTT broker host name or address (empty: no MQTT); user, password and port with `acoupi config set messaging.mqtt.…`",
    ),
    (
        "messaging.http.base_url",
        "URL messages are POSTed to (empty: no HTTP)",
    ),
];

/// Runs `acoupi setup`.
pub fn run(args: SetupArgs) -> anyhow::Result<()> {
    let layout = Layout::detect();
    let path = &layout.config_file;
    // Held from the "already exists" check to the write, like every configuration writer.
    let _lock = config::lock(path)?;
    let stdin = std::io::stdin();
    let interactive = !args.no_prompt && stdin.is_terminal();
    let config = if interactive {
        let devices = capture_devices();
        let mut stdout = std::io::stdout();
        configure(
            &args,
            path,
            Some((&mut stdin.lock(), &mut stdout)),
            &devices,
        )?
    } else {
        configure(&args, path, None, &[])?
    };
    let overlaps = super::config::storage_overlaps(&layout, &config);
    if !overlaps.is_empty() {
        bail!("{}", super::config::field_errors(&overlaps));
    }
    let recordings = layout.storage_paths(&config.paths).recordings;
    if let Err(e) = crate::tasks::management::retention::check_min_free(
        &recordings,
        config.retention.min_free_space_mb,
    ) {
        anyhow::bail!("{e}; nothing was written");
    }
    config::save(&config, path)?;
    crate::system::storage::hand_over_config(&layout)?;
    println!("wrote {}", path.display());
    println!("next: `acoupi check`, then `acoupi deployment start`");
    Ok(())
}

/// A prompt dialogue: answers come from the reader, questions go to the writer.
pub type Dialogue<'a> = (&'a mut dyn BufRead, &'a mut dyn Write);

/// Builds the configuration `setup` writes to `path`: checks the program and that `path`
/// may be replaced, applies `--set` values, then asks for the `PROMPTED` fields not
/// given (when `dialogue` is present), re-asking on invalid answers. `devices` are the
/// capture devices offered for `microphone.device_name`.
pub fn configure(
    args: &SetupArgs,
    path: &Path,
    dialogue: Option<Dialogue<'_>>,
    devices: &[String],
) -> anyhow::Result<Config> {
    let program = match args.program.as_str() {
        "default" => Program::Default,
        "connected" => Program::Connected,
        other => {
            bail!("unknown program `{other}`: the available programs are `default` and `connected`")
        }
    };
    if path.exists() && !args.force {
        bail!(
            "a configuration already exists at {}: pass --force to replace it (the current file is kept as .bak), or change single fields with `acoupi config set`",
            path.display()
        );
    }
    let mut config = Config {
        program,
        ..Config::default()
    };
    let mut given = Vec::new();
    for item in &args.set {
        let Some((field, value)) = item.split_once('=') else {
            bail!("--set expects FIELD=VALUE, got {item:?}");
        };
        config = tree::set(&config, field, value).with_context(|| format!("--set {item}"))?;
        given.push(field.trim().to_string());
    }
    if let Some((input, output)) = dialogue {
        let connected: &[(&str, &str)] = match program {
            Program::Connected => &CONNECTED_PROMPTED,
            Program::Default => &[],
        };
        let prompted: Vec<(&str, &str)> = PROMPTED.iter().chain(connected).copied().collect();
        for (i, (field, help)) in prompted.iter().enumerate() {
            if !given.iter().any(|g| g == field) {
                let later: Vec<&str> = prompted[i + 1..].iter().map(|(f, _)| *f).collect();
                config = ask(&config, field, help, &later, devices, input, output)?;
            }
        }
    }
    if let Err(errors) = config::validate(&config) {
        if errors.iter().any(|e| e.field == "microphone.device_name") {
            bail!("microphone.device_name is required: pass --set microphone.device_name=<name> (`acoupi devices` lists the microphones)");
        }
        if errors.iter().any(|e| e.field == "messaging") {
            bail!("program `connected` needs somewhere to send messages: pass --set messaging.mqtt.host=<broker> or --set messaging.http.base_url=<url>");
        }
        bail!("{}", super::config::field_errors(&errors));
    }
    Ok(config)
}

/// Asks for one field until the answer is accepted; an empty answer keeps the default.
/// Problems that involve a field asked `later` (duration longer than interval) are left
/// for that field's question.
fn ask(
    config: &Config,
    field: &str,
    help: &str,
    later: &[&str],
    devices: &[String],
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> anyhow::Result<Config> {
    let current = display_value(config, field);
    writeln!(output, "{field}: {help}")?;
    if field == "microphone.device_name" && !devices.is_empty() {
        writeln!(output, "  capture devices found:")?;
        for d in devices {
            writeln!(output, "    {d}")?;
        }
    }
    loop {
        if current.is_empty() {
            write!(output, "{field}: ")?;
        } else {
            write!(output, "{field} [{current}]: ")?;
        }
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            bail!("setup aborted: input ended before {field} was answered");
        }
        let answer = line.trim();
        let candidate = if answer.is_empty() {
            Ok(config.clone())
        } else if field == "recording.schedule" {
            schedule_value(answer)
                .and_then(|v| tree::set(config, field, &v).map_err(|e| e.to_string()))
        } else {
            tree::set(config, field, answer).map_err(|e| e.to_string())
        };
        let problem = match candidate {
            Err(message) => Some(message),
            Ok(c) => match config::validate(&c) {
                Ok(()) => return Ok(c),
                Err(errors) => {
                    // Other fields may still be at their unset defaults (the device name
                    // before it is asked): only this field's problems block the answer.
                    let mine: Vec<String> = errors
                        .iter()
                        .filter(|e| e.field.starts_with(field) || e.message.contains(field))
                        .filter(|e| {
                            !later
                                .iter()
                                .any(|l| e.field.starts_with(l) || e.message.contains(l))
                        })
                        .map(ToString::to_string)
                        .collect();
                    if mine.is_empty() {
                        return Ok(c);
                    }
                    Some(mine.join("\n  "))
                }
            },
        };
        if let Some(message) = problem {
            writeln!(output, "  {message}")?;
        }
    }
}

/// A field's current value as a person would type it.
fn display_value(config: &Config, field: &str) -> String {
    if field == "recording.schedule" {
        if config.recording.schedule.is_empty() {
            return "always".into();
        }
        return config
            .recording
            .schedule
            .iter()
            .map(|w| format!("{}..{}", w.start, w.end))
            .collect::<Vec<_>>()
            .join(", ");
    }
    match tree::get(config, field) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

/// `06:00..22:30, sunset-30m..sunrise` (or `always`) as the JSON list the schema reads.
fn schedule_value(answer: &str) -> Result<String, String> {
    if answer.eq_ignore_ascii_case("always") {
        return Ok("[]".into());
    }
    let mut windows = Vec::new();
    for part in answer.split(',') {
        let Some((start, end)) = part.split_once("..") else {
            return Err(format!(
                "{:?} is not a window: write START..END, e.g. 06:00..22:30",
                part.trim()
            ));
        };
        windows.push(serde_json::json!({ "start": start.trim(), "end": end.trim() }));
    }
    Ok(serde_json::Value::Array(windows).to_string())
}

/// Sound cards that can capture, as `id: name` lines, for the device prompt. A card that
/// cannot be queried is left out: this is only a hint, `acoupi devices` has the details.
fn capture_devices() -> Vec<String> {
    use alsa::ctl::{Ctl, DeviceIter};
    use alsa::Direction;
    let mut found = Vec::new();
    for card in alsa::card::Iter::new().flatten() {
        let Ok(ctl) = Ctl::from_card(&card, false) else {
            continue;
        };
        let Ok(info) = ctl.card_info() else { continue };
        let captures = DeviceIter::new(&ctl)
            .any(|dev| ctl.pcm_info(dev as u32, 0, Direction::Capture).is_ok());
        if captures {
            if let (Ok(id), Ok(name)) = (info.get_id(), info.get_name()) {
                found.push(format!("{id}: {name}"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn args(set: &[&str]) -> SetupArgs {
        SetupArgs {
            program: "default".into(),
            set: set.iter().map(|s| s.to_string()).collect(),
            no_prompt: false,
            force: false,
        }
    }

    /// Runs the dialogue with `answers` (one per line) and returns the config and transcript.
    fn dialogue(a: &SetupArgs, answers: &str) -> (anyhow::Result<Config>, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut input = Cursor::new(answers.as_bytes().to_vec());
        let mut output = Vec::new();
        let r = configure(
            a,
            &dir.path().join("acoupi.ron"),
            Some((&mut input, &mut output)),
            &["UltraMic: UltraMic 250K".into()],
        );
        (r, String::from_utf8(output).unwrap())
    }

    #[test]
    fn empty_answers_keep_defaults_except_the_required_device() {
        let (r, out) = dialogue(&args(&[]), "\nUltraMic\n\n\n\n\n\n\n");
        let c = r.unwrap();
        assert_eq!(c.microphone.device_name, "UltraMic");
        assert_eq!(c.recording.schedule, Config::default().recording.schedule);
        assert!(out.contains("    UltraMic: UltraMic 250K"), "{out}");
        assert!(out.contains("microphone.samplerate [48000]: "), "{out}");
        assert!(out.contains("recording.schedule [06:00..22:30]: "), "{out}");
        assert!(out.contains("microphone.device_name is not set"), "{out}");
    }

    #[test]
    fn invalid_answers_are_asked_again() {
        let answers = "USB\nabc\n1000000\n96000\n\n20\n10\n30\nsunset-30m..sunrise+30m, 12:00..13:00\nMars/Olympus\nUTC\n";
        let (r, out) = dialogue(&args(&[]), answers);
        let c = r.unwrap();
        assert_eq!(c.microphone.samplerate, 96_000);
        assert_eq!(c.recording.duration, 20);
        assert_eq!(c.recording.interval, 30);
        assert_eq!(c.timezone, "UTC");
        assert_eq!(c.recording.schedule.len(), 2);
        assert_eq!(c.recording.schedule[0].start.to_string(), "sunset-30m");
        assert!(out.contains("expected a whole number"), "{out}");
        assert!(
            out.contains("microphone.samplerate must be between 8000 and 384000"),
            "{out}"
        );
        assert!(
            out.contains("recording.interval [10]: ")
                && out
                    .contains("recording.duration (20 s) is longer than recording.interval (10 s)"),
            "{out}"
        );
        assert!(
            out.contains("\"Mars/Olympus\" is not a known IANA time zone"),
            "{out}"
        );
    }

    #[test]
    fn fields_given_with_set_are_not_asked() {
        let a = args(&["microphone.device_name=USB", "timezone=UTC"]);
        let (r, out) = dialogue(&a, "\n\n\n\n\n");
        assert_eq!(r.unwrap().timezone, "UTC");
        assert!(!out.contains("microphone.device_name"), "{out}");
        assert!(!out.contains("timezone"), "{out}");
    }

    #[test]
    fn input_ending_early_aborts() {
        let (r, _) = dialogue(&args(&[]), "");
        assert_eq!(
            r.unwrap_err().to_string(),
            "setup aborted: input ended before microphone.device_name was answered"
        );
    }

    #[test]
    fn connected_without_prompts_requires_a_messenger_and_names_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acoupi.ron");
        let mut a = args(&["microphone.device_name=USB"]);
        a.program = "connected".into();
        let e = configure(&a, &path, None, &[]).unwrap_err().to_string();
        assert!(e.contains("--set messaging.mqtt.host=<broker>"), "{e}");
        a.set.push("messaging.mqtt.host=broker.local".into());
        a.set.push("messaging.mqtt.username=rec".into());
        a.set.push("messaging.mqtt.password=hunter2".into());
        let c = configure(&a, &path, None, &[]).unwrap();
        assert_eq!(c.program, Program::Connected);
        let mqtt = c.messaging.unwrap().mqtt.unwrap();
        assert_eq!((mqtt.host.as_str(), mqtt.port), ("broker.local", 1884));
        assert_eq!(mqtt.password.unwrap().expose(), "hunter2");
    }

    #[test]
    fn connected_dialogue_asks_for_a_messenger_until_one_is_given() {
        let mut a = args(&["microphone.device_name=USB"]);
        a.program = "connected".into();
        let (r, out) = dialogue(&a, "\n\n\n\n\n\n\n\nhttp://collector:8080/in\n");
        let c = r.unwrap();
        assert!(c.messaging.as_ref().unwrap().mqtt.is_none());
        assert_eq!(
            c.messaging.unwrap().http.unwrap().base_url,
            "http://collector:8080/in"
        );
        assert!(out.contains("messaging.mqtt.host: "), "{out}");
        assert!(
            out.contains("messaging has neither `mqtt` nor `http`")
                || out.contains("messaging is required"),
            "{out}"
        );
    }

    #[test]
    fn always_means_an_empty_schedule() {
        assert_eq!(schedule_value("always").unwrap(), "[]");
        assert!(schedule_value("06:00-22:00")
            .unwrap_err()
            .contains("START..END"));
    }
}
