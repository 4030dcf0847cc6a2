//! Finding and opening the capture device: stable names (card id, never the card number),
//! capability probing for `acoupi devices`, hardware parameters, and the short test
//! capture `acoupi check` runs.
//!
//! This module knows ALSA; it does not know schedules or files.

use std::ffi::CString;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};
use serde::Serialize;

use super::format::SampleFormat;
use super::AudioError;

/// The rates `acoupi devices` probes, in Hz.
pub const STANDARD_RATES: [u32; 13] = [
    8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000, 250000, 384000,
];
/// The sample rates the recorder accepts, in Hz (up to the fastest ultrasonic USB
/// microphones): the one home of this limit; configuration validation and every
/// message about a rate read it from here.
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 8000..=384_000;

/// Target period: short enough that a shutdown or a file cut is never far away, long
/// enough that a Pi Zero 2 does not wake up too often (1 ms periods cost measurable CPU).
const PERIOD_US: u32 = 100_000;
/// Target buffer: a second of slack absorbs a slow SD card write without an overrun.
const BUFFER_US: u32 = 1_000_000;
/// Target audio per wakeup of the capture thread. Each wakeup costs a poll, a read, a
/// file write and a plan lookup whatever its size, so whole periods are read several at
/// a time (issue 14: the fixed cost per period). Files are cut by stream time, not by
/// wakeups, so cuts stay exact; at most a quarter of the buffer is taken, leaving the
/// rest as slack for a slow write.
const READ_US: u64 = 250_000;
/// Below this the buffer is too small to ride out a stalled write; we warn.
const MIN_BUFFER_US: u64 = 500_000;

fn alsa_format(f: SampleFormat) -> Format {
    match f {
        SampleFormat::S16_LE => Format::S16LE,
        SampleFormat::S24_LE => Format::S24LE,
        SampleFormat::S24_3LE => Format::S243LE,
        SampleFormat::S32_LE => Format::S32LE,
    }
}

/// One capture device (a card's PCM device, or a PCM from the ALSA configuration).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// The PCM name to configure, e.g. `hw:CARD=UltraMic,DEV=0`.
    pub pcm: String,
    /// The card id (`UltraMic`), when the device is a card.
    pub card_id: Option<String>,
    /// The card's long name, when the device is a card.
    pub card_name: Option<String>,
    /// What the card calls this PCM device (`USB Audio`).
    pub description: Option<String>,
    /// What the device can do; `None` when probing failed (see `probe_error`).
    pub capabilities: Option<Capabilities>,
    /// Why probing failed, e.g. the device is busy because the recorder holds it.
    pub probe_error: Option<String>,
}

/// Capture capabilities of one PCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Which of [`STANDARD_RATES`] it accepts.
    pub rates: Vec<u32>,
    /// Lowest rate in Hz.
    pub rate_min: u32,
    /// Highest rate in Hz.
    pub rate_max: u32,
    /// Fewest channels.
    pub channels_min: u32,
    /// Most channels.
    pub channels_max: u32,
    /// Which supported sample formats it delivers.
    pub formats: Vec<SampleFormat>,
}

/// A sound card as the resolver sees it.
struct Card {
    id: String,
    name: String,
    longname: String,
    ctl: alsa::Ctl,
}

fn cards() -> Result<Vec<Card>, AudioError> {
    let mut out = Vec::new();
    for card in alsa::card::Iter::new() {
        let card = card.map_err(AudioError::Enumerate)?;
        let hw = format!("hw:{}", card.get_index());
        let ctl = match alsa::Ctl::new(&hw, false) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(card = %hw, error = %e, "skipping a card whose control cannot be opened");
                continue;
            }
        };
        let info = ctl.card_info().map_err(AudioError::Enumerate)?;
        let id = info.get_id().unwrap_or_default().to_string();
        let name = info.get_name().unwrap_or_default().to_string();
        let longname = info.get_longname().unwrap_or_default().to_string();
        out.push(Card {
            id,
            name,
            longname,
            ctl,
        });
    }
    Ok(out)
}

fn describe(cards: &[Card]) -> String {
    if cards.is_empty() {
        return "no sound cards (is the microphone plugged in?)".into();
    }
    cards
        .iter()
        .map(|c| format!("{} ({})", c.id, c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `name` is a PCM defined in the ALSA configuration (`pcm.<name>`).
fn defined_pcm(name: &str) -> bool {
    let Ok(key) = CString::new(format!("pcm.{name}")) else {
        return false;
    };
    let mut top = std::ptr::null_mut();
    // SAFETY: snd_config_update_ref hands back a reference-counted tree we release below;
    // snd_config_search only reads it and writes one pointer into `found`.
    unsafe {
        if alsa_sys::snd_config_update_ref(&mut top) < 0 {
            return false;
        }
        let mut found = std::ptr::null_mut();
        let r = alsa_sys::snd_config_search(top, key.as_ptr(), &mut found);
        alsa_sys::snd_config_unref(top);
        r == 0
    }
}

/// Turns a configured `device_name` into a PCM name. A full PCM name (contains `:` or is
/// defined in the ALSA configuration) is used as is; otherwise it must match exactly one
/// card by id, or by a case-insensitive substring of its id or names, and becomes
/// `hw:CARD=<id>,DEV=0`. Bare card numbers are refused: they change between boots.
pub fn resolve_device(name: &str) -> Result<String, AudioError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AudioError::NoDeviceConfigured);
    }
    if name.contains(':') || defined_pcm(name) {
        return Ok(name.to_string());
    }
    let cards = cards()?;
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(AudioError::CardNumber {
            name: name.into(),
            available: describe(&cards),
        });
    }
    let lower = name.to_lowercase();
    let exact: Vec<&Card> = cards
        .iter()
        .filter(|c| c.id.to_lowercase() == lower)
        .collect();
    let matches: Vec<&Card> = if exact.len() == 1 {
        exact
    } else {
        cards
            .iter()
            .filter(|c| {
                [&c.id, &c.name, &c.longname]
                    .iter()
                    .any(|s| s.to_lowercase().contains(&lower))
            })
            .collect()
    };
    match matches.as_slice() {
        [one] => Ok(format!("hw:CARD={},DEV=0", one.id)),
        [] => Err(AudioError::NoSuchDevice {
            name: name.into(),
            available: describe(&cards),
        }),
        many => Err(AudioError::Ambiguous {
            name: name.into(),
            matches: many
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Every capture-capable PCM device of every card, with its capabilities.
pub fn list_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    let mut out = Vec::new();
    for card in cards()? {
        for dev in alsa::ctl::DeviceIter::new(&card.ctl) {
            let Ok(dev) = u32::try_from(dev) else {
                continue;
            };
            let Ok(info) = card.ctl.pcm_info(dev, 0, Direction::Capture) else {
                continue; // playback-only device
            };
            let pcm = format!("hw:CARD={},DEV={dev}", card.id);
            let mut d = probe_pcm(&pcm);
            d.card_id = Some(card.id.clone());
            d.card_name = Some(card.longname.clone());
            d.description = info.get_name().ok().map(str::to_string);
            out.push(d);
        }
    }
    Ok(out)
}

/// Probes one PCM by name (for devices from the ALSA configuration, e.g. `dsnoop:…`).
pub fn probe_pcm(pcm: &str) -> DeviceInfo {
    let (capabilities, probe_error) = match capabilities(pcm) {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(crate::error::chain(&e))),
    };
    DeviceInfo {
        pcm: pcm.to_string(),
        card_id: None,
        card_name: None,
        description: None,
        capabilities,
        probe_error,
    }
}

fn open_pcm(pcm: &str, nonblock: bool) -> Result<PCM, AudioError> {
    PCM::new(pcm, Direction::Capture, nonblock).map_err(|source| AudioError::Open {
        pcm: pcm.into(),
        source,
    })
}

/// What a PCM accepts, by asking its full configuration space.
pub fn capabilities(pcm: &str) -> Result<Capabilities, AudioError> {
    let p = open_pcm(pcm, true)?;
    caps_of(pcm, &p)
}

fn caps_of(pcm: &str, p: &PCM) -> Result<Capabilities, AudioError> {
    let hw_err = |what| {
        move |source| AudioError::HwParams {
            pcm: pcm.into(),
            what,
            source,
        }
    };
    let hwp = HwParams::any(p).map_err(hw_err("reading the configuration space"))?;
    Ok(Capabilities {
        rates: STANDARD_RATES
            .into_iter()
            .filter(|r| hwp.test_rate(*r).is_ok())
            .collect(),
        rate_min: hwp
            .get_rate_min()
            .map_err(hw_err("reading the rate range"))?,
        rate_max: hwp
            .get_rate_max()
            .map_err(hw_err("reading the rate range"))?,
        channels_min: hwp
            .get_channels_min()
            .map_err(hw_err("reading the channel range"))?,
        channels_max: hwp
            .get_channels_max()
            .map_err(hw_err("reading the channel range"))?,
        formats: SampleFormat::ALL
            .into_iter()
            .filter(|f| hwp.test_format(alsa_format(*f)).is_ok())
            .collect(),
    })
}

/// What the recorder asks of the device.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureParams {
    /// Sample rate in Hz.
    pub samplerate: u32,
    /// Channels.
    pub channels: u16,
    /// Device sample format; `None` picks the first supported one that holds `bit_depth`.
    pub format: Option<SampleFormat>,
    /// Bits per stored sample (16, 24, 32); used only to pick a format.
    pub bit_depth: u16,
}

/// An open, configured capture PCM.
pub struct Capture {
    /// The PCM.
    pub pcm: PCM,
    /// Its name.
    pub name: String,
    /// The format in use.
    pub format: SampleFormat,
    /// Frames per period.
    pub period_frames: usize,
    /// Frames per read: whole periods, about [`READ_US`] (the PCM's `avail_min`, so a
    /// wait returns when a whole read is there).
    pub read_frames: usize,
    /// Frames in the ring buffer.
    pub buffer_frames: usize,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("period_frames", &self.period_frames)
            .field("read_frames", &self.read_frames)
            .finish()
    }
}

/// Opens `pcm` (already resolved) for capture with `params`, checking each parameter
/// against what the device offers so the error names the one that does not fit.
pub fn open_capture(pcm: &str, params: &CaptureParams) -> Result<Capture, AudioError> {
    if !RATE_RANGE.contains(&params.samplerate) {
        return Err(AudioError::InvalidRate(params.samplerate));
    }
    if params.channels == 0 {
        return Err(AudioError::InvalidChannels);
    }
    let p = open_pcm(pcm, false)?;
    let caps = caps_of(pcm, &p)?;
    let hw_err = |what| {
        move |source| AudioError::HwParams {
            pcm: pcm.into(),
            what,
            source,
        }
    };
    let format = match params.format {
        Some(f) if caps.formats.contains(&f) => f,
        Some(f) => {
            return Err(AudioError::UnsupportedFormat {
                pcm: pcm.into(),
                wanted: f.name().into(),
                supported: names(&caps.formats),
            })
        }
        None => SampleFormat::ALL
            .into_iter()
            .find(|f| caps.formats.contains(f) && f.significant_bits() >= params.bit_depth)
            .or_else(|| caps.formats.first().copied())
            .ok_or_else(|| AudioError::UnsupportedFormat {
                pcm: pcm.into(),
                wanted: format!("{}-bit", params.bit_depth),
                supported: names(&caps.formats),
            })?,
    };
    {
        let hwp = HwParams::any(&p).map_err(hw_err("reading the configuration space"))?;
        hwp.set_access(Access::RWInterleaved)
            .map_err(hw_err("setting interleaved access"))?;
        hwp.set_format(alsa_format(format))
            .map_err(hw_err("setting the sample format"))?;
        hwp.set_channels(u32::from(params.channels)).map_err(|_| {
            AudioError::UnsupportedChannels {
                pcm: pcm.into(),
                channels: params.channels,
                min: caps.channels_min,
                max: caps.channels_max,
            }
        })?;
        hwp.set_rate(params.samplerate, ValueOr::Nearest)
            .map_err(|_| AudioError::UnsupportedRate {
                pcm: pcm.into(),
                rate: params.samplerate,
                supported: if caps.rates.is_empty() {
                    format!("{}..={} Hz", caps.rate_min, caps.rate_max)
                } else {
                    format!("{:?} Hz", caps.rates)
                },
            })?;
        // Devices that cannot meet the targets fall back to their nearest sizes.
        hwp.set_period_time_near(PERIOD_US, ValueOr::Nearest)
            .map_err(hw_err("setting the period time"))?;
        hwp.set_buffer_time_near(BUFFER_US, ValueOr::Nearest)
            .map_err(hw_err("setting the buffer time"))?;
        p.hw_params(&hwp)
            .map_err(hw_err("applying hardware parameters"))?;
    }
    let (buffer, period) = p
        .get_params()
        .map_err(hw_err("reading back the buffer size"))?;
    let buffer_us = buffer * 1_000_000 / u64::from(params.samplerate);
    if buffer_us < MIN_BUFFER_US {
        tracing::warn!(
            pcm,
            buffer_us,
            "capture buffer below half a second: overruns are likelier"
        );
    }
    let period = period.max(1);
    let read = read_frames(period, buffer, params.samplerate);
    if read != period {
        // A device that refuses it is read a period at a time, as before: slower, not wrong.
        let applied = p.sw_params_current().and_then(|swp| {
            swp.set_avail_min(read as alsa::pcm::Frames)?;
            p.sw_params(&swp)
        });
        if let Err(e) = applied {
            tracing::debug!(pcm, error = %e, "larger reads refused; reading one period at a time");
            return Ok(capture(p, pcm, format, period, period, buffer));
        }
    }
    tracing::debug!(pcm, %format, period, read, buffer, "capture opened");
    Ok(capture(p, pcm, format, period, read, buffer))
}

fn capture(
    pcm: PCM,
    name: &str,
    format: SampleFormat,
    period: u64,
    read: u64,
    buffer: u64,
) -> Capture {
    Capture {
        pcm,
        name: name.to_string(),
        format,
        period_frames: period as usize,
        read_frames: read as usize,
        buffer_frames: buffer as usize,
    }
}

/// Frames per read for a PCM with these period and buffer sizes: the whole periods
/// nearest [`READ_US`] at `rate`, at least one, at most a quarter of the buffer.
fn read_frames(period: u64, buffer: u64, rate: u32) -> u64 {
    let want = READ_US * u64::from(rate) / 1_000_000;
    let periods = ((want + period / 2) / period).clamp(1, (buffer / 4 / period).max(1));
    periods * period
}

fn names(f: &[SampleFormat]) -> String {
    if f.is_empty() {
        return "none of S16_LE, S24_LE, S24_3LE, S32_LE".into();
    }
    f.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
}

/// Outcome of [`test_capture`].
#[derive(Debug, Clone, Serialize)]
pub struct TestCaptureReport {
    /// The PCM that was opened.
    pub pcm: String,
    /// The format the device delivered.
    pub format: SampleFormat,
    /// Frames read.
    pub frames: u64,
    /// Wall time the capture took.
    pub elapsed_ms: u64,
    /// Peak level in dBFS (`-inf` for digital silence).
    pub peak_dbfs: f64,
}

/// Opens the device, reads `seconds` of audio (at least one period), verifies frames
/// arrived, and closes it. `acoupi check` uses it as the audio health check.
pub fn test_capture(
    device: &str,
    rate: u32,
    channels: u16,
    format: Option<SampleFormat>,
    seconds: f64,
) -> Result<TestCaptureReport, AudioError> {
    let pcm = resolve_device(device)?;
    let cap = open_capture(
        &pcm,
        &CaptureParams {
            samplerate: rate,
            channels,
            format,
            bit_depth: 16,
        },
    )?;
    let want = ((seconds.max(0.0) * f64::from(rate)) as u64).max(cap.period_frames as u64);
    let bpf = cap.format.bytes_per_sample() * usize::from(channels);
    let mut buf = vec![0u8; cap.read_frames * bpf];
    let io = cap.pcm.io_bytes();
    let started = Instant::now();
    let mut got = 0u64;
    let mut peak = 0i64;
    while got < want {
        let n = (want - got).min(cap.read_frames as u64) as usize;
        if cap
            .pcm
            .wait(Some(2000))
            .map_err(|source| AudioError::Read {
                pcm: pcm.clone(),
                source,
            })?
        {
            let r = io
                .readi(&mut buf[..n * bpf])
                .map_err(|source| AudioError::Read {
                    pcm: pcm.clone(),
                    source,
                })?;
            peak = peak.max(super::convert::peak(&buf[..r * bpf], cap.format));
            got += r as u64;
        } else {
            return Err(AudioError::NoFrames {
                pcm,
                waited: Duration::from_secs(2),
            });
        }
    }
    let full_scale = (1i64 << 31) as f64;
    Ok(TestCaptureReport {
        pcm,
        format: cap.format,
        frames: got,
        elapsed_ms: started.elapsed().as_millis() as u64,
        peak_dbfs: 20.0 * (peak as f64 / full_scale).log10(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_take_whole_periods_near_a_quarter_second_within_a_quarter_buffer() {
        // 100 ms periods, 1 s buffer: 2.5 periods round to 3, capped at a quarter of the
        // buffer: 2.
        assert_eq!(read_frames(4800, 48_000, 48_000), 9600);
        assert_eq!(read_frames(800, 8000, 8000), 1600);
        // A 2 s buffer lets the nearest count through.
        assert_eq!(read_frames(4800, 96_000, 48_000), 14_400);
        // A small buffer caps the read at a quarter of it.
        assert_eq!(read_frames(4800, 24_000, 48_000), 4800);
        // Long periods: never less than one.
        assert_eq!(read_frames(48_000, 96_000, 48_000), 48_000);
        // Short periods: many per read.
        assert_eq!(read_frames(480, 48_000, 48_000), 12_000);
    }
}
