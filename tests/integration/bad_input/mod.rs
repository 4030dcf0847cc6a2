//! Bad input, as a user or the world gives it (issue 11): typos, Windows-edited files,
//! stale pid files, hostile paths, huge numbers. Every case runs the real binary in user
//! mode and asserts four things through [`Case`]:
//!
//! - the exit code (1 refused, 2 usage/configuration/system error);
//! - the exact first `error:` line, which names the field or file and what to do;
//! - that nothing panicked (no `panicked at` on stderr, no signal exit);
//! - that the configuration, metadata.db and every recording are byte-identical
//!   afterwards (a refused input loses and changes nothing).
//!
//! One module per area, so the cases of one concern read together.

mod harness;

mod audit_cases;
mod cli_cases;
mod config_cases;
mod inspect_cases;
mod store_cases;
