//! A stable identifier of this machine for messages and heartbeats: the Raspberry Pi
//! serial number when there is one, else systemd's machine id.
//!
//! The Pi serial survives re-flashing the SD card, so a server sees the same recorder
//! after an image update; the machine id is the fallback on other hardware. Files are
//! read through a [`SysRoot`]. This module does not know how the id is used.

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use super::sysroot::SysRoot;

/// No identifier could be found.
#[derive(Debug, thiserror::Error)]
pub enum DeviceIdError {
    /// None of the sources exists or holds an id.
    #[error("no device id found (tried {}); on a Raspberry Pi /proc/cpuinfo has a Serial line, elsewhere run `systemd-machine-id-setup`", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// The files tried, in order.
        tried: Vec<PathBuf>,
    },
    /// A source exists but could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Where an id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceIdSource {
    /// The `Serial` line of `/proc/cpuinfo` (Raspberry Pi).
    CpuinfoSerial,
    /// `/sys/firmware/devicetree/base/serial-number` (Pi kernels without the cpuinfo line).
    DevicetreeSerial,
    /// `/etc/machine-id`.
    MachineId,
}

/// This machine's identifier: lowercase, no surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceId {
    /// The identifier text.
    pub id: String,
    /// Its source.
    pub source: DeviceIdSource,
}

const CPUINFO: &str = "/proc/cpuinfo";
const DT_SERIAL: &str = "/sys/firmware/devicetree/base/serial-number";
const MACHINE_ID: &str = "/etc/machine-id";

/// The first identifier found: cpuinfo serial, device-tree serial, machine id.
pub fn device_id(root: &SysRoot) -> Result<DeviceId, DeviceIdError> {
    let sources = [
        (CPUINFO, DeviceIdSource::CpuinfoSerial),
        (DT_SERIAL, DeviceIdSource::DevicetreeSerial),
        (MACHINE_ID, DeviceIdSource::MachineId),
    ];
    let mut tried = Vec::new();
    for (file, source) in sources {
        let path = root.path(file);
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tried.push(path);
                continue;
            }
            Err(source) => return Err(DeviceIdError::Read { path, source }),
        };
        let id = match source {
            DeviceIdSource::CpuinfoSerial => cpuinfo_serial(&text),
            DeviceIdSource::DevicetreeSerial | DeviceIdSource::MachineId => clean(&text),
        };
        match id {
            Some(id) => return Ok(DeviceId { id, source }),
            None => tried.push(path),
        }
    }
    Err(DeviceIdError::NotFound { tried })
}

/// The `Serial : 10000000abcdef01` value, if present and not all zeros (some non-Pi ARM
/// kernels print a zero serial, which identifies nothing).
fn cpuinfo_serial(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key.trim() != "Serial" {
            return None;
        }
        clean(value)
    })
}

/// Trims whitespace and the device tree's trailing NUL; `None` if nothing or only zeros
/// is left.
fn clean(text: &str) -> Option<String> {
    let id = text
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_ascii_lowercase();
    (!id.is_empty() && id.chars().any(|c| c != '0')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, SysRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        for (path, content) in files {
            let p = root.path(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        (dir, root)
    }

    const PI_CPUINFO: &[u8] = b"processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nRevision\t: c03111\nSerial\t\t: 10000000ABCDEF01\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n";

    #[test]
    fn pi_serial_from_cpuinfo_wins_over_machine_id() {
        let (_d, root) = root_with(&[
            (CPUINFO, PI_CPUINFO),
            (MACHINE_ID, b"0123456789abcdef0123456789abcdef\n"),
        ]);
        let id = device_id(&root).unwrap();
        assert_eq!(id.id, "10000000abcdef01");
        assert_eq!(id.source, DeviceIdSource::CpuinfoSerial);
    }

    #[test]
    fn devicetree_serial_is_used_when_cpuinfo_has_none() {
        let (_d, root) = root_with(&[
            (CPUINFO, b"processor\t: 0\nSerial\t\t: 0000000000000000\n"),
            (DT_SERIAL, b"10000000cafe0001\0"),
            (MACHINE_ID, b"0123456789abcdef0123456789abcdef\n"),
        ]);
        let id = device_id(&root).unwrap();
        assert_eq!(id.id, "10000000cafe0001");
        assert_eq!(id.source, DeviceIdSource::DevicetreeSerial);
    }

    #[test]
    fn machine_id_is_the_fallback_off_a_pi() {
        let (_d, root) = root_with(&[
            (CPUINFO, b"processor\t: 0\nvendor_id\t: GenuineIntel\n"),
            (MACHINE_ID, b"0123456789ABCDEF0123456789abcdef\n"),
        ]);
        let id = device_id(&root).unwrap();
        assert_eq!(id.id, "0123456789abcdef0123456789abcdef");
        assert_eq!(id.source, DeviceIdSource::MachineId);
    }

    #[test]
    fn no_source_is_an_error_naming_every_file_tried() {
        let (_d, root) = root_with(&[(MACHINE_ID, b"\n")]);
        let err = device_id(&root).unwrap_err().to_string();
        assert!(err.contains("proc/cpuinfo"), "{err}");
        assert!(err.contains("serial-number"), "{err}");
        assert!(err.contains("etc/machine-id"), "{err}");
    }
}
