//! The program configuration: its schema and defaults, reading and writing the RON file,
//! validation with messages that name the field and the fix, and dotted get/set.
//!
//! Every path into a `Config` goes through [`load`] (parse, then [`validate`]) and every
//! write through [`save`] or [`import`] (validate, then an atomic replace that keeps the
//! previous file). This module knows nothing about devices, daemons or the command line:
//! it never prints, and callers decide what to do with a running recorder.

pub mod example;
pub mod file;
pub mod inspect;
pub mod render;
pub mod schema;
pub mod tree;
pub mod validate;
pub mod validate_messaging;

use std::path::{Path, PathBuf};

use ron::extensions::Extensions;

pub use example::example_ron;
pub use file::{holds_secrets, import, save, ImportOutcome};
pub use inspect::{inspect, Inspection};
pub use schema::Config;
pub use validate::{validate, validate_latitude, validate_longitude, FieldError};

/// Why a configuration file could not be read, parsed, validated or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// There is no file at the path.
    #[error("no configuration at {}: run `acoupi setup`", path.display())]
    NotFound {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid RON for the schema.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong, with a suggestion where one exists.
        message: String,
    },
    /// The file parses but some values are not acceptable.
    #[error("invalid configuration in {}:\n{}", path.display(), list(errors))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, each naming its field.
        errors: Vec<FieldError>,
    },
    /// The configuration could not be turned into RON (a bug in the schema, not user input).
    #[error("serialising the configuration")]
    Serialize(#[source] ron::Error),
    /// Writing the file, its backup or its directory failed.
    #[error("writing {}", path.display())]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The field errors one per line, indented, for an error message.
fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The RON options every reader uses: `implicit_some` so a hand-written file may say
/// `starttime: "18:00"` rather than `starttime: Some("18:00")` (both are accepted).
fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(Extensions::IMPLICIT_SOME)
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let config = read(path)?;
    validate(&config).map_err(|errors| ConfigError::Invalid {
        path: path.to_path_buf(),
        errors,
    })?;
    Ok(config)
}

/// Reads and parses the file at `path` without semantic validation: for
/// `acoupi config get`/`set`, which must be able to show and repair a file whose values
/// no longer validate.
pub fn read(path: &Path) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse(&text, path)
}

/// Parses RON text without validating it; `path` only names the source in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    ron_options()
        .from_str::<Config>(text)
        .map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: describe_ron_error(&e.code),
        })
}

/// The header written above every saved configuration.
const HEADER: &str = "\
// acoupi program configuration.
// Change it with `acoupi config set FIELD VALUE` (validated, previous file kept as .bak);
// `acoupi config example` prints every field with an explanation.
";

/// The configuration as the pretty RON file [`save`] writes, header included.
pub fn to_ron(config: &Config) -> Result<String, ConfigError> {
    Ok(format!("{HEADER}{}\n", to_ron_body(config)?))
}

/// The configuration as pretty RON without the header comment.
pub fn to_ron_body(config: &Config) -> Result<String, ConfigError> {
    let pretty = ron::ser::PrettyConfig::new()
        .indentor("    ")
        .extensions(Extensions::IMPLICIT_SOME);
    ron::ser::to_string_pretty(config, pretty).map_err(ConfigError::Serialize)
}

/// A RON error in our words: unknown fields get the nearest valid name and the dotted
/// section they were found in, rather than the Rust struct name.
fn describe_ron_error(code: &ron::Error) -> String {
    match code {
        ron::Error::NoSuchStructField {
            expected,
            found,
            outer,
        } => {
            let section = outer.as_deref().map(section_of_struct).unwrap_or("");
            let place = if section.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in {section}")
            };
            match suggest(found, expected.iter().copied()) {
                Some(s) => format!("unknown field `{found}` {place}; did you mean `{s}`?"),
                None => format!(
                    "unknown field `{found}` {place}; valid fields are {}",
                    expected.join(", ")
                ),
            }
        }
        ron::Error::NoSuchEnumVariant {
            found,
            outer: Some(outer),
            ..
        } if outer == "Program" => {
            format!("unknown program `{found}`: use `default` or `connected`")
        }
        ron::Error::NoSuchEnumVariant {
            expected, found, ..
        } => match suggest(found, expected.iter().copied()) {
            Some(s) => format!("unknown value `{found}`; did you mean `{s}`?"),
            None => format!(
                "unknown value `{found}`; expected one of {}",
                expected.join(", ")
            ),
        },
        ron::Error::DuplicateStructField { field, outer } => {
            let section = outer.as_deref().map(section_of_struct).unwrap_or("");
            if section.is_empty() {
                format!("field `{field}` is given twice")
            } else {
                format!("field `{field}` is given twice in {section}")
            }
        }
        other => lowercase_first(&other.to_string()),
    }
}

/// RON's messages start with a capital; ours do not.
fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The dotted configuration path of a schema struct, for messages ("" is the top level).
fn section_of_struct(name: &str) -> &str {
    match name {
        "Microphone" => "microphone",
        "Recording" => "recording",
        "Window" => "recording.schedule",
        "Paths" => "paths",
        "RecordingSaving" => "recording_saving",
        "Retention" => "retention",
        "Heartbeat" => "heartbeat",
        "Site" => "deployment",
        _ => "",
    }
}

/// The candidate closest to `found`, if any is close enough to be what the user meant.
pub(crate) fn suggest<'a>(
    found: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(found, c), c))
        .filter(|(score, _)| *score >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("acoupi.ron"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_field_names_section_and_nearest_name() {
        let e = parse_err("(\n  microphone: (\n    samplerat: 48000,\n  ),\n)\n");
        assert!(
            e.starts_with("acoupi.ron:3:"),
            "position missing from {e:?}"
        );
        assert!(
            e.ends_with("unknown field `samplerat` in microphone; did you mean `samplerate`?"),
            "{e}"
        );
    }

    #[test]
    fn unknown_top_level_field_is_suggested() {
        let e = parse_err("(timezon: \"UTC\")");
        assert!(
            e.contains("unknown field `timezon` at the top level; did you mean `timezone`?"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_carries_line_and_column() {
        let e = parse_err("(\n  timezone: \"UTC\"\n  program: default,\n)");
        assert_eq!(e, "acoupi.ron:3:3: expected comma");
    }

    #[test]
    fn unknown_program_names_the_available_ones() {
        let e = parse_err("(program: detector)");
        assert!(
            e.ends_with("unknown program `detector`: use `default` or `connected`"),
            "{e}"
        );
        assert_eq!(
            parse("(program: connected)", Path::new("a"))
                .unwrap()
                .program,
            schema::Program::Connected
        );
    }

    #[test]
    fn implicit_and_explicit_some_both_parse() {
        let a = parse("(recording_saving: (starttime: \"18:30\"))", Path::new("a")).unwrap();
        let b = parse(
            "(recording_saving: Some((starttime: Some(\"18:30\"))))",
            Path::new("b"),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.recording_saving.unwrap().starttime.unwrap().to_string(),
            "18:30"
        );
    }

    #[test]
    fn saved_text_parses_back_to_the_same_config() {
        let mut c = Config::default();
        c.microphone.device_name = "UltraMic".into();
        c.recording_saving = Some(Default::default());
        c.recording.start_date = Some(jiff::civil::date(2026, 5, 1));
        c.microphone.sample_format = Some(crate::audio::format::SampleFormat::S24_3LE);
        let text = to_ron(&c).unwrap();
        assert!(text.starts_with("// acoupi program configuration."));
        assert_eq!(parse(&text, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn suggestion_needs_a_close_name() {
        assert_eq!(
            suggest("samplerat", ["samplerate", "bit_depth"]),
            Some("samplerate")
        );
        assert_eq!(suggest("zzz", ["samplerate", "bit_depth"]), None);
    }
}
