//! The facts the scripts share, each written once (issue 12): the Rust target ↔ Debian
//! architecture ↔ toolchain map in `scripts/targets.sh`, which the Makefile and
//! `build-image.sh` ask, and the private apt configuration in `scripts/private-apt.sh`,
//! run here against a stand-in `apt-get` (first on the child's `PATH`) so no network is
//! needed. `mkdir_missing` (`scripts/lib.sh`) is exercised by every bake in `image_bake`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::run_ok;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script` in bash from the repository root.
fn bash(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.current_dir(repo())
        .args(["-euo", "pipefail", "-c", script]);
    cmd
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn every_target_maps_to_its_debian_arch_and_toolchains_and_back() {
    let out = run_ok(&mut bash(
        r#". scripts/targets.sh
        for t in $ACOUPI_TARGETS; do
          target_vars "$t"
          echo "$t $DEB_ARCH $GNU_TRIPLE $MUSL_TRIPLE $(target_of_arch "$DEB_ARCH")"
        done
        if target_of_arch amd64; then echo "amd64 mapped"; fi"#,
    ));
    assert_eq!(
        stdout(&out),
        "aarch64-unknown-linux-musl arm64 aarch64-linux-gnu aarch64-linux-musl aarch64-unknown-linux-musl\n\
         armv7-unknown-linux-musleabihf armhf arm-linux-gnueabihf arm-linux-musleabihf armv7-unknown-linux-musleabihf"
    );
}

#[test]
fn the_makefile_takes_its_targets_and_linkers_from_targets_sh() {
    let out = run_ok(Command::new("make").current_dir(repo()).args([
        "-s",
        "--eval",
        "print-targets: ; @echo $(TARGETS) / $(CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER) $(CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER) / $(call gnu_triple,armv7-unknown-linux-musleabihf)",
        "print-targets",
    ]));
    assert_eq!(
        stdout(&out),
        "aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf / \
         aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc / arm-linux-gnueabihf"
    );
}

/// A directory holding an `apt-get` that logs each call (and its configuration's
/// architecture) to `log`, then exits with `code`.
fn stand_in_apt_get(dir: &Path, code: i32) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let log = dir.join("apt-get.log");
    let script = format!(
        "#!/bin/sh\necho \"$* $(grep '^APT::Architecture ' \"$APT_CONFIG\")\" >> '{}'\nexit {code}\n",
        log.display()
    );
    fs::write(bin.join("apt-get"), script).unwrap();
    fs::set_permissions(bin.join("apt-get"), fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn private_apt(bin: &Path, apt: &Path, calls: usize) -> Output {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let call = format!(
        ". scripts/private-apt.sh; private_apt '{}' armhf bookworm",
        apt.display()
    );
    bash(&vec![call; calls].join("; "))
        .env("PATH", path)
        .env("DEBIAN_MIRROR", "http://mirror.invalid/debian")
        .output()
        .unwrap()
}

#[test]
fn private_apt_writes_one_configuration_for_the_arch_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in_apt_get(dir.path(), 0);
    let apt = dir.path().join("apt");
    let out = private_apt(&bin, &apt, 2);
    assert!(out.status.success(), "{out:?}");
    let conf = apt.join("apt.conf");
    assert_eq!(stdout(&out), format!("{0}\n{0}", conf.display()));
    // apt-get update ran once, on the configuration being written; the second call
    // reused it.
    let log = fs::read_to_string(dir.path().join("apt-get.log")).unwrap();
    assert_eq!(log, "update -qq APT::Architecture \"armhf\";\n");
    let conf = fs::read_to_string(conf).unwrap();
    for line in [
        "Dir::Etc::SourceList \"/dev/null\";",
        &format!("Dir::State::Lists \"{}/lists\";", apt.display()),
        "Dir::State::status \"/dev/null\";",
        "APT::Architectures { \"armhf\"; };",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} not in\n{conf}");
    }
    let sources = fs::read_to_string(apt.join("etc/debian.sources")).unwrap();
    assert!(
        sources.contains("URIs: http://mirror.invalid/debian\nSuites: bookworm\n"),
        "{sources}"
    );
}

#[test]
fn a_failed_update_leaves_no_configuration_and_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in_apt_get(dir.path(), 100);
    let apt = dir.path().join("apt");
    let out = private_apt(&bin, &apt, 1);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: apt-get update failed for the private armhf sources in {}",
            apt.display()
        )),
        "{stderr}"
    );
    assert!(
        !apt.join("apt.conf").exists(),
        "a failed update must be retried"
    );
}
