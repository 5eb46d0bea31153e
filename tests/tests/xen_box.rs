//! Boots the Xen test box (real Xen 4.17 + Debian dom0 under QEMU, `xen-box/run.sh`) and runs
//! the end-to-end suite (`xen-e2e`) in its dom0, with the `domainmgrd` and `domainctl` binaries
//! beside it. Fails loudly if the box cannot be built or booted. Set `XEN_BOX_SKIP=1` to skip it
//! (it then says so); nothing else skips it.

// Test code: a failed step panics, which is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xen-box/run.sh")
}

/// Builds domainmgrd and domainctl with the profile this suite was built with; their directory.
fn build_domainmgrd(suite: &Path) -> PathBuf {
    let dir = suite.parent().expect("the suite binary is in a target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "domainmgrd", "--bins"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building domainmgrd failed");
    for bin in ["domainmgrd", "domainctl"] {
        assert!(dir.join(bin).exists(), "{} was not built", dir.join(bin).display());
    }
    dir.to_path_buf()
}

#[test]
fn end_to_end_on_real_xen() {
    if std::env::var("XEN_BOX_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: the Xen box end-to-end tests (XEN_BOX_SKIP=1 is set)");
        return;
    }
    let suite = Path::new(env!("CARGO_BIN_EXE_xen-e2e"));
    let bins = build_domainmgrd(suite);
    eprintln!("booting the Xen box to run {} in dom0 (the first run builds the box: a few minutes)", suite.display());
    let status = Command::new(runner())
        .arg("--timeout=1800")
        .arg(format!("--file={}", bins.join("domainmgrd").display()))
        .arg(format!("--file={}", bins.join("domainctl").display()))
        .args([
            "--env=RUST_BACKTRACE=1",
            "--env=DOMAINMGRD=/mnt/host/domainmgrd",
            "--env=DOMAINCTL=/mnt/host/domainctl",
        ])
        .arg("--")
        .arg(suite)
        .args(["--test-threads", "2"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", runner().display()));
    match status.code() {
        Some(0) => {}
        Some(124) => panic!("the Xen box run timed out (see the serial log tail above)"),
        Some(125) => panic!("the Xen box did not boot or its toolstack did not come up (see above)"),
        _ => panic!("end-to-end tests failed in the Xen box ({status}); their output is above"),
    }
}
