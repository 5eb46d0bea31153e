//! Live migration between two real Xen hosts: two boxes booted side by side
//! (`xen-box/run-pair.sh`), their dom0s on one link (a QEMU socket network bridged into each
//! box's `xenbr0`), addressed by IPv6 link-local addresses only (this box `fe80::1`, the peer
//! `$XENBOX_PEER_ADDR`), root reaching the peer by ssh with a key made for the run. These tests
//! run in box 1; they drive box 2 over ssh. Each host runs a `domainmgrd` on the default run
//! directory, so that `ssh HOST domainctl migrate-receive` (what `domainctl migrate` runs, as
//! `xl migrate` runs `ssh HOST xl migrate-receive`) finds it.
//!
//! The guest counts on its console (`xenbox.tick`: `XENBOX-GUEST-TICK <n> <uptime>` every
//! second from 1): after a migration the target's console shows the count going on past where
//! the source left it, which a second boot (counting from 1 again, within seconds) cannot. Its
//! vif answers a ping from the dom0 it runs on.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use xenctl::Context;

use crate::*;

const LOGS: &str = "/var/log/xen/console";

/// The tests of this module, for xen-e2e: only in a pair of boxes (`twohost_` selects them).
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        (
            "twohost_one_guest_moved_by_xl_and_domainctl_both_ways_keeps_its_run_and_vif_and_failed_moves_leave_it_running",
            one_guest_every_way,
        ),
        ("twohost_host_stop_with_migrate_empties_the_source", host_stop_migrates),
    ]
}

/// The peer's dom0 as ssh and domainctl name it: `fe80::2%xenbr0`.
pub fn peer() -> TestResult<String> {
    let addr = std::env::var("XENBOX_PEER_ADDR").map_err(|_| "XENBOX_PEER_ADDR is not set: not in a pair of boxes")?;
    Ok(format!("{addr}%{}", bridge()))
}

/// This dom0 as the peer reaches it.
pub fn me() -> String {
    format!("{}%{}", std::env::var("XENBOX_SELF_ADDR").unwrap_or_else(|_| "fe80::1".into()), bridge())
}

fn bridge() -> String {
    std::env::var("XENBOX_BRIDGE").unwrap_or_else(|_| "xenbr0".into())
}

/// Runs `command` (shell text) on the peer's dom0: its stdout, or an error with its stderr.
pub fn ssh(command: &str) -> TestResult<String> {
    let out = Command::new("ssh").arg(peer()?).arg(command).output().ctx("ssh")?;
    if !out.status.success() {
        return Err(format!(
            "ssh {} {command:?}: {}: {}{}",
            peer()?,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A daemon on the default run directory (this host's, or the peer's over ssh).
pub fn daemon(name: &str) -> DaemonProcess {
    let mut d = DaemonProcess::new(name, &["timer.domain.poll:3600"]);
    d.run_dir = Some(PathBuf::from("/run/domainmgrd"));
    // Xen's hotplug scripts set up the vifs on both hosts (a migrated domain's config names
    // them), as on hosts run by xl.
    d.native = false;
    d
}

/// The peer's daemon: `d`'s command line, started over ssh in the background.
#[derive(Debug)]
pub struct PeerDaemon {
    root: PathBuf,
}

impl PeerDaemon {
    /// Starts it (after killing any left over) with `host_conf` as its host settings.
    pub fn start(d: &DaemonProcess, host_conf: &str) -> TestResult<PeerDaemon> {
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let args: Vec<String> = d.arguments().iter().map(|a| quote(a)).collect();
        let root = d.root.display().to_string();
        // The binaries given to both boxes, installed on the peer's own disk (a start from the
        // 9p share pays its page reads each time; `ssh HOST domainctl` finds it there).
        let bin = "/usr/local/sbin/domainmgrd";
        ssh(&format!(
            "pkill -x domainmgrd; for f in domainmgrd domainctl domainmgrd-xlparse; do rm -f /usr/local/sbin/$f; cp /mnt/host/$f /usr/local/sbin/$f; done; \
             rm -rf {root} && mkdir -p {root} && printf '%s\\n' {conf} > {root}/host.conf && \
             (RUST_LOG=info setsid nohup {bin} {args} > {root}/daemon.log 2>&1 < /dev/null &) && \
             for i in $(seq 300); do [ -S /run/domainmgrd/domainmgrd.sock ] && domainctl list > /dev/null 2>&1 && exit 0; sleep 0.2; done; \
             echo 'the peer daemon did not start' >&2; tail -n 20 {root}/daemon.log >&2; exit 1",
            conf = quote(host_conf),
            args = args.join(" "),
        ))?;
        Ok(PeerDaemon { root: d.root.clone() })
    }

    /// `domainctl ARGS` there: its stdout.
    pub fn ctl(&self, args: &str) -> TestResult<String> {
        ssh(&format!("domainctl {args}"))
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        ssh(&format!("tail -n 30 {}/daemon.log", self.root.display())).unwrap_or_else(|e| e)
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        ssh(&format!("cat {}/daemon.log", self.root.display())).unwrap_or_else(|e| e)
    }
}

impl Drop for PeerDaemon {
    fn drop(&mut self) {
        let _ =
            ssh("pkill -x domainmgrd; for d in $(xl list | awk 'NR > 2 { print $1 }'); do xl destroy $d; done; true");
    }
}

/// Starts this host's daemon on the default run directory (and stops any left over).
pub fn start_here(d: &mut DaemonProcess, host_conf: &str) -> TestResult {
    let _ = run("pkill", &["-x", "domainmgrd"]);
    std::fs::create_dir_all(&d.root).ctx("daemon root")?;
    std::fs::write(d.root.join("host.conf"), host_conf).ctx("host.conf")?;
    d.start()?;
    d.wait_ready()
}

/// An xl.cfg for the ticking test guest, PVH (live migration needs HAP's dirty-page tracking;
/// Xen in the box cannot track a PV guest's), with a vif of a fixed MAC on xenbr0.
pub fn guest_cfg(name: &str, mac_tail: u8, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ntype = \"pvh\"\nmemory = 128\nvcpus = 1\n\
         kernel = \"{}\"\nramdisk = \"{}\"\nextra = \"console=hvc0 loglevel=4 xenbox.tick=1\"\n\
         vif = [ 'bridge={},mac=00:16:3e:00:01:{mac_tail:02x}' ]\non_reboot = \"restart\"\n{extra}",
        std::env::var("XENBOX_GUEST_KERNEL").unwrap_or_else(|_| "/var/lib/xenbox/vmlinux".into()),
        std::env::var("XENBOX_GUEST_RAMDISK").unwrap_or_else(|_| "/var/lib/xenbox/domU-initrd.cpio.gz".into()),
        bridge()
    )
}

/// The guest's IPv6 link-local address (EUI-64 of its MAC) on xenbr0.
pub fn guest_addr(mac_tail: u8) -> String {
    format!("fe80::216:3eff:fe00:1{mac_tail:02x}%{}", bridge())
}

/// A line of the guest's count: `XENBOX-GUEST-TICK <count> <uptime>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub struct Tick {
    /// The count, from 1 at the guest's boot.
    pub count: u64,
    /// The guest's uptime then, seconds.
    pub uptime: f64,
}

/// The tick of the highest count in console text.
pub fn last_tick(text: &str) -> Tick {
    text.lines()
        .filter_map(|l| l.trim_end_matches('\r').split("XENBOX-GUEST-TICK ").nth(1))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            Some(Tick { count: words.next()?.parse().ok()?, uptime: words.next()?.parse().ok()? })
        })
        .fold(Tick::default(), |a, b| if b.count > a.count { b } else { a })
}

/// The guest's console here (under its name and the name it arrived under).
pub fn console_here(name: &str) -> String {
    format!("{}{}", console_text(name), console_text(&format!("{name}--incoming")))
}

pub fn console_there(name: &str) -> String {
    ssh(&format!("cat {LOGS}/guest-{name}.log {LOGS}/guest-{name}--incoming.log 2>/dev/null; true")).unwrap_or_default()
}

/// How long a first boot may take to the guest's first ticks: a PVH guest under emulation, with
/// two boxes sharing the machine's CPUs, gets to its init in about a minute.
const FIRST_TICKS: Duration = Duration::from_secs(300);

/// Waits until `console` shows the guest counting past `after` in the same run: a higher count
/// with an uptime at least `after`'s (a guest that booted again counts from 1, and its uptime
/// starts again). Past the first ticks, within a minute.
pub fn wait_ticks(what: &str, after: Tick, console: impl Fn() -> String) -> TestResult<Tick> {
    let limit = if after.count == 0 { FIRST_TICKS } else { Duration::from_secs(60) };
    wait_until(&format!("{what}: the guest counting past {after:?}"), limit, || {
        let t = last_tick(&console());
        (t.count > after.count && t.uptime >= after.uptime).then_some(t)
    })
    .map_err(|e| format!("{e}; console tail:\n{}", tail(&console(), 10)))
}

/// Waits for the guest's count to reach `n` (its first boot).
pub fn wait_count(what: &str, n: u64, console: impl Fn() -> String) -> TestResult<Tick> {
    wait_until(&format!("{what}: the guest's count to reach {n}"), FIRST_TICKS, || {
        let t = last_tick(&console());
        (t.count >= n).then_some(t)
    })
    .map_err(|e| format!("{e}; console tail:\n{}", tail(&console(), 10)))
}

/// One ping of the guest from this dom0 (its vif works here).
pub fn ping_here(addr: &str) -> TestResult {
    wait_until(&format!("the guest at {addr} to answer a ping here"), Duration::from_secs(60), || {
        run("ping", &["-6", "-c", "1", "-W", "2", addr]).ok()
    })
    .map(drop)
}

pub fn ping_there(addr: &str) -> TestResult {
    wait_until(&format!("the guest at {addr} to answer a ping on the peer"), Duration::from_secs(60), || {
        ssh(&format!("ping -6 -c 1 -W 2 {addr}")).ok()
    })
    .map(drop)
}

pub fn json(text: &str) -> TestResult<Value> {
    serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))
}

/// The row of `domainctl --json list` for `name`.
pub fn row(list: &str, name: &str) -> TestResult<Value> {
    json(list)?
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name).cloned())
        .ok_or_else(|| format!("{name} is not in {list}"))
}

/// One guest, one boot, every kind of move: `xl migrate` to our receiver there, ours back here,
/// two migrations that fail (it runs on here), ours there again (a host it left before), and
/// ours back to `xl migrate-receive` here. After each move its count goes on on its new host and
/// its vif answers there.
fn one_guest_every_way(_: &Context) -> TestResult {
    let name = unique_name("mig2");
    let _cleanup = Cleanup(vec![name.clone(), format!("{name}--migratedaway"), format!("{name}--incoming")]);
    let mut a = daemon("mig-a");
    start_here(&mut a, "")?;
    let b = PeerDaemon::start(&daemon("mig-b"), "")?;
    let (peer, me) = (peer()?, me());
    let addr = guest_addr(1);

    // xl's domain, xl's sender, our receiver there.
    let cfg = a.root.join(format!("{name}.cfg"));
    std::fs::write(&cfg, guest_cfg(&name, 1, "")).ctx("cfg")?;
    xl(&["create", &cfg.display().to_string()])?;
    let booted = wait_count("booted by xl here", 5, || console_here(&name))?;
    ping_here(&addr)?;
    let receiver = format!("ssh {peer} domainctl migrate-receive");
    let out = Command::new("xl").args(["migrate", "-s", "", &name, &receiver]).output().ctx("xl migrate")?;
    ensure(out.status.success(), || {
        format!("xl migrate: {}: {}\npeer log:\n{}", out.status, String::from_utf8_lossy(&out.stderr), b.log_tail())
    })?;
    let from_xl = wait_ticks("there, sent by xl", booted, || console_there(&name))?;
    ping_there(&addr)?;
    let r = row(&b.ctl("--json list")?, &name)?;
    ensure(r["managed"] == "RUNNING" && r["source"] == "transient", || format!("the peer: {r}"))?;
    ensure(!running(&name)?, || "xl left a copy here".into())?;

    // Ours, back here, live.
    let started = Instant::now();
    let out = b.ctl(&format!("migrate --live {name} {me}"))?;
    eprintln!("migrated here in {:.1} s: {}", started.elapsed().as_secs_f64(), out.trim());
    let back = wait_ticks("back here", from_xl, || console_here(&name))?;
    ping_here(&addr)?;
    ensure(ssh(&format!("xl list {name}")).is_err(), || "the peer still has it".into())?;
    let st = json(&a.domainctl_ok(&["--json", "status", &name])?)?;
    ensure(st["StateName"] == "RUNNING" && st["Migration"]["Direction"] == "in", || {
        format!("the status here says nothing of the migration: {st}")
    })?;
    let r = row(&a.domainctl_ok(&["--json", "list"])?, &name)?;
    ensure(r["managed"] == "RUNNING" && r["source"] == "transient", || format!("here: {r}"))?;
    let domid = xl_list()?.into_iter().find(|r| r.name == name).ok_or("not listed here")?.domid;

    // No host answers there: ssh fails, the guest runs on here.
    let out = a.domainctl(&["migrate", "--live", "--timeout", "15", &name, &format!("fe80::99%{}", bridge())])?;
    ensure(out.code != 0, || format!("a migration to nowhere succeeded: {}", out.stdout))?;
    eprintln!("unreachable: {}", out.stderr.trim());
    let count = wait_ticks("after the unreachable host", back, || console_here(&name))?;
    // The peer refuses it: its host is stopped (host-stop refuses migrations until host-start).
    b.ctl("host-stop")?;
    let out = a.domainctl(&["migrate", "--live", &name, &peer])?;
    ensure(out.code != 0, || format!("a refused migration succeeded: {}", out.stdout))?;
    ensure(out.stderr.contains("host-stop") || out.stderr.contains("stopped"), || format!("why: {}", out.stderr))?;
    eprintln!("refused: {}", out.stderr.trim());
    let count = wait_ticks("after the refusal", count, || console_here(&name))?;
    let now = xl_list()?.into_iter().find(|r| r.name == name).ok_or("gone after the failures")?.domid;
    ensure(now == domid, || format!("it is domain {now} now, not {domid}"))?;
    ensure(ssh(&format!("xl list {name}")).is_err(), || "the peer has a copy".into())?;
    let st = json(&a.domainctl_ok(&["--json", "status", &name])?)?;
    ensure(st["Migration"]["State"] == "failed" && st["StateName"] == "RUNNING", || format!("status: {st}"))?;
    b.ctl("host-start")?;

    // Ours, there again, live: to a host it left by our migration before.
    let started = Instant::now();
    let out = a.domainctl(&["migrate", "--live", &name, &peer])?;
    ensure(out.code == 0, || {
        format!("domainctl migrate: {} {}{}\npeer log:\n{}", out.code, out.stdout, out.stderr, b.log_tail())
    })?;
    eprintln!("migrated there in {:.1} s: {}", started.elapsed().as_secs_f64(), out.stdout.trim());
    ensure(!running(&name)?, || format!("{name} still runs here after its migration"))?;
    let there = wait_ticks("there again", count, || console_there(&name))?;
    ping_there(&addr)?;
    let st = json(&b.ctl(&format!("--json status {name}"))?)?;
    ensure(st["StateName"] == "RUNNING" && st["Migration"]["Direction"] == "in", || format!("the peer: {st}"))?;

    // Our sender there, xl's receiver here.
    let out = b.ctl(&format!("migrate --live {name} -s '' 'ssh {me} xl migrate-receive'"))?;
    eprintln!("to xl: {}", out.trim());
    let last = wait_ticks("here, received by xl", there, || console_here(&name))?;
    ping_here(&addr)?;
    ensure(running(&name)?, || "xl does not run it here".into())?;
    ensure(ssh(&format!("xl list {name}")).is_err(), || "the peer kept a copy".into())?;
    eprintln!(
        "the guest counted {booted:?} here, {from_xl:?} there, {back:?} back here, {there:?} there again, \
         {last:?} here: one run"
    );
    xl(&["destroy", &name])?;
    Ok(())
}

fn host_stop_migrates(_: &Context) -> TestResult {
    let (one, two) = (unique_name("mig2-auto"), unique_name("mig2-tr"));
    let _cleanup = Cleanup(vec![one.clone(), two.clone()]);
    let mut a = daemon("mig-a");
    let auto = a.root.join("auto");
    std::fs::create_dir_all(&auto).ctx("auto")?;
    let uuids = [xenctl::Uuid::new_v4(), xenctl::Uuid::new_v4()];
    for (name, tail, uuid) in [(&one, 3u8, uuids[0]), (&two, 4u8, uuids[1])] {
        std::fs::write(auto.join(format!("{name}.cfg")), guest_cfg(name, tail, &format!("uuid = \"{uuid}\"\n")))
            .ctx("auto file")?;
    }
    let conf = format!("AUTO={}\nMIGRATE={}\nSTOP_MAXWAIT=240\n", auto.display(), peer()?);
    start_here(&mut a, &conf)?;
    // The peer has the first one's autostart file only.
    let bd = daemon("mig-b");
    let peer_auto = bd.root.join("auto");
    let b = PeerDaemon::start(&bd, &format!("AUTO={}", peer_auto.display()))?;
    ssh(&format!(
        "mkdir -p {dir} && printf '%s' '{cfg}' > {dir}/{one}.cfg",
        dir = peer_auto.display(),
        cfg = guest_cfg(&one, 3, &format!("uuid = \"{}\"\n", uuids[0])).replace('\'', r"'\''")
    ))?;
    // (No host-start there: it would boot its own copy of the first, which the migration must
    // then be refused for: a domain runs there already with its UUID.)
    a.domainctl_ok(&["host-start"])?;
    let c1 = wait_count("the first booted", 5, || console_here(&one))?;
    let c2 = wait_count("the second booted", 5, || console_here(&two))?;

    let out = a.domainctl(&["host-stop"])?;
    eprintln!("host-stop:\n{}{}", out.stdout, out.stderr);
    ensure(out.code == 0, || format!("host-stop exited {}\npeer log:\n{}", out.code, b.log_tail()))?;
    let went = format!("migrated to {}", peer()?);
    for name in [&one, &two] {
        ensure(
            out.stdout.lines().any(|l| l.starts_with(name.as_str()) && l.contains(" ok ") && l.ends_with(&went)),
            || format!("host-stop's report does not say {name} {went}"),
        )?;
    }
    let left: Vec<String> = xl_list()?.into_iter().filter(|r| r.domid != 0).map(|r| r.name).collect();
    ensure(left.is_empty(), || format!("the source still runs {left:?}"))?;
    wait_ticks("the first on the peer", c1, || console_there(&one))?;
    wait_ticks("the second on the peer", c2, || console_there(&two))?;
    let list = b.ctl("--json list")?;
    let (r1, r2) = (row(&list, &one)?, row(&list, &two)?);
    ensure(r1["source"] == "auto" && r2["source"] == "transient", || {
        format!("the peer manages them as {r1} and {r2}")
    })?;
    Ok(())
}
