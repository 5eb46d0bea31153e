//! End to end as EVE runs it: a `domainmgrd` process in the box's dom0 driven only through
//! EVE's pubsub sockets. zedmanager is an `eve-peer` publisher (the protocol written apart
//! from ours), EVE's subscribers are `eve-peer`'s strict subscribers; the oracles are `xl`
//! and the guest's console. No file of the daemon is read or written by the test.

use std::time::Duration;

use eve_peer::{PeerPublisher, PeerSubscriber};
use xenctl::{Context, DomId};

use crate::*;

const BOOT: Duration = Duration::from_secs(120);
const EVENT: Duration = Duration::from_secs(60);

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![("eve_app_over_pubsub_runs_reports_halts_and_survives_kill9", eve_app_over_pubsub)]
}

/// Subscribes to `domainmgr/<topic>` once the daemon serves it.
fn subscribe(daemon: &DaemonProcess, topic: &str) -> TestResult<PeerSubscriber> {
    let dir = daemon.root.join("domainmgr");
    wait_until(&format!("domainmgr/{topic}.sock"), BOOT, || PeerSubscriber::connect(&dir, topic).ok())
}

/// Waits until `topic`'s view satisfies `want`, with the daemon's log on failure.
fn wait_view(
    daemon: &DaemonProcess,
    sub: &mut PeerSubscriber,
    what: &str,
    timeout: Duration,
    want: impl FnMut(&eve_peer::View) -> bool,
) -> TestResult {
    if sub.wait_for(timeout, want) {
        return Ok(());
    }
    let log = std::fs::read_to_string(daemon.root.join("daemon.log")).unwrap_or_default();
    Err(format!(
        "{what}: not seen over the socket in {timeout:?}; view: {:?}\ndaemon log tail:\n{}",
        sub.view(),
        tail(&log, 25)
    ))
}

fn state(view: &eve_peer::View, key: &str) -> Option<u64> {
    view.items.get(key).and_then(|s| s["State"].as_u64())
}

fn xl_info_value(key: &str) -> TestResult<String> {
    Ok(xl_info()?.into_iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or_default())
}

fn eve_app_over_pubsub(ctx: &Context) -> TestResult {
    let mut daemon = DaemonProcess::new("dm-eve", &["timer.domain.poll:3600", "timer.metric.interval:4"]);
    daemon.pubsub = true;
    let zedmanager = PeerPublisher::serve(&daemon.root.join("zedmanager"), "DomainConfig", false);
    daemon.start()?;
    daemon.wait_ready()?;
    let mut status = subscribe(&daemon, "DomainStatus")?;

    let uuid = xenctl::Uuid::new_v4().to_string();
    let publish = |activate: bool| {
        let config = eve_config(&uuid, "dm-eve", 104, activate, "xenbox.marker=over-pubsub");
        zedmanager.set(&uuid, &config.to_string());
    };
    publish(true);
    wait_view(&daemon, &mut status, "RUNNING", BOOT, |v| state(v, &uuid) == Some(RUNNING))?;
    let st = status.view().items[&uuid].clone();
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    let domid = st["DomainId"].as_u64().unwrap_or_default();
    let oracle = xl(&["domid", &name])?;
    ensure(oracle.trim() == domid.to_string(), || format!("DomainId {domid}; xl domid {name}: {oracle}"))?;
    ensure(st["Activated"] == true, || format!("{st}"))?;
    wait_console(&name, "XENBOX-MARKER over-pubsub", BOOT)?;

    // What zedagent, zedmanager and volumemgr wait for.
    let mut metric = subscribe(&daemon, "DomainMetric")?;
    wait_view(&daemon, &mut metric, "the app's DomainMetric", EVENT, |v| {
        v.items.get(&uuid).is_some_and(|m| m["CPUTotalNs"].as_u64() > Some(0))
    })?;
    let mut memory = subscribe(&daemon, "HostMemory")?;
    wait_view(&daemon, &mut memory, "HostMemory", EVENT, |v| v.items.contains_key("global"))?;
    let total: u64 = xl_info_value("total_memory")?.parse().ctx("xl info total_memory")?;
    let ours = memory.view().items["global"]["TotalMemoryMB"].as_u64().unwrap_or_default();
    ensure(ours == total, || format!("HostMemory TotalMemoryMB {ours}, xl info total_memory {total}"))?;
    let mut caps = subscribe(&daemon, "Capabilities")?;
    wait_view(&daemon, &mut caps, "Capabilities", EVENT, |v| v.items.contains_key("global"))?;
    let virt_caps = xl_info_value("virt_caps")?;
    let words: Vec<&str> = virt_caps.split_whitespace().collect();
    let c = &caps.view().items["global"];
    ensure(
        c["HWAssistedVirtualization"] == words.contains(&"hvm")
            && c["IOVirtualization"] == words.contains(&"hvm_directio"),
        || format!("Capabilities {c}; xl info virt_caps: {virt_caps}"),
    )?;

    // kill -9: the guest runs on; a subscriber reconnecting gets the last status at once,
    // then the restarted daemon's; zedmanager's restart reaches DomainStatus.
    daemon.kill9()?;
    ensure(status.wait_closed(EVENT), || "the killed daemon's socket stayed open".into())?;
    ensure(ctx.info(DomId::new(domid as u32)).ctx("info after kill -9")?.state.is_live(), || "guest stopped".into())?;
    daemon.start()?;
    let mut status = subscribe(&daemon, "DomainStatus")?;
    let (_, items, _) = status.snapshot(EVENT);
    ensure(items.get(&uuid).is_some_and(|s| s["DomainId"].as_u64() == Some(domid)), || format!("snapshot: {items:?}"))?;
    zedmanager.set_restarted(1);
    wait_view(&daemon, &mut status, "DomainStatus restarted", EVENT, |v| v.restarted == Some(1))?;
    ensure(state(status.view(), &uuid) == Some(RUNNING), || format!("{:?}", status.view().items.get(&uuid)))?;
    let ups = console_text(&name).matches("XENBOX-GUEST-UP").count();
    ensure(ups == 1, || format!("the guest booted {ups} times"))?;

    // Deactivate: HALTED after a graceful shutdown; unpublish: the status is deleted.
    publish(false);
    wait_view(&daemon, &mut status, "HALTED", EVENT, |v| state(v, &uuid) == Some(HALTED))?;
    ensure(status.view().items[&uuid]["Activated"] == false, || format!("{}", status.view().items[&uuid]))?;
    ensure(!xl_list()?.iter().any(|r| r.name == name), || format!("{name} is still in xl list"))?;
    ensure(console_text(&name).contains("XENBOX-GUEST-POWEROFF"), || "not shut down gracefully".into())?;
    zedmanager.remove(&uuid);
    wait_view(&daemon, &mut status, "the status deleted", EVENT, |v| !v.items.contains_key(&uuid))?;
    let touch = std::fs::metadata(daemon.root.join("domainmgr.touch")).ctx("domainmgr.touch")?;
    let age = touch.modified().ctx("mtime")?.elapsed().unwrap_or_default();
    ensure(age < Duration::from_secs(20), || format!("domainmgr.touch is {age:?} old"))?;
    let exit = daemon.terminate()?;
    ensure(exit.success(), || format!("domainmgrd exited {exit} on SIGTERM"))
}
