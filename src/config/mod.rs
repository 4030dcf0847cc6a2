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
pub mod validate_detection;
pub mod validate_messaging;
pub mod validate_paths;

#[cfg(test)]
mod proptests;

use std::path::{Path, PathBuf};

use ron::extensions::Extensions;

pub use example::example_ron;
pub use file::{holds_secrets, import, import_with, lock, save, ConfigLock, ImportOutcome};
pub use inspect::{inspect, Inspection};
pub use schema::Config;
pub use validate::{
    validate, validate_deployment_name, validate_latitude, validate_longitude, FieldError,
};

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
    /// The file is a symbolic link to a file outside its own directory: it may be any
    /// file on the system (`/etc/shadow`), so it is neither read nor quoted.
    #[error("{} is a symbolic link to {}, outside {}: acoupi does not read configurations kept elsewhere; replace the link with the file itself (`acoupi config import FILE`)", path.display(), target.display(), dir.display())]
    Foreign {
        /// The link.
        path: PathBuf,
        /// What it resolves to.
        target: PathBuf,
        /// The directory the configuration must stay in.
        dir: PathBuf,
    },
    /// The file is not UTF-8 text (UTF-16 from a Windows editor, or another encoding).
    #[error("{} is {encoding}: save it as UTF-8 (in Notepad: File, Save as, Encoding: UTF-8)", path.display())]
    Encoding {
        /// The file.
        path: PathBuf,
        /// What the file looks like instead, e.g. "UTF-16 text, not UTF-8".
        encoding: String,
    },
    /// The file to read is a device, fifo, directory or socket: reading it could block
    /// forever (a fifo) or never end (`/dev/zero`).
    #[error("{} is {kind}, not a regular file: give the path of a configuration file", path.display())]
    NotARegularSource {
        /// The path given.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file is far larger than any configuration.
    #[error("{} is larger than {} KiB, far more than any configuration: is it the right file?", path.display(), MAX_CONFIG_BYTES / 1024)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file holds zero bytes, which no text has: typically a file a power cut left
    /// zero-filled on a FAT card.
    #[error("{} is damaged (it holds zero bytes, which no text file has): restore it from {}.bak or {}.last-good, or write it again with `acoupi setup --force`", path.display(), path.display(), path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
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
    /// The destination exists but is not a regular file (a device, directory, fifo or
    /// symbolic link): replacing it would destroy something that is not a configuration.
    #[error("{} is {kind}, not a regular file: give the path of a configuration file or of a new file in an existing directory", path.display())]
    NotAFile {
        /// The destination.
        path: PathBuf,
        /// What it is instead ("a character device", "a directory", …).
        kind: &'static str,
    },
    /// A new destination whose directory does not exist.
    #[error("{} cannot be created: its directory {} does not exist; create it first or give another path", path.display(), dir.display())]
    NoDirectory {
        /// The destination.
        path: PathBuf,
        /// Its missing parent directory.
        dir: PathBuf,
    },
    /// Taking the lock that serialises writers of the configuration failed.
    #[error("locking {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
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
    parse(&read_text(path)?, path)
}

/// The text of the configuration file at `path`: the one reader of configuration text
/// ([`read`], [`load`], [`import`], and so the boot-time import), so every way in accepts
/// the same files. See [`decode`].
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    refuse_foreign_link(path)?;
    // O_NONBLOCK: opening a fifo must not wait for a writer; the type check follows.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(ConfigError::NotARegularSource {
            path: path.to_path_buf(),
            kind: file::kind_of(&meta.file_type()),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    decode(bytes, path)
}

/// The largest configuration file read: the commented example is about 10 KiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The UTF-8 byte order mark Windows Notepad writes ("UTF-8 with BOM").
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Configuration text from the bytes of a file as an editor on any system saves it: a
/// leading UTF-8 byte order mark is dropped (CRLF line ends are whitespace to RON). UTF-16
/// (with or without its byte order mark) and anything else that is not UTF-8 is refused
/// with one line saying to save the file as UTF-8, rather than a parse error at a column
/// the user cannot see. `path` only names the file in errors.
pub fn decode(bytes: Vec<u8>, path: &Path) -> Result<String, ConfigError> {
    let encoding = |what: String| ConfigError::Encoding {
        path: path.to_path_buf(),
        encoding: what,
    };
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") || looks_utf16(&bytes) {
        return Err(encoding("UTF-16 text, not UTF-8".into()));
    }
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
    if body.contains(&0) {
        return Err(ConfigError::Damaged {
            path: path.to_path_buf(),
        });
    }
    match std::str::from_utf8(body) {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => {
            let before = &body[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            Err(encoding(format!(
                "not UTF-8 text (byte 0x{:02X} on line {line})",
                body[e.valid_up_to()]
            )))
        }
    }
}

/// UTF-16 without a byte order mark: mostly-ASCII text where every other byte is zero.
/// UTF-8 text never holds a zero byte in a configuration, so zeros on one parity only, in
/// at least a third of the byte pairs, are UTF-16 and not a damaged UTF-8 file.
fn looks_utf16(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    let pairs = head.len() / 2;
    if pairs == 0 {
        return false;
    }
    let zeros_at = |parity: usize| {
        head.iter()
            .skip(parity)
            .step_by(2)
            .filter(|b| **b == 0)
            .count()
    };
    let (even, odd) = (zeros_at(0), zeros_at(1));
    (even == 0 && odd * 3 >= pairs) || (odd == 0 && even * 3 >= pairs)
}

/// Refuses a configuration that is a symbolic link resolving outside the directory it
/// is in. The CLI runs as root and quotes what it cannot parse: a link to a secret (put
/// there by whoever can write the configuration folder) would print the secret. A link
/// within the folder (to `acoupi.ron.last-good`, say) is fine; a dangling one reads as
/// missing.
fn refuse_foreign_link(path: &Path) -> Result<(), ConfigError> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (Ok(target), Ok(dir)) = (std::fs::canonicalize(path), std::fs::canonicalize(parent)) else {
        return Ok(());
    };
    if target.parent() == Some(dir.as_path()) {
        return Ok(());
    }
    Err(ConfigError::Foreign {
        path: path.to_path_buf(),
        target,
        dir,
    })
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
        // The first thing in the file is not `(` or `Config(`: whatever it is (a word of
        // another program's file) is not repeated, in case that file holds a secret.
        ron::Error::ExpectedDifferentStructName { .. } => {
            "this is not an acoupi configuration: it must start with `(` (see `acoupi config example`)".into()
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

    /// Issue 11: Windows editors' encodings. A UTF-8 byte order mark and CRLF line ends
    /// are accepted; UTF-16 (with or without its mark) and other encodings get one line.
    #[test]
    fn bom_and_crlf_are_accepted_other_encodings_say_save_as_utf8() {
        let text = "(\r\n  timezone: \"UTC\",\r\n)\r\n";
        let path = Path::new("acoupi.ron");
        let with_bom = [UTF8_BOM, text.as_bytes()].concat();
        let decoded = decode(with_bom, path).unwrap();
        assert_eq!(decoded, text);
        assert_eq!(parse(&decoded, path).unwrap().timezone, "UTC");
        let utf16 = |bom: &[u8], big: bool| -> Vec<u8> {
            let units = text.encode_utf16();
            let body: Vec<u8> = if big {
                units.flat_map(u16::to_be_bytes).collect()
            } else {
                units.flat_map(u16::to_le_bytes).collect()
            };
            [bom, &body].concat()
        };
        for bytes in [
            utf16(b"\xFF\xFE", false),
            utf16(b"\xFE\xFF", true),
            utf16(b"", false),
            utf16(b"", true),
        ] {
            assert_eq!(
                decode(bytes, path).unwrap_err().to_string(),
                "acoupi.ron is UTF-16 text, not UTF-8: save it as UTF-8 (in Notepad: File, Save as, Encoding: UTF-8)"
            );
        }
        let latin1 =
            b"(\n  deployment: (name: \"H\xE9rault\", latitude: 1, longitude: 2),\n)".to_vec();
        assert_eq!(
            decode(vec![0; 4096], path).unwrap_err().to_string(),
            "acoupi.ron is damaged (it holds zero bytes, which no text file has): restore it from acoupi.ron.bak or acoupi.ron.last-good, or write it again with `acoupi setup --force`"
        );
        assert_eq!(
            decode(latin1, path).unwrap_err().to_string(),
            "acoupi.ron is not UTF-8 text (byte 0xE9 on line 2): save it as UTF-8 (in Notepad: File, Save as, Encoding: UTF-8)"
        );
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
