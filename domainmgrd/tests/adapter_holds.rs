//! Who holds which adapter: domains reserving the adapters their IoAdapterList names and
//! releasing them when they halt, errors instead of silent skips, a daemon restart under
//! running guests, operators moving devices by hand, and a slow pciback bind holding up no
//! other domain. Against the simulated hypervisor through a probe (see `probe/mod.rs`).

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edge;
mod probe;

use std::collections::HashSet;

use common::*;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::sim::Op;
use edge::*;
use serde_json::Value;
use uuid::Uuid;
use xenctl::Bdf;

fn stop_domain(env: &Env, uuid: Uuid, name: &str, adapters: &[(u8, &str)]) {
    let mut cfg = domain_with_adapters(uuid, name, adapters);
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    env.wait_state(uuid, SwState::HALTED);
}

#[test]
fn a_domain_gets_its_adapters_reserved_and_released_when_it_halts() {
    let (env, _probe) = edge_box();
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

    let removes = env.sim.calls(Op::PciRemove);
    stop_domain(&env, uuid, "router", &[(1, "eth2")]);
    let eth2 = wait_bundle(&env, "eth2", "released", |b| b["UsedByUUID"] == Uuid::nil().to_string());
    assert!(pciback(&eth2), "released devices stay assignable");
    assert_eq!(env.sim.calls(Op::PciRemove), removes);
}

#[test]
fn adapters_kept_in_dom0_used_elsewhere_or_not_pci_are_errors_never_skipped() {
    let (env, _probe) = edge_box();
    let failure = |uuid: Uuid, name: &str, wants: &[(u8, &str)]| {
        env.write_config(&domain_with_adapters(uuid, name, wants));
        let st = env.wait_status(uuid, "failed", |s| s.adapters_failed);
        assert_eq!(st.state, SwState::HALTED);
        assert!(env.sim.domains_of(uuid).is_empty());
        st.error.error
    };

    let e = failure(Uuid::new_v4(), "greedy", &[(1, "eth0")]);
    assert!(e.contains("adapter eth0 cannot be given to a guest: it is (in the group of) a dom0 network port"), "{e}");

    let first = Uuid::new_v4();
    env.write_config(&domain_with_adapters(first, "first", &[(1, "eth1")]));
    env.wait_state(first, SwState::RUNNING);
    let e = failure(Uuid::new_v4(), "second", &[(1, "eth1")]);
    assert!(e.contains(&format!("adapter eth1 is used by domain {first}")), "{e}");

    let e = failure(Uuid::new_v4(), "typo", &[(1, "eth9")]);
    assert!(e.contains("Name = \"eth9\": the PhysicalIOAdapterList has no adapter, assignment group or label"), "{e}");

    // EVE refuses an entry without an assignment group ("not assignable").
    let mut list = adapters();
    list.push(serde_json::json!({"Ptype": 3, "Phylabel": "COM2", "Logicallabel": "COM2", "Assigngrp": "",
        "Phyaddr": {"Serial": "/dev/ttyS1", "Irq": "3", "Ioports": "2f8-2ff"}}));
    set_list(&env, &list);
    wait_bundle(&env, "COM2", "listed", |b| !b.is_null());
    let e = failure(Uuid::new_v4(), "ungrouped", &[(3, "COM2")]);
    assert!(e.contains("adapter COM2 is not assignable: it has no assignment group (Assigngrp)"), "{e}");
}

#[test]
fn adapters_are_found_as_eve_finds_them_and_non_pci_ones_are_held_too() {
    let (env, _probe) = edge_box();
    // By group name, type ignored, case ignored: the dual-port card and the serial port.
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "gateway", &[(0, "CARD"), (1, "com1")]));
    let st = env.wait_state(uuid, SwState::RUNNING);
    let d = env.sim.info_of(st.domain_id).unwrap();
    let given: HashSet<Bdf> = d.spec.pcis.iter().map(|p| p.bdf).collect();
    assert_eq!(given, [NIC2A, NIC2B].map(bdf).into_iter().collect());
    // A PV guest gets the serial port's IRQ and I/O ports (EVE gives its device to HVM only).
    assert_eq!(d.spec.resources.irqs, [4]);
    assert_eq!(d.spec.resources.ioports, [xenctl::IoportRange::new(0x3f8, 0x3ff)]);
    assert!(d.spec.serial_ports.is_empty());
    let com1 = bundle(&env, "COM1");
    assert_eq!(com1["UsedByUUID"], uuid.to_string(), "{com1}");
    assert!(!pciback(&com1) && com1["Irq"] == "4" && com1["Ioports"] == "3f8-3ff", "{com1}");

    let other = Uuid::new_v4();
    env.write_config(&domain_with_adapters(other, "second", &[(3, "COM1")]));
    let st = env.wait_status(other, "failed", |s| s.adapters_failed);
    assert!(st.error.error.contains(&format!("adapter COM1 is used by domain {uuid}")), "{}", st.error.error);

    stop_domain(&env, uuid, "gateway", &[(0, "CARD"), (1, "com1")]);
    wait_bundle(&env, "COM1", "released", |b| b["UsedByUUID"] == Uuid::nil().to_string());
}

#[test]
fn a_used_adapter_that_becomes_a_port_returns_to_dom0_when_its_domain_halts_and_nothing_else_moves() {
    let (env, _probe) = edge_box();
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "user", &[(1, "eth1")]));
    env.wait_state(uuid, SwState::RUNNING);
    // An operator takes the card back to dom0: the policy would have it in pciback.
    let r = env.control(&Request::PciRelease { bdf: NIC2A.into() });
    assert!(r.ok, "{r:?}");
    assert_eq!(r.data["unit"], serde_json::json!([NIC2A, NIC2B]), "the whole group moved");

    set_ports(&env, &["eth0", "eth1"]);
    let eth1 = wait_bundle(&env, "eth1", "flagged", |b| !errors(b).is_empty());
    assert!(pciback(&eth1), "not yanked from a running domain");
    assert!(errors(&eth1).contains(&format!("domain {uuid} uses it; it returns to dom0 when that domain halts")));

    let adds = env.sim.calls(Op::PciAdd);
    stop_domain(&env, uuid, "user", &[(1, "eth1")]);
    wait_bundle(&env, "eth1", "back in dom0", |b| !pciback(b) && b["IsPort"] == true && errors(b).is_empty());
    assert_eq!(removed(&env, ETH1), [true]);
    // The halt only returned eth1: what the operator put in dom0 stays there.
    assert_eq!(env.sim.calls(Op::PciAdd), adds);
    assert!(!env.sim.pciback().contains(&bdf(NIC2A)) && !pciback(&bundle(&env, "eth2")));
}

#[test]
fn a_restart_never_takes_a_device_from_a_running_guest() {
    let (mut env, _probe) = edge_box();
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "user", &[(1, "eth1")]));
    let domid = env.wait_state(uuid, SwState::RUNNING).domain_id;

    for forget_status in [false, true] {
        env.stop();
        // While the daemon is down, eth1 becomes a dom0 port.
        set_ports(&env, &["eth0", "eth1"]);
        if forget_status {
            // No record of the last daemon's reservations: the domain's config must do.
            std::fs::remove_file(env.paths().status_dir.join("AssignableAdapters/global.json")).unwrap();
        }
        let removes = env.sim.calls(Op::PciRemove);
        start_probed(&mut env);
        assert_eq!(env.sim.calls(Op::PciRemove), removes, "the start-up pass left the guest's device alone");
        let eth1 = bundle(&env, "eth1");
        assert!(pciback(&eth1) && eth1["UsedByUUID"] == uuid.to_string(), "{eth1}");
        assert!(errors(&eth1).contains(&format!("domain {uuid} uses it")), "{eth1}");
        assert_eq!(env.wait_state(uuid, SwState::RUNNING).domain_id, domid, "adopted, untouched");
        set_ports(&env, &["eth0"]);
        wait_bundle(&env, "eth1", "assignable again", |b| errors(b).is_empty());
    }
    set_ports(&env, &["eth0", "eth1"]);
    wait_bundle(&env, "eth1", "flagged", |b| !errors(b).is_empty());
    stop_domain(&env, uuid, "user", &[(1, "eth1")]);
    wait_bundle(&env, "eth1", "back in dom0", |b| !pciback(b));
    assert_eq!(removed(&env, ETH1), [true]);
}

#[test]
fn operators_move_devices_through_the_policy_and_override_it_only_when_forced() {
    let (env, _probe) = edge_box();
    let assign = |bdf: &str, force: bool| env.control(&Request::PciAssign { bdf: bdf.into(), force });

    let r = assign(ETH0, false);
    assert!(!r.ok);
    assert_eq!(
        r.error.as_deref(),
        Some(&*format!(
            "{ETH0} (eth0) stays in dom0: eth0 is a dom0 network port; `domainctl pci assign --force {ETH0}` assigns it anyway"
        ))
    );
    assert!(!env.sim.pciback().contains(&bdf(ETH0)));

    let r = assign(ETH0, true);
    assert!(r.ok && r.data["moved"] == serde_json::json!([ETH0]), "{r:?}");
    let eth0 = bundle(&env, "eth0"); // published before the answer
    assert!(pciback(&eth0) && eth0["KeepInHost"] == true, "{eth0}");
    assert!(errors(&eth0).contains("assigned to pciback by an operator (domainctl pci assign --force)"), "{eth0}");

    // The operator's choice stands when an unrelated input changes.
    let mut list = adapters();
    list.push(adapter(1, "eth4", ETH4, "eth4", "eth4"));
    set_list(&env, &list);
    wait_bundle(&env, "eth4", "in pciback", pciback);
    assert!(pciback(&bundle(&env, "eth0")) && removed(&env, ETH0).is_empty());

    // A guest may have it now; while it does, nobody moves it.
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "forced", &[(1, "eth0")]));
    env.wait_state(uuid, SwState::RUNNING);
    let r = env.control(&Request::PciRelease { bdf: ETH0.into() });
    assert_eq!(
        r.error.as_deref(),
        Some(&*format!("{ETH0} (eth0) is used by domain {uuid}; it moves once that domain halts"))
    );
    stop_domain(&env, uuid, "forced", &[(1, "eth0")]);

    let r = env.control(&Request::PciRelease { bdf: ETH0.into() });
    assert!(r.ok, "{r:?}");
    let eth0 = bundle(&env, "eth0");
    assert!(!pciback(&eth0) && errors(&eth0).is_empty(), "back where the policy wants it: {eth0}");
    assert_eq!(removed(&env, ETH0), [true]);

    // A device not in the list is the operator's business alone.
    env.sim.add_pci_device(bdf("0000:07:00.0"));
    assert!(assign("0000:07:00.0", false).ok);
    assert!(env.sim.pciback().contains(&bdf("0000:07:00.0")));
    assert!(!assign("0000:07:00.9", false).ok, "unknown to the host: libxl's error");
}

#[test]
fn a_slow_pciback_bind_holds_up_no_halt_and_no_boot() {
    let (env, probe) = edge_box();
    set_ports(&env, &["eth0", "eth1"]);
    wait_bundle(&env, "eth1", "in dom0", |b| !pciback(b));
    let plain = Uuid::new_v4();
    env.write_config(&config(plain, "plain", true));
    let with_card = Uuid::new_v4();
    env.write_config(&domain_with_adapters(with_card, "card", &[(1, "eth2")]));
    env.wait_state(plain, SwState::RUNNING);
    env.wait_state(with_card, SwState::RUNNING);

    // eth1 stops being a port; its bind to pciback hangs (a slow sysfs bind).
    let mut gate = probe.gate(bdf(ETH1));
    set_ports(&env, &["eth0"]);
    gate.wait_entered();

    // Meanwhile domains halt, release their adapters and boot as if nothing were happening.
    stop_domain(&env, plain, "plain", &[]);
    stop_domain(&env, with_card, "card", &[(1, "eth2")]);
    wait_bundle(&env, "eth2", "released", |b| b["UsedByUUID"] == Uuid::nil().to_string());
    let late = Uuid::new_v4();
    env.write_config(&config(late, "late", true));
    env.wait_state(late, SwState::RUNNING);
    let eth1 = bundle(&env, "eth1");
    assert!(!pciback(&eth1), "still binding: {eth1}");
    let wants_eth1 = Uuid::new_v4();
    env.write_config(&domain_with_adapters(wants_eth1, "eager", &[(1, "eth1")]));
    let st = env.wait_status(wants_eth1, "failed", |s| s.adapters_failed);
    assert!(st.error.error.contains("eth1 (0000:00:03.0) is being moved to pciback; try again"), "{st:?}");

    gate.open();
    wait_bundle(&env, "eth1", "in pciback", pciback);
    assert_eq!(env.control(&Request::PciList).data["adapters"]["Initialized"], Value::Bool(true));
}

#[test]
fn an_adapter_kept_in_dom0_but_no_port_goes_to_its_domain_and_comes_back() {
    // EVE keeps a WLAN card in dom0 while unused, yet lets a domain have it: libxl seizes it
    // at the create, and it returns to dom0 when the domain halts.
    let (env, _probe) = edge_box();
    const WLAN: &str = "0000:03:00.0";
    env.sim.add_pci_device(bdf(WLAN));
    let mut list = adapters();
    list.push(adapter(5, "wlan0", WLAN, "wlan0", "wlan0"));
    set_list(&env, &list);
    let wlan = wait_bundle(&env, "wlan0", "kept in dom0", |b| b["KeepInHost"] == true);
    assert!(!pciback(&wlan) && !env.sim.pciback().contains(&bdf(WLAN)), "{wlan}");

    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "wifi", &[(5, "wlan0")]));
    let st = env.wait_state(uuid, SwState::RUNNING);
    let d = env.sim.info_of(st.domain_id).unwrap();
    assert_eq!(d.spec.pcis.iter().map(|p| (p.bdf, p.seize)).collect::<Vec<_>>(), [(bdf(WLAN), true)]);
    assert!(env.sim.pciback().contains(&bdf(WLAN)), "seized by the create");
    let wlan = bundle(&env, "wlan0");
    assert!(wlan["UsedByUUID"] == uuid.to_string() && pciback(&wlan) && errors(&wlan).is_empty(), "{wlan}");

    stop_domain(&env, uuid, "wifi", &[(5, "wlan0")]);
    wait_bundle(&env, "wlan0", "back in dom0", |b| !pciback(b) && b["UsedByUUID"] == Uuid::nil().to_string());
    assert_eq!(removed(&env, WLAN), [true]);
    assert!(!env.sim.pciback().contains(&bdf(WLAN)));
}
