//! The PCI adapter policy and the USB modules, driven through the daemon's input files
//! (PhysicalIOAdapterList, DeviceNetworkStatus, settings) against the simulated hypervisor, a
//! fake sysfs tree and a fake modprobe; observed in AssignableAdapters and the simulator.
//! Reservations by domains, operators and concurrency are in `adapter_holds.rs`.

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edge;
mod probe;

use std::collections::BTreeSet;
use std::os::unix::fs::symlink;

use common::*;
use domainmgrd::eve::SwState;
use domainmgrd::sim::Op;
use edge::*;
use serde_json::{Value, json};
use uuid::Uuid;
use xenctl::Bdf;

fn set(bdfs: &[&str]) -> BTreeSet<Bdf> {
    bdfs.iter().map(|b| bdf(b)).collect()
}

fn in_pciback(env: &Env) -> BTreeSet<Bdf> {
    env.sim.pciback().into_iter().collect()
}

fn with_eth4() -> Vec<Value> {
    let mut list = adapters();
    list.push(adapter(1, "eth4", ETH4, "eth4", "eth4"));
    list
}

#[test]
fn at_start_ports_stay_in_dom0_and_the_rest_goes_to_pciback() {
    // The start-up pass is done when the daemon has started: no waiting.
    let (env, _probe) = edge_box();
    let eth0 = bundle(&env, "eth0");
    assert_eq!((eth0["KeepInHost"] == true, eth0["IsPort"] == true, pciback(&eth0)), (true, true, false), "{eth0}");
    for label in ["eth1", "USB", "eth2", "eth3"] {
        let b = bundle(&env, label);
        assert!(pciback(&b) && b.get("KeepInHost").is_none(), "{label}: {b}");
    }
    assert!(!pciback(&bundle(&env, "COM1")), "a serial port is not a PCI device");
    assert_eq!(in_pciback(&env), set(&[ETH1, USB, NIC2A, NIC2B]));
    assert_eq!(assignable(&env).unwrap()["Initialized"], true);
}

#[test]
fn nothing_moves_before_nim_names_dom0s_ports_and_the_policy_applies_when_it_does() {
    let mut env = Env::new();
    env.flags.push("debug.enable.usb:false".into());
    for p in [ETH0, ETH1, USB, NIC2A, NIC2B] {
        env.sim.add_pci_device(bdf(p));
    }
    set_list(&env, &adapters());
    let probe = start_probed(&mut env);
    // Started, and the start-up pass is over: nothing moved, nothing was even listed.
    assert_eq!((env.sim.calls(Op::PciAdd), env.sim.calls(Op::PciRemove), probe.lists()), (0, 0, 0));
    let aa = assignable(&env).expect("AssignableAdapters published");
    assert!(aa.get("Initialized").is_none() && aa.get("IoBundleList").is_none(), "{aa}");

    let early = Uuid::new_v4();
    env.write_config(&domain_with_adapters(early, "early", &[(1, "eth1")]));
    let st = env.wait_status(early, "failed", |s| s.adapters_failed);
    assert!(
        st.error
            .error
            .contains("eth1 cannot be assigned yet: DeviceNetworkStatus has not yet named dom0's network ports"),
        "{}",
        st.error.error
    );
    assert!(env.sim.domains_of(early).is_empty());
    // Waiting for its adapters is no failed boot: nothing tried, nothing counted.
    assert!(!st.boot_failed && st.tried_count == 0, "{st:?}");
    assert_eq!(env.sim.calls(Op::Create), 0);

    // nim's status arrives (late): the policy runs once, with eth0 kept in dom0.
    set_ports(&env, &["eth0"]);
    wait_bundle(&env, "eth3", "in pciback", pciback);
    assert_eq!(in_pciback(&env), set(&[ETH1, USB, NIC2A, NIC2B]));
    assert_eq!((env.sim.calls(Op::PciAdd), env.sim.calls(Op::PciRemove)), (4, 0), "eth0 never went to pciback");
    assert_eq!(bundle(&env, "eth0")["IsPort"], true);
    // And the domain that waited boots, with its adapter, at its first try.
    let st = env.wait_state(early, SwState::RUNNING);
    assert!(st.error.error.is_empty() && !st.adapters_failed && st.tried_count == 1, "{st:?}");
    assert_eq!(env.sim.info_of(st.domain_id).unwrap().spec.pcis.len(), 1);
}

#[test]
fn a_network_status_that_vanishes_or_lists_no_port_keeps_the_last_known_ports() {
    let (env, _probe) = edge_box();
    let dns = env.adapter_sources().network_status;

    std::fs::remove_file(&dns).unwrap();
    // A later change of the other input shows the daemon has looked again since.
    set_list(&env, &with_eth4());
    wait_bundle(&env, "eth4", "in pciback", pciback);
    let eth0 = bundle(&env, "eth0");
    assert!(eth0["IsPort"] == true && !pciback(&eth0), "a missing file is not 'no ports': {eth0}");

    write_json(&dns, &json!({"DPCKey": "zedagent", "Ports": []}));
    set_list(&env, &adapters());
    wait_bundle(&env, "eth4", "gone from the list", Value::is_null);
    let eth0 = bundle(&env, "eth0");
    assert!(eth0["IsPort"] == true && !pciback(&eth0), "an empty port list is not 'no ports' either: {eth0}");
    assert!(removed(&env, ETH0).is_empty() && !in_pciback(&env).contains(&bdf(ETH0)));
}

#[test]
fn a_port_appearing_or_going_moves_its_nic_with_rebind_and_unchanged_inputs_move_nothing() {
    let (env, probe) = edge_box();
    let adds = env.sim.calls(Op::PciAdd);

    set_ports(&env, &["eth0", "eth1"]);
    let eth1 = wait_bundle(&env, "eth1", "a port", |b| b["IsPort"] == true && !pciback(b));
    assert_eq!(eth1["KeepInHost"], true);
    assert_eq!(removed(&env, ETH1), [true], "back to dom0 with its driver rebound");

    set_ports(&env, &["eth0"]);
    wait_bundle(&env, "eth1", "back in pciback", |b| pciback(b) && b.get("IsPort").is_none());
    assert_eq!(env.sim.calls(Op::PciAdd), adds + 1);

    // Rewriting the same inputs runs no policy pass: after them, one real change runs one.
    let (lists, adds, removes) = (probe.lists(), env.sim.calls(Op::PciAdd), env.sim.calls(Op::PciRemove));
    set_ports(&env, &["eth0"]);
    set_list(&env, &adapters());
    set_list(&env, &with_eth4());
    wait_bundle(&env, "eth4", "in pciback", pciback);
    assert_eq!(probe.lists(), lists + 1, "one policy pass, for the one change");
    assert_eq!((env.sim.calls(Op::PciAdd), env.sim.calls(Op::PciRemove)), (adds + 1, removes));
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
    set_list(&env, &adapters());
    set_ports(&env, &["enp1s0"]);
    start_probed(&mut env);
    let eth2 = bundle(&env, "eth2");
    let eth3 = bundle(&env, "eth3");
    assert!(eth2["IsPort"] == true && !pciback(&eth2) && !pciback(&eth3), "the whole card stays in dom0");
    assert_eq!(eth3["IsPort"], true, "its group member is marked too");
    assert!(pciback(&bundle(&env, "eth0")), "eth0 is not a port here");
}

#[test]
fn adapters_added_to_or_removed_from_the_list_move_accordingly() {
    let (env, _probe) = edge_box();
    set_list(&env, &with_eth4());
    wait_bundle(&env, "eth4", "in pciback", pciback);
    assert!(in_pciback(&env).contains(&bdf(ETH4)));

    // eth1 leaves the list: it goes back to dom0 (EVE does the same).
    let without_eth1: Vec<Value> = with_eth4().into_iter().filter(|a| a["Phylabel"] != "eth1").collect();
    set_list(&env, &without_eth1);
    wait_bundle(&env, "eth1", "gone", Value::is_null);
    env.wait_for("eth1 to leave pciback", || !in_pciback(&env).contains(&bdf(ETH1)));
    assert_eq!(removed(&env, ETH1), [true]);

    // eth4 leaves the list while a domain uses it: it stays with the domain until it halts.
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "user", &[(1, "eth4")]));
    env.wait_state(uuid, SwState::RUNNING);
    set_list(&env, &adapters());
    wait_bundle(&env, "eth4", "gone", Value::is_null);
    assert!(in_pciback(&env).contains(&bdf(ETH4)) && removed(&env, ETH4).is_empty());
    let mut cfg = domain_with_adapters(uuid, "user", &[(1, "eth4")]);
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    env.wait_for("eth4 back in dom0", || !in_pciback(&env).contains(&bdf(ETH4)));
    assert_eq!(removed(&env, ETH4), [true]);
}

#[test]
fn usb_stays_in_dom0_by_default_with_its_modules_loaded_at_start() {
    let mut env = Env::new(); // no debug.enable.usb anywhere: EVE's default, true
    for p in [ETH0, ETH1, USB, NIC2A, NIC2B] {
        env.sim.add_pci_device(bdf(p));
    }
    set_list(&env, &adapters());
    set_ports(&env, &["eth0"]);
    let log = env.dir.path().join("modprobe.log");
    start_probed(&mut env);
    // Both happened during start-up.
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "-a usbhid usbkbd usbmouse usb_storage\n");
    let usb = bundle(&env, "USB");
    assert!(usb["KeepInHost"] == true && !pciback(&usb), "{usb}");
    assert!(!in_pciback(&env).contains(&bdf(USB)));

    // Restarted with the knob off: the modules go and the controller goes to pciback, at start.
    env.stop();
    env.flags.push("debug.enable.usb:false".into());
    start_probed(&mut env);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().last(), Some("-r -a usbhid usbkbd usbmouse usb_storage"), "{calls}");
    assert!(pciback(&bundle(&env, "USB")));
}

#[test]
fn debug_enable_usb_changes_move_the_controller_and_the_modules() {
    let mut env = Env::new();
    for p in [ETH0, ETH1, USB, NIC2A, NIC2B] {
        env.sim.add_pci_device(bdf(p));
    }
    let settings = env.dir.path().join("global.json");
    std::fs::write(&settings, r#"{"debug.enable.usb": false}"#).unwrap();
    set_list(&env, &adapters());
    set_ports(&env, &["eth0"]);
    let mut options = env.options();
    options.settings_file = Some(settings.clone());
    let probe = probe::Probe::new(&env.sim);
    env.daemon = Some(domainmgrd::supervisor::Daemon::start(options, std::sync::Arc::new(probe)).unwrap());
    assert!(pciback(&bundle(&env, "USB")));
    let log = env.dir.path().join("modprobe.log");

    write_json(&settings, &json!({"debug.enable.usb": true}));
    let usb = wait_bundle(&env, "USB", "kept in dom0", |b| b["KeepInHost"] == true && !pciback(b));
    assert!(usb.get("IsPort").is_none());
    assert_eq!(removed(&env, USB), [true], "rebound to its dom0 driver");
    env.wait_for("modprobe to load", || std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() == 2));
    assert!(pciback(&bundle(&env, "eth1")), "other adapters stay assignable");

    write_json(&settings, &json!({"debug.enable.usb": false}));
    wait_bundle(&env, "USB", "back in pciback", pciback);
    env.wait_for("modprobe to unload", || std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() == 3));
    let unload = "-r -a usbhid usbkbd usbmouse usb_storage";
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().collect::<Vec<_>>(), [unload, "-a usbhid usbkbd usbmouse usb_storage", unload]);
}

#[test]
fn entries_sharing_a_pci_address_are_decided_once() {
    let mut env = Env::new(); // debug.enable.usb: the USB controller stays in dom0
    for p in [ETH0, ETH1, USB] {
        env.sim.add_pci_device(bdf(p));
    }
    let mut stick = adapter(14, "stick", USB, "", "stick");
    stick["Phyaddr"]["UsbAddr"] = "1:2".into();
    set_list(
        &env,
        &[
            adapter(1, "eth0", ETH0, "eth0", "eth0"),
            adapter(1, "eth1", ETH1, "eth1", "eth1"),
            adapter(13, "USB", USB, "", "USB"),
            stick,                                     // a USB device behind the controller
            adapter(255, "sensor", USB, "", "sensor"), // the model lists the controller again
        ],
    );
    set_ports(&env, &["eth0"]);
    start_probed(&mut env);
    assert_eq!(in_pciback(&env), set(&[ETH1]));
    assert_eq!((env.sim.calls(Op::PciAdd), env.sim.calls(Op::PciRemove)), (1, 0), "the controller never moved");
    let sensor = bundle(&env, "sensor");
    assert!(sensor["KeepInHost"] == true && !pciback(&sensor), "{sensor}");
    let stick = bundle(&env, "stick");
    assert!(!pciback(&stick) && stick["UsedByUUID"] == Uuid::nil().to_string(), "{stick}");
}

#[test]
fn a_group_that_cannot_all_go_to_pciback_stays_whole_in_dom0() {
    let mut env = Env::new();
    env.flags.push("debug.enable.usb:false".into());
    for p in [ETH0, ETH1, USB, NIC2A, ETH4] {
        env.sim.add_pci_device(bdf(p)); // not NIC2B: binding the card's second port fails
    }
    set_list(&env, &adapters());
    set_ports(&env, &["eth0"]);
    start_probed(&mut env);
    assert_eq!(removed(&env, NIC2A), [true], "the first port, already bound, went back to dom0");
    for label in ["eth2", "eth3"] {
        let b = bundle(&env, label);
        assert!(!pciback(&b), "{label}: {b}");
        let e = errors(&b);
        assert!(e.contains("cannot assign 0000:01:00.1 to pciback") && e.contains("eth2+eth3 stays in dom0"), "{e}");
    }
    assert_eq!(in_pciback(&env), set(&[ETH1, USB]));

    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "router", &[(1, "eth2")]));
    let st = env.wait_status(uuid, "failed", |s| s.adapters_failed);
    assert!(st.error.error.contains("eth2 (0000:01:00.0) is not assignable: cannot assign 0000:01:00.1"), "{st:?}");

    // Once the device works, the next input change binds the whole card.
    env.sim.add_pci_device(bdf(NIC2B));
    set_list(&env, &with_eth4());
    let eth3 = wait_bundle(&env, "eth3", "in pciback", pciback);
    assert!(pciback(&bundle(&env, "eth2")) && errors(&eth3).is_empty(), "{eth3}");

    // A third function joins the card's group and cannot be bound: the two already in
    // pciback go back to dom0 with it, rather than leave the group split.
    let mut list = with_eth4();
    list.push(adapter(1, "eth5", "0000:01:00.2", "eth5", "card"));
    set_list(&env, &list);
    let eth5 = wait_bundle(&env, "eth5", "failed", |b| !errors(b).is_empty());
    assert!(errors(&eth5).contains("cannot assign 0000:01:00.2 to pciback"), "{eth5}");
    for label in ["eth2", "eth3"] {
        let b = bundle(&env, label);
        assert!(!pciback(&b) && errors(&b).contains("cannot assign 0000:01:00.2"), "{label}: {b}");
    }
    assert_eq!((removed(&env, NIC2A), removed(&env, NIC2B)), (vec![true, true], vec![true]));
    assert!(!in_pciback(&env).contains(&bdf(NIC2A)) && !in_pciback(&env).contains(&bdf(NIC2B)));
}
