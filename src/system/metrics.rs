//! Health numbers of the machine for heartbeats and `deployment status`: disk space,
//! CPU temperature, Raspberry Pi under-voltage and throttling, uptime, memory and load.
//!
//! Every reading is independent and cheap (a few small file reads, at most one short
//! `vcgencmd` run). Kernel files are read through a [`SysRoot`] so tests can point them at
//! fake files. This module does not decide what is healthy; callers compare the numbers.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use super::sysroot::SysRoot;

/// A metric that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `statvfs` failed on a storage path.
    #[error("reading free space of {}: {source}", path.display())]
    Statvfs {
        /// The path asked about.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A kernel file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A kernel file did not have the expected shape.
    #[error("unexpected content in {what}: {content:?}")]
    Parse {
        /// The file or program.
        what: String,
        /// What was read (trimmed).
        content: String,
    },
    /// `vcgencmd get_throttled` ran but failed.
    #[error("`{} get_throttled` failed ({status}): {stderr}", program.to_string_lossy())]
    Vcgencmd {
        /// The program run.
        program: std::ffi::OsString,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// `vcgencmd` exists but could not be started.
    #[error("running `{} get_throttled`: {source}", program.to_string_lossy())]
    VcgencmdSpawn {
        /// The program run.
        program: std::ffi::OsString,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
}

/// Space on the file system holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskSpace {
    /// Size of the file system.
    pub total_bytes: u64,
    /// Space an unprivileged process may still use (`f_bavail`, not `f_bfree`: the
    /// blocks reserved for root are no use to user `acoupi`).
    pub free_bytes: u64,
}

/// Free and total space of the file system holding `path` (a real path, not below a
/// [`SysRoot`]: storages are where they are).
pub fn disk_space(path: &Path) -> Result<DiskSpace, MetricsError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|source| MetricsError::Statvfs {
        path: path.to_path_buf(),
        source,
    })?;
    // The block counts are in units of the fragment size (statvfs(3)).
    // `u64::from`, not `as`: the C types are 32-bit on armv7 and 64-bit elsewhere.
    #[allow(clippy::useless_conversion)]
    let (unit, blocks, available) = (
        u64::from(st.fragment_size()),
        u64::from(st.blocks()),
        u64::from(st.blocks_available()),
    );
    Ok(DiskSpace {
        total_bytes: blocks.saturating_mul(unit),
        free_bytes: available.saturating_mul(unit),
    })
}

/// The thermal zone type of the Raspberry Pi SoC sensor.
const CPU_ZONE_TYPE: &str = "cpu-thermal";

/// CPU temperature in °C: the `cpu-thermal` zone when there is one, else the first zone
/// with a readable temperature; `None` when the machine has no thermal zones.
pub fn cpu_temperature(root: &SysRoot) -> Result<Option<f64>, MetricsError> {
    let dir = root.path("/sys/class/thermal");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetricsError::Read { path: dir, source }),
    };
    let mut zones: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .map(|e| e.path())
        .collect();
    // Directory order is arbitrary; zone numbers give a stable "first".
    zones.sort_by_key(|p| zone_number(p));
    let cpu = zones
        .iter()
        .find(|z| std::fs::read_to_string(z.join("type")).is_ok_and(|t| t.trim() == CPU_ZONE_TYPE));
    let ordered = cpu.into_iter().chain(zones.iter());
    for zone in ordered {
        let path = zone.join("temp");
        // A zone whose sensor is off returns an error on read (e.g. ENODATA): try the next.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let milli: i64 = text.trim().parse().map_err(|_| MetricsError::Parse {
            what: path.display().to_string(),
            content: text.trim().to_string(),
        })?;
        return Ok(Some(milli as f64 / 1000.0));
    }
    Ok(None)
}

fn zone_number(zone: &Path) -> u32 {
    zone.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("thermal_zone"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Raspberry Pi firmware throttling flags (`vcgencmd get_throttled` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Throttling {
    /// The raw bit field, as the firmware reports it.
    pub raw: u32,
    /// Bit 0: supply voltage is below 4.63 V now.
    pub under_voltage_now: bool,
    /// Bit 1: ARM frequency is capped now.
    pub freq_capped_now: bool,
    /// Bit 2: the CPU is throttled now.
    pub throttled_now: bool,
    /// Bit 3: the soft temperature limit is active now.
    pub soft_temp_limit_now: bool,
    /// Bit 16: under-voltage has happened since boot.
    pub under_voltage_ever: bool,
    /// Bit 17: frequency capping has happened since boot.
    pub freq_capped_ever: bool,
    /// Bit 18: throttling has happened since boot.
    pub throttled_ever: bool,
    /// Bit 19: the soft temperature limit has been reached since boot.
    pub soft_temp_limit_ever: bool,
}

impl Throttling {
    /// Decodes the firmware's bit field.
    pub fn from_bits(raw: u32) -> Throttling {
        let bit = |n: u32| raw & (1 << n) != 0;
        Throttling {
            raw,
            under_voltage_now: bit(0),
            freq_capped_now: bit(1),
            throttled_now: bit(2),
            soft_temp_limit_now: bit(3),
            under_voltage_ever: bit(16),
            freq_capped_ever: bit(17),
            throttled_ever: bit(18),
            soft_temp_limit_ever: bit(19),
        }
    }

    /// Parses `50005` (sysfs), `0x50005` or `throttled=0x50005` (vcgencmd).
    pub fn parse(text: &str) -> Option<Throttling> {
        let t = text.trim();
        let t = t.strip_prefix("throttled=").unwrap_or(t);
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        u32::from_str_radix(t, 16).ok().map(Throttling::from_bits)
    }
}

/// The firmware driver's sysfs attribute (Raspberry Pi kernels only).
const GET_THROTTLED: &str = "/sys/devices/platform/soc/soc:firmware/get_throttled";

/// Throttling flags from sysfs, else from `vcgencmd get_throttled`; `None` when neither
/// exists (not a Raspberry Pi).
pub fn throttling(root: &SysRoot) -> Result<Option<Throttling>, MetricsError> {
    let path = root.path(GET_THROTTLED);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return Throttling::parse(&text)
                .map(Some)
                .ok_or_else(|| MetricsError::Parse {
                    what: path.display().to_string(),
                    content: text.trim().to_string(),
                });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(MetricsError::Read { path, source }),
    }
    let program = root.vcgencmd().clone();
    let out = match Command::new(&program).arg("get_throttled").output() {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetricsError::VcgencmdSpawn { program, source }),
    };
    if !out.status.success() {
        return Err(MetricsError::Vcgencmd {
            program,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Throttling::parse(&text)
        .map(Some)
        .ok_or_else(|| MetricsError::Parse {
            what: format!("{} get_throttled", program.to_string_lossy()),
            content: text.trim().to_string(),
        })
}

fn read(root: &SysRoot, absolute: &str) -> Result<(PathBuf, String), MetricsError> {
    let path = root.path(absolute);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(MetricsError::Read { path, source }),
    }
}

fn parse_error(path: &Path, content: &str) -> MetricsError {
    MetricsError::Parse {
        what: path.display().to_string(),
        content: content.trim().to_string(),
    }
}

/// Time since boot (`/proc/uptime`).
pub fn uptime(root: &SysRoot) -> Result<Duration, MetricsError> {
    let (path, text) = read(root, "/proc/uptime")?;
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| parse_error(&path, &text))
}

/// Memory figures from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable`: what new allocations can get without swapping.
    pub available_bytes: u64,
}

/// Total and available memory (`/proc/meminfo`).
pub fn memory(root: &SysRoot) -> Result<Memory, MetricsError> {
    let (path, text) = read(root, "/proc/meminfo")?;
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let mut words = rest.split_whitespace();
            let value: u64 = words.next()?.parse().ok()?;
            // Values are in kibibytes whatever the unit says ("kB").
            Some(value.saturating_mul(1024))
        })
    };
    match (field("MemTotal"), field("MemAvailable")) {
        (Some(total_bytes), Some(available_bytes)) => Ok(Memory {
            total_bytes,
            available_bytes,
        }),
        _ => Err(parse_error(&path, "no MemTotal/MemAvailable line")),
    }
}

/// Load averages over 1, 5 and 15 minutes (`/proc/loadavg`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadAverage {
    /// 1 minute.
    pub one: f64,
    /// 5 minutes.
    pub five: f64,
    /// 15 minutes.
    pub fifteen: f64,
}

/// The load averages (`/proc/loadavg`).
pub fn load_average(root: &SysRoot) -> Result<LoadAverage, MetricsError> {
    let (path, text) = read(root, "/proc/loadavg")?;
    let mut it = text.split_whitespace().map(|w| w.parse::<f64>().ok());
    match (it.next(), it.next(), it.next()) {
        (Some(Some(one)), Some(Some(five)), Some(Some(fifteen))) => {
            Ok(LoadAverage { one, five, fifteen })
        }
        _ => Err(parse_error(&path, &text)),
    }
}

/// Every metric at once, each `None` when it could not be read (the failure is logged):
/// a heartbeat with a missing temperature is still a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Space on the storage file system.
    pub disk: Option<DiskSpace>,
    /// CPU temperature in °C.
    pub cpu_temperature_c: Option<f64>,
    /// Raspberry Pi throttling flags.
    pub throttling: Option<Throttling>,
    /// Seconds since boot.
    pub uptime_s: Option<f64>,
    /// Memory.
    pub memory: Option<Memory>,
    /// Load averages.
    pub load: Option<LoadAverage>,
}

impl Metrics {
    /// Reads every metric; `storage` is the directory whose file system is measured.
    pub fn collect(root: &SysRoot, storage: &Path) -> Metrics {
        fn keep<T>(r: Result<T, MetricsError>) -> Option<T> {
            r.map_err(|e| tracing::warn!(error = %e, "metric unavailable"))
                .ok()
        }
        Metrics {
            disk: keep(disk_space(storage)),
            cpu_temperature_c: keep(cpu_temperature(root)).flatten(),
            throttling: keep(throttling(root)).flatten(),
            uptime_s: keep(uptime(root)).map(|d| d.as_secs_f64()),
            memory: keep(memory(root)),
            load: keep(load_average(root)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_bits_decode_now_and_ever_flags() {
        let t = Throttling::parse("throttled=0x50005\n").unwrap();
        assert_eq!(t.raw, 0x50005);
        assert!(t.under_voltage_now && t.throttled_now);
        assert!(!t.freq_capped_now && !t.soft_temp_limit_now);
        assert!(t.under_voltage_ever && t.throttled_ever);
        assert!(!t.freq_capped_ever && !t.soft_temp_limit_ever);

        let t = Throttling::parse("8000a").unwrap();
        assert!(t.freq_capped_now && t.soft_temp_limit_now && t.soft_temp_limit_ever);
        assert!(!t.under_voltage_now && !t.under_voltage_ever);

        assert_eq!(Throttling::parse("0x0").unwrap(), Throttling::from_bits(0));
        assert_eq!(Throttling::parse("throttled=nope"), None);
    }
}
