//! The only module that speaks SQL: metadata.db and the messages.db outbox.

pub mod outbox;
