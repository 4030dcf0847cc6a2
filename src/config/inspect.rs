//! What a configuration file is, in facts a script can act on: valid or not (and why),
//! which program, whether it carries a deployment, whether it holds a secret.
//!
//! The image bake asks these questions of a site configuration on the build machine
//! (`acoupi config inspect FILE --json`) instead of re-implementing the RON grammar with
//! grep and sed, which missed raw strings (`password: r"hunter2"`) and line breaks. The
//! answers come from the real loader, so they cannot disagree with what the device does.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::schema::{Config, Program};
use super::{load, read};

/// The facts about one configuration file; [`inspect`] fills it in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// The file loads and validates: the device would accept it.
    pub valid: bool,
    /// Why it does not (the whole cause chain on one line), `None` when valid.
    pub error: Option<String>,
    /// It carries a `deployment` section (the device starts recording with no terminal).
    pub has_deployment: bool,
    /// The deployment's name, when there is one.
    pub deployment_name: Option<String>,
    /// It holds a password or token: it must be installed readable by its owner only.
    pub holds_secrets: bool,
    /// The program it selects; `None` when the file does not even parse.
    pub program: Option<Program>,
    /// `detection.model_file`, when there is a detection section: the image bake checks
    /// that a model it copies in (`MODEL=`) is the one the configuration runs.
    pub detection_model_file: Option<PathBuf>,
    /// `detection.labels_file`, when there is one.
    pub detection_labels_file: Option<PathBuf>,
}

/// Loads `path` exactly as the device would and reports on it. A file that parses but
/// does not validate still reports its deployment, program and secrets (so a caller can
/// say "this file holds a password" even when rejecting it); one that does not parse
/// reports nothing but the error.
pub fn inspect(path: &Path) -> Inspection {
    match load(path) {
        Ok(config) => facts(&config, None),
        Err(e) => {
            let error = Some(match &e {
                // The loader's "run `acoupi setup`" is for an installation's own file; here
                // the caller named a file that is not there.
                super::ConfigError::NotFound { path } => format!(
                    "no file at {}: give the path of a configuration file",
                    path.display()
                ),
                other => crate::error::chain(other),
            });
            match read(path) {
                Ok(config) => facts(&config, error),
                Err(_) => Inspection {
                    valid: false,
                    error,
                    has_deployment: false,
                    deployment_name: None,
                    holds_secrets: false,
                    program: None,
                    detection_model_file: None,
                    detection_labels_file: None,
                },
            }
        }
    }
}

fn facts(config: &Config, error: Option<String>) -> Inspection {
    Inspection {
        valid: error.is_none(),
        error,
        has_deployment: config.deployment.is_some(),
        deployment_name: config.deployment.as_ref().map(|s| s.name.clone()),
        holds_secrets: super::file::holds_secrets(config),
        program: Some(config.program),
        detection_model_file: config.detection.as_ref().map(|d| d.model_file.clone()),
        detection_labels_file: config
            .detection
            .as_ref()
            .and_then(|d| d.labels_file.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ron: &str) -> Inspection {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.ron");
        std::fs::write(&path, ron).unwrap();
        inspect(&path)
    }

    const MQTT_RAW: &str = "(program: connected, microphone: (device_name: \"USB\"), messaging: (mqtt: (host: \"b\", username: \"u\", password: r\"hunter2\")))";

    #[test]
    fn raw_string_password_is_a_secret() {
        let i = check(MQTT_RAW);
        assert!(i.valid, "{:?}", i.error);
        assert!(i.holds_secrets);
        assert_eq!(i.program, Some(Program::Connected));
    }

    #[test]
    fn password_after_a_line_break_is_a_secret() {
        let i = check("(program: connected, microphone: (device_name: \"USB\"),\n messaging: (http: (base_url: \"https://e.org/x\",\n  bearer_token:\n  \"t0k\")))");
        assert!(i.valid, "{:?}", i.error);
        assert!(i.holds_secrets);
    }

    #[test]
    fn invalid_but_parsed_file_still_reports_its_facts() {
        let i = check("(microphone: (device_name: \"USB\", samplerate: 1), deployment: (name: \"w\", latitude: 1.0, longitude: 2.0))");
        assert!(!i.valid);
        assert!(i
            .error
            .as_deref()
            .unwrap()
            .contains("microphone.samplerate"));
        assert!(i.has_deployment);
        assert_eq!(i.deployment_name.as_deref(), Some("w"));
    }

    #[test]
    fn the_detection_model_and_labels_are_reported_for_the_image_bake() {
        let i = check("(microphone: (device_name: \"USB\"), detection: Some((model_file: \"/usr/share/acoupi/models/m.onnx\", labels_file: Some(\"/usr/share/acoupi/models/m.txt\"))))");
        assert!(i.valid, "{:?}", i.error);
        assert_eq!(
            i.detection_model_file.as_deref(),
            Some(Path::new("/usr/share/acoupi/models/m.onnx"))
        );
        assert_eq!(
            i.detection_labels_file.as_deref(),
            Some(Path::new("/usr/share/acoupi/models/m.txt"))
        );
        assert_eq!(check(MQTT_RAW).detection_model_file, None);
    }

    #[test]
    fn unreadable_file_reports_only_the_error_with_its_cause() {
        let i = inspect(Path::new("/nonexistent/dir/acoupi.ron"));
        assert!(!i.valid);
        assert_eq!(i.program, None);
        assert!(i.error.unwrap().contains("/nonexistent/dir/acoupi.ron"));
    }
}
