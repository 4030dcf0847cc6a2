//! Machine metrics read from a fake `/proc` and `/sys` tree (the real kernel files are
//! read by the last test here and by the qemu boot test), and from a fake `vcgencmd`
//! process reached through a symlink.

use std::path::Path;
use std::time::Duration;

use acoupi::system::metrics::{self, Metrics, MetricsError};
use acoupi::system::sysroot::SysRoot;

const FAKE_VCGENCMD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake-vcgencmd");

fn put(root: &SysRoot, path: &str, content: &str) {
    let p = root.path(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A root with no vcgencmd at all (a nonexistent program).
fn fake_root(dir: &Path) -> SysRoot {
    SysRoot::new(dir).with_vcgencmd(dir.join("no-such-vcgencmd"))
}

const MEMINFO: &str = "MemTotal:        3884100 kB\nMemFree:          812345 kB\nMemAvailable:    2931204 kB\nBuffers:           45000 kB\n";

#[test]
fn cpu_thermal_zone_is_preferred_over_lower_numbered_zones() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    put(
        &root,
        "/sys/class/thermal/thermal_zone0/type",
        "x86_pkg_temp\n",
    );
    put(&root, "/sys/class/thermal/thermal_zone0/temp", "38000\n");
    put(
        &root,
        "/sys/class/thermal/thermal_zone1/type",
        "cpu-thermal\n",
    );
    put(&root, "/sys/class/thermal/thermal_zone1/temp", "51234\n");
    assert_eq!(metrics::cpu_temperature(&root).unwrap(), Some(51.234));
}

#[test]
fn first_readable_zone_is_used_without_a_cpu_thermal_zone() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    put(&root, "/sys/class/thermal/thermal_zone10/type", "acpitz\n");
    put(&root, "/sys/class/thermal/thermal_zone10/temp", "20000\n");
    put(&root, "/sys/class/thermal/thermal_zone2/type", "acpitz\n");
    put(&root, "/sys/class/thermal/thermal_zone2/temp", "-5500\n");
    assert_eq!(metrics::cpu_temperature(&root).unwrap(), Some(-5.5));
}

#[test]
fn no_thermal_zones_means_no_temperature() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        metrics::cpu_temperature(&fake_root(dir.path())).unwrap(),
        None
    );
}

#[test]
fn throttling_is_read_from_the_firmware_sysfs_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    put(
        &root,
        "/sys/devices/platform/soc/soc:firmware/get_throttled",
        "50005\n",
    );
    let t = metrics::throttling(&root).unwrap().unwrap();
    assert_eq!(t.raw, 0x50005);
    assert!(t.under_voltage_now && t.under_voltage_ever && t.throttled_now);
    assert!(!t.freq_capped_now);
}

#[test]
fn throttling_falls_back_to_vcgencmd_and_reports_its_failure() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("vcgencmd");
    std::os::unix::fs::symlink(FAKE_VCGENCMD, &program).unwrap();
    let root = SysRoot::new(dir.path().join("root")).with_vcgencmd(&program);

    let err = metrics::throttling(&root).unwrap_err();
    assert!(matches!(err, MetricsError::Vcgencmd { .. }), "{err:?}");
    assert!(
        err.to_string().contains("VCHI initialization failed"),
        "{err}"
    );

    std::fs::write(dir.path().join("throttled"), "0x60002").unwrap();
    let t = metrics::throttling(&root).unwrap().unwrap();
    assert!(t.freq_capped_now && t.freq_capped_ever && t.throttled_ever);
    assert!(!t.under_voltage_ever && !t.throttled_now);
}

#[test]
fn no_sysfs_attribute_and_no_vcgencmd_means_not_a_pi() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(metrics::throttling(&fake_root(dir.path())).unwrap(), None);
}

#[test]
fn uptime_memory_and_load_are_parsed_from_proc() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    put(&root, "/proc/uptime", "12345.67 45678.90\n");
    put(&root, "/proc/meminfo", MEMINFO);
    put(&root, "/proc/loadavg", "0.52 0.38 0.21 2/190 4242\n");
    assert_eq!(
        metrics::uptime(&root).unwrap(),
        Duration::from_millis(12_345_670)
    );
    let m = metrics::memory(&root).unwrap();
    assert_eq!(m.total_bytes, 3_884_100 * 1024);
    assert_eq!(m.available_bytes, 2_931_204 * 1024);
    let l = metrics::load_average(&root).unwrap();
    assert_eq!((l.one, l.five, l.fifteen), (0.52, 0.38, 0.21));
}

#[test]
fn malformed_proc_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    put(&root, "/proc/uptime", "soon\n");
    put(&root, "/proc/meminfo", "MemTotal: 100 kB\n");
    let err = metrics::uptime(&root).unwrap_err().to_string();
    assert!(err.contains("proc/uptime") && err.contains("soon"), "{err}");
    let err = metrics::memory(&root).unwrap_err().to_string();
    assert!(err.contains("proc/meminfo"), "{err}");
    let err = metrics::load_average(&root).unwrap_err().to_string();
    assert!(err.contains("proc/loadavg"), "{err}");
}

#[test]
fn collect_keeps_what_it_can_read_and_leaves_the_rest_empty() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    put(&root, "/proc/meminfo", MEMINFO);
    let m = Metrics::collect(&root, dir.path());
    assert!(m.disk.is_some());
    assert_eq!(m.memory.unwrap().available_bytes, 2_931_204 * 1024);
    assert_eq!(m.uptime_s, None);
    assert_eq!(m.load, None);
    assert_eq!(m.cpu_temperature_c, None);
    assert_eq!(m.throttling, None);
}

#[test]
fn disk_space_of_a_real_file_system_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let d = metrics::disk_space(dir.path()).unwrap();
    assert!(d.total_bytes > 0);
    assert!(d.free_bytes <= d.total_bytes);
    let err = metrics::disk_space(&dir.path().join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn this_machines_kernel_files_are_readable() {
    let m = Metrics::collect(&SysRoot::default(), Path::new("/"));
    assert!(m.uptime_s.is_some_and(|s| s > 0.0), "{m:?}");
    let mem = m.memory.expect("MemAvailable in /proc/meminfo");
    assert!(mem.available_bytes > 0 && mem.available_bytes <= mem.total_bytes);
    assert!(m.load.is_some(), "{m:?}");
    assert!(m.disk.is_some(), "{m:?}");
}
