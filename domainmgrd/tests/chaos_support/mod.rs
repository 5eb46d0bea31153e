//! The chaos test's parts: `scenario.rs` draws a run from its seed, `run.rs` runs it (steps,
//! kill, restart, settle), `oracle.rs` keeps what the scenario asked and judges the outcome,
//! and `recorder.rs` records what the restarted daemon asks of the hypervisor.

// Test support: a failed step panics, which is how a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod oracle;
pub mod recorder;
pub mod run;
pub mod scenario;
