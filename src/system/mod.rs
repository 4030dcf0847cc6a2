//! The operating system around the recorder: the on-disk layout.

pub mod layout;
