//! acoupi: a field recorder for bioacoustic monitoring.
//!
//! One binary, three roles: the CLI an operator types, `acoupi run` (the recording and
//! default workers under systemd) and `acoupi beat` (health and heartbeats).
//! `ARCHITECTURE.md` is the map; each module's header says what it owns.
//!
//! # Layout
//! - [`cli`]: the commands, one file per group; the only place that prints.
//! - [`config`]: the RON program configuration.
//! - [`audio`]: ALSA capture and WAV files.
//! - [`schedule`]: when to record (pure).
//! - [`system`]: the operating system around us (paths).
//! - [`store`]: SQLite: the messages.db outbox.
//! - [`messaging`]: MQTT and HTTP messengers, delivery from the outbox, heartbeat payloads.

pub mod audio;
pub mod cli;
pub mod config;
pub mod messaging;
pub mod schedule;
pub mod store;
pub mod system;
