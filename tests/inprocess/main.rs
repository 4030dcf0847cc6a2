//! The integration tests that stay in this process: they call the library against the
//! real alsa-lib, SQLite, file systems and a fake `systemctl`, and never spawn `acoupi`.
//! `make test-cross` runs this binary (with the library's unit tests) for both musl
//! targets under qemu-user, where a spawned target binary could not run; on the host it
//! runs with the rest of `cargo test`.
//!
//! One binary, one process: `audio_capture` sets `ALSA_CONFIG_PATH` once, before any
//! ALSA call; nothing else here changes the process environment.
//! (`tests/system_user_units.rs` does, so it stays a binary of its own.)

mod abi_time64;
mod audio_capture;
mod audio_capture_streams;
mod system_metrics;
mod system_storage;
mod system_systemctl;
