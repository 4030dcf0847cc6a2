//! The program configuration: its schema and defaults.

pub mod schema;
