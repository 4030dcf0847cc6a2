//! Periodic work of the default worker: the management task (saving filters, moving
//! kept files, retention).

pub mod management;
