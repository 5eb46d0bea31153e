//! Benchmarks on real Xen in the box, domainmgrd side by side with `xl` in one boot:
//! one guest from config file to RUNNING vs `xl create`, four guests at once vs four `xl create`
//! in a row, a guest's poweroff to the HALTED status file, host boot and shutdown of eight guests
//! (xendomains' sequential `xl` vs `domainctl host-start`/`host-stop`), and one metrics sample.
//! Prints a Markdown table.
//!
//! `xen-bench devices` runs only the device benchmark instead: create and destroy of one guest
//! with no device, a vif, a file disk and both, through the daemon (native device setup) vs
//! `xl`, and four and eight such guests at once (the daemon's creates at once vs the xendomains
//! loop vs parallel `xl create` processes).
//!
//! `xen-bench containers` runs the container start benchmark: `domainctl run` of a busybox
//! image to its entrypoint's first console line, against the same image booted as a VM from a
//! disk: the same kernel, init and run spec, the bundle on an ext4 image instead of 9pfs
//! (`xencontainer.disk=/dev/xvda`), created through the same daemon.
//!
//! `xen-bench disk-copies` runs the disk copy benchmark: the first boot of a guest from its own
//! copy of a 1 GiB shared image, by reflink (XFS), qcow2 overlay, sparse and plain copy (ext4),
//! against the image in place.
//!
//! Run with `scripts/bench-box.sh [devices|containers|disk-copies]` (it builds release binaries
//! and boots the box).
//! With `XENBENCH_LOG_DIR` set, `devices` copies the daemon's log there.

use std::path::Path;
use std::time::{Duration, Instant};

use xen_tests::*;
use xenctl::{Context, DomId, DomainEvent};

const ROUNDS: usize = 3;
const LONG: Duration = Duration::from_secs(120);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(v: &[Duration]) -> String {
    let min = v.iter().min().copied().unwrap_or_default();
    let max = v.iter().max().copied().unwrap_or_default();
    let secs = |d: Duration| d.as_secs_f64();
    if max < Duration::from_millis(100) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        return format!("{:.2} ms (min {:.2}, max {:.2})", ms(median(v.to_vec())), ms(min), ms(max));
    }
    format!("{:.2} s (min {:.2}, max {:.2})", secs(median(v.to_vec())), secs(min), secs(max))
}

fn xl_cfg(name: &str) -> TestResult<String> {
    xl_cfg_with(name, "")
}

/// An xl.cfg for the test guest with `xenbox_args` on its command line and a vif; its path.
fn xl_cfg_with(name: &str, xenbox_args: &str) -> TestResult<String> {
    xl_cfg_lines(name, xenbox_args, "vif = [ \"bridge=xenbr0\" ]\n")
}

/// An xl.cfg for the test guest with `xenbox_args` on its command line and `lines` (devices);
/// its path.
fn xl_cfg_lines(name: &str, xenbox_args: &str, lines: &str) -> TestResult<String> {
    let path = format!("/tmp/{name}.cfg");
    let text = format!(
        "name = \"{name}\"\ntype = \"pv\"\nkernel = \"{}\"\nramdisk = \"{}\"\nextra = \"console=hvc0 loglevel=4 {xenbox_args}\"\nmemory = 128\nvcpus = 1\n{lines}",
        std::env::var("XENBOX_GUEST_KERNEL").unwrap_or_default(),
        std::env::var("XENBOX_GUEST_RAMDISK").unwrap_or_default()
    );
    std::fs::write(&path, text).ctx("write xl cfg")?;
    Ok(path)
}

fn gone(ctx: &Context, name: &str) -> TestResult {
    wait_until(&format!("{name} to be gone"), LONG, || ctx.domid_of(name).ok().flatten().is_none().then_some(()))
}

const HOST_GUESTS: usize = 8;

/// Host boot and shutdown of HOST_GUESTS guests whose shutdown takes `stop_delay` seconds of
/// waiting (0: just the kernel's own poweroff, which under TCG is CPU time).
fn host_rows(ctx: &Context, rows: &mut Vec<(String, String)>, stop_delay: u32) -> TestResult {
    let mut daemon = DaemonProcess::new("bench-host", &["timer.domain.shutdown:60"]);
    let auto = daemon.root.join("auto");
    std::fs::create_dir_all(&auto).ctx("mkdir auto")?;
    std::fs::write(daemon.root.join("host.conf"), format!("AUTO={}\nSTOP_MAXWAIT=120\n", auto.display()))
        .ctx("host.conf")?;
    let names: Vec<String> = (0..HOST_GUESTS).map(|i| format!("bench-host-{i}")).collect();
    for n in &names {
        let args = if stop_delay > 0 { format!("xenbox.stop_delay={stop_delay}") } else { String::new() };
        std::fs::copy(xl_cfg_with(n, &args)?, auto.join(format!("{n}.cfg"))).ctx("autostart file")?;
    }
    daemon.start()?;
    daemon.wait_ready()?;
    let ready_count = |n: &str| console_text(n).matches("XENBOX-GUEST-READY").count();
    let (mut xl_ret, mut xl_ready, mut xl_stop) = (vec![], vec![], vec![]);
    let (mut dm_ret, mut dm_ready, mut dm_stop) = (vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let before: Vec<usize> = names.iter().map(|n| ready_count(n)).collect();
        let t = Instant::now();
        for n in &names {
            xl(&["create", "--quiet", &auto.join(format!("{n}.cfg")).display().to_string()])?;
        }
        xl_ret.push(t.elapsed());
        for (n, b) in names.iter().zip(&before) {
            wait_until(&format!("{n} READY"), LONG, || (ready_count(n) > *b).then_some(()))?;
        }
        xl_ready.push(t.elapsed());
        let t = Instant::now();
        for n in &names {
            xl(&["shutdown", "--wait", n])?;
        }
        xl_stop.push(t.elapsed());
        for n in &names {
            gone(ctx, n)?;
        }

        let before: Vec<usize> = names.iter().map(|n| ready_count(n)).collect();
        let t = Instant::now();
        daemon.domainctl_ok(&["host-start"])?;
        dm_ret.push(t.elapsed());
        for (n, b) in names.iter().zip(&before) {
            wait_until(&format!("{n} READY"), LONG, || (ready_count(n) > *b).then_some(()))?;
        }
        dm_ready.push(t.elapsed());
        let t = Instant::now();
        daemon.domainctl_ok(&["host-stop"])?;
        dm_stop.push(t.elapsed());
        for n in &names {
            gone(ctx, n)?;
        }
    }
    daemon.terminate()?;
    let k = HOST_GUESTS;
    if stop_delay == 0 {
        rows.push((format!("host boot, {k} guests: `xl create` one after another (xendomains) returns"), fmt(&xl_ret)));
        rows.push((format!("host boot, {k} guests: `domainctl host-start` returns (all RUNNING)"), fmt(&dm_ret)));
        rows.push((format!("host boot, {k} guests: `xl create` one after another -> all READY"), fmt(&xl_ready)));
        rows.push((format!("host boot, {k} guests: `domainctl host-start` -> all READY"), fmt(&dm_ready)));
    }
    let what = if stop_delay == 0 { String::new() } else { format!(" that take {stop_delay} s to stop") };
    rows.push((
        format!("host stop, {k} guests{what}: `xl shutdown --wait` one after another (xendomains)"),
        fmt(&xl_stop),
    ));
    rows.push((format!("host stop, {k} guests{what}: `domainctl host-stop`"), fmt(&dm_stop)));
    Ok(())
}

/// The devices of a device-benchmark guest.
#[derive(Clone, Copy)]
enum Devs {
    None,
    Vif,
    Disk,
    Both,
}

impl Devs {
    fn label(self) -> &'static str {
        match self {
            Devs::None => "no device",
            Devs::Vif => "a vif",
            Devs::Disk => "a file disk",
            Devs::Both => "a vif and a file disk",
        }
    }
}

/// An xl.cfg of the test guest with `devs` (its disk a sparse 64 MiB file of its own); its path.
fn device_cfg(name: &str, devs: Devs) -> TestResult<String> {
    let mut lines = String::new();
    if matches!(devs, Devs::Vif | Devs::Both) {
        lines += "vif = [ 'bridge=xenbr0' ]\n";
    }
    if matches!(devs, Devs::Disk | Devs::Both) {
        let image = format!("/tmp/{name}.img");
        std::fs::File::create(&image).and_then(|f| f.set_len(64 << 20)).ctx("disk image")?;
        lines += &format!("disk = [ 'format=raw,vdev=xvda,access=rw,target={image}' ]\n");
    }
    xl_cfg_lines(name, "", &lines)
}

/// Runs `f` on every item at once, one thread each: the time until all returned, and the
/// errors of those that failed.
fn at_once(items: &[String], f: impl Fn(&str) -> TestResult + Sync) -> (Duration, Vec<String>) {
    let t = Instant::now();
    let results: Vec<TestResult> = std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(|| f(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into()))).collect()
    });
    let failed = results.into_iter().filter_map(|r| r.err().map(|e| e.to_string())).collect();
    (t.elapsed(), failed)
}

/// A row, printed at once too (a later failure must not lose the figures).
fn row(rows: &mut Vec<(String, String)>, what: String, value: String) {
    println!("| {what} | {value} |");
    rows.push((what, value));
}

/// Issue 16's table: one guest per device set, xl vs the daemon, create and destroy; then four
/// and eight guests with both devices at once.
fn device_rows(ctx: &Context, rows: &mut Vec<(String, String)>) -> TestResult {
    ensure(std::env::var("NATIVE_HOTPLUG").is_ok(), || "NATIVE_HOTPLUG is not set: no native device setup".into())?;
    let mut d = DaemonProcess::new("bench-native", &["timer.domain.shutdown:30"]);
    d.start()?;
    d.wait_ready()?;
    for (k, devs) in [Devs::None, Devs::Vif, Devs::Disk, Devs::Both].into_iter().enumerate() {
        let (mut xc, mut xd, mut dc, mut dd) = (vec![], vec![], vec![], vec![]);
        for r in 0..ROUNDS {
            let name = format!("bench-dev-xl-{k}-{r}");
            let cfg = device_cfg(&name, devs)?;
            let t = Instant::now();
            xl(&["create", "--quiet", &cfg])?;
            xc.push(t.elapsed());
            let t = Instant::now();
            xl(&["destroy", &name])?;
            gone(ctx, &name)?;
            xd.push(t.elapsed());

            let name = format!("bench-dev-dm-{k}-{r}");
            let cfg = device_cfg(&name, devs)?;
            let t = Instant::now();
            d.domainctl_ok(&["create", &cfg])?;
            dc.push(t.elapsed());
            let t = Instant::now();
            d.domainctl_ok(&["destroy", &name])?;
            gone(ctx, &name)?;
            dd.push(t.elapsed());
        }
        let what = devs.label();
        row(rows, format!("one guest, {what}: `xl create` returns"), fmt(&xc));
        row(rows, format!("one guest, {what}: `domainctl create` returns (RUNNING)"), fmt(&dc));
        row(rows, format!("one guest, {what}: `xl destroy` -> gone"), fmt(&xd));
        row(rows, format!("one guest, {what}: `domainctl destroy` -> gone"), fmt(&dd));
    }
    for n in [4usize, 8] {
        let (mut seq, mut par, mut dm) = (vec![], vec![], vec![]);
        let (mut par_failed, mut dm_failed) = (Vec::new(), Vec::new());
        for r in 0..ROUNDS {
            let names: Vec<String> = (0..n).map(|i| format!("bench-many{n}-{r}-{i}")).collect();
            let cfgs: Vec<String> = names.iter().map(|m| device_cfg(m, Devs::Both)).collect::<TestResult<_>>()?;
            // Whatever of them exists goes.
            let destroy_all = |how: &dyn Fn(&str) -> TestResult| -> TestResult {
                for m in &names {
                    if ctx.domid_of(m).ok().flatten().is_some() {
                        how(m)?;
                    }
                    gone(ctx, m)?;
                }
                Ok(())
            };
            let t = Instant::now();
            for c in &cfgs {
                xl(&["create", "--quiet", c])?;
            }
            seq.push(t.elapsed());
            destroy_all(&|m| xl(&["destroy", m]).map(drop))?;
            let (took, failed) = at_once(&cfgs, |c| xl(&["create", "--quiet", c]).map(drop));
            par.push(took);
            par_failed.extend(failed);
            destroy_all(&|m| xl(&["destroy", m]).map(drop))?;
            let (took, failed) = at_once(&cfgs, |c| d.domainctl_ok(&["create", c]).map(drop));
            dm.push(took);
            dm_failed.extend(failed);
            destroy_all(&|m| d.domainctl_ok(&["destroy", m]).map(drop))?;
        }
        let failures = |f: &[String]| {
            if f.is_empty() {
                String::new()
            } else {
                let first = f[0].lines().find(|l| l.contains("error")).unwrap_or(&f[0]).to_string();
                format!("; {} of {} creates failed, e.g. {first}", f.len(), n * ROUNDS)
            }
        };
        let what = format!("{n} guests with a vif and a disk");
        row(rows, format!("{what}: `xl create` one after another (xendomains)"), fmt(&seq));
        row(rows, format!("{what}: {n} `xl create` processes at once"), fmt(&par) + &failures(&par_failed));
        row(rows, format!("{what}: {n} `domainctl create` at once"), fmt(&dm) + &failures(&dm_failed));
    }
    d.terminate()?;
    // For a look at where the time went: the daemon's log (its lines are stamped).
    if let Ok(dir) = std::env::var("XENBENCH_LOG_DIR") {
        let to = Path::new(&dir).join("bench-native-daemon.log");
        std::fs::copy(d.root.join("daemon.log"), &to).ctx("copy the daemon's log")?;
        println!("the daemon's log: {}", to.display());
    }
    Ok(())
}

fn print_rows(ctx: &Context, rows: Vec<(String, String)>) -> Result<(), String> {
    let host = ctx.host_info().ctx("host")?;
    println!(
        "\nXen {} in the box: {} CPUs, {} MiB; median of {ROUNDS} rounds",
        host.xen_version,
        host.nr_cpus,
        host.total_memory_bytes >> 20
    );
    println!("| measure | time |");
    println!("|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    Ok(())
}

/// Issue 17's table: a container's start to its first line, over 9pfs and from a disk.
fn container_rows(ctx: &Context, rows: &mut Vec<(String, String)>) -> TestResult {
    use xen_tests::container_e2e::{busybox_image, container_daemon};
    let d = container_daemon("bench-ctr")?;
    let script = "echo FIRST-LINE";
    let image = busybox_image(&d.root, &["/bin/sh", "-c", script], &[])?;
    let first_line = |name: &str, t: Instant| -> TestResult<Duration> {
        wait_until(&format!("{name}'s first line"), LONG, || console_text(name).contains("FIRST-LINE").then_some(()))
            .map_err(|e| format!("{e}; console:\n{}", tail(&console_text(name), 30)))?;
        let took = t.elapsed();
        gone(ctx, name)?;
        Ok(took)
    };
    // (the command's return: the domain created and unpaused; the first line)
    let run_ctr = |name: &str| -> TestResult<(Duration, Duration)> {
        let t = Instant::now();
        d.domainctl_ok(&["run", "--name", name, &image.display().to_string()])?;
        let returned = t.elapsed();
        Ok((returned, first_line(name, t)?))
    };
    // The first run builds the initramfs (cached after) and unpacks the image, as every run does.
    let (_, cold) = run_ctr("bench-ctr-cold")?;
    row(rows, "`domainctl run` to the first line, first run (builds the initramfs)".into(), fmt(&[cold]));

    // The VM: the same bundle on an ext4 image, the same init with the block front end and ext4.
    let bundle = d.root.join("vm-bundle");
    std::fs::create_dir_all(&bundle).ctx("the VM's bundle")?;
    xen_oci::Image::open(&image).and_then(|i| i.unpack(&bundle.join("rootfs"))).map_err(|e| e.to_string())?;
    let spec = xen_container_init::RunSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into(), "GREETING=from-the-image".into()],
        cwd: "/srv".into(),
        user: "app".into(),
        ..Default::default()
    };
    std::fs::write(bundle.join(xen_container_init::SPEC_FILE), spec.to_json()?).ctx("the run spec")?;
    let disk = d.root.join("vm-bundle.ext4");
    std::fs::File::create(&disk).and_then(|f| f.set_len(64 << 20)).ctx("the disk image")?;
    run("mkfs.ext4", &["-q", "-F", "-d", &bundle.display().to_string(), &disk.display().to_string()])?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ctx("osrelease")?;
    let initrd = d.root.join("vm-initrd.cpio");
    let parts = domainmgrd::container::initrd::InitrdParts {
        init: std::env::var("CONTAINER_INIT").map_err(|_| "CONTAINER_INIT is not set")?.into(),
        modules_dir: Some(format!("/lib/modules/{}", release.trim()).into()),
        // ext4 asks for crc32c at mount time (a soft dependency modules.dep does not list).
        extra_modules: vec!["xen_blkfront".into(), "crc32c_generic".into(), "ext4".into()],
    };
    domainmgrd::container::initrd::build(&parts, &initrd)?;
    let vm_cfg = |name: &str| -> TestResult<String> {
        let path = d.root.join(format!("{name}.cfg"));
        let text = format!(
            "name = \"{name}\"\ntype = \"pvh\"\nkernel = \"{}\"\nramdisk = \"{}\"\nextra = \"console=hvc0 quiet xencontainer.disk=/dev/xvda\"\nmemory = 128\nvcpus = 1\non_poweroff = \"destroy\"\ndisk = [ \"format=raw,vdev=xvda,access=rw,target={}\" ]\n",
            std::env::var("XENBOX_GUEST_KERNEL").unwrap_or_default(),
            initrd.display(),
            disk.display()
        );
        std::fs::write(&path, text).ctx("the VM's xl.cfg")?;
        Ok(path.display().to_string())
    };
    let (mut ctr, mut ctr_ret, mut vm, mut vm_ret) = (vec![], vec![], vec![], vec![]);
    for r in 0..ROUNDS {
        let (returned, first) = run_ctr(&format!("bench-ctr-{r}"))?;
        ctr_ret.push(returned);
        ctr.push(first);
        let name = format!("bench-ctr-vm-{r}");
        let cfg = vm_cfg(&name)?;
        let t = Instant::now();
        d.domainctl_ok(&["create", &cfg])?;
        vm_ret.push(t.elapsed());
        vm.push(first_line(&name, t)?);
    }
    row(rows, "`domainctl run` returns (image unpacked, domain RUNNING)".into(), fmt(&ctr_ret));
    row(rows, "`domainctl run` to the first line (9pfs)".into(), fmt(&ctr));
    row(rows, "the same image as a VM from an ext4 disk: `domainctl create` returns".into(), fmt(&vm_ret));
    row(rows, "the same image as a VM from an ext4 disk: to the first line".into(), fmt(&vm));
    let ratio = median(ctr).as_secs_f64() / median(vm).as_secs_f64();
    row(rows, "container / VM".into(), format!("{ratio:.2}"));
    Ok(())
}

/// Now, as UTC with milliseconds (the daemon log's form), for lining up with the daemons' logs.
fn wall_clock() -> String {
    run("date", &["-u", "+%Y-%m-%dT%H:%M:%S.%3NZ"]).map(|s| s.trim().to_string()).unwrap_or_else(|e| e)
}

/// A ping of `addr` every 20 ms from this dom0, its replies timestamped (`ping -D`).
struct Pinger {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Pinger {
    fn start(addr: &str, out: &Path) -> TestResult<Pinger> {
        let file = std::fs::File::create(out).ctx("ping output")?;
        let child = std::process::Command::new("ping")
            .args(["-6", "-D", "-n", "-i", "0.02", "-W", "1", addr])
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .ctx("ping")?;
        Ok(Pinger { child, out: out.to_path_buf() })
    }

    /// Stops it: the longest gap between two replies, and how many replies came.
    fn stop(mut self) -> TestResult<(Duration, usize)> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).ctx("ping output")?;
        let times: Vec<f64> = text
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect();
        let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        Ok((Duration::from_secs_f64(gap), times.len()))
    }
}

/// Live migration between the boxes of a pair (run in box 1, `scripts/bench-box.sh migrate`): a
/// 128 MiB PVH guest moved there and back by `domainctl migrate --live` (daemon to daemon), then
/// once stopped and copied, and another moved there and back by `xl migrate` (xl to xl): each
/// command's time, and the guest's downtime as the longest gap in its answers to a ping every
/// 20 ms from this dom0 (the boxes' bridges are one link, so it answers from either host). The
/// way back runs on the peer, over ssh like the way there, for both tools. After each, the
/// guest's console on its new host must show it counting on (no second boot).
fn migrate_rows(rows: &mut Vec<(String, String)>) -> TestResult {
    use xen_tests::twohost_e2e::{
        PeerDaemon, console_here, console_there, daemon, guest_addr, guest_cfg, last_tick, me, peer, ping_here, ssh,
        start_here, wait_count, wait_ticks,
    };
    let (peer, me) = (peer()?, me());
    let mut here = daemon("bench-mig-a");
    start_here(&mut here, "")?;
    let there = PeerDaemon::start(&daemon("bench-mig-b"), "")?;
    let mut results: Vec<(&str, Vec<Duration>, Vec<Duration>)> = Vec::new();
    // Each guest: its name and its MAC's last byte.
    let (dm, xl_guest) = (("bench-mig-dm", 9), ("bench-mig-xl", 10));
    // `arrives_there`: where the guest runs after the command, whose console must show it counting
    // on from where it was (a migration that ended in a new boot fails the bench).
    let mut measure = |how: &'static str,
                       (name, tail): (&str, u8),
                       arrives_there: bool,
                       go: &dyn Fn() -> TestResult<String>|
     -> TestResult {
        let addr = guest_addr(tail);
        let console = |there: bool| if there { console_there(name) } else { console_here(name) };
        let tick = last_tick(&console(!arrives_there));
        ping_here(&addr)?;
        let pinger = Pinger::start(&addr, &here.root.join("ping.out"))?;
        std::thread::sleep(Duration::from_secs(1));
        let t = Instant::now();
        eprintln!("{how}: {name} starts at {}", wall_clock());
        go()?;
        let took = t.elapsed();
        eprintln!("{how}: {name} returned at {}", wall_clock());
        // Its downtime ends once it answers again: the gap is only whole after that.
        ping_here(&addr)?;
        wait_ticks(how, tick, || console(arrives_there))?;
        std::thread::sleep(Duration::from_secs(1));
        let (gap, replies) = pinger.stop()?;
        eprintln!("{how}: {took:?}, longest gap {gap:?} ({replies} replies)");
        match results.iter_mut().find(|r| r.0 == how) {
            Some(r) => {
                r.1.push(took);
                r.2.push(gap);
            }
            None => results.push((how, vec![took], vec![gap])),
        }
        Ok(())
    };
    // Both guests first, then the tools in turn (ours, xl, ours, xl...), so that neither
    // always goes first: each round takes each guest there and back, live; then ours once
    // more stopped and copied.
    for (name, tail) in [dm, xl_guest] {
        let cfg = here.root.join(format!("{name}.cfg"));
        std::fs::write(&cfg, guest_cfg(name, tail, "")).ctx("cfg")?;
        let cfg = cfg.display().to_string();
        if name == dm.0 {
            here.domainctl_ok(&["create", &cfg])?;
        } else {
            xl(&["create", &cfg])?;
        }
    }
    let (dm_name, xl_name) = (dm.0, xl_guest.0);
    wait_count("booted", 2, || console_here(dm_name))?;
    wait_count("booted", 2, || console_here(xl_name))?;
    let live = "domainmgrd: domainctl migrate --live";
    let xl_live = "xl: xl migrate (always live)";
    for _round in 0..2 {
        measure(live, dm, true, &|| here.domainctl_ok(&["migrate", "--live", dm_name, &peer]))?;
        measure(xl_live, xl_guest, true, &|| xl(&["migrate", xl_name, &peer]))?;
        measure(live, dm, false, &|| there.ctl(&format!("migrate --live {dm_name} {me}")))?;
        measure(xl_live, xl_guest, false, &|| ssh(&format!("xl migrate {xl_name} {me}")))?;
    }
    measure("domainmgrd: domainctl migrate (stop and copy)", dm, true, &|| {
        here.domainctl_ok(&["migrate", dm_name, &peer])
    })?;
    there.ctl(&format!("destroy {dm_name}"))?;
    xl(&["destroy", xl_name])?;
    // Where the command time goes: both daemons' lines about the moves, with their times (the
    // daemon's log has milliseconds), beside the starts and returns printed above.
    let about_the_moves = |log: &str| -> String {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(dm_name) || l.contains("migrat")).collect();
        lines.join("\n")
    };
    let here_log = std::fs::read_to_string(here.root.join("daemon.log")).unwrap_or_default();
    eprintln!("--- this host's daemon, {dm_name}:\n{}", about_the_moves(&here_log));
    eprintln!("--- the peer's daemon, {dm_name}:\n{}", about_the_moves(&there.log()));
    for (how, took, gap) in results {
        rows.push((format!("{how}: the command (n={})", took.len()), fmt(&took)));
        rows.push((format!("{how}: the guest's downtime (longest ping gap)"), fmt(&gap)));
    }
    Ok(())
}

/// Issue 19's table: the time to the first boot of a guest from its own copy of a 1 GiB shared
/// image (256 MiB of data in 8 extents, the rest holes), by each way of making the copy, on the
/// file systems of the two disks `scripts/bench-box.sh disk-copies` gives the box: an XFS with
/// reflink and an ext4 (found by their types).
fn disk_copy_rows(ctx: &Context, rows: &mut Vec<(String, String)>) -> TestResult {
    let mut mounted = std::collections::BTreeMap::new();
    for dev in ["vdb", "vdc"] {
        let kind = std::process::Command::new("blkid")
            .args(["-o", "value", "-s", "TYPE", &format!("/dev/{dev}")])
            .output()
            .ctx("blkid")?;
        let kind = String::from_utf8_lossy(&kind.stdout).trim().to_string();
        let at = format!("/bench-{kind}");
        std::fs::create_dir_all(&at).ctx("mount point")?;
        run("mount", &[&format!("/dev/{dev}"), &at])?;
        mounted.insert(kind, std::path::PathBuf::from(at));
    }
    let (Some(xfs), Some(ext4)) = (mounted.get("xfs").cloned(), mounted.get("ext4").cloned()) else {
        return Err(format!("the bench disks are not one XFS and one ext4: {mounted:?}"));
    };
    const SHA: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let image_on = |fs: &Path| -> TestResult<std::path::PathBuf> {
        let image = fs.join(format!("store/{SHA}/disk.img"));
        if image.exists() {
            return Ok(image);
        }
        std::fs::create_dir_all(image.parent().ok_or("no parent")?).ctx("the store")?;
        std::fs::create_dir_all(fs.join("persist")).ctx("persist")?;
        let f = std::fs::File::create(&image).ctx("the image")?;
        f.set_len(1 << 30).ctx("size the image")?;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunk = vec![0u8; 1 << 20];
        for extent in 0..8u64 {
            for mib in 0..32u64 {
                for b in chunk.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
                }
                std::os::unix::fs::FileExt::write_all_at(&f, &chunk, (extent * 128 + mib) << 20).ctx("fill")?;
            }
        }
        f.sync_all().ctx("sync the image")?;
        Ok(image)
    };
    let cases: [(&str, &Path, &str, bool); 6] = [
        ("the image in place, read-only (no copy)", &ext4, "auto", true),
        ("reflink (XFS)", &xfs, "reflink", false),
        ("qcow2 overlay (ext4)", &ext4, "overlay", false),
        ("sparse copy (ext4)", &ext4, "sparse", false),
        ("plain copy (ext4)", &ext4, "plain", false),
        ("sparse copy on XFS (copy_file_range shares extents)", &xfs, "sparse", false),
    ];
    for (i, (what, fs, method, read_only)) in cases.into_iter().enumerate() {
        let image = image_on(fs)?;
        let name = format!("bench-copy-{i}");
        let mut d = DaemonProcess::new(&name, &["timer.domain.poll:3600"]);
        d.args = vec![
            format!("--image-store={}", fs.join("store").display()),
            format!("--persist-dir={}", fs.join("persist").display()),
            format!("--disk-copy={method}"),
        ];
        d.start()?;
        d.wait_ready()?;
        let (mut to_running, mut to_ready) = (vec![], vec![]);
        for r in 0..ROUNDS {
            let uuid = xenctl::Uuid::new_v4().to_string();
            let mut config = eve_config(&uuid, &name, 140 + r as u32, true, "");
            config["DiskConfigList"] = serde_json::json!([{"FileLocation": image, "ReadOnly": read_only, "Format": 1}]);
            run("sh", &["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])?;
            let t = Instant::now();
            d.write_config(&config)?;
            let st = d.wait_status(&uuid, "RUNNING", LONG * 3, state_is(RUNNING))?;
            to_running.push(t.elapsed());
            let domain = st["DomainName"].as_str().unwrap_or_default().to_string();
            wait_console(&domain, "XENBOX-GUEST-READY", LONG)?;
            to_ready.push(t.elapsed());
            if !read_only && st["DiskCopies"][0]["Method"] != *method && method != "auto" {
                return Err(format!("{what}: the copy was made by {}", st["DiskCopies"][0]["Method"]));
            }
            std::fs::remove_file(d.root.join(format!("zedmanager/DomainConfig/{uuid}.json"))).ctx("delete config")?;
            wait_until("the status to go", LONG, || d.status(&uuid).is_none().then_some(()))?;
            gone(ctx, &domain)?;
        }
        row(rows, format!("{what}: config to RUNNING"), fmt(&to_running));
        row(rows, format!("{what}: config to the guest's READY"), fmt(&to_ready));
        d.terminate()?;
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let ctx = Context::new().ctx("open")?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        let mut rows = Vec::new();
        migrate_rows(&mut rows)?;
        return print_rows(&ctx, rows);
    }
    if std::env::args().nth(1).as_deref() == Some("disk-copies") {
        let mut rows = Vec::new();
        disk_copy_rows(&ctx, &mut rows)?;
        return print_rows(&ctx, rows);
    }
    if std::env::args().nth(1).as_deref() == Some("containers") {
        let mut rows = Vec::new();
        container_rows(&ctx, &mut rows)?;
        return print_rows(&ctx, rows);
    }
    if std::env::args().nth(1).as_deref() == Some("devices") {
        let mut rows = Vec::new();
        device_rows(&ctx, &mut rows)?;
        return print_rows(&ctx, rows);
    }
    let mut daemon = DaemonProcess::new("bench-dm", &["timer.boot.retry:3600", "timer.domain.shutdown:30"]);
    daemon.start()?;
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. One guest: xl create vs config file -> RUNNING (and both to the guest's READY line).
    let (mut xl_ret, mut xl_ready, mut dm_run, mut dm_ready) = (vec![], vec![], vec![], vec![]);
    for r in 0..ROUNDS {
        let name = format!("bench-xl-{r}");
        let cfg = xl_cfg(&name)?;
        let t = Instant::now();
        xl(&["create", &cfg])?;
        xl_ret.push(t.elapsed());
        wait_console(&name, "XENBOX-GUEST-READY", LONG)?;
        xl_ready.push(t.elapsed());
        xl(&["destroy", &name])?;
        gone(&ctx, &name)?;

        let uuid = xenctl::Uuid::new_v4().to_string();
        let app = 200 + r as u32;
        let t = Instant::now();
        daemon.write_config(&eve_config(&uuid, "bench", app, true, ""))?;
        let st = daemon.wait_status(&uuid, "RUNNING", LONG, |s| s["State"] == 115)?;
        dm_run.push(t.elapsed());
        let dname = st["DomainName"].as_str().unwrap_or_default().to_string();
        wait_console(&dname, "XENBOX-GUEST-READY", LONG)?;
        dm_ready.push(t.elapsed());
        daemon.write_config(&eve_config(&uuid, "bench", app, false, ""))?;
        daemon.wait_status(&uuid, "HALTED", LONG, |s| s["State"] == 119)?;
        gone(&ctx, &dname)?;
    }
    rows.push(("one guest: `xl create` returns".into(), fmt(&xl_ret)));
    rows.push(("one guest: config file in -> status RUNNING".into(), fmt(&dm_run)));
    rows.push(("one guest: `xl create` -> guest READY".into(), fmt(&xl_ready)));
    rows.push(("one guest: config file in -> guest READY".into(), fmt(&dm_ready)));

    // 2. Four guests: four xl create in a row vs four configs at once.
    let (mut xl4, mut dm4) = (vec![], vec![]);
    for r in 0..ROUNDS {
        let names: Vec<String> = (0..4).map(|i| format!("bench4-xl-{r}-{i}")).collect();
        let t = Instant::now();
        for n in &names {
            xl(&["create", &xl_cfg(n)?])?;
        }
        for n in &names {
            wait_console(n, "XENBOX-GUEST-READY", LONG)?;
        }
        xl4.push(t.elapsed());
        for n in &names {
            xl(&["destroy", n])?;
            gone(&ctx, n)?;
        }

        let uuids: Vec<String> = (0..4).map(|_| xenctl::Uuid::new_v4().to_string()).collect();
        let t = Instant::now();
        for (i, u) in uuids.iter().enumerate() {
            daemon.write_config(&eve_config(u, "bench4", 300 + (r * 4 + i) as u32, true, ""))?;
        }
        let mut names = Vec::new();
        for u in &uuids {
            let st = daemon.wait_status(u, "RUNNING", LONG, |s| s["State"] == 115)?;
            names.push(st["DomainName"].as_str().unwrap_or_default().to_string());
        }
        for n in &names {
            wait_console(n, "XENBOX-GUEST-READY", LONG)?;
        }
        dm4.push(t.elapsed());
        for (i, u) in uuids.iter().enumerate() {
            daemon.write_config(&eve_config(u, "bench4", 300 + (r * 4 + i) as u32, false, ""))?;
        }
        for (u, n) in uuids.iter().zip(&names) {
            daemon.wait_status(u, "HALTED", LONG, |s| s["State"] == 119)?;
            gone(&ctx, n)?;
        }
    }
    rows.push(("four guests: four `xl create` in a row -> all READY".into(), fmt(&xl4)));
    rows.push(("four guests: four config files at once -> all READY".into(), fmt(&dm4)));

    // 3. A guest's poweroff -> HALTED in its status file.
    let mut lat = vec![];
    for r in 0..ROUNDS {
        let uuid = xenctl::Uuid::new_v4().to_string();
        let app = 400 + r as u32;
        daemon.write_config(&eve_config(&uuid, "bench-off", app, true, ""))?;
        let st = daemon.wait_status(&uuid, "RUNNING", LONG, |s| s["State"] == 115)?;
        let name = st["DomainName"].as_str().unwrap_or_default().to_string();
        let domid = DomId::new(st["DomainId"].as_u64().unwrap_or_default() as u32);
        wait_console(&name, "XENBOX-GUEST-READY", LONG)?;
        let watch = ctx.watch_domain(domid).ctx("watch")?;
        xl(&["shutdown", &domid.to_string()])?;
        watch.wait_for(LONG, |e| matches!(e, DomainEvent::Shutdown { .. })).ok_or("no shutdown event")?;
        let t = Instant::now();
        daemon.wait_status(&uuid, "HALTED", LONG, |s| s["State"] == 119)?;
        lat.push(t.elapsed());
        gone(&ctx, &name)?;
        daemon.write_config(&eve_config(&uuid, "bench-off", app, false, ""))?;
    }
    rows.push(("guest poweroff (shutdown event) -> HALTED in the status file".into(), fmt(&lat)));

    daemon.terminate()?;

    // 4. Host boot and shutdown of eight guests: xendomains' way (one `xl create` after the
    //    other; one `xl shutdown --wait` after the other) vs domainctl host-start / host-stop.
    host_rows(&ctx, &mut rows, 0)?;
    host_rows(&ctx, &mut rows, 5)?;

    // 5. One metrics sample (one libxl list + physinfo, files written) with four guests running.
    let registry: domainmgrd::metrics::Registry = std::sync::Arc::default();
    let mut guards = Vec::new();
    for i in 0..4 {
        let spec = test_guest(&format!("bench-metrics-{i}"), "");
        let domid = ctx.create_paused(&spec).ctx("create")?;
        guards.push(DomainGuard::new(&ctx, domid, &spec.name));
        ctx.unpause(domid).ctx("unpause")?;
        registry.write().insert(
            spec.uuid,
            domainmgrd::metrics::Brief {
                uuid_and_version: domainmgrd::eve::UuidAndVersion { uuid: spec.uuid, version: "1".into() },
                display_name: spec.name.clone(),
                domain_name: spec.name.clone(),
                state: "RUNNING".into(),
                domain_id: domid.get(),
                activated: true,
                vcpus: 1,
            },
        );
    }
    let paths = std::sync::Arc::new(domainmgrd::files::Paths::under(Path::new("/tmp/bench-metrics")));
    paths.create_all().ctx("metrics dirs")?;
    let hv = domainmgrd::hypervisor::LibxlHypervisor::open().ctx("hypervisor")?;
    let outputs = domainmgrd::agent::Outputs::open(&paths.status_dir, None).ctx("publications")?;
    let mut sampler =
        domainmgrd::metrics::Sampler::new(std::sync::Arc::new(hv), std::sync::Arc::new(outputs), registry);
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        sampler.sample_once().ctx("sample")?;
        samples.push(t.elapsed());
    }
    rows.push(("one metrics sample, 4 guests + dom0 (libxl list + physinfo + files)".into(), fmt(&samples)));
    drop(guards);

    print_rows(&ctx, rows)
}
