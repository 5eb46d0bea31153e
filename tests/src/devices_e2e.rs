//! End-to-end tests of domainmgrd's PCI/USB adapter policy and metrics on real Xen.

use crate::E2eTest;

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    Vec::new()
}
