//! Solar events (sunrise, sunset, civil/nautical/astronomical dawn and dusk) for a place
//! and a *local* date in an IANA time zone, including what they mean on polar days.
//!
//! The astronomy is the `sunrise` crate's; this file only decides which day the crate is
//! asked about and what an event that does not happen resolves to. It knows nothing of
//! windows or recording.
//!
//! # Which day
//!
//! `sunrise` takes a calendar date and returns the events around that date's solar transit
//! at the given longitude (12:00 UTC shifted by longitude/15 hours). The local day of a
//! place far from its zone's meridian (Kiritimati is UTC+14 at 157° W) is a different
//! calendar date in UTC, so the crate is given the UTC date of the local day's noon shifted
//! by the longitude: the transit it computes then falls on the local day.
//!
//! # Polar day and polar night
//!
//! When the sun never crosses an event's altitude on a local day:
//! - it stays **above** (polar day for that event): morning events (sunrise, dawns) resolve
//!   to the start of the local day and evening events (sunset, dusks) to its end (the next
//!   day's start). A dawn→dusk window covers the whole day; a dusk→dawn window is empty.
//! - it stays **below** (polar night for that event): both morning and evening events resolve
//!   to local solar noon. A dawn→dusk window is empty; a dusk→dawn window covers the whole
//!   day (noon to the next noon).
//!
//! Offsets in a bound apply on top of the resolved instant. Saving filters use
//! [`occurrence`] directly and match nothing on days the event does not happen.
//!
//! # Accuracy
//!
//! Checked against the U.S. Naval Observatory's published times (see the tests): within a
//! minute below 60° latitude; up to about 3 minutes near an equinox at 64–70°, where the
//! crate's once-a-day solar declination matters because the sun meets the horizon at a
//! shallow angle. Both are far below the minutes-long offsets schedules are written in.

use chrono::NaiveDate;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use sunrise::{Coordinates, DawnType, SolarDay};

use super::spec::SolarEvent;

/// A deployment's position in decimal degrees (north and east positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    /// Latitude, -90..=90.
    pub latitude: f64,
    /// Longitude, -180..=180.
    pub longitude: f64,
}

impl Location {
    /// True when both coordinates are in range (and not NaN).
    pub fn is_valid(self) -> bool {
        Coordinates::new(self.latitude, self.longitude).is_some()
    }
}

/// What an event does on one local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrence {
    /// The event happens at this instant.
    At(Timestamp),
    /// The sun stays above the event's altitude all day.
    AlwaysAbove,
    /// The sun stays below the event's altitude all day.
    AlwaysBelow,
}

/// Whether and when `event` happens on the local day `date` at `location`.
/// `None` only for dates outside the range the calendar arithmetic supports.
pub fn occurrence(
    location: Location,
    date: Date,
    tz: &TimeZone,
    event: SolarEvent,
) -> Option<Occurrence> {
    let day = solar_date(location, date, tz)?;
    if let Some(t) = raw_event(location, day, event)? {
        return Some(Occurrence::At(t));
    }
    Some(polar_side(location, day, event))
}

/// The instant `event` resolves to on the local day `date`, with the polar rule of the
/// module documentation applied. `None` only for unsupported dates or invalid coordinates.
pub fn event_time(
    location: Location,
    date: Date,
    tz: &TimeZone,
    event: SolarEvent,
) -> Option<Timestamp> {
    match occurrence(location, date, tz, event)? {
        Occurrence::At(t) => Some(t),
        Occurrence::AlwaysAbove if event.is_morning() => start_of_day(date, tz),
        Occurrence::AlwaysAbove => start_of_day(date.checked_add(1.day()).ok()?, tz),
        Occurrence::AlwaysBelow => solar_noon(location, solar_date(location, date, tz)?),
    }
}

/// The first instant of the local day `date` (jiff's compatible disambiguation: where
/// midnight is skipped by a DST change, the day starts at the first existing instant).
pub(crate) fn start_of_day(date: Date, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_timestamp(date.at(0, 0, 0, 0)).ok()
}

/// The UTC calendar date whose solar transit at `location` falls on the local day `date`.
fn solar_date(location: Location, date: Date, tz: &TimeZone) -> Option<NaiveDate> {
    let local_noon = tz.to_timestamp(date.at(12, 0, 0, 0)).ok()?;
    // The crate places the transit at 12:00 UTC minus longitude × 240 s; undo that shift so
    // the chosen UTC date is the one whose transit is nearest to local noon.
    let shift = (location.longitude * 240.0).round() as i64;
    let shifted = Timestamp::from_second(local_noon.as_second().checked_add(shift)?).ok()?;
    let utc = TimeZone::UTC.to_datetime(shifted).date();
    NaiveDate::from_ymd_opt(
        i32::from(utc.year()),
        u32::try_from(utc.month()).ok()?,
        u32::try_from(utc.day()).ok()?,
    )
}

fn crate_event(event: SolarEvent) -> sunrise::SolarEvent {
    use sunrise::SolarEvent as S;
    match event {
        SolarEvent::Sunrise => S::Sunrise,
        SolarEvent::Sunset => S::Sunset,
        SolarEvent::CivilDawn => S::Dawn(DawnType::Civil),
        SolarEvent::CivilDusk => S::Dusk(DawnType::Civil),
        SolarEvent::NauticalDawn => S::Dawn(DawnType::Nautical),
        SolarEvent::NauticalDusk => S::Dusk(DawnType::Nautical),
        SolarEvent::AstronomicalDawn => S::Dawn(DawnType::Astronomical),
        SolarEvent::AstronomicalDusk => S::Dusk(DawnType::Astronomical),
    }
}

/// The evening event at the same altitude as a morning one, and vice versa.
fn counterpart(event: SolarEvent) -> SolarEvent {
    match event {
        SolarEvent::Sunrise => SolarEvent::Sunset,
        SolarEvent::Sunset => SolarEvent::Sunrise,
        SolarEvent::CivilDawn => SolarEvent::CivilDusk,
        SolarEvent::CivilDusk => SolarEvent::CivilDawn,
        SolarEvent::NauticalDawn => SolarEvent::NauticalDusk,
        SolarEvent::NauticalDusk => SolarEvent::NauticalDawn,
        SolarEvent::AstronomicalDawn => SolarEvent::AstronomicalDusk,
        SolarEvent::AstronomicalDusk => SolarEvent::AstronomicalDawn,
    }
}

/// `Some(None)`: the event does not happen; outer `None`: invalid coordinates or a
/// timestamp out of range.
fn raw_event(location: Location, day: NaiveDate, event: SolarEvent) -> Option<Option<Timestamp>> {
    let coordinates = Coordinates::new(location.latitude, location.longitude)?;
    match SolarDay::new(coordinates, day).event_time(crate_event(event)) {
        Some(t) => Timestamp::from_second(t.timestamp()).ok().map(Some),
        None => Some(None),
    }
}

/// Solar noon: midway between an event pair, taken at the equator where every pair
/// exists (the transit does not depend on latitude).
fn solar_noon(location: Location, day: NaiveDate) -> Option<Timestamp> {
    let equator = Location {
        latitude: 0.0,
        ..location
    };
    let rise = raw_event(equator, day, SolarEvent::Sunrise)??;
    let set = raw_event(equator, day, SolarEvent::Sunset)??;
    Timestamp::from_second((rise.as_second() + set.as_second()) / 2).ok()
}

/// Whether the sun stays above or below an event's altitude on a day the event does not
/// happen. The crate does not expose the sun's declination, so this walks the latitude
/// towards the equator (where every event happens) to the edge of the polar region: just
/// inside it the event pair spans almost the whole day (polar day) or almost none of it
/// (polar night).
fn polar_side(location: Location, day: NaiveDate, event: SolarEvent) -> Occurrence {
    let exists = |latitude: f64| {
        matches!(
            raw_event(
                Location {
                    latitude,
                    ..location
                },
                day,
                event
            ),
            Some(Some(_))
        )
    };
    let (mut inside, mut outside) = (0.0_f64, location.latitude);
    for _ in 0..30 {
        let mid = (inside + outside) / 2.0;
        if exists(mid) {
            inside = mid;
        } else {
            outside = mid;
        }
    }
    let edge = Location {
        latitude: inside,
        ..location
    };
    let (morning, evening) = if event.is_morning() {
        (event, counterpart(event))
    } else {
        (counterpart(event), event)
    };
    match (
        raw_event(edge, day, morning).flatten(),
        raw_event(edge, day, evening).flatten(),
    ) {
        (Some(m), Some(e)) if e.as_second() - m.as_second() > 12 * 3600 => Occurrence::AlwaysAbove,
        _ => Occurrence::AlwaysBelow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(text: &str) -> Timestamp {
        text.parse().expect(text)
    }

    /// One published almanac value: the computed event must be within `tolerance_s` of it.
    fn check(
        (latitude, longitude): (f64, f64),
        tz: &str,
        day: Date,
        event: SolarEvent,
        published_utc: &str,
        tolerance_s: i64,
    ) {
        let tz = TimeZone::get(tz).unwrap();
        let location = Location {
            latitude,
            longitude,
        };
        let got = match occurrence(location, day, &tz, event) {
            Some(Occurrence::At(t)) => t,
            other => panic!("{day} {event:?} at {location:?}: {other:?}"),
        };
        let want = at(published_utc);
        let off = (got.as_second() - want.as_second()).abs();
        assert!(
            off <= tolerance_s,
            "{day} {event:?} at {location:?}: got {got}, almanac {want} ({off} s off)"
        );
    }

    // Almanac: U.S. Naval Observatory, Astronomical Applications Department, "Sun and Moon
    // Data for One Day" (API v4.0.1, https://aa.usno.navy.mil/api/rstt/oneday), tz=0 unless
    // stated; USNO rounds to the minute, so "within a minute" means |computed - published|
    // <= 60 s plus the 30 s the published value may itself be rounded by (90 s).
    // Above 60° the band is 4 minutes: `sunrise` evaluates the sun's declination once per
    // day, and near an equinox at 64-70° N, where the sun crosses the horizon at a shallow
    // angle, that costs up to 3 minutes (measured: Tromso sunset 2026-09-23 +181 s,
    // Reykjavik civil dusk 2026-03-20 -100 s; every other value here is within 66 s).
    // The values, as published (times UTC):
    //   London 51.5074,-0.1278 2026-06-21 (tz=1): Set 21:22 BST = 20:22Z.
    //   Sydney -33.87,151.21 2026-12-21: Set 09:05, End Civil Twilight 09:35,
    //     Rise 18:41 (that is 05:41 AEDT on the 22nd, the local day after).
    //   Sydney -33.87,151.21 2026-06-21: Set 06:54, Rise 21:00 (07:00 AEST on the 22nd).
    //   Reykjavik 64.15,-21.94 2026-03-20: Begin Civil Twilight 06:41, Rise 07:29,
    //     Set 19:43, End Civil Twilight 20:31.
    //   Reykjavik 64.15,-21.94 2026-12-21: Rise 11:22, Set 15:29.
    //   Tromso 69.65,18.96 2026-09-23: Rise 04:28, Set 16:43.
    //   Quito -0.18,-78.47 2026-03-20: Rise 11:18, Set 23:25 (06:18 and 18:25 local).
    //   New York 40.7128,-74.0060 2026-07-23 (tz=-5, dst=true): Rise 05:45 EDT, Set 20:20 EDT.
    //   New York 40.7128,-74.0060 2026-09-22 (tz=-4): Set 18:53 EDT.
    // And USNO "Rise and Set for the Sun for 2023", Fredonia AZ (W112 31, N36 57, zone 7h
    // west, https://aa.usno.navy.mil/calculated/rstt/year?ID=AA&year=2023&task=0&lat=36.95&lon=-112.52):
    //   Jan 01 rise 0743 set 1724; Jun 21 rise 0511 set 1953; Dec 31 rise 0743 set 1723.
    #[test]
    fn sunrise_and_sunset_match_the_usno_almanac() {
        use SolarEvent::*;
        const HIGH: i64 = 240;
        let london = (51.5074, -0.1278);
        check(
            london,
            "Europe/London",
            date(2026, 6, 21),
            Sunset,
            "2026-06-21T20:22Z",
            90,
        );

        let sydney = (-33.87, 151.21);
        let syd = "Australia/Sydney";
        check(
            sydney,
            syd,
            date(2026, 12, 21),
            Sunset,
            "2026-12-21T09:05Z",
            90,
        );
        check(
            sydney,
            syd,
            date(2026, 12, 21),
            CivilDusk,
            "2026-12-21T09:35Z",
            90,
        );
        check(
            sydney,
            syd,
            date(2026, 12, 22),
            Sunrise,
            "2026-12-21T18:41Z",
            90,
        );
        check(
            sydney,
            syd,
            date(2026, 6, 21),
            Sunset,
            "2026-06-21T06:54Z",
            90,
        );
        check(
            sydney,
            syd,
            date(2026, 6, 22),
            Sunrise,
            "2026-06-21T21:00Z",
            90,
        );

        let reykjavik = (64.15, -21.94);
        let rey = "Atlantic/Reykjavik";
        check(
            reykjavik,
            rey,
            date(2026, 3, 20),
            CivilDawn,
            "2026-03-20T06:41Z",
            HIGH,
        );
        check(
            reykjavik,
            rey,
            date(2026, 3, 20),
            Sunrise,
            "2026-03-20T07:29Z",
            HIGH,
        );
        check(
            reykjavik,
            rey,
            date(2026, 3, 20),
            Sunset,
            "2026-03-20T19:43Z",
            HIGH,
        );
        check(
            reykjavik,
            rey,
            date(2026, 3, 20),
            CivilDusk,
            "2026-03-20T20:31Z",
            HIGH,
        );
        check(
            reykjavik,
            rey,
            date(2026, 12, 21),
            Sunrise,
            "2026-12-21T11:22Z",
            HIGH,
        );
        check(
            reykjavik,
            rey,
            date(2026, 12, 21),
            Sunset,
            "2026-12-21T15:29Z",
            HIGH,
        );

        let tromso = (69.65, 18.96);
        check(
            tromso,
            "Europe/Oslo",
            date(2026, 9, 23),
            Sunrise,
            "2026-09-23T04:28Z",
            HIGH,
        );
        check(
            tromso,
            "Europe/Oslo",
            date(2026, 9, 23),
            Sunset,
            "2026-09-23T16:43Z",
            HIGH,
        );

        let quito = (-0.18, -78.47);
        check(
            quito,
            "America/Guayaquil",
            date(2026, 3, 20),
            Sunrise,
            "2026-03-20T11:18Z",
            90,
        );
        check(
            quito,
            "America/Guayaquil",
            date(2026, 3, 20),
            Sunset,
            "2026-03-20T23:25Z",
            90,
        );

        let new_york = (40.7128, -74.0060);
        let ny = "America/New_York";
        check(
            new_york,
            ny,
            date(2026, 7, 23),
            Sunrise,
            "2026-07-23T09:45Z",
            90,
        );
        check(
            new_york,
            ny,
            date(2026, 7, 23),
            Sunset,
            "2026-07-24T00:20Z",
            90,
        );
        check(
            new_york,
            ny,
            date(2026, 9, 22),
            Sunset,
            "2026-09-22T22:53Z",
            90,
        );

        let fredonia = (36.0 + 57.0 / 60.0, -(112.0 + 31.0 / 60.0));
        let mst = "America/Phoenix";
        check(
            fredonia,
            mst,
            date(2023, 1, 1),
            Sunrise,
            "2023-01-01T14:43Z",
            90,
        );
        check(
            fredonia,
            mst,
            date(2023, 1, 1),
            Sunset,
            "2023-01-02T00:24Z",
            90,
        );
        check(
            fredonia,
            mst,
            date(2023, 6, 21),
            Sunrise,
            "2023-06-21T12:11Z",
            90,
        );
        check(
            fredonia,
            mst,
            date(2023, 6, 21),
            Sunset,
            "2023-06-22T02:53Z",
            90,
        );
        check(
            fredonia,
            mst,
            date(2023, 12, 31),
            Sunrise,
            "2023-12-31T14:43Z",
            90,
        );
        check(
            fredonia,
            mst,
            date(2023, 12, 31),
            Sunset,
            "2024-01-01T00:23Z",
            90,
        );
    }

    #[test]
    fn local_day_far_from_the_zone_meridian_gets_its_own_sunrise() {
        // Kiritimati is UTC+14 at 157.4° W: its local date is a day ahead of the UTC date
        // around its solar noon. Each local day's sunrise and sunset must fall on that day.
        let tz = TimeZone::get("Pacific/Kiritimati").unwrap();
        let here = Location {
            latitude: 1.87,
            longitude: -157.4,
        };
        for day in [date(2026, 1, 1), date(2026, 6, 21), date(2026, 12, 31)] {
            for event in [SolarEvent::Sunrise, SolarEvent::Sunset] {
                let t = event_time(here, day, &tz, event).unwrap();
                assert_eq!(tz.to_datetime(t).date(), day, "{event:?} on {day}: {t}");
            }
        }
        // Same in the far east with a zone west of its meridian's natural one.
        let tz = TimeZone::get("Pacific/Tongatapu").unwrap();
        let here = Location {
            latitude: -21.14,
            longitude: -175.2,
        };
        let day = date(2026, 3, 1);
        let rise = event_time(here, day, &tz, SolarEvent::Sunrise).unwrap();
        let set = event_time(here, day, &tz, SolarEvent::Sunset).unwrap();
        assert_eq!(tz.to_datetime(rise).date(), day);
        assert_eq!(tz.to_datetime(set).date(), day);
        assert!(rise < set);
    }

    #[test]
    fn polar_day_and_night_resolve_by_the_documented_rule() {
        // USNO lists Tromso (69.65 N) as "continuously above the horizon" on 2026-06-21 and
        // "continuously below" on 2026-12-21; Longyearbyen is further north still.
        let tz = TimeZone::get("Arctic/Longyearbyen").unwrap();
        let here = Location {
            latitude: 78.22,
            longitude: 15.65,
        };
        let june = date(2026, 6, 21);
        assert_eq!(
            occurrence(here, june, &tz, SolarEvent::Sunrise),
            Some(Occurrence::AlwaysAbove)
        );
        assert_eq!(
            event_time(here, june, &tz, SolarEvent::CivilDawn),
            Some(at("2026-06-20T22:00Z")) // local midnight, CEST
        );
        assert_eq!(
            event_time(here, june, &tz, SolarEvent::Sunset),
            Some(at("2026-06-21T22:00Z")) // next local midnight
        );
        let december = date(2026, 12, 21);
        assert_eq!(
            occurrence(here, december, &tz, SolarEvent::CivilDusk),
            Some(Occurrence::AlwaysBelow)
        );
        let noon = event_time(here, december, &tz, SolarEvent::Sunrise).unwrap();
        assert_eq!(
            event_time(here, december, &tz, SolarEvent::Sunset),
            Some(noon)
        );
        // Solar noon at 15.65° E is about 10:57 UTC in late December.
        let expected = at("2026-12-21T10:57Z").as_second();
        assert!((noon.as_second() - expected).abs() < 120, "{noon}");

        let tromso = Location {
            latitude: 69.65,
            longitude: 18.96,
        };
        let oslo = TimeZone::get("Europe/Oslo").unwrap();
        assert_eq!(
            occurrence(tromso, june, &oslo, SolarEvent::Sunset),
            Some(Occurrence::AlwaysAbove)
        );
        assert_eq!(
            occurrence(tromso, december, &oslo, SolarEvent::Sunrise),
            Some(Occurrence::AlwaysBelow)
        );
        // Southern hemisphere: the seasons swap.
        let mcmurdo = Location {
            latitude: -77.85,
            longitude: 166.67,
        };
        let nz = TimeZone::get("Antarctica/McMurdo").unwrap();
        assert_eq!(
            occurrence(mcmurdo, december, &nz, SolarEvent::Sunrise),
            Some(Occurrence::AlwaysAbove)
        );
        assert_eq!(
            occurrence(mcmurdo, june, &nz, SolarEvent::Sunset),
            Some(Occurrence::AlwaysBelow)
        );
    }
}
