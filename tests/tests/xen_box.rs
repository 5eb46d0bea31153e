//! Boots the Xen test box (real Xen 4.17 + Debian dom0 under QEMU, `xen-box/run.sh`) and runs
//! the end-to-end suite (`xen-e2e`) in its dom0. Fails loudly if the box cannot be built or
//! booted. Set `XEN_BOX_SKIP=1` to skip it (it then says so); nothing else skips it.

use std::path::PathBuf;
use std::process::Command;

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xen-box/run.sh")
}

#[test]
fn xenctl_end_to_end_on_real_xen() {
    if std::env::var("XEN_BOX_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: the Xen box end-to-end tests (XEN_BOX_SKIP=1 is set)");
        return;
    }
    let suite = env!("CARGO_BIN_EXE_xen-e2e");
    eprintln!("booting the Xen box to run {suite} in dom0 (first run builds the box: a few minutes)");
    let status = Command::new(runner())
        .args(["--timeout", "1800", "--env", "RUST_BACKTRACE=1", "--", suite, "--test-threads", "2"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", runner().display()));
    match status.code() {
        Some(0) => {}
        Some(124) => panic!("the Xen box run timed out (see the serial log tail above)"),
        Some(125) => panic!("the Xen box did not boot or its toolstack did not come up (see above)"),
        _ => panic!("end-to-end tests failed in the Xen box ({status}); their output is above"),
    }
}
