//! Schedules: when to record. This module is pure window arithmetic; it does no I/O.

pub mod spec;
