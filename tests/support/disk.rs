//! A small tmpfs the test can fill: the full-disk tests (`daemon_disk_full`) and the
//! soak (`make soak`) put the storages on one. Mounting needs root with `CAP_SYS_ADMIN`.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A tmpfs mounted on `dir` for the length of a test, unmounted when dropped, even
/// when the test fails. The unmount is lazy (`MNT_DETACH`) so a daemon still holding a
/// file there cannot keep the mount alive.
pub struct Tmpfs {
    /// The mount point.
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"2m"`) on `dir`, creating it.
    pub fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).expect("creating the mount point");
        let fstype = CString::new("tmpfs").unwrap();
        let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let options = CString::new(format!("size={size},mode=0755")).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            let euid = nix::unistd::Uid::effective();
            if e.raw_os_error() == Some(libc::EPERM) {
                panic!(
                    "this test needs root with CAP_SYS_ADMIN, to mount a {size} tmpfs it can \
                     fill (running as euid {euid}): mount -t tmpfs on {} failed: {e}",
                    dir.display()
                );
            }
            panic!("mount -t tmpfs on {} failed: {e}", dir.display());
        }
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!(
                "unmounting {}: {}",
                self.dir.display(),
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Appends to `path` until the file system refuses (`ENOSPC`), in smaller and smaller
/// writes so that not even a byte is left; returns the bytes written.
pub fn fill(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening the filler");
    let mut size = 0u64;
    for chunk in [64 << 10, 4 << 10, 256, 1] {
        let buf = vec![0xA5u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => size += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("writing the filler: {e}"),
            }
        }
    }
    size
}

/// Available bytes on the file system holding `path`.
pub fn available(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks_available() as u64 * st.fragment_size() as u64
}
