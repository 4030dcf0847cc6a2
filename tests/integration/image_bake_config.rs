//! The image pipeline with a site configuration (`--config`), on the same synthetic base
//! and helpers as `image_bake`: what the file holds is the host binary's answer
//! (`acoupi config inspect --json FILE`, the same loader as the device), so a rejected
//! file fails the bake with the loader's reason, a deployment enables the recorder and
//! seeds cloud-init, and a secret makes the baked file 0600 for the `acoupi` user. A
//! model given with `--model` lands where the file's `detection.model_file` says, or the
//! bake is refused.

use std::path::Path;

use crate::image_bake::{
    assert_clean, boot_file, debugfs, inode, script, text, wants, Bench, EPOCH,
};

#[test]
fn site_config_with_deployment_enables_the_recorder_and_seeds_cloud_init() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let site = "(microphone: (device_name: \"USB\"), deployment: Some((name: \"wood-7\", latitude: 52.1, longitude: 0.3)))\n";
    let config = bench.write("site.ron", site);
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtest field@laptop";
    bench.bake_ok(
        &base,
        &[
            "--config",
            config.to_str().expect("utf-8 path"),
            "--hostname",
            "wood-7",
            "--ssh-pubkey",
            key,
            "--wifi-ssid",
            "Field \"Net\"",
            "--wifi-psk",
            "s3cret pass",
            "--wifi-country",
            "GB",
            "--timezone",
            "Europe/London",
        ],
    );
    let img = bench.restored();
    assert_clean(&img);

    let wants = wants(&img);
    for unit in [
        "acoupi.service",
        "acoupi-beat.service",
        "acoupi-boot-import.service",
    ] {
        assert!(wants.contains(unit), "{unit} enabled:\n{wants}");
        let link = text(&debugfs(
            &img,
            &format!("stat /etc/systemd/system/multi-user.target.wants/{unit}"),
        ));
        assert!(
            link.contains(&format!(
                "Fast link dest: \"/usr/lib/systemd/system/{unit}\""
            )),
            "{unit} link:\n{link}"
        );
    }
    assert_eq!(text(&debugfs(&img, "cat /etc/acoupi/acoupi.ron")), site);
    assert_eq!(boot_file(&img, "acoupi.ron").as_deref(), Some(site));

    let user_data = boot_file(&img, "user-data").expect("user-data");
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(user_data.contains("hostname: \"wood-7\""), "{user_data}");
    assert!(user_data.contains(key), "{user_data}");
    assert!(user_data.contains("lock_passwd: true"), "no password login");
    let network = boot_file(&img, "network-config").expect("network-config");
    assert!(network.contains("\"Field \\\"Net\\\"\":"), "{network}");
    assert!(network.contains("password: \"s3cret pass\""), "{network}");
    assert!(boot_file(&img, "meta-data").is_some_and(|m| m.starts_with("instance-id: acoupi-")));
    assert_eq!(boot_file(&img, "ssh").as_deref(), Some(""));
}

/// Asserts the baked `/etc/acoupi/acoupi.ron` is mode 0600 and owned by the `acoupi`
/// user and group of the image's own `/etc/passwd`, as for a file holding a secret.
#[track_caller]
fn assert_config_is_the_service_users_only(img: &Path) {
    let passwd = text(&debugfs(img, "cat /etc/passwd"));
    let acoupi: Vec<u32> = passwd
        .lines()
        .find(|l| l.starts_with("acoupi:"))
        .expect("acoupi user")
        .split(':')
        .skip(2)
        .take(2)
        .map(|n| n.parse().expect("uid/gid"))
        .collect();
    assert_eq!(
        inode(img, "/etc/acoupi/acoupi.ron"),
        ("0600".into(), acoupi[0], acoupi[1])
    );
}

/// A site configuration with a password is baked as `acoupi config set` leaves it on a
/// device: mode 0600, owned by the service user (who must read it), not world-readable.
#[test]
fn site_config_with_a_password_is_readable_by_the_service_user_only() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let site = "(program: connected, microphone: (device_name: \"USB\"),\n messaging: Some((mqtt: Some((host: \"broker.example\", username: Some(\"pi\"), password: Some(\"s3cret\"))))))\n";
    let config = bench.write("site.ron", site);
    bench.bake_ok(&base, &["--config", config.to_str().expect("utf-8 path")]);
    let img = bench.restored();
    assert_config_is_the_service_users_only(&img);
    assert_eq!(text(&debugfs(&img, "cat /etc/acoupi/acoupi.ron")), site);
}

/// Issue 11: the bake's grep missed a raw string (`r"hunter2"`) and a line break after
/// `password:`, and baked such a file world-readable; the binary's answer catches both.
#[test]
fn issue_11_raw_string_password_after_a_line_break_is_baked_0600_for_acoupi() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let site = "(program: connected, microphone: (device_name: \"USB\"),\n messaging: (mqtt: (host: \"broker.example\", username: \"pi\",\n  password:\n   r\"hunter2\")),\n deployment: (name: \"wood\", latitude: 51.5, longitude: -0.1))\n";
    let config = bench.write("site.ron", site);
    bench.bake_ok(&base, &["--config", config.to_str().expect("utf-8 path")]);
    let img = bench.restored();
    assert_config_is_the_service_users_only(&img);
    // The deployment, on its own line after `deployment:`, enabled the recorder too.
    let wants = wants(&img);
    assert!(wants.contains(" acoupi.service"), "{wants}");
}

/// A configuration whose only `password` is in a comment or a topic holds no secret: it
/// stays readable by operators (0644, root), as the device would write it.
#[test]
fn password_only_in_a_comment_is_not_a_secret() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let site = "(program: connected, microphone: (device_name: \"USB\"),\n // password: \"old\"\n messaging: (mqtt: (host: \"b\", topic: \"password: \\\"x\\\"\")))\n";
    let config = bench.write("site.ron", site);
    bench.bake_ok(&base, &["--config", config.to_str().expect("utf-8 path")]);
    let img = bench.restored();
    assert_eq!(inode(&img, "/etc/acoupi/acoupi.ron"), ("0644".into(), 0, 0));
}

#[test]
fn site_config_without_host_binary_is_refused_naming_the_fix() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let config = bench.write("site.ron", "(microphone: (device_name: \"USB\"))\n");
    let out = script("build-image.sh")
        .args(["--arch", "arm64", "--version", "9.9.9", "--base"])
        .arg(&base)
        .arg("--binary")
        .arg(bench.path("acoupi"))
        .arg("--host-binary")
        .arg(bench.path("no-such-acoupi"))
        .arg("--dist")
        .arg(bench.dist())
        .arg("--build-dir")
        .arg(bench.path("build"))
        .arg("--config")
        .arg(&config)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .expect("run build-image.sh");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no host acoupi binary at")
            && stderr.contains("run make build or pass --host-binary"),
        "{stderr}"
    );
    assert!(!bench.dist().exists());
}

#[test]
fn site_config_without_deployment_enables_nothing() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let config = bench.write(
        "site.ron",
        "// deployment: Some((name: \"x\"))\n(timezone: \"UTC\", microphone: (device_name: \"USB\"))\n",
    );
    bench.bake_ok(&base, &["--config", config.to_str().expect("utf-8 path")]);
    let img = bench.restored();
    let wants = wants(&img);
    assert!(!wants.contains(" acoupi.service"), "{wants}");
    assert!(!wants.contains("acoupi-beat.service"), "{wants}");
}

#[test]
fn invalid_site_configuration_is_refused_with_the_validators_reason() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let config = bench.write("site.ron", "(INVALID: 1)\n");
    bench.bake_fails(
        &base,
        &["--config", config.to_str().expect("utf-8 path")],
        "invalid site configuration",
    );
    let out = bench.bake(&base, &["--config", config.to_str().expect("utf-8 path")]);
    assert!(text(&out.stderr).contains("unknown field `INVALID` at the top level"));
}

/// A site configuration running a model in the image's model folder.
const MODEL_SITE: &str = "(microphone: (device_name: \"USB\"), detection: Some((model_file: \"/usr/share/acoupi/models/bats.onnx\", labels_file: Some(\"/usr/share/acoupi/models/bats.txt\"))))\n";

#[test]
fn a_model_and_labels_are_baked_read_only_where_the_configuration_runs_them() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let config = bench.write("site.ron", MODEL_SITE);
    // The bake copies bytes; whether they load is `acoupi check`'s business on the device.
    let model: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(bench.path("bats.onnx"), &model).unwrap();
    let labels = bench.write("bats.txt", "Myotis\nPipistrellus\n");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    bench.bake_ok(
        &base,
        &[
            "--config",
            &path(&config),
            "--model",
            &path(&bench.path("bats.onnx")),
            "--labels",
            &path(&labels),
        ],
    );
    let img = bench.restored();
    assert_clean(&img);
    assert_eq!(
        debugfs(&img, "cat /usr/share/acoupi/models/bats.onnx"),
        model
    );
    assert_eq!(
        text(&debugfs(&img, "cat /usr/share/acoupi/models/bats.txt")),
        "Myotis\nPipistrellus\n"
    );
    for (path, mode) in [
        ("/usr/share/acoupi/models", "0755"),
        ("/usr/share/acoupi/models/bats.onnx", "0644"),
        ("/usr/share/acoupi/models/bats.txt", "0644"),
    ] {
        assert_eq!(inode(&img, path), (mode.to_string(), 0, 0), "{path}");
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bench.dist().join("acoupi-9.9.9-arm64.manifest.json")).unwrap(),
    )
    .unwrap();
    let m = &manifest["detection_model"];
    assert_eq!(m["path"], "/usr/share/acoupi/models/bats.onnx");
    assert_eq!(m["sha256"].as_str().map(str::len), Some(64), "{manifest:#}");
}

#[test]
fn a_model_the_configuration_does_not_run_or_a_run_model_not_baked_is_refused() {
    let bench = Bench::new();
    let base = bench.base(&[]);
    let site = bench.write("site.ron", MODEL_SITE);
    let other = bench.write("other.onnx", "not the configured one");
    let labels = bench.write("bats.txt", "Myotis\n");
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    // MODEL= names another file than detection.model_file.
    bench.bake_fails(
        &base,
        &[
            "--config",
            &p(&site),
            "--model",
            &p(&other),
            "--labels",
            &p(&labels),
        ],
        "detection.model_file is /usr/share/acoupi/models/bats.onnx, but",
    );
    let out = bench.bake(&base, &["--config", &p(&site), "--model", &p(&other)]);
    assert!(
        text(&out.stderr)
            .contains("set detection.model_file to \"/usr/share/acoupi/models/other.onnx\""),
        "{}",
        text(&out.stderr)
    );
    // The configuration runs a model in the image's folder, and none is given.
    bench.bake_fails(
        &base,
        &["--config", &p(&site)],
        "nothing is baked there; pass the file: make image ... MODEL=/path/to/bats.onnx",
    );
    // A model without a configuration to run it.
    let no_site = bench.bake(&base, &["--model", &p(&other)]);
    assert!(!no_site.status.success());
    assert!(
        text(&no_site.stderr).contains(
            "needs a CONFIG= whose detection.model_file is /usr/share/acoupi/models/other.onnx"
        ),
        "{}",
        text(&no_site.stderr)
    );
}
