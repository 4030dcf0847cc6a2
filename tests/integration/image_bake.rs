//! The image pipeline end to end on a synthetic base: `scripts/make-test-base.sh` builds a
//! small Raspberry Pi OS-like MBR image, `scripts/build-image.sh` bakes it into `dist/`, and
//! the result is read back with the same tools a user's machine has: `bmaptool copy` and
//! `xz` for the release files, `debugfs` and `e2fsck -fn` for the root file system, mtools
//! for the boot partition. Bad inputs must fail with a clear message and leave `dist/` empty.
//!
//! What a site configuration holds is the host binary's answer (its tests are
//! `image_bake_config`): the pipeline runs this
//! crate's own `acoupi config inspect --json FILE` (the same loader as the device), so a
//! rejected file fails the bake with the loader's reason, and the deployment and secrets
//! it reports decide which units are enabled and the configuration's mode.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::run_ok;

/// The time every baked inode and boot file carries.
pub(crate) const EPOCH: &str = "1700000000";
/// Start sector of the root partition in the synthetic base (`--boot-mib 64`).
const ROOT_START: u64 = 8192 + 64 * 2048;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn script(name: &str) -> Command {
    Command::new(repo().join("scripts").join(name))
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch directory with a synthetic base and the binary to bake.
pub(crate) struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    pub(crate) fn new() -> Bench {
        let dir = tempfile::tempdir().expect("temporary directory");
        let binary = dir.path().join("acoupi");
        let real = repo().join("build/target/aarch64-unknown-linux-musl/release/acoupi");
        if real.is_file() {
            fs::copy(&real, &binary).expect("copy aarch64 binary");
        } else {
            // Structure tests need any executable; the real binary is preferred when built.
            fs::write(&binary, "#!/bin/sh\necho 'acoupi stand-in'\n").expect("stand-in");
        }
        make_executable(&binary);
        Bench { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn dist(&self) -> PathBuf {
        self.path("dist")
    }

    /// Builds a synthetic base with extra `make-test-base.sh` options.
    pub(crate) fn base(&self, extra: &[&str]) -> PathBuf {
        let base = self.path("base.img");
        run_ok(
            script("make-test-base.sh")
                .args(["--boot-mib", "64", "--root-mib", "64"])
                .args(extra)
                .arg(&base)
                .env("SOURCE_DATE_EPOCH", EPOCH),
        );
        base
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).expect("write input file");
        path
    }

    /// Runs build-image.sh for arm64 with `args` after the defaults.
    pub(crate) fn bake(&self, base: &Path, args: &[&str]) -> Output {
        script("build-image.sh")
            .args(["--arch", "arm64", "--version", "9.9.9"])
            .arg("--base")
            .arg(base)
            .arg("--binary")
            .arg(self.path("acoupi"))
            .arg("--dist")
            .arg(self.dist())
            .arg("--build-dir")
            .arg(self.path("build"))
            .args(args)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env("XZ_LEVEL", "0")
            .arg("--host-binary")
            .arg(env!("CARGO_BIN_EXE_acoupi"))
            .env_remove("ACOUPI_HOST")
            .output()
            .expect("run build-image.sh")
    }

    pub(crate) fn bake_ok(&self, base: &Path, args: &[&str]) {
        let out = self.bake(base, args);
        assert!(out.status.success(), "bake failed:\n{}", text(&out.stderr));
    }

    /// Expects a failed bake whose message contains `needle`, and nothing in dist/.
    pub(crate) fn bake_fails(&self, base: &Path, args: &[&str], needle: &str) {
        let out = self.bake(base, args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "bake should fail:\n{stderr}");
        assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
        let left = fs::read_dir(self.dist()).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "dist/ must stay empty after a failed bake");
        let build = fs::read_dir(self.path("build"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(build, 0, "no work directory may be left in build/");
    }

    /// Restores the raw image from dist/ with `bmaptool copy` and checks it equals `xz -dc`.
    pub(crate) fn restored(&self) -> PathBuf {
        let xz = self.dist().join("acoupi-9.9.9-arm64.img.xz");
        let bmap = self.dist().join("acoupi-9.9.9-arm64.img.bmap");
        let copy = self.path("restored.img");
        run_ok(
            Command::new("bmaptool")
                .arg("-q")
                .arg("copy")
                .arg("--bmap")
                .arg(&bmap)
                .arg(&xz)
                .arg(&copy),
        );
        let plain = self.path("plain.img");
        let out = run_ok(Command::new("xz").arg("-dc").arg(&xz));
        fs::write(&plain, out.stdout).expect("write decompressed image");
        run_ok(Command::new("cmp").arg(&plain).arg(&copy));
        fs::remove_file(&plain).expect("remove decompressed image");
        copy
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn rootfs(img: &Path) -> String {
    format!("{}?offset={}", img.display(), ROOT_START * 512)
}

pub(crate) fn debugfs(img: &Path, request: &str) -> Vec<u8> {
    run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg(request)
            .arg(rootfs(img)),
    )
    .stdout
}

/// `(mode, uid, gid)` of an inode, from `debugfs stat`.
pub(crate) fn inode(img: &Path, path: &str) -> (String, u32, u32) {
    let stat = text(&debugfs(img, &format!("stat {path}")));
    let mode = stat
        .split_whitespace()
        .skip_while(|w| *w != "Mode:")
        .nth(1)
        .unwrap_or_else(|| panic!("{path} not in image:\n{stat}"))
        .to_string();
    let user = stat
        .lines()
        .find(|l| l.starts_with("User:"))
        .expect("User: line");
    let nums: Vec<u32> = user
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (mode, nums[0], nums[1])
}

pub(crate) fn boot_file(img: &Path, name: &str) -> Option<String> {
    let out = Command::new("mtype")
        .arg("-i")
        .arg(format!("{}@@{}", img.display(), 8192 * 512))
        .arg(format!("::/{name}"))
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .expect("run mtype");
    out.status.success().then(|| text(&out.stdout))
}

pub(crate) fn wants(img: &Path) -> String {
    text(&debugfs(
        img,
        "ls -l /etc/systemd/system/multi-user.target.wants",
    ))
}

pub(crate) fn assert_clean(img: &Path) {
    run_ok(Command::new("e2fsck").arg("-fn").arg(rootfs(img)));
}

fn overlay_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("overlay dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("overlay"), &mut files);
    files
}

#[test]
fn bake_without_config_writes_every_file_and_enables_only_the_boot_import() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    bench.bake_ok(&base, &[]);
    let img = bench.restored();
    assert_clean(&img);

    for file in overlay_files() {
        let rel = file.strip_prefix(repo().join("overlay")).expect("relative");
        let dest = format!("/{}", rel.display());
        assert_eq!(
            debugfs(&img, &format!("cat {dest}")),
            fs::read(&file).expect("overlay file"),
            "{dest} content"
        );
        assert_eq!(
            inode(&img, &dest),
            ("0644".into(), 0, 0),
            "{dest} owner/mode"
        );
    }
    assert_eq!(
        debugfs(&img, "cat /usr/bin/acoupi"),
        fs::read(bench.path("acoupi")).expect("binary")
    );
    assert_eq!(inode(&img, "/usr/bin/acoupi"), ("0755".into(), 0, 0));

    let passwd = text(&debugfs(&img, "cat /etc/passwd"));
    assert!(
        passwd.contains(":29:acoupi field recorder:/var/lib/acoupi:/usr/sbin/nologin"),
        "acoupi user baked in:\n{passwd}"
    );
    assert!(text(&debugfs(&img, "cat /etc/shadow")).contains("acoupi:!*:"));
    assert_eq!(inode(&img, "/etc/shadow"), ("0640".into(), 0, 42));

    let wants = wants(&img);
    assert!(wants.contains("acoupi-boot-import.service"), "{wants}");
    assert!(!wants.contains(" acoupi.service"), "{wants}");
    assert!(!wants.contains("acoupi-beat.service"), "{wants}");

    assert!(boot_file(&img, "acoupi.ron").is_none(), "nothing to import");
    assert_eq!(
        boot_file(&img, "acoupi.ron.example"),
        Some(fs::read_to_string(repo().join("image/boot/acoupi.ron.example")).expect("example"))
    );
    assert!(boot_file(&img, "user-data").is_none());
    assert!(boot_file(&img, "cmdline.txt").is_some_and(|c| c.contains("root=PARTUUID=fea5fea5-02")));

    run_ok(
        Command::new("sha256sum")
            .arg("-c")
            .arg("SHA256SUMS")
            .current_dir(bench.dist()),
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(bench.dist().join("acoupi-9.9.9-arm64.manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    assert_eq!(manifest["version"], "9.9.9");
    assert_eq!(manifest["arch"], "arm64");
    assert_eq!(manifest["services_enabled"], false);
    assert_eq!(manifest["config"]["source"], "default");
    assert_eq!(manifest["base_image"]["codename"], "trixie");
    assert_eq!(manifest["binary_sha256"].as_str().map(str::len), Some(64));
    let raw = text(&run_ok(Command::new("sha256sum").arg(&img)).stdout);
    assert_eq!(
        manifest["image"]["raw_sha256"].as_str(),
        raw.split(' ').next()
    );
}

#[test]
fn bake_is_byte_reproducible_with_the_same_source_date_epoch() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let digest = |bench: &Bench| -> serde_json::Value {
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs::read(bench.dist().join("acoupi-9.9.9-arm64.manifest.json")).expect("manifest"),
        )
        .expect("manifest JSON");
        manifest["image"]["raw_sha256"].clone()
    };
    bench.bake_ok(&base, &[]);
    let first = digest(&bench);
    fs::remove_dir_all(bench.dist()).expect("clear dist");
    bench.bake_ok(&base, &[]);
    assert_eq!(first, digest(&bench));
}

#[test]
fn full_root_that_is_the_last_partition_is_grown_to_fit() {
    let bench = Bench::new();
    let base = bench.base(&["--root-mib", "24", "--fill-mib", "20"]);
    bench.bake_ok(&base, &[]);
    let img = bench.restored();
    assert_clean(&img);
    let table: serde_json::Value =
        serde_json::from_slice(&run_ok(Command::new("sfdisk").arg("--json").arg(&img)).stdout)
            .expect("sfdisk JSON");
    let sectors = table["partitiontable"]["partitions"][1]["size"]
        .as_u64()
        .expect("partition 2 size");
    assert!(sectors > 24 * 2048, "partition 2 grew: {sectors} sectors");
    let sb = text(&run_ok(Command::new("dumpe2fs").arg("-h").arg(rootfs(&img))).stdout);
    let field = |k: &str| -> u64 {
        sb.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{k} in superblock"))
    };
    assert_eq!(
        field("Block count:") * field("Block size:"),
        sectors * 512,
        "file system fills exactly its partition"
    );
}

#[test]
fn missing_base_image_is_refused() {
    let bench = Bench::new();
    bench.bake_fails(&bench.path("nope.img"), &[], "base image");
}

#[test]
fn base_with_wrong_checksum_is_refused() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    bench.bake_fails(
        &base,
        &["--base-sha256", &"0".repeat(64)],
        "checksum mismatch",
    );
}

#[test]
fn base_without_ext4_root_is_refused() {
    let bench = Bench::new();
    let base = bench.base(&["--root-fs", "none"]);
    bench.bake_fails(&base, &[], "holds no ext4 file system");
}

#[test]
fn root_too_full_to_grow_is_refused() {
    let bench = Bench::new();
    let base = bench.base(&["--root-mib", "24", "--fill-mib", "20", "--extra-partition"]);
    bench.bake_fails(&base, &[], "cannot grow");
}

#[test]
fn unknown_arch_is_a_usage_error() {
    let bench = Bench::new();
    let out = script("build-image.sh")
        .args(["--arch", "riscv64", "--dist"])
        .arg(bench.dist())
        .output()
        .expect("run build-image.sh");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown ARCH 'riscv64'; use arm64 or armhf"));
    assert!(!bench.dist().exists());
}

#[test]
fn pinned_bases_name_a_url_and_sha256_for_both_arches() {
    let pins = fs::read_to_string(repo().join("image/base-images.tsv")).expect("pins");
    for arch in ["arm64", "armhf"] {
        let line = pins
            .lines()
            .find(|l| l.starts_with(&format!("{arch}\t")))
            .unwrap_or_else(|| panic!("no pin for {arch}"));
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(fields[1].starts_with("https://") && fields[1].ends_with(".img.xz"));
        assert!(
            fields[1].contains(arch),
            "{arch} pin points at an {arch} image"
        );
        assert_eq!(fields[2].len(), 64);
        assert!(fields[2].chars().all(|c| c.is_ascii_hexdigit()));
    }
}

#[test]
fn armhf_bakes_the_armv7_musl_binary_by_default() {
    let bench = Bench::new();
    let out = script("build-image.sh")
        .args(["--arch", "armhf", "--dist"])
        .arg(bench.dist())
        .arg("--build-dir")
        .arg(bench.path("build"))
        .output()
        .expect("run build-image.sh");
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("target/armv7-unknown-linux-musleabihf/release/acoupi not found"),
        "{stderr}"
    );
    assert!(!bench.dist().exists());
}
