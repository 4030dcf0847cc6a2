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
mod cli_deployment_bad_input;
mod cli_detect;
mod cli_inspect;
mod connected_daemon;
mod connected_detect;
mod connected_reload;
mod daemon_beat;
mod daemon_crash;
mod daemon_detect;
mod daemon_disk_full;
mod daemon_reload_order;
mod daemon_run;
mod daemon_stop;
mod daemon_tmp_dir;
mod detect_batdetect2;
mod detect_batdetect2_frontend;
mod detect_birdnet;
mod detect_birdnet_location;
mod image_bake;
mod image_bake_config;
mod image_units;
mod messaging_http;
mod messaging_mqtt;
mod messaging_outbox;
mod messaging_outbox_memory;
mod scripts_shared;

/// A file under `tests/integration` or `tests/inprocess` without its `mod` line in the
/// binary's `main.rs` compiles into nothing, so its tests would silently never run; a new
/// `tests/*.rs` would be a binary of its own, linking the whole library again.
#[test]
fn every_test_file_is_a_module_of_one_of_the_test_binaries() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    for binary in ["integration", "inprocess"] {
        let dir = tests.join(binary);
        let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            let module = match name.strip_suffix(".rs") {
                Some("main") => continue,
                Some(module) => module,
                None if path.join("mod.rs").is_file() => name,
                None => continue,
            };
            assert!(
                main.lines().any(|l| l == format!("mod {module};")),
                "tests/{binary}/{name} is not declared in tests/{binary}/main.rs"
            );
        }
    }
    let mut loose: Vec<String> = std::fs::read_dir(&tests)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    loose.sort();
    assert_eq!(
        loose,
        ["system_user_units.rs"],
        "a test file directly under tests/ is a binary of its own: make it a module of \
         tests/integration (or tests/inprocess, for the cross suite)"
    );
}
