//! End-to-end tests of host boot and shutdown (xendomains' work), save and restore, and
//! operators' stops, through `domainctl` and a `domainmgrd` process on real Xen in the box.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use domainmgrd::domain::Report;
use xenctl::{Context, DomId, DomainState};

use crate::*;

const BOOT: Duration = Duration::from_secs(120);

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("host_start_restores_a_matching_image_refuses_a_stale_one_starts_autostart", host_start),
        ("host_stop_shuts_down_one_and_destroys_the_one_ignoring_it_after_the_watchdog", host_stop),
        ("host_domainctl_create_save_restore_console_destroy", save_and_restore),
        ("host_operator_stop_survives_a_daemon_restart_and_host_start", operator_stop_persists),
        ("host_a_fresh_boot_after_a_save_makes_the_image_stale", fresh_boot_makes_image_stale),
        ("host_stop_aborts_a_save_that_overruns_stop_maxwait_and_leaves_no_image", save_overruns_watchdog),
        ("host_kill9_during_a_save_leaves_the_guest_running_after_restart", kill9_during_a_save),
    ]
}

/// A daemon whose host settings are `AUTO=<root>/auto` and `lines`.
fn host_daemon(name: &str, lines: &str) -> TestResult<DaemonProcess> {
    let d = DaemonProcess::new(name, &["timer.domain.shutdown:60"]);
    std::fs::create_dir_all(d.root.join("auto")).ctx("mkdir auto")?;
    let text =
        format!("AUTO={}\n{}\n", d.root.join("auto").display(), lines.replace("@ROOT@", &d.root.display().to_string()));
    std::fs::write(d.root.join("host.conf"), text).ctx("write host.conf")?;
    Ok(d)
}

/// The xl.cfg text of the box's test guest.
fn xl_cfg(name: &str, xenbox_args: &str) -> String {
    xl_cfg_sized(name, xenbox_args, 128)
}

/// The size of the big guests of the save tests: two of them and the other tests' guests do
/// not fit in the box beside dom0 (1 GiB of 2).
const BIG_GUEST_MIB: u32 = 512;

/// Held by a test with a big guest for all its run, its guest's destruction included (bind it
/// first, so that it is dropped last): the suite runs two tests at a time, and two big guests
/// at once leave Xen out of memory.
fn big_guest_turn() -> std::sync::MutexGuard<'static, ()> {
    static BIG_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());
    BIG_GUEST.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until Xen has room for a big guest: a domain destroyed just before gives its memory
/// back only once Xen has scrubbed it.
fn wait_for_room_for_a_big_guest() -> TestResult {
    wait_until("Xen to have free memory for a big guest", BOOT, || {
        let free: u32 = xl(&["info", "free_memory"]).ok()?.trim().parse().ok()?;
        (free >= BIG_GUEST_MIB + 64).then_some(())
    })
}

/// The xl.cfg text of the box's test guest with `memory_mib` of memory (a bigger guest takes
/// longer to save).
fn xl_cfg_sized(name: &str, xenbox_args: &str, memory_mib: u32) -> String {
    let spec = test_guest(name, xenbox_args);
    format!(
        "name = \"{name}\"\ntype = \"pv\"\nkernel = \"{}\"\nramdisk = \"{}\"\nextra = \"{}\"\nmemory = {memory_mib}\nvcpus = 1\n\
         vif = [ 'bridge={}' ]\non_poweroff = \"destroy\"\non_reboot = \"restart\"\non_crash = \"preserve\"\n",
        spec.kernel.clone().unwrap_or_default(),
        spec.ramdisk.clone().unwrap_or_default(),
        spec.cmdline.as_deref().unwrap_or_default(),
        std::env::var("XENBOX_BRIDGE").unwrap_or_else(|_| "xenbr0".into()),
    )
}

fn write_auto(d: &DaemonProcess, name: &str, xenbox_args: &str) -> TestResult<PathBuf> {
    let path = d.root.join("auto").join(format!("{name}.cfg"));
    std::fs::write(&path, xl_cfg(name, xenbox_args)).ctx("write autostart file")?;
    Ok(path)
}

/// A daemon named `daemon` with host settings `settings`, one autostart guest (name from
/// `prefix`) that host-start booted and that is up. Bind the guard as `_cleanup`, not `_`: it
/// destroys the guest when the test ends (after the daemon, declared after it, has gone).
fn one_autostart_guest_up(prefix: &str, daemon: &str, settings: &str) -> TestResult<(String, Cleanup, DaemonProcess)> {
    let name = unique_name(prefix);
    let cleanup = Cleanup(vec![name.clone()]);
    let mut d = host_daemon(daemon, settings)?;
    write_auto(&d, &name, "")?;
    d.start()?;
    d.wait_ready()?;
    host_start_and_boot(&d, &name)?;
    Ok((name, cleanup, d))
}

/// host-start, which must boot `name`, then its guest's readiness on the console; a failure
/// says what host-start reported, the daemon's log and Xen's free memory.
fn host_start_and_boot(d: &DaemonProcess, name: &str) -> TestResult {
    let (code, reports) = host_op(d, "host-start")?;
    let why = |what: String| {
        let log = std::fs::read_to_string(d.root.join("daemon.log")).unwrap_or_default();
        let free = Command::new("xl").args(["info", "free_memory"]).output().map(|o| o.stdout).unwrap_or_default();
        format!(
            "{what}\nhost-start exited {code}: {reports:#?}\nxl info free_memory: {}daemon log tail:\n{}",
            String::from_utf8_lossy(&free),
            tail(&log, 30)
        )
    };
    let r = report(&reports, name).map_err(&why)?;
    ensure(r.ok, || why(format!("host-start did not boot {name}")))?;
    wait_console(name, "XENBOX-GUEST-READY", BOOT).map_err(why)?;
    Ok(())
}

/// `domainctl --json host-start|host-stop`: exit code and the reports.
fn host_op(d: &DaemonProcess, op: &str) -> TestResult<(i32, Vec<Report>)> {
    let o = d.domainctl(&["--json", op])?;
    let reports = serde_json::from_str(&o.stdout)
        .map_err(|e| format!("domainctl {op}: not reports ({e}): {}{}", o.stdout, o.stderr))?;
    Ok((o.code, reports))
}

fn report<'a>(reports: &'a [Report], name: &str) -> TestResult<&'a Report> {
    reports.iter().find(|r| r.name == name).ok_or_else(|| format!("no report for {name}: {reports:#?}"))
}

fn ready_count(name: &str) -> usize {
    console_text(name).matches("XENBOX-GUEST-READY").count()
}

/// Two requests through the thread of the domain `name`, which does not run: the second is
/// answered only after the thread went once more through deciding whether to boot it, so a
/// domain that was going to come back on its own has been created by then.
fn settle(d: &DaemonProcess, name: &str) -> TestResult {
    for _ in 0..2 {
        let o = d.domainctl(&["restart", name])?;
        ensure(o.code == 1 && o.stderr.contains("not running"), || format!("restart of a stopped {name}: {o:?}"))?;
    }
    Ok(())
}

fn host_start(_ctx: &Context) -> TestResult {
    let [a, b, saved, stale] = ["hs-a", "hs-b", "hs-saved", "hs-stale"].map(unique_name);
    let _cleanup = Cleanup(vec![a.clone(), b.clone(), saved.clone(), stale.clone()]);
    let mut d = host_daemon("dm-host-start", "SAVE=@ROOT@/save\nSTART_PARALLEL=2")?;
    for n in [&a, &b, &saved] {
        write_auto(&d, n, "")?;
    }
    let stale_cfg = write_auto(&d, &stale, "")?;
    d.start()?;
    d.wait_ready()?;
    let save_dir = d.root.join("save");

    // Two of them ran before the host went down and were saved.
    for n in [&saved, &stale] {
        d.domainctl_ok(&["start", n])?;
        wait_console(n, "XENBOX-GUEST-READY", BOOT)?;
        let out = d.domainctl_ok(&["save", n])?;
        ensure(out.starts_with(&format!("{n}: saved to {}", save_dir.join(n).display())), || out.clone())?;
        ensure(!running(n)?, || format!("{n} still runs after its save"))?;
        ensure(save_dir.join(format!("{n}.domainmgr.json")).exists(), || "no image record".into())?;
    }
    // One's config changes after its save: its image is stale.
    std::fs::write(&stale_cfg, xl_cfg(&stale, "xenbox.marker=changed")).ctx("rewrite")?;

    // The host boots again: a new daemon, then host-start.
    d.terminate()?;
    d.start()?;
    d.wait_ready()?;
    let (code, reports) = host_op(&d, "host-start")?;
    ensure(code == 1, || format!("a stale image is a failure to report, exit 1, not {code}: {reports:#?}"))?;
    let r = report(&reports, &saved)?;
    ensure(r.ok && r.outcome.starts_with("restored from"), || format!("{r:?}"))?;
    let r = report(&reports, &stale)?;
    ensure(!r.ok && r.outcome.contains("stale: its config changed"), || format!("{r:?}"))?;
    ensure(r.outcome.contains("started as domain"), || format!("the stale one boots afresh: {r:?}"))?;
    for n in [&a, &b] {
        let r = report(&reports, n)?;
        ensure(r.ok && r.outcome.starts_with("started as domain"), || format!("{r:?}"))?;
    }
    for n in [&a, &b, &saved, &stale] {
        ensure(running(n)?, || format!("{n} does not run after host-start"))?;
    }
    ensure(!save_dir.join(&saved).exists(), || "a restored image is deleted".into())?;
    ensure(save_dir.join("stale").join(&stale).exists(), || "a stale image is moved to stale/".into())?;
    wait_console(&stale, "XENBOX-MARKER changed", BOOT)?;
    for n in [&a, &b] {
        wait_console(n, "XENBOX-GUEST-READY", BOOT)?;
    }
    // Restored, not re-created: the guest booted once only.
    ensure(ready_count(&saved) == 1, || format!("{saved} booted {} times", ready_count(&saved)))?;

    // Again: nothing to do.
    let (code, reports) = host_op(&d, "host-start")?;
    ensure(code == 0 && reports.iter().all(|r| r.outcome.starts_with("already running")), || format!("{reports:#?}"))?;
    d.terminate()?;
    ensure(running(&a)?, || "stopping the daemon stopped a domain".into())
}

fn host_stop(_ctx: &Context) -> TestResult {
    let [polite, deaf] = ["hst-polite", "hst-deaf"].map(unique_name);
    let _cleanup = Cleanup(vec![polite.clone(), deaf.clone()]);
    let mut d = host_daemon("dm-host-stop", "STOP_MAXWAIT=20\nSYSRQ=\"s\"")?;
    write_auto(&d, &polite, "")?;
    write_auto(&d, &deaf, "xenbox.ignore_shutdown=1")?;
    d.start()?;
    d.wait_ready()?;
    let (code, reports) = host_op(&d, "host-start")?;
    ensure(code == 0, || format!("{reports:#?}"))?;
    for n in [&polite, &deaf] {
        wait_console(n, "XENBOX-GUEST-READY", BOOT)?;
    }

    let (code, reports) = host_op(&d, "host-stop")?;
    ensure(code == 0, || format!("exit {code}: {reports:#?}"))?;
    let p = report(&reports, &polite)?;
    ensure(p.ok && p.outcome == "shut down", || format!("{p:?}"))?;
    println!("    host-stop: the polite guest shut down in {:.1} s", p.seconds);
    let r = report(&reports, &deaf)?;
    ensure(r.ok && r.outcome == "shut down (destroyed: it did not shut down in time)", || format!("{r:?}"))?;
    ensure(r.seconds >= 20.0, || format!("destroyed before the watchdog (STOP_MAXWAIT=20): {r:?}"))?;
    ensure(console_text(&deaf).contains("XENBOX-GUEST-IGNORED-SHUTDOWN"), || "the shutdown was not asked".into())?;
    ensure(console_text(&polite).contains("sysrq: Emergency Sync"), || {
        format!("no SysRq s on the console:\n{}", tail(&console_text(&polite), 10))
    })?;
    for n in [&polite, &deaf] {
        ensure(!running(n)?, || format!("{n} still runs after host-stop"))?;
    }
    // While the host is stopping nothing comes back, and the daemon keeps serving, also after
    // the daemon restarts before host-start.
    for n in [&polite, &deaf] {
        settle(&d, n)?;
    }
    ensure(!running(&polite)? && !running(&deaf)?, || "a domain came back after host-stop".into())?;
    let o = d.domainctl(&["status"])?;
    ensure(o.code == 3, || format!("status with nothing running: exit {} ({o:?})", o.code))?;
    d.terminate()?;
    d.start()?;
    d.wait_ready()?;
    for n in [&polite, &deaf] {
        settle(&d, n)?;
    }
    ensure(!running(&polite)? && !running(&deaf)?, || "a daemon restart undid the host-stop".into())?;
    d.terminate().map(drop)
}

fn save_and_restore(_ctx: &Context) -> TestResult {
    let name = unique_name("ctl-t");
    let _cleanup = Cleanup(vec![name.clone()]);
    let mut d = host_daemon("dm-ctl", "")?;
    d.start()?;
    d.wait_ready()?;
    let cfg = d.root.join(format!("{name}.cfg"));
    std::fs::write(&cfg, xl_cfg(&name, "")).ctx("write cfg")?;

    let out = d.domainctl_ok(&["create", &cfg.display().to_string()])?;
    ensure(out.starts_with(&format!("{name}: started as domain")), || out.clone())?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    let list = d.domainctl_ok(&["list"])?;
    let row = list.lines().find(|l| l.starts_with(&name)).unwrap_or_default();
    ensure(row.contains("RUNNING") && row.ends_with("transient"), || format!("domainctl list:\n{list}"))?;

    let image = d.root.join("t.save");
    let image_arg = image.display().to_string();
    d.domainctl_ok(&["save", &name, &image_arg])?;
    ensure(!running(&name)? && image.exists(), || "after save: still running, or no image".into())?;
    let o = d.domainctl(&["status", &name])?;
    ensure(o.code == 3, || format!("status of a saved domain: {o:?}"))?;

    let out = d.domainctl_ok(&["restore", &image_arg])?;
    ensure(out.starts_with(&format!("{name}: restored as domain")), || out.clone())?;
    ensure(running(&name)? && !image.exists(), || "after restore: not running, or the image is left".into())?;
    ensure(ready_count(&name) == 1, || "the restored guest booted again".into())?;
    ensure(d.domainctl(&["status", &name])?.code == 0, || "status after restore".into())?;

    let tty = d.domainctl_ok(&["console", &name])?;
    ensure(tty.trim().starts_with("/dev/pts/") && Path::new(tty.trim()).exists(), || tty.clone())?;

    // A second restore of the same image is refused (it was deleted); the domain is untouched.
    let o = d.domainctl(&["restore", &image_arg])?;
    ensure(o.code == 1 && running(&name)?, || format!("{o:?}"))?;

    d.domainctl_ok(&["destroy", &name])?;
    ensure(!running(&name)?, || "destroy left it running".into())?;
    wait_until("the transient domain is forgotten", BOOT, || {
        d.domainctl(&["status", &name]).ok().filter(|o| o.code == 4)
    })?;
    d.terminate().map(drop)
}

fn operator_stop_persists(_ctx: &Context) -> TestResult {
    let (name, _cleanup, mut d) = one_autostart_guest_up("op-stop", "dm-op-stop", "")?;

    let out = d.domainctl_ok(&["stop", &name, "--timeout", "60"])?;
    ensure(out.starts_with(&format!("{name}: stopped")), || out.clone())?;
    ensure(!running(&name)?, || "stop left it running".into())?;
    ensure(d.domainctl(&["status", &name])?.code == 3, || "status after stop".into())?;

    // The daemon dies and comes back; the host boots.
    d.kill9()?;
    d.start()?;
    d.wait_ready()?;
    let (code, reports) = host_op(&d, "host-start")?;
    let r = report(&reports, &name)?;
    ensure(code == 0 && r.outcome == "left stopped (an operator stopped it)", || format!("{r:?}"))?;
    settle(&d, &name)?;
    ensure(!running(&name)?, || "an operator-stopped domain came back".into())?;

    let out = d.domainctl_ok(&["start", &name])?;
    ensure(out.starts_with(&format!("{name}: started as domain")), || out.clone())?;
    ensure(d.domainctl(&["status", &name])?.code == 0, || "status after start".into())?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    d.terminate()?;
    ensure(running(&name)?, || "stopping the daemon stopped the domain".into())
}

/// A save, then a fresh start (the guest writes its disks from then on), then a stop: the
/// next host-start must not restore the old memory over the newer disks.
fn fresh_boot_makes_image_stale(_ctx: &Context) -> TestResult {
    let (name, _cleanup, mut d) = one_autostart_guest_up("stale", "dm-stale", "SAVE=@ROOT@/save")?;
    let save_dir = d.root.join("save");
    let out = d.domainctl_ok(&["save", &name])?;
    ensure(out.starts_with(&format!("{name}: saved to {}", save_dir.join(&name).display())), || out.clone())?;

    let out = d.domainctl_ok(&["start", &name])?;
    ensure(out.starts_with(&format!("{name}: started as domain")), || out.clone())?;
    wait_until("the fresh boot", BOOT, || (ready_count(&name) == 2).then_some(()))?;
    d.domainctl_ok(&["stop", &name, "--timeout", "60"])?;
    ensure(save_dir.join(&name).exists(), || "the image is gone already".into())?;

    let (code, reports) = host_op(&d, "host-start")?;
    let r = report(&reports, &name)?;
    ensure(code == 1 && !r.ok, || format!("a stale image is a failure to report: exit {code}, {r:?}"))?;
    ensure(r.outcome.contains("stale: the domain was booted afresh since the save"), || format!("{r:?}"))?;
    ensure(r.outcome.starts_with("left stopped (an operator stopped it)"), || format!("{r:?}"))?;
    ensure(!running(&name)? && ready_count(&name) == 2, || "the old image was restored".into())?;
    let stale = save_dir.join("stale").join(&name);
    ensure(stale.exists() && !save_dir.join(&name).exists(), || "the image was not moved to stale/".into())?;
    let o = d.domainctl(&["restore", &stale.display().to_string()])?;
    ensure(o.code == 1 && o.stderr.contains("stale: the domain was booted afresh"), || format!("{o:?}"))?;
    ensure(!running(&name)?, || "domainctl restore restored a stale image".into())?;
    d.terminate().map(drop)
}

/// host-stop's watchdog covers saves: a save still writing when STOP_MAXWAIT fires (a 512 MiB
/// guest takes seconds to save under TCG) is aborted in libxl and its domain destroyed, and it
/// ends as no image at all: no partial file, no record, nothing that libxl finishes later.
fn save_overruns_watchdog(_ctx: &Context) -> TestResult {
    let _turn = big_guest_turn();
    let name = unique_name("slow-save");
    let _cleanup = Cleanup(vec![name.clone()]);
    let mut d = host_daemon("dm-slow-save", "SAVE=@ROOT@/save\nSTOP_MAXWAIT=1")?;
    std::fs::write(d.root.join("auto").join(format!("{name}.cfg")), xl_cfg_sized(&name, "", BIG_GUEST_MIB))
        .ctx("write cfg")?;
    d.start()?;
    d.wait_ready()?;
    wait_for_room_for_a_big_guest()?;
    host_start_and_boot(&d, &name)?;
    let save_dir = d.root.join("save");

    let (code, reports) = host_op(&d, "host-stop")?;
    let r = report(&reports, &name)?;
    let want = format!(
        "destroyed: its save to {} did not finish within 1 s (STOP_MAXWAIT); not saved",
        save_dir.join(&name).display()
    );
    ensure(code == 1 && !r.ok && r.outcome == want, || format!("exit {code}: {r:?}"))?;
    ensure(r.seconds >= 1.0, || format!("given up before the watchdog: {r:?}"))?;
    ensure(!running(&name)?, || "the domain whose save overran still runs".into())?;
    let left: Vec<_> = std::fs::read_dir(&save_dir).ctx("read SAVE")?.flatten().map(|e| e.file_name()).collect();
    ensure(left.is_empty(), || format!("the aborted save left {left:?} in SAVE"))?;
    let log = std::fs::read_to_string(d.root.join("daemon.log")).unwrap_or_default();
    ensure(log.contains("is being aborted"), || format!("libxl was not asked to abort:\n{}", tail(&log, 30)))?;

    // Not saved, so the next boot starts it afresh.
    d.terminate()?;
    d.start()?;
    d.wait_ready()?;
    let (code, reports) = host_op(&d, "host-start")?;
    let r = report(&reports, &name)?;
    ensure(code == 0 && r.outcome.starts_with("started as domain"), || format!("exit {code}: {r:?}"))?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    ensure(std::fs::read_dir(&save_dir).ctx("read SAVE")?.next().is_none(), || "an image appeared later".into())?;
    d.terminate().map(drop)
}

/// A daemon killed with SIGKILL in the middle of a save: the guest, suspended by the save, is
/// resumed by the next daemon (same domain, not rebooted, running), and the partial image goes.
fn kill9_during_a_save(ctx: &Context) -> TestResult {
    let _turn = big_guest_turn();
    let name = unique_name("kill-save");
    let _cleanup = Cleanup(vec![name.clone()]);
    let mut d = host_daemon("dm-kill-save", "SAVE=@ROOT@/save")?;
    std::fs::write(d.root.join("auto").join(format!("{name}.cfg")), xl_cfg_sized(&name, "", BIG_GUEST_MIB))
        .ctx("write cfg")?;
    d.start()?;
    d.wait_ready()?;
    wait_for_room_for_a_big_guest()?;
    host_start_and_boot(&d, &name)?;
    let domid = xl_list()?.into_iter().find(|r| r.name == name).ok_or("not in xl list")?.domid;
    let image = d.root.join("save").join(&name);
    let partial = d.root.join("save").join(format!("{name}.partial"));

    // The save runs (its domainctl waits for it in the background), the image half written.
    let mut saver = Command::new(
        std::env::var_os("DOMAINCTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| DaemonProcess::binary().with_file_name("domainctl")),
    );
    saver.arg(format!("--socket={}", d.socket().display())).args(["save", &name]);
    let mut saver = saver.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ctx("domainctl save")?;
    wait_until("the save to be writing its image", BOOT, || {
        std::fs::metadata(&partial).ok().filter(|m| m.len() > 8 << 20).map(drop)
    })?;
    d.kill9()?;
    let _ = saver.wait();
    let info = ctx.info(DomId::new(domid)).ctx("info after kill -9")?;
    ensure(!image.exists(), || "the save completed before the kill; the test proves nothing".into())?;

    d.start()?;
    d.wait_ready()?;
    wait_until("the guest to run again", BOOT, || {
        ctx.info(DomId::new(domid))
            .ok()
            .filter(|i| i.state.is_live() && !matches!(i.state, DomainState::Shutdown(_)))
            .map(drop)
    })?;
    let o = d.domainctl(&["status", &name])?;
    ensure(o.code == 0, || format!("not RUNNING after the restart ({:?} when killed): {o:?}", info.state))?;
    ensure(!partial.exists() && !image.exists(), || "the partial image was left".into())?;
    ensure(ready_count(&name) == 1, || "the guest booted again instead of being resumed".into())?;
    // And it really runs: its CPU time grows.
    let before = ctx.info(DomId::new(domid)).ctx("info")?.cpu_time_ns;
    wait_until("its CPU time to grow", BOOT, || {
        ctx.info(DomId::new(domid)).ok().filter(|i| i.cpu_time_ns > before).map(drop)
    })?;
    let log = std::fs::read_to_string(d.root.join("daemon.log")).unwrap_or_default();
    ensure(log.contains("left suspended by a save cut short"), || {
        format!("not resumed by the daemon?\n{}", tail(&log, 30))
    })?;
    d.terminate().map(drop)
}
