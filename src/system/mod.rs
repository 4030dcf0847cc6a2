//! The operating system around the recorder: the on-disk layout, storage folders,
//! systemd, the clock, machine metrics and the device's identity.
//!
//! Everything here is synchronous and small; the daemons call it from blocking tasks.
//! Nothing here decides policy (when to start, what is healthy): callers do.

pub mod clock;
pub mod device_id;
pub mod layout;
pub mod metrics;
pub mod process;
pub mod storage;
pub mod sysroot;
pub mod systemd;
