//! End-to-end tests of xl.cfg parsing on real Xen: DomainSpec::from_xl_config against
//! `xl -N create FILE` for a corpus of configs.

use crate::E2eTest;

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    Vec::new()
}
