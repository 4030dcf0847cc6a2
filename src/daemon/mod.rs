//! The two daemons: `acoupi run` (recording and default workers) and `acoupi beat`
//! (health and heartbeats), plus the control socket between them and the CLI.

pub mod beat;
pub mod control;
pub mod errors;
pub mod integrity;
pub mod messaging;
mod notify;
pub mod run;
pub mod watchdog;
