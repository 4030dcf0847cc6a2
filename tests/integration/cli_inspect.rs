//! `acoupi config inspect FILE [--json]` through the real binary, as the image bake runs
//! it on the build machine: no installation, no `ACOUPI_HOME`, and answers that come from
//! the real loader where the bake's grep used to guess (issue 11: `password: r"hunter2"`
//! and a line break after `password:` were missed, so the secret was baked world-readable).

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// Runs `acoupi config inspect --json FILE` with an empty environment but for a HOME
/// that must stay empty (inspect installs nothing and needs no installation).
fn inspect(ron: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let home = dir.path().join("home");
    fs::create_dir(&home).expect("home");
    let file = dir.path().join("site.ron");
    fs::write(&file, ron).expect("write site.ron");
    let out = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["config", "inspect"])
        .args(extra)
        .arg(&file)
        .env_clear()
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .expect("running acoupi");
    assert_eq!(
        fs::read_dir(&home).expect("home").count(),
        0,
        "inspect wrote into HOME"
    );
    (out, dir)
}

/// The JSON report and the exit code.
fn report(ron: &str) -> (Value, Option<i32>, String) {
    let (out, _dir) = inspect(ron, &["--json"]);
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let value: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout:?}"));
    (
        value,
        out.status.code(),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

const MIC: &str = "microphone: (device_name: \"USB\")";

#[test]
fn issue_11_raw_string_mqtt_password_is_reported_as_a_secret() {
    let (v, code, _) = report(&format!(
        "(program: connected, {MIC},\n messaging: Some((mqtt: Some((host: \"b\", username: Some(\"pi\"), password: Some(r\"hunter2\"))))))"
    ));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        v,
        json!({"valid": true, "error": null, "has_deployment": false, "deployment_name": null,
               "holds_secrets": true, "program": "connected", "detection_model_file": null,
               "detection_labels_file": null})
    );
}

#[test]
fn issue_11_secret_after_a_line_break_is_reported() {
    let (v, code, _) = report(&format!(
        "(program: connected, {MIC},\n messaging: (mqtt: (host: \"b\", username: \"pi\", password:\n  \"hunter2\")))"
    ));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["holds_secrets"], true);
}

#[test]
fn http_bearer_token_as_a_raw_string_with_hashes_is_a_secret() {
    let (v, code, _) = report(&format!(
        "(program: connected, {MIC}, messaging: (http: (base_url: \"https://example.org/in\", bearer_token: r#\"t\"0k\"#)))"
    ));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["holds_secrets"], true);
}

#[test]
fn connected_config_without_secrets_holds_none() {
    let (v, code, _) = report(&format!(
        "(program: connected, {MIC},\n // password: \"commented out\"\n messaging: (mqtt: (host: \"b\", topic: \"password: x\")))"
    ));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["holds_secrets"], false);
    assert_eq!(v["program"], "connected");
}

#[test]
fn deployment_is_reported_with_its_name_and_a_commented_one_is_not() {
    let (v, _, _) = report(&format!(
        "({MIC},\n deployment:\n  Some((name: \"wood-7\", latitude: 51.5, longitude: -0.1)))"
    ));
    assert_eq!(v["has_deployment"], true);
    assert_eq!(v["deployment_name"], "wood-7");
    assert_eq!(v["program"], "default");
    let (v, _, _) = report(&format!(
        "({MIC},\n // deployment: Some((name: \"x\", latitude: 1.0, longitude: 2.0)),\n)"
    ));
    assert_eq!(v["has_deployment"], false);
    assert_eq!(v["deployment_name"], Value::Null);
}

#[test]
fn invalid_value_exits_2_with_the_report_and_the_field_in_the_error() {
    let (v, code, stderr) = report(
        "(program: connected, microphone: (device_name: \"USB\", samplerate: 1),\n messaging: (mqtt: (host: \"b\", username: \"u\", password: r\"p\")))",
    );
    assert_eq!(code, Some(2));
    assert_eq!(v["valid"], false);
    let error = v["error"].as_str().expect("error text");
    assert!(error.contains("microphone.samplerate"), "{error}");
    // Parsed, so the facts are still there: a rejected file with a password says so.
    assert_eq!(v["holds_secrets"], true);
    assert!(
        stderr.starts_with("error: invalid configuration in "),
        "{stderr}"
    );
}

#[test]
fn unparseable_file_exits_2_with_no_program() {
    let (v, code, stderr) = report("(INVALID: 1)\n");
    assert_eq!(code, Some(2));
    assert_eq!(v["valid"], false);
    assert_eq!(v["program"], Value::Null);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .ends_with("unknown field `INVALID` at the top level; valid fields are program, timezone, microphone, recording, paths, recording_saving, retention, heartbeat, deployment, messaging, detection"),
        "{v}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
}

#[test]
fn missing_file_exits_2_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["config", "inspect", "--json", "/nonexistent/site.ron"])
        .env_remove("ACOUPI_HOME")
        .output()
        .expect("running acoupi");
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/site.ron"));
    assert!(!Path::new("/nonexistent").exists());
}

#[test]
fn text_report_names_program_deployment_and_secrets() {
    let (out, dir) = inspect(
        &format!("(program: connected, {MIC}, messaging: (mqtt: (host: \"b\", username: \"u\", password: r\"p\")), deployment: (name: \"w\", latitude: 1.0, longitude: 2.0))"),
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let file = dir.path().join("site.ron");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{}: valid\nprogram: connected\ndeployment: \"w\" (starts with no terminal)\nsecrets: yes (installed mode 0600, owned by the service user)\n",
            file.display()
        )
    );
}
