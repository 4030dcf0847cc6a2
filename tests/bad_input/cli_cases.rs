//! Bad input for the cli area.

#[allow(unused_imports)]
use crate::harness::Case;
#[allow(unused_imports)]
use crate::support::Install;
