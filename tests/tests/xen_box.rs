//! Boots the Xen test box (real Xen 4.17 + Debian dom0 under QEMU, `xen-box/run.sh`) and runs
//! the end-to-end suite (`xen-e2e`) in its dom0, with the `domainmgrd` and `domainctl` binaries
//! (and the daemon's xl.cfg parser, `domainmgrd-xlparse`) beside it: three times, the HVM tests in
//! a box of their own, and the tests between two Xen hosts (`twohost_`) in box 1 of a pair of
//! boxes joined by a network (`xen-box/run-pair.sh`). Fails loudly if a box cannot be built or
//! booted. Set `XEN_BOX_SKIP=1` to skip it: it then prints that it was skipped, and why, and
//! reports the tests as ignored; nothing else skips it.
//!
//! It has its own harness (`harness = false`, libtest-mimic) because libtest captures a passing
//! test's output: a skip would otherwise look like a pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

/// What a run boots.
#[derive(Clone, Copy)]
enum Boxes {
    /// One box (`xen-box/run.sh`).
    One,
    /// Two boxes joined by a network (`xen-box/run-pair.sh`): the suite runs in box 1, box 2 is
    /// its peer (dom0 `$XENBOX_PEER_ADDR`, root over ssh); both get the same files and variables.
    Pair,
}

/// The box runs and the suite's arguments in each: the suite but its HVM tests, the HVM tests in
/// a box of their own (a QEMU that dies under an HVM guest must not take the other tests with
/// it), and the tests between two Xen hosts in a pair of boxes, one at a time.
const RUNS: [(&str, Boxes, &[&str]); 3] = [
    ("end_to_end_on_real_xen", Boxes::One, &["--test-threads", "2", "--skip", "hvm_", "--skip", "twohost_"]),
    ("hvm_guests_on_real_xen", Boxes::One, &["--test-threads", "2", "hvm_"]),
    ("two_xen_hosts", Boxes::Pair, &["--test-threads", "1", "twohost_"]),
];

fn main() {
    let mut args = Arguments::from_args();
    // One run at a time: two boxes on a 2-core machine slow an HVM guest's boot several times (and
    // a pair is two boxes already).
    args.test_threads.get_or_insert(1);
    let skip = std::env::var("XEN_BOX_SKIP").is_ok_and(|v| v == "1");
    let trials = RUNS
        .iter()
        .map(|&(name, boxes, suite_args)| {
            let selected = args.filter.as_deref().is_none_or(|f| if args.exact { name == f } else { name.contains(f) });
            if skip && selected && !args.list {
                eprintln!(
                    "SKIPPED: {name}: the end-to-end tests on real Xen did not run, because XEN_BOX_SKIP=1 is set"
                );
            }
            Trial::test(name, move || end_to_end_on_real_xen(name, boxes, suite_args)).with_ignored_flag(skip)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn runner(boxes: Boxes) -> PathBuf {
    let script = match boxes {
        Boxes::One => "xen-box/run.sh",
        Boxes::Pair => "xen-box/run-pair.sh",
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script)
}

/// Builds domainmgrd, domainctl and the xl.cfg parser helper with the profile this suite was
/// built with; their directory.
fn build_domainmgrd(suite: &Path) -> Result<PathBuf, Failed> {
    let dir = suite.parent().ok_or("the suite binary is in a target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "domainmgrd", "--bins"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err("building domainmgrd failed".into());
    }
    for bin in ["domainmgrd", "domainctl", "domainmgrd-xlparse"] {
        if !dir.join(bin).exists() {
            return Err(format!("{} was not built", dir.join(bin).display()).into());
        }
    }
    Ok(dir.to_path_buf())
}

/// Builds the container guests' init, static (scripts/build-container-init.sh): its path.
fn build_container_init() -> Result<PathBuf, Failed> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-container-init.sh");
    let out = Command::new(&script)
        .arg("--quiet")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    if !out.status.success() || path.is_empty() {
        return Err(format!("{} failed ({})", script.display(), out.status).into());
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    Ok(path)
}

/// Boots a box (or a pair) and runs `xen-e2e SUITE_ARGS...` in its dom0 (in box 1's for a pair;
/// `name` says which run, in messages).
fn end_to_end_on_real_xen(name: &str, boxes: Boxes, suite_args: &[&str]) -> Result<(), Failed> {
    let suite = Path::new(env!("CARGO_BIN_EXE_xen-e2e"));
    let bins = build_domainmgrd(suite)?;
    let init = build_container_init()?;
    let what = match boxes {
        Boxes::One => "the Xen box",
        Boxes::Pair => "a pair of Xen boxes",
    };
    eprintln!(
        "{name}: booting {what} to run {} {} in dom0 (the first run builds the box: a few minutes)",
        suite.display(),
        suite_args.join(" ")
    );
    let runner = runner(boxes);
    let mut command = Command::new(&runner);
    if let Boxes::Pair = boxes {
        // One vCPU each: two boxes of two would be four emulation threads on CI's two cores,
        // and every guest boot and migration would crawl (the pair boots in 25 s, not 60).
        command.env("XENBOX_SMP", "1");
    }
    // For a pair, run-pair.sh gives these files and variables to both boxes.
    let status = command
        .arg("--timeout=2400")
        .arg(format!("--file={}", bins.join("domainmgrd").display()))
        .arg(format!("--file={}", bins.join("domainctl").display()))
        // Beside the daemon in /mnt/host/, where it looks for it first.
        .arg(format!("--file={}", bins.join("domainmgrd-xlparse").display()))
        // The packaged no-op hotplug script: the daemons set up vifs and disks themselves.
        .arg(format!(
            "--file={}",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/libexec/native-hotplug").display()
        ))
        // The static init of container guests (`domainctl run`).
        .arg(format!("--file={}", init.display()))
        // containerd, for EVE's container volumes (its snapshots): the host's, as scripts/setup.sh
        // installs it (a static Go program but for libc).
        .args(xen_ctrd::testing::find_binary().map(|c| format!("--file={}", c.display())))
        .arg("--env=CONTAINERD=/mnt/host/containerd")
        .args([
            "--env=CONTAINER_INIT=/mnt/host/xen-container-init",
            "--env=RUST_BACKTRACE=1",
            "--env=DOMAINMGRD=/mnt/host/domainmgrd",
            "--env=DOMAINCTL=/mnt/host/domainctl",
            "--env=NATIVE_HOTPLUG=/mnt/host/native-hotplug",
        ])
        .arg("--")
        .arg(suite)
        .args(suite_args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", runner.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(124) => Err(format!("{name}: the run of {what} timed out (see the serial log tail above)").into()),
        Some(125) => Err(format!(
            "{name}: {what} could not be built or did not boot, or the toolstack did not come up (see above)"
        )
        .into()),
        _ => Err(format!("{name}: end-to-end tests failed in {what} ({status}); their output is above").into()),
    }
}
