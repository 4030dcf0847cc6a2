//! Audio: the sample formats, and facts about the ALSA library linked into this binary.

pub mod format;

use std::ffi::CStr;

/// The version of the alsa-lib this binary runs with (the static one on the device).
pub fn alsa_lib_version() -> String {
    // SAFETY: snd_asoundlib_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(alsa_sys::snd_asoundlib_version()) }
        .to_string_lossy()
        .into_owned()
}
