//! PCI adapter policy, USB modules, adapter reservation by domains, and metrics, driven through
//! the daemon's input files against the simulated hypervisor, a fake sysfs tree and a fake
//! modprobe.

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::os::unix::fs::symlink;
use std::time::Duration;

use common::*;
use domainmgrd::eve::SwState;
use domainmgrd::sim::Op;
use serde_json::{Value, json};
use uuid::Uuid;
use xenctl::{Bdf, DomId};

const ETH0: &str = "0000:00:02.0";
const ETH1: &str = "0000:00:03.0";
const USB: &str = "0000:00:14.0";
const NIC2A: &str = "0000:01:00.0";
const NIC2B: &str = "0000:01:00.1";

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn adapter(ptype: u8, label: &str, pci: &str, ifname: &str, group: &str) -> Value {
    json!({"Ptype": ptype, "Phylabel": label, "Logicallabel": label, "Assigngrp": group,
           "Phyaddr": {"PciLong": pci, "Ifname": ifname}, "Usage": 1})
}

/// The adapter list of a small edge box: two NICs, a USB controller, a dual-port NIC card.
fn adapter_list() -> Value {
    json!({"Initialized": true, "AdapterList": [
        adapter(1, "eth0", ETH0, "eth0", "eth0"),
        adapter(1, "eth1", ETH1, "eth1", "eth1"),
        adapter(13, "USB", USB, "", "USB"),
        adapter(1, "eth2", NIC2A, "eth2", "card"),
        adapter(1, "eth3", NIC2B, "eth3", "card"),
    ]})
}

fn write_json(path: &std::path::Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn set_ports(env: &Env, ports: &[Value]) {
    write_json(&env.adapter_sources().network_status, &json!({"Ports": ports}));
}

fn assignable(env: &Env) -> Option<Value> {
    let path = env.paths().status_dir.join("AssignableAdapters/global.json");
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn bundle(env: &Env, label: &str) -> Value {
    assignable(env)
        .and_then(|a| a["IoBundleList"].as_array()?.iter().find(|b| b["Phylabel"] == label).cloned())
        .unwrap_or(Value::Null)
}

fn wait_bundle(env: &Env, label: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    env.wait_for(&format!("{label} to be {what}"), || want(&bundle(env, label)));
    bundle(env, label)
}

fn pciback(b: &Value) -> bool {
    b["IsPCIBack"] == true
}

/// An environment with the adapters' PCI devices in the simulator, eth0 a dom0 port, the inputs
/// written and the daemon started.
fn edge_box() -> Env {
    let mut env = Env::new();
    for p in [ETH0, ETH1, USB, NIC2A, NIC2B] {
        env.sim.add_pci_device(bdf(p));
    }
    write_json(&env.adapter_sources().adapter_list, &adapter_list());
    set_ports(&env, &[json!({"IfName": "eth0"})]);
    env.start();
    env
}

#[test]
fn at_start_ports_stay_in_dom0_and_the_rest_goes_to_pciback() {
    let env = edge_box();
    let eth0 = wait_bundle(&env, "eth0", "published", |b| !b.is_null());
    assert_eq!((eth0["KeepInHost"] == true, eth0["IsPort"] == true, pciback(&eth0)), (true, true, false));
    for label in ["eth1", "USB", "eth2", "eth3"] {
        let b = bundle(&env, label);
        assert!(pciback(&b) && b.get("KeepInHost").is_none(), "{label}: {b}");
    }
    assert_eq!(env.sim.pciback(), [ETH1, USB, NIC2A, NIC2B].map(bdf).into_iter().collect::<HashSet<_>>());
    assert_eq!(assignable(&env).unwrap()["Initialized"], true);
}

#[test]
fn a_port_appearing_or_going_moves_its_nic_and_unchanged_inputs_move_nothing() {
    let env = edge_box();
    wait_bundle(&env, "eth1", "in pciback", pciback);
    let adds = env.sim.calls(Op::PciAdd);

    set_ports(&env, &[json!({"IfName": "eth0"}), json!({"IfName": "eth1"})]);
    let eth1 = wait_bundle(&env, "eth1", "a port", |b| b["IsPort"] == true && !pciback(b));
    assert_eq!(eth1["KeepInHost"], true);
    assert!(!env.sim.pciback().contains(&bdf(ETH1)), "released from pciback (with rebind)");

    set_ports(&env, &[json!({"IfName": "eth0"})]);
    wait_bundle(&env, "eth1", "back in pciback", |b| pciback(b) && b.get("IsPort").is_none());
    assert_eq!(env.sim.calls(Op::PciAdd), adds + 1);

    // Rewriting the same inputs applies nothing.
    let (adds, removes) = (env.sim.calls(Op::PciAdd), env.sim.calls(Op::PciRemove));
    set_ports(&env, &[json!({"IfName": "eth0"})]);
    write_json(&env.adapter_sources().adapter_list, &adapter_list());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((env.sim.calls(Op::PciAdd), env.sim.calls(Op::PciRemove)), (adds, removes));
}

#[test]
fn a_port_found_by_its_pci_address_in_sysfs_keeps_its_nic_and_its_group() {
    let mut env = Env::new();
    for p in [ETH0, ETH1, USB, NIC2A, NIC2B] {
        env.sim.add_pci_device(bdf(p));
    }
    // The kernel named the card's first port enp1s0; the model says eth2.
    let sys = env.adapter_sources().host.sysfs;
    std::fs::create_dir_all(sys.join("class/net/enp1s0")).unwrap();
    std::fs::create_dir_all(sys.join(format!("devices/pci0000:00/{NIC2A}"))).unwrap();
    symlink(format!("../../../devices/pci0000:00/{NIC2A}"), sys.join("class/net/enp1s0/device")).unwrap();
    write_json(&env.adapter_sources().adapter_list, &adapter_list());
    set_ports(&env, &[json!({"IfName": "enp1s0"})]);
    env.start();
    let eth2 = wait_bundle(&env, "eth2", "a port", |b| b["IsPort"] == true);
    let eth3 = bundle(&env, "eth3");
    assert!(!pciback(&eth2) && !pciback(&eth3), "the whole card stays in dom0");
    assert_eq!(eth3["IsPort"], true, "its group member is marked too");
    assert!(pciback(&bundle(&env, "eth0")), "eth0 is not a port here");
}

#[test]
fn debug_enable_usb_keeps_usb_in_dom0_and_loads_the_modules() {
    let mut env = Env::new();
    for p in [ETH0, ETH1, USB, NIC2A, NIC2B] {
        env.sim.add_pci_device(bdf(p));
    }
    let settings = env.dir.path().join("global.json");
    std::fs::write(&settings, r#"{"debug.enable.usb": false}"#).unwrap();
    write_json(&env.adapter_sources().adapter_list, &adapter_list());
    set_ports(&env, &[json!({"IfName": "eth0"})]);
    let mut options = env.options();
    options.settings_file = Some(settings.clone());
    env.daemon = Some(domainmgrd::supervisor::Daemon::start(options, std::sync::Arc::new(env.sim.client())).unwrap());
    wait_bundle(&env, "USB", "in pciback", pciback);
    let log = env.dir.path().join("modprobe.log");

    write_json(&settings, &json!({"debug.enable.usb": true}));
    let usb = wait_bundle(&env, "USB", "kept in dom0", |b| b["KeepInHost"] == true && !pciback(b));
    assert!(usb.get("IsPort").is_none());
    env.wait_for("modprobe to load", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("-a usbhid usbkbd usbmouse usb_storage"))
    });
    assert!(pciback(&bundle(&env, "eth1")), "other adapters stay assignable");

    write_json(&settings, &json!({"debug.enable.usb": false}));
    wait_bundle(&env, "USB", "back in pciback", pciback);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().last(), Some("-r -a usbhid usbkbd usbmouse usb_storage"), "{calls}");
}

fn domain_with_adapters(uuid: Uuid, name: &str, adapters: &[(u8, &str)]) -> Value {
    let mut cfg = config(uuid, name, true);
    cfg["IoAdapterList"] = adapters.iter().map(|(t, n)| json!({"Type": t, "Name": n})).collect();
    cfg
}

#[test]
fn a_domain_gets_its_adapters_reserved_and_released_when_it_halts() {
    let env = edge_box();
    wait_bundle(&env, "eth3", "in pciback", pciback);
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "router", &[(1, "eth2")]));
    let st = env.wait_state(uuid, SwState::RUNNING);
    let d = env.sim.info_of(st.domain_id).unwrap();
    let given: HashSet<Bdf> = d.spec.pcis.iter().map(|p| p.bdf).collect();
    assert_eq!(given, [NIC2A, NIC2B].map(bdf).into_iter().collect(), "the whole assignment group");
    for label in ["eth2", "eth3"] {
        assert_eq!(bundle(&env, label)["UsedByUUID"], uuid.to_string(), "{label}");
    }
    assert!(!st.adapters_failed);

    let mut cfg = domain_with_adapters(uuid, "router", &[(1, "eth2")]);
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    env.wait_state(uuid, SwState::HALTED);
    let eth2 = wait_bundle(&env, "eth2", "released", |b| b["UsedByUUID"] == Uuid::nil().to_string());
    assert!(pciback(&eth2), "released devices stay assignable");
}

#[test]
fn adapters_kept_in_dom0_or_used_elsewhere_are_errors_never_skipped() {
    let env = edge_box();
    wait_bundle(&env, "eth1", "in pciback", pciback);

    let wants_port = Uuid::new_v4();
    env.write_config(&domain_with_adapters(wants_port, "greedy", &[(1, "eth0")]));
    let st = env.wait_status(wants_port, "failed", |s| s.adapters_failed);
    assert!(
        st.error.error.contains("adapter eth0 cannot be given to a guest: it is (in the group of) a dom0 network port"),
        "{}",
        st.error.error
    );
    assert_eq!(st.state, SwState::HALTED);
    assert!(env.sim.domains_of(wants_port).is_empty());

    let first = Uuid::new_v4();
    env.write_config(&domain_with_adapters(first, "first", &[(1, "eth1")]));
    env.wait_state(first, SwState::RUNNING);
    let second = Uuid::new_v4();
    env.write_config(&domain_with_adapters(second, "second", &[(1, "eth1")]));
    let st = env.wait_status(second, "failed", |s| s.adapters_failed);
    assert!(st.error.error.contains(&format!("adapter eth1 is used by domain {first}")), "{}", st.error.error);

    let unknown = Uuid::new_v4();
    env.write_config(&domain_with_adapters(unknown, "typo", &[(1, "eth9")]));
    let st = env.wait_status(unknown, "failed", |s| s.adapters_failed);
    assert!(st.error.error.contains("has no adapter eth9 of type 1"), "{}", st.error.error);
}

#[test]
fn a_used_adapter_that_becomes_a_port_returns_to_dom0_when_its_domain_halts() {
    let env = edge_box();
    wait_bundle(&env, "eth1", "in pciback", pciback);
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "user", &[(1, "eth1")]));
    env.wait_state(uuid, SwState::RUNNING);
    set_ports(&env, &[json!({"IfName": "eth0"}), json!({"IfName": "eth1"})]);
    let eth1 = wait_bundle(&env, "eth1", "flagged", |b| b["Error"]["Errors"].is_array());
    assert!(pciback(&eth1), "not yanked from a running domain");
    assert!(eth1["Error"]["Errors"][0]["ErrStr"].as_str().unwrap().contains(&format!("domain {uuid} uses it")));
    let mut cfg = domain_with_adapters(uuid, "user", &[(1, "eth1")]);
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    wait_bundle(&env, "eth1", "back in dom0", |b| !pciback(b) && b["IsPort"] == true);
    assert!(!env.sim.pciback().contains(&bdf(ETH1)));
}

fn metric(env: &Env, uuid: Uuid) -> Option<Value> {
    let path = env.paths().status_dir.join(format!("DomainMetric/{uuid}.json"));
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[test]
fn metrics_report_the_hypervisors_numbers_scaled_as_eve_does() {
    let mut env = Env::new();
    env.flags.push("timer.metric.interval:4".into()); // a sample a second
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut options = env.options();
    options.metrics_listen = Some(domainmgrd::prometheus::Listen::Tcp(port));
    env.daemon = Some(domainmgrd::supervisor::Daemon::start(options, std::sync::Arc::new(env.sim.client())).unwrap());
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "metered", true);
    cfg["VCpus"] = 2.into();
    cfg["Memory"] = 262144.into();
    cfg["MaxMem"] = 524288.into();
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    env.sim.set_cpu_time(DomId::new(st.domain_id), 8_000_000_000);

    env.wait_for("a metric with the CPU time", || {
        metric(&env, uuid).is_some_and(|m| m["CPUTotalNs"] == 4_000_000_000u64)
    });
    let m = metric(&env, uuid).unwrap();
    assert_eq!(m["CPUScaled"], 2, "divided by the vCPUs, as EVE does");
    assert_eq!(
        (m["AllocatedMB"].as_u64(), m["UsedMemory"].as_u64(), m["AvailableMemory"].as_u64()),
        (Some(256), Some(256), Some(256))
    );
    assert_eq!(m["UsedMemoryPercent"], 50.0);
    assert_eq!((m["Activated"] == true, m["MaxUsedMemory"].as_u64()), (true, Some(256)));
    assert!(m["LastHeard"].as_str().is_some_and(|t| t.starts_with("20")));

    let dom0 = metric(&env, Uuid::nil()).expect("dom0's metric");
    assert_eq!((dom0["Activated"] == true, dom0["CPUScaled"].as_u64()), (true, Some(8)));
    let host: Value =
        serde_json::from_slice(&std::fs::read(env.paths().status_dir.join("HostMemory/global.json")).unwrap()).unwrap();
    assert_eq!(
        (host["Ncpus"].as_u64(), host["TotalMemoryMB"].as_u64(), host["UsedEveMB"].as_u64()),
        (Some(8), Some(1 << 20), Some(1024))
    );

    // The same numbers on the Prometheus endpoint.
    let text = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(port).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    };
    let labels = format!("{{domain=\"metered\",uuid=\"{uuid}\",domid=\"{}\"}}", st.domain_id);
    assert!(text.contains(&format!("xen_domain_cpu_seconds_total{labels} 8\n")), "{text}");
    assert!(text.contains(&format!("xen_domain_memory_bytes{labels} 268435456\n")), "{text}");

    // A halted domain's metric says so, keeping its last CPU time.
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    env.wait_state(uuid, SwState::HALTED);
    env.wait_for("an inactive metric", || metric(&env, uuid).is_some_and(|m| m["Activated"] == false));
    let m = metric(&env, uuid).unwrap();
    assert_eq!((m["UsedMemory"].as_u64(), m["CPUTotalNs"].as_u64()), (Some(0), Some(4_000_000_000)));
    // A deleted domain's metric goes.
    env.delete_config(uuid);
    env.wait_for("the metric to be removed", || metric(&env, uuid).is_none());
}
