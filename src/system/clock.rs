//! Is the system clock synchronised? A Raspberry Pi has no real-time clock, so until
//! NTP (or an RTC) sets it, time stamps may be days off; recordings and heartbeats carry
//! this flag so a reader can tell.
//!
//! The answer comes from the kernel (`adjtimex` with no modes set, i.e. read only), the
//! same source `timedatectl`'s `NTPSynchronized` uses, so it needs neither D-Bus nor
//! `timedatectl`. This module does not know which daemon disciplines the clock.

use serde::Serialize;

/// `adjtimex` failed.
#[derive(Debug, thiserror::Error)]
#[error("reading the kernel clock state (adjtimex): {source}")]
pub struct ClockError {
    /// The errno.
    #[source]
    source: std::io::Error,
}

/// The kernel's view of the clock's synchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClockSync {
    /// The clock is synchronised to a time source: what `timedatectl` reports as
    /// `System clock synchronized`.
    pub synchronised: bool,
    /// The kernel's maximum error bound in microseconds (grows while undisciplined).
    pub max_error_us: i64,
    /// The estimated error in microseconds.
    pub est_error_us: i64,
    /// `STA_UNSYNC` is set (or `adjtimex` returned `TIME_ERROR`). Informational: chrony
    /// sets it on a synchronised clock to keep the kernel from writing the RTC.
    pub kernel_unsync_flag: bool,
}

/// The kernel's `NTP_PHASE_LIMIT`: the maximum error of a clock nobody disciplines. A
/// bound below it means a time source has set the clock within the last few hours.
pub const MAX_ERROR_LIMIT_US: i64 = 16_000_000;

impl ClockSync {
    /// Decodes `adjtimex`'s return value and `timex` fields.
    ///
    /// `synchronised` follows systemd's `ntp_synced()` (what `timedatectl` shows):
    /// the maximum error is below 16 s. The kernel raises `STA_UNSYNC` itself once that
    /// bound is reached, so for timesyncd both rules agree; with chrony without
    /// `rtcsync` only the bound is right.
    pub fn decode(ret: i32, status: i32, max_error_us: i64, est_error_us: i64) -> ClockSync {
        ClockSync {
            synchronised: max_error_us < MAX_ERROR_LIMIT_US,
            max_error_us,
            est_error_us,
            kernel_unsync_flag: ret == libc::TIME_ERROR || status & libc::STA_UNSYNC != 0,
        }
    }
}

/// Reads the clock state from the kernel.
pub fn clock_sync() -> Result<ClockSync, ClockError> {
    // SAFETY: `timex` is plain old data, for which all-zero is valid; modes = 0 makes
    // adjtimex read only, and the pointer is to a live, exclusively borrowed struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let ret = unsafe { libc::adjtimex(&mut tx) };
    if ret < 0 {
        return Err(ClockError {
            source: std::io::Error::last_os_error(),
        });
    }
    // `c_long` is 32-bit on armv7: widen, never truncate.
    #[allow(clippy::useless_conversion)]
    let (max, est) = (i64::from(tx.maxerror), i64::from(tx.esterror));
    Ok(ClockSync::decode(ret, tx.status, max, est))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_follows_the_max_error_bound_and_reports_the_unsync_flag() {
        // Fresh boot, no NTP: kernel defaults (bound at the limit, STA_UNSYNC, TIME_ERROR).
        let boot = ClockSync::decode(libc::TIME_ERROR, libc::STA_UNSYNC, 16_000_000, 16_000_000);
        assert!(!boot.synchronised);
        assert!(boot.kernel_unsync_flag);

        // timesyncd after a sync: STA_PLL only, small bounds, TIME_OK.
        let synced = ClockSync::decode(libc::TIME_OK, libc::STA_PLL, 12_000, 300);
        assert!(synced.synchronised);
        assert!(!synced.kernel_unsync_flag);
        assert_eq!((synced.max_error_us, synced.est_error_us), (12_000, 300));

        // chrony without rtcsync: synchronised although STA_UNSYNC is set.
        let chrony = ClockSync::decode(
            libc::TIME_ERROR,
            libc::STA_UNSYNC | libc::STA_PLL,
            40_000,
            10,
        );
        assert!(chrony.synchronised);
        assert!(chrony.kernel_unsync_flag);
    }

    #[test]
    fn reading_the_kernel_clock_state_succeeds() {
        let s = clock_sync().unwrap();
        assert!(s.max_error_us >= 0);
        assert_eq!(s.synchronised, s.max_error_us < MAX_ERROR_LIMIT_US);
    }
}
