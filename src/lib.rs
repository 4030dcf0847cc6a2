//! acoupi: a field recorder for bioacoustic monitoring.
//!
//! One binary, three roles: the CLI an operator types, `acoupi run` (the recording and
//! default workers under systemd) and `acoupi beat` (health and heartbeats).
//! `ARCHITECTURE.md` is the map; each module's header says what it owns.
//!
//! # Layout
//! - [`cli`]: the commands, one file per group; the only place that prints.
//! - [`config`]: the RON program configuration.
//! - [`files`]: facts about files: a full disk, the crash-safe replacement.
//! - [`error`]: an error and its causes as one line of text.
//! - [`health`]: the recorder's health words (control answer, worker states, the beat's verdict).
//! - [`audio`]: ALSA capture and WAV files.
//! - [`schedule`]: when to record (pure).
//! - [`store`]: metadata.db (upstream schema + migrations); the only SQL.
//! - [`tasks`]: the management task (saving filters, moves, retention).
//! - [`daemon`]: `acoupi run`, `acoupi beat` and the control socket.
//! - [`system`]: the operating system around us (paths, systemd, metrics, clock).
//! - [`messaging`]: MQTT and HTTP messengers, delivery from the messages.db outbox, heartbeat payloads.
//! - `layering` (tests only): the layers above, checked against every `crate::` path.
//! - `words` (private): `word_enum!`, the one table of each status enum's words.

#[macro_use]
mod words;

pub mod audio;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod files;
pub mod health;
#[cfg(test)]
mod layering;
pub mod messaging;
pub mod schedule;
pub mod store;
pub mod system;
pub mod tasks;
