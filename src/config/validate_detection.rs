//! Validation of the `detection` section: what can be said without opening a file. The
//! model path must be absolute (the daemons run with another working directory than
//! the shell that set it), the threshold and overlap in range, the classes named once.
//! Whether the model loads, and whether `classes` are its labels, is `acoupi check`'s
//! business (`detection::Model::load`).

use crate::audio::device::RATE_RANGE;
use crate::detection::config::DetectionConfig;

use super::schema::Config;

/// The largest window overlap: at 0.9 every sample is analysed ten times already.
pub const MAX_OVERLAP: f64 = 0.9;

/// Problems of the detection section as `(dotted field, message)` pairs.
pub fn detection_errors(config: &Config) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if let Some(d) = &config.detection {
        section_errors(d, &mut errors);
    }
    errors
}

fn section_errors(d: &DetectionConfig, errors: &mut Vec<(String, String)>) {
    let mut push = |field: &str, message: String| errors.push((field.to_owned(), message));
    if d.model_file.as_os_str().is_empty() {
        push(
            "detection.model_file",
            "is not set: point it at the model, e.g. `acoupi config set detection.model_file /var/lib/acoupi/models/model.onnx`, or remove the section with `acoupi config set detection None`".into(),
        );
    } else if !d.model_file.is_absolute() {
        push(
            "detection.model_file",
            format!(
                "must be an absolute path, got {:?}: the recorder does not run in your directory",
                d.model_file.display().to_string()
            ),
        );
    }
    if let Some(labels) = &d.labels_file {
        if !labels.is_absolute() {
            push(
                "detection.labels_file",
                format!(
                    "must be an absolute path, got {:?}, or None to number the classes",
                    labels.display().to_string()
                ),
            );
        }
    }
    if !RATE_RANGE.contains(&d.samplerate) {
        push(
            "detection.samplerate",
            format!(
                "must be between {} and {} Hz (the rate the model takes), got {}",
                RATE_RANGE.start(),
                RATE_RANGE.end(),
                d.samplerate
            ),
        );
    }
    if !(0.0..=MAX_OVERLAP).contains(&d.overlap) {
        push(
            "detection.overlap",
            format!(
                "must be between 0 and {MAX_OVERLAP} (a fraction of the window), got {}",
                d.overlap
            ),
        );
    }
    if !(0.0..=1.0).contains(&d.keep_negatives) {
        push(
            "detection.keep_negatives",
            format!(
                "must be between 0 and 1 (the fraction of recordings without a detection to keep), got {}",
                d.keep_negatives
            ),
        );
    }
    if !(0.0..=1.0).contains(&d.threshold) {
        push(
            "detection.threshold",
            format!(
                "must be between 0 and 1 (a model score), got {}",
                d.threshold
            ),
        );
    }
    for (i, class) in d.classes.iter().enumerate() {
        if class.trim().is_empty() {
            push(
                "detection.classes",
                format!("entry {i} is empty: list class labels, or [] for every class"),
            );
        } else if d.classes[..i].contains(class) {
            push(
                "detection.classes",
                format!("lists {class:?} twice: list each class once"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate;

    fn with(d: DetectionConfig) -> Result<(), Vec<crate::config::FieldError>> {
        let mut c = Config::default();
        c.microphone.device_name = "USB".into();
        c.detection = Some(d);
        validate(&c)
    }

    fn errors(d: DetectionConfig) -> Vec<String> {
        with(d)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn good() -> DetectionConfig {
        DetectionConfig {
            model_file: "/models/m.onnx".into(),
            ..DetectionConfig::default()
        }
    }

    #[test]
    fn a_complete_section_is_valid_and_none_is_not_checked() {
        with(good()).unwrap();
        let mut c = Config::default();
        c.microphone.device_name = "USB".into();
        validate(&c).unwrap();
    }

    #[test]
    fn each_bad_field_is_named_with_its_fix() {
        let e = errors(DetectionConfig::default());
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("detection.model_file is not set: point it at the model"));
        let e = errors(DetectionConfig {
            model_file: "m.onnx".into(),
            labels_file: Some("labels.txt".into()),
            samplerate: 100,
            overlap: 0.95,
            threshold: 1.5,
            classes: vec!["a".into(), "".into(), "a".into()],
            keep_negatives: -0.1,
            ..good()
        });
        let fields: Vec<&str> = e.iter().map(|m| m.split(' ').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "detection.model_file",
                "detection.labels_file",
                "detection.samplerate",
                "detection.overlap",
                "detection.keep_negatives",
                "detection.threshold",
                "detection.classes",
                "detection.classes"
            ],
            "{e:?}"
        );
        assert!(e[4].contains("between 0 and 1 (the fraction of recordings without a detection to keep), got -0.1"), "{}", e[4]);
        assert!(e[5].contains("between 0 and 1"), "{}", e[5]);
        assert!(e[7].contains("\"a\" twice"), "{}", e[7]);
    }
}
