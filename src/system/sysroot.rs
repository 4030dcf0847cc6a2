//! Where kernel and firmware files are read from: `/` on a device, a directory of fake
//! `/proc` and `/sys` files in tests.
//!
//! This is a path prefix and the name of one helper program (`vcgencmd`), nothing more:
//! it does not know which files exist or what they mean.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A root under which absolute kernel paths (`/proc/uptime`, `/sys/class/thermal`) are
/// resolved, plus the Raspberry Pi firmware tool to run when sysfs lacks an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    root: PathBuf,
    vcgencmd: OsString,
}

impl Default for SysRoot {
    /// The real machine: `/` and `vcgencmd` from `PATH`.
    fn default() -> Self {
        SysRoot::new("/")
    }
}

impl SysRoot {
    /// Files are read below `root`; `vcgencmd` is looked up on `PATH`.
    pub fn new(root: impl Into<PathBuf>) -> SysRoot {
        SysRoot {
            root: root.into(),
            vcgencmd: "vcgencmd".into(),
        }
    }

    /// The same root with another `vcgencmd` program (a path or a name on `PATH`).
    pub fn with_vcgencmd(mut self, program: impl Into<OsString>) -> SysRoot {
        self.vcgencmd = program.into();
        self
    }

    /// `absolute` (e.g. `/proc/uptime`) below this root.
    pub fn path(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let absolute = absolute.as_ref();
        // `join` with an absolute path would replace the root, so the leading `/` goes.
        self.root
            .join(absolute.strip_prefix("/").unwrap_or(absolute))
    }

    /// The `vcgencmd` program to run.
    pub fn vcgencmd(&self) -> &OsString {
        &self.vcgencmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_resolved_below_the_root() {
        let r = SysRoot::new("/tmp/fake");
        assert_eq!(r.path("/proc/uptime"), Path::new("/tmp/fake/proc/uptime"));
        assert_eq!(
            SysRoot::default().path("/proc/uptime"),
            Path::new("/proc/uptime")
        );
    }
}
