//! A small edge box for the adapter tests: two NICs, a USB controller, a dual-port NIC card and
//! a serial port in EVE's PhysicalIOAdapterList, their PCI devices in the simulator, and
//! helpers to write the inputs and read `AssignableAdapters`. The daemon runs on a [`Probe`].

// Test support: a failed step panics, which is how a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use domainmgrd::supervisor::Daemon;
use serde_json::{Value, json};
use uuid::Uuid;
use xenctl::Bdf;

use crate::common::*;
use crate::probe::Probe;

pub const ETH0: &str = "0000:00:02.0";
pub const ETH1: &str = "0000:00:03.0";
pub const USB: &str = "0000:00:14.0";
pub const NIC2A: &str = "0000:01:00.0";
pub const NIC2B: &str = "0000:01:00.1";
pub const ETH4: &str = "0000:02:00.0";

pub fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

pub fn adapter(ptype: u8, label: &str, pci: &str, ifname: &str, group: &str) -> Value {
    json!({"Ptype": ptype, "Phylabel": label, "Logicallabel": label, "Assigngrp": group,
           "Phyaddr": {"PciLong": pci, "Ifname": ifname}, "Usage": 1})
}

/// The edge box's adapters: two NICs, a USB controller, a dual-port NIC card, a serial port.
pub fn adapters() -> Vec<Value> {
    vec![
        adapter(1, "eth0", ETH0, "eth0", "eth0"),
        adapter(1, "eth1", ETH1, "eth1", "eth1"),
        adapter(13, "USB", USB, "", "USB"),
        adapter(1, "eth2", NIC2A, "eth2", "card"),
        adapter(1, "eth3", NIC2B, "eth3", "card"),
        json!({"Ptype": 3, "Phylabel": "COM1", "Logicallabel": "COM1", "Assigngrp": "COM1",
               "Phyaddr": {"Serial": "/dev/ttyS0", "Irq": "4", "Ioports": "3f8-3ff"}}),
    ]
}

pub fn write_json(path: &std::path::Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn set_list(env: &Env, adapters: &[Value]) {
    write_json(&env.adapter_sources().adapter_list, &json!({"Initialized": true, "AdapterList": adapters}));
}

/// DeviceNetworkStatus naming these dom0 ports, as nim writes it.
pub fn set_ports(env: &Env, ifnames: &[&str]) {
    let ports: Vec<Value> = ifnames.iter().map(|i| json!({"IfName": i, "IsMgmt": true})).collect();
    write_json(&env.adapter_sources().network_status, &json!({"DPCKey": "zedagent", "Ports": ports}));
}

pub fn assignable(env: &Env) -> Option<Value> {
    let path = env.paths().status_dir.join("AssignableAdapters/global.json");
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

pub fn bundle(env: &Env, label: &str) -> Value {
    assignable(env)
        .and_then(|a| a["IoBundleList"].as_array()?.iter().find(|b| b["Phylabel"] == label).cloned())
        .unwrap_or(Value::Null)
}

pub fn wait_bundle(env: &Env, label: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    env.wait_for(&format!("{label} to be {what}"), || want(&bundle(env, label)));
    bundle(env, label)
}

pub fn pciback(b: &Value) -> bool {
    b["IsPCIBack"] == true
}

pub fn errors(b: &Value) -> String {
    b["Error"]["Errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["ErrStr"].as_str()).collect::<Vec<_>>().join("; "))
        .unwrap_or_default()
}

/// Starts the daemon on a new probe over the env's simulator.
pub fn start_probed(env: &mut Env) -> Probe {
    let probe = Probe::new(&env.sim);
    env.daemon = Some(Daemon::start(env.options(), Arc::new(probe.clone())).unwrap());
    probe
}

/// The edge box with debug.enable.usb off (so the USB controller goes to pciback like the
/// rest), its devices in the simulator, eth0 dom0's port, and the daemon started.
pub fn edge_box() -> (Env, Probe) {
    let mut env = Env::new();
    env.flags.push("debug.enable.usb:false".into());
    for p in [ETH0, ETH1, USB, NIC2A, NIC2B, ETH4] {
        env.sim.add_pci_device(bdf(p));
    }
    set_list(&env, &adapters());
    set_ports(&env, &["eth0"]);
    let probe = start_probed(&mut env);
    (env, probe)
}

pub fn domain_with_adapters(uuid: Uuid, name: &str, adapters: &[(u8, &str)]) -> Value {
    let mut cfg = config(uuid, name, true);
    cfg["IoAdapterList"] = adapters.iter().map(|(t, n)| json!({"Type": t, "Name": n})).collect();
    cfg
}

pub fn removed(env: &Env, pci: &str) -> Vec<bool> {
    env.sim.pci_removals().into_iter().filter(|(b, _)| *b == bdf(pci)).map(|(_, rebind)| rebind).collect()
}
