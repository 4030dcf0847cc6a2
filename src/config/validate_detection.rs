//! Validation of the `detection` section: what can be said without opening a file. The
//! model path must be absolute (the daemons run with another working directory than
//! the shell that set it), the threshold and overlap in range, the classes named once.
//! Whether the model loads, and whether `classes` are its labels, is `acoupi check`'s
//! business (`detection::Model::load`).

use crate::audio::device::RATE_RANGE;
use crate::detection::config::{DetectionConfig, ModelKind};
use crate::detection::{batdetect2, birdnet, birdnet_location};

use super::schema::Config;

/// The largest window overlap: at 0.9 every sample is analysed ten times already.
pub const MAX_OVERLAP: f64 = 0.9;

/// The largest BirdNET overlap, seconds (BirdNET-Analyzer's limit: windows 0.1 s apart).
pub const MAX_BIRDNET_OVERLAP_S: f64 = 2.9;

/// BirdNET's sensitivity range (birdnetlib clamps to it; we refuse what it would clamp).
pub const SENSITIVITY: std::ops::RangeInclusive<f64> = 0.5..=1.5;

/// BirdNET's threshold range (birdnetlib clamps `min_conf` to it).
pub const BIRDNET_THRESHOLD: std::ops::RangeInclusive<f64> = 0.01..=0.99;

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
    match d.kind {
        ModelKind::OnnxWindow => window_errors(d, &mut push),
        ModelKind::Birdnet => birdnet_errors(d, &mut push),
        ModelKind::Batdetect2 => batdetect2_errors(d, &mut push),
    }
    location_errors(d, &mut push);
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
    if !(0.0..=1.0).contains(&d.keep_negatives) {
        push(
            "detection.keep_negatives",
            format!(
                "must be between 0 and 1 (the fraction of recordings without a detection to keep), got {}",
                d.keep_negatives
            ),
        );
    }
}

/// The fields of an ONNX window model: its rate, overlap as a fraction, threshold.
fn window_errors(d: &DetectionConfig, push: &mut impl FnMut(&str, String)) {
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
    score_errors(d, "a model score", push);
}

/// The threshold of a model whose scores are probabilities (`meaning` says of what),
/// and the sensitivity only BirdNET takes.
fn score_errors(d: &DetectionConfig, meaning: &str, push: &mut impl FnMut(&str, String)) {
    if !(0.0..=1.0).contains(&d.threshold()) {
        push(
            "detection.threshold",
            format!("must be between 0 and 1 ({meaning}), got {}", d.threshold()),
        );
    }
    if d.sensitivity != 1.0 {
        push(
            "detection.sensitivity",
            format!(
                "is for kind birdnet only, got {}: remove it or set it to 1.0",
                d.sensitivity
            ),
        );
    }
}

/// The files a named model needs: `model_file` with the extension `ext` (`takes` says
/// which file, `fix` how to get it) and a `labels_file` (`labels` says which).
fn model_files_errors(
    d: &DetectionConfig,
    ext: &str,
    takes: &str,
    fix: &str,
    labels: &str,
    push: &mut impl FnMut(&str, String),
) {
    if d.model_file.extension().is_some_and(|e| e != ext) {
        push(
            "detection.model_file",
            format!(
                "{takes}, got {:?}: {fix}",
                d.model_file.display().to_string()
            ),
        );
    }
    if d.labels_file.is_none() {
        push("detection.labels_file", format!("is not set: {labels}"));
    }
}

/// The fields of BirdNET: its file names, 48 kHz, overlap in seconds, its ranges.
fn birdnet_errors(d: &DetectionConfig, push: &mut impl FnMut(&str, String)) {
    model_files_errors(
        d,
        "tflite",
        "kind birdnet takes BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
        "point it at that file (scripts/fetch-models.sh unpacks it), or set detection.kind to onnx_window for an ONNX model",
        "kind birdnet needs BirdNET_GLOBAL_6K_V2.4_Labels.txt, the labels file next to the model",
        push,
    );
    if d.samplerate != birdnet::SAMPLERATE {
        push(
            "detection.samplerate",
            format!(
                "kind birdnet takes {} Hz, got {}: set it to {} (recordings at other rates are resampled)",
                birdnet::SAMPLERATE,
                d.samplerate,
                birdnet::SAMPLERATE
            ),
        );
    }
    if !(0.0..=MAX_BIRDNET_OVERLAP_S).contains(&d.overlap) {
        push(
            "detection.overlap",
            format!(
                "must be between 0 and {MAX_BIRDNET_OVERLAP_S} seconds for kind birdnet (its windows are 3 s), got {}",
                d.overlap
            ),
        );
    }
    if !BIRDNET_THRESHOLD.contains(&d.threshold()) {
        push(
            "detection.threshold",
            format!(
                "must be between {} and {} for kind birdnet, got {}",
                BIRDNET_THRESHOLD.start(),
                BIRDNET_THRESHOLD.end(),
                d.threshold()
            ),
        );
    }
    if !SENSITIVITY.contains(&d.sensitivity) {
        push(
            "detection.sensitivity",
            format!(
                "must be between {} and {} (1.0 is BirdNET's default), got {}",
                SENSITIVITY.start(),
                SENSITIVITY.end(),
                d.sensitivity
            ),
        );
    }
}

/// The fields of BatDetect2: its converted files; it takes no overlap or sensitivity and
/// brings every recording to 256 kHz itself.
fn batdetect2_errors(d: &DetectionConfig, push: &mut impl FnMut(&str, String)) {
    model_files_errors(
        d,
        "onnx",
        "kind batdetect2 takes the ONNX conversion of Net2DFast_UK_same.pth.tar",
        "make it with scripts/detection-reference/batdetect2_export.py (make models)",
        "kind batdetect2 needs the class names batdetect2_export.py writes beside the model",
        push,
    );
    let rate = batdetect2::frontend::SAMPLERATE;
    if d.samplerate != rate && d.samplerate != DetectionConfig::default().samplerate {
        push(
            "detection.samplerate",
            format!(
                "kind batdetect2 resamples every recording to {rate} Hz itself, got {}: remove the field or set it to {rate}",
                d.samplerate
            ),
        );
    }
    if d.overlap != 0.0 {
        push(
            "detection.overlap",
            format!(
                "kind batdetect2 cuts 3-s chunks without overlap, got {}: remove it or set it to 0",
                d.overlap
            ),
        );
    }
    score_errors(d, "the probability of a bat call", push);
}

/// BirdNET's location filter: its file, week and threshold, for kind birdnet only; the
/// site is the deployment's (`acoupi deployment start`), not a field here.
fn location_errors(d: &DetectionConfig, push: &mut impl FnMut(&str, String)) {
    let set = [
        (
            "detection.location_model_file",
            d.location_model_file.is_some(),
        ),
        ("detection.week", d.week.is_some()),
        (
            "detection.location_threshold",
            d.location_threshold.is_some(),
        ),
    ];
    if d.kind != ModelKind::Birdnet {
        for (field, _) in set.iter().filter(|(_, set)| *set) {
            push(
                field,
                "is for kind birdnet only (its location/week filter): remove it".into(),
            );
        }
        return;
    }
    match &d.location_model_file {
        Some(path) if !path.is_absolute() => push(
            "detection.location_model_file",
            format!(
                "must be an absolute path, got {:?}, or None for no location filter",
                path.display().to_string()
            ),
        ),
        Some(path) if path.extension().is_some_and(|e| e != "tflite") => push(
            "detection.location_model_file",
            format!(
                "takes BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite, got {:?}: point it at that file (scripts/fetch-models.sh unpacks it)",
                path.display().to_string()
            ),
        ),
        Some(_) => {}
        None => {
            for (field, _) in set[1..].iter().filter(|(_, set)| *set) {
                push(
                    field,
                    "needs detection.location_model_file (BirdNET's meta-data model): set it, or remove this field".into(),
                );
            }
            return;
        }
    }
    if let Some(week) = d.week {
        if week != birdnet_location::ALL_YEAR && !birdnet_location::WEEKS.contains(&week) {
            push(
                "detection.week",
                format!(
                    "must be 1 to 48 (BirdNET's weeks, four a month) or -1 for the whole year, got {week}; or None for each recording's week"
                ),
            );
        }
    }
    if let Some(t) = d.location_threshold {
        if !(t > 0.0 && t <= 1.0) {
            push(
                "detection.location_threshold",
                format!(
                    "must be above 0 and at most 1 (a meta-model probability; birdnetlib uses {}), got {t}",
                    birdnet_location::DEFAULT_THRESHOLD
                ),
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

    /// The fields both kinds check, in the order their messages come.
    const EVERY_FIELD: [&str; 5] = [
        "detection.model_file",
        "detection.labels_file",
        "detection.samplerate",
        "detection.overlap",
        "detection.threshold",
    ];

    /// The dotted field each message starts with, in order.
    fn assert_fields(errors: &[String], want: &[&str]) {
        let fields: Vec<&str> = errors
            .iter()
            .map(|m| m.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(fields, want, "{errors:?}");
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
            threshold: Some(1.5),
            classes: vec!["a".into(), "".into(), "a".into()],
            keep_negatives: -0.1,
            ..good()
        });
        assert_fields(
            &e,
            &[
                &EVERY_FIELD[..],
                &[
                    "detection.classes",
                    "detection.classes",
                    "detection.keep_negatives",
                ],
            ]
            .concat(),
        );
        assert!(e[4].contains("between 0 and 1"), "{}", e[4]);
        assert!(e[6].contains("\"a\" twice"), "{}", e[6]);
        assert!(
            e[7].ends_with("between 0 and 1 (the fraction of recordings without a detection to keep), got -0.1"),
            "{}",
            e[7]
        );
    }

    #[test]
    fn birdnet_fields_are_checked_for_birdnet() {
        let bird = DetectionConfig {
            kind: ModelKind::Birdnet,
            model_file: "/models/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite".into(),
            labels_file: Some("/models/BirdNET_GLOBAL_6K_V2.4_Labels.txt".into()),
            // Seconds for BirdNET: 2 s would be refused as a fraction of the window.
            overlap: 2.0,
            ..DetectionConfig::default()
        };
        with(bird.clone()).unwrap();
        assert_eq!(bird.threshold(), 0.1, "birdnetlib's default");
        let e = errors(DetectionConfig {
            model_file: "/models/model.onnx".into(),
            labels_file: None,
            samplerate: 44_100,
            overlap: 3.0,
            threshold: Some(0.001),
            sensitivity: 2.0,
            ..bird
        });
        assert_fields(&e, &[&EVERY_FIELD[..], &["detection.sensitivity"]].concat());
        assert!(
            e[0].contains("set detection.kind to onnx_window"),
            "{}",
            e[0]
        );
        assert!(e[2].contains("set it to 48000"), "{}", e[2]);
        let e = errors(DetectionConfig {
            sensitivity: 1.2,
            ..good()
        });
        assert!(
            e[0].starts_with("detection.sensitivity is for kind birdnet only"),
            "{e:?}"
        );
    }

    #[test]
    fn location_fields_are_checked_for_birdnet_and_refused_elsewhere() {
        let bird = DetectionConfig {
            kind: ModelKind::Birdnet,
            model_file: "/models/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite".into(),
            labels_file: Some("/models/BirdNET_GLOBAL_6K_V2.4_Labels.txt".into()),
            location_model_file: Some(
                "/models/BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite".into(),
            ),
            ..DetectionConfig::default()
        };
        with(bird.clone()).unwrap();
        for week in [-1, 1, 48] {
            with(DetectionConfig {
                week: Some(week),
                location_threshold: Some(0.1),
                ..bird.clone()
            })
            .unwrap();
        }
        assert_eq!(bird.location_threshold(), 0.03, "birdnetlib's default");
        let e = errors(DetectionConfig {
            week: Some(49),
            location_threshold: Some(0.0),
            ..bird.clone()
        });
        assert_fields(&e, &["detection.week", "detection.location_threshold"]);
        assert!(e[0].contains("must be 1 to 48"), "{}", e[0]);
        assert!(e[1].contains("birdnetlib uses 0.03), got 0"), "{}", e[1]);
        let e = errors(DetectionConfig {
            location_model_file: Some("mdata.tflite".into()),
            ..bird.clone()
        });
        assert_fields(&e, &["detection.location_model_file"]);
        assert!(e[0].contains("must be an absolute path"), "{}", e[0]);
        let e = errors(DetectionConfig {
            location_model_file: Some("/models/mdata.onnx".into()),
            ..bird.clone()
        });
        assert!(
            e[0].contains("takes BirdNET_GLOBAL_6K_V2.4_MData"),
            "{}",
            e[0]
        );
        let e = errors(DetectionConfig {
            location_model_file: None,
            week: Some(3),
            ..bird
        });
        assert_eq!(
            e,
            ["detection.week needs detection.location_model_file (BirdNET's meta-data model): set it, or remove this field"]
        );
        let e = errors(DetectionConfig {
            location_model_file: Some("/models/m.tflite".into()),
            week: Some(3),
            ..good()
        });
        assert_fields(&e, &["detection.location_model_file", "detection.week"]);
        assert!(e[1].ends_with("is for kind birdnet only (its location/week filter): remove it"));
    }

    #[test]
    fn batdetect2_fields_are_checked_for_batdetect2() {
        let bats = DetectionConfig {
            kind: ModelKind::Batdetect2,
            model_file: "/models/Net2DFast_UK_same.onnx".into(),
            labels_file: Some("/models/labels.txt".into()),
            ..DetectionConfig::default()
        };
        with(bats.clone()).unwrap();
        with(DetectionConfig {
            samplerate: 256_000,
            ..bats.clone()
        })
        .unwrap();
        assert_eq!(bats.threshold(), 0.4, "acoupi-batdetect2's default");
        let e = errors(DetectionConfig {
            model_file: "/models/Net2DFast_UK_same.pth.tar".into(),
            labels_file: None,
            samplerate: 384_000,
            overlap: 0.5,
            threshold: Some(1.5),
            sensitivity: 1.2,
            ..bats
        });
        assert_fields(&e, &[&EVERY_FIELD[..], &["detection.sensitivity"]].concat());
        assert!(e[0].contains("batdetect2_export.py"), "{}", e[0]);
        assert!(
            e[2].contains("resamples every recording to 256000 Hz itself, got 384000"),
            "{}",
            e[2]
        );
        assert!(e[3].contains("without overlap"), "{}", e[3]);
    }
}
