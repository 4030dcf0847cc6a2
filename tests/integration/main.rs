//! The integration tests that run the real `acoupi` binary, scripts or brokers, as one
//! test binary made of modules (ripgrep's `tests/tests.rs` layout): every binary under
//! `tests/` links the whole library, and on a two-core machine twenty of them took most
//! of a rebuild (docs/benchmarks.md, "make test build time").
//!
//! Tests of every module share one process and run in parallel. The kits therefore keep
//! to the rule they always had: nothing changes this process's environment, working
//! folder or signal handling; each test's state goes into its child's environment. A
//! test that needs a process of its own (a crash, a peak RSS) re-runs itself alone
//! through [`support::rerun_alone`].
//!
//! Not here: `tests/inprocess` (the in-process tests `make test-cross` runs under
//! qemu-user), `tests/system_user_units.rs` (it sets its process environment) and
//! `tests/soak` (`make soak`).

#[path = "../connected_support/mod.rs"]
mod connected_support;
#[path = "../messaging_support/mod.rs"]
mod messaging_support;
#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod cli_audit;
mod cli_boot_import;
mod cli_check_messaging;
mod cli_config;
mod cli_deployment;
mod cli_inspect;
mod connected_daemon;
mod connected_reload;
mod daemon_beat;
mod daemon_disk_full;
mod daemon_run;
mod daemon_stop;
mod image_bake;
mod image_units;
mod messaging_http;
mod messaging_mqtt;
mod messaging_outbox;
mod messaging_outbox_memory;
