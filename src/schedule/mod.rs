//! Schedules: when to record. This module is pure window arithmetic; it does no I/O and
//! takes time only from a [`plan::Clock`].

pub mod plan;
pub mod spec;
