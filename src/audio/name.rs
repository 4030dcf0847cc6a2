//! The name of a recording: the UTC instant of its first sample to the millisecond,
//! `YYYYMMDD_HHMMSS_mmm`, then `_1`, `_2`, … when that name is taken (the clock stepped
//! back and another recording started at the same instant).
//!
//! The writer names files with it, start-up repair reads the start back from it (a
//! `.part` has no other record of when it began), and the management task keeps it when
//! it moves a recording; upstream acoupi's tools sort recordings by it.

use jiff::Timestamp;

/// `YYYYMMDD_HHMMSS_mmm`, as `strftime` and `strptime` spell it.
const FORMAT: &str = "%Y%m%d_%H%M%S_%3f";
/// The length of a stem without a `_n` suffix.
const STEM_LEN: usize = "YYYYMMDD_HHMMSS_mmm".len();

/// The file name stem of a recording whose first sample is at `t`, in UTC.
pub fn file_stem(t: Timestamp) -> String {
    t.strftime(FORMAT).to_string()
}

/// `stem` for the first recording to want it (`n` = 0), `stem_n` for the next ones.
pub fn numbered(stem: &str, n: u32) -> String {
    if n == 0 {
        stem.to_string()
    } else {
        format!("{stem}_{n}")
    }
}

/// The instant a stem written by [`file_stem`] (with or without a `_n` suffix) names;
/// `None` for any other name.
pub fn start_of(stem: &str) -> Option<Timestamp> {
    let base = stem.get(..STEM_LEN)?;
    let dt = jiff::civil::DateTime::strptime(FORMAT, base).ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_is_utc_with_milliseconds_and_reads_back() {
        let t: Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(file_stem(t), "20260102_030405_678");
        assert_eq!(start_of("20260102_030405_678"), Some(t));
        assert_eq!(start_of(&numbered("20260102_030405_678", 2)), Some(t));
    }

    #[test]
    fn numbered_leaves_the_first_name_alone() {
        assert_eq!(numbered("20260102_030405_678", 0), "20260102_030405_678");
        assert_eq!(numbered("20260102_030405_678", 1), "20260102_030405_678_1");
    }

    #[test]
    fn other_names_name_no_instant() {
        for stem in ["recording", "20260102_030405", "20261302_030405_678", ""] {
            assert_eq!(start_of(stem), None, "{stem}");
        }
    }
}
