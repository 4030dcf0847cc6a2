//! Bad input for the store area.

#[allow(unused_imports)]
use crate::harness::Case;
#[allow(unused_imports)]
use crate::support::Install;
