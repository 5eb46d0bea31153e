//! EVE's meanings in DomainStatus where they are easy to get wrong, driven through
//! DomainConfig files against the simulated hypervisor and read back from DomainStatus: a
//! guest's own reboot is one run (Activated, adapters, BootTime kept), VifUsed names the
//! `-emu` tap when there is one and is there as soon as the domain exists, IoAdapterList lists
//! only reserved adapters, Devtype, unknown modes, and the EVE fields we do not honour yet.

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edge;
mod probe;

use common::*;
use domainmgrd::eve::{Format, SwState, VmMode};
use domainmgrd::sim::Op;
use edge::*;
use serde_json::{Value, json};
use uuid::Uuid;
use xenctl::{DomId, DomainKind};

/// The vif name `config` gives the domain with `uuid`.
fn vif_of(uuid: Uuid) -> String {
    format!("nbu{}", uuid.as_u128() % 1000)
}

#[test]
fn a_guest_reboot_keeps_activated_its_adapters_and_its_boot_time() {
    let (env, _probe) = edge_box();
    let mut with_eth4 = adapters();
    with_eth4.push(adapter(1, "eth4", ETH4, "eth4", "eth4"));
    set_list(&env, &with_eth4);
    wait_bundle(&env, "eth4", "in pciback", pciback);
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "router", &[(1, "eth4")]));
    let first = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(first.io_adapter_list.len(), 1);
    // eth4 leaves the adapter list: it stays with the domain for as long as it runs, and a
    // guest's own reboot does not end that (EVE's xl restarts it without looking again).
    set_list(&env, &adapters());
    wait_bundle(&env, "eth4", "gone", Value::is_null);

    env.sim.hold(Op::Create);
    env.sim.guest_reboot(DomId::new(first.domain_id));
    let rebooting = env.wait_state(uuid, SwState::BOOTING);
    assert!(rebooting.activated, "a reboot is not the app going down: {rebooting:#?}");
    assert_eq!(rebooting.boot_time, first.boot_time);
    assert_eq!(rebooting.io_adapter_list, first.io_adapter_list);
    env.sim.open(Op::Create);

    let again = env.wait_status(uuid, "rebooted", |s| s.state == SwState::RUNNING && s.domain_id > first.domain_id);
    assert!(again.activated && !again.adapters_failed && again.error.error.is_empty(), "{again:#?}");
    assert_eq!((again.boot_time, again.tried_count), (first.boot_time, first.tried_count));
    assert_eq!(env.sim.info_of(again.domain_id).unwrap().spec.pcis.len(), 1, "it has eth4 again");
    assert!(removed(&env, ETH4).is_empty(), "eth4 never went back to dom0");

    // Once it halts, eth4 goes back to dom0, and the status lists no adapter.
    let mut cfg = domain_with_adapters(uuid, "router", &[(1, "eth4")]);
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    let halted = env.wait_state(uuid, SwState::HALTED);
    assert!(!halted.activated && halted.io_adapter_list.is_empty(), "{halted:#?}");
    env.wait_for("eth4 back in dom0", || removed(&env, ETH4) == [true]);
}

#[test]
fn vif_used_is_the_emu_tap_when_it_exists_and_is_there_as_soon_as_the_domain_is() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    // libxl made the emulated NIC's tap beside the PV backend (an HVM guest).
    let emu = format!("{}-emu", vif_of(uuid));
    std::fs::create_dir_all(env.dir.path().join("sys/class/net").join(&emu)).unwrap();
    let unpause = env.sim.gate(uuid, Op::Unpause);
    let mut cfg = config(uuid, "hvm", true);
    cfg["VirtualizationMode"] = 1.into();
    env.write_config(&cfg);
    wait_held(&unpause, 1);
    let booting = env.status(uuid).unwrap();
    assert_eq!(booting.state, SwState::BOOTING);
    assert_eq!(booting.vif_list.len(), 1, "the vifs are known once the domain exists: {booting:#?}");
    assert_eq!(booting.vif_list[0].vif_used, emu);
    assert_eq!(booting.vif_list[0].config.vif, vif_of(uuid), "the config's name, for zedmanager's lookup");
    drop(unpause);
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(st.vif_list[0].vif_used, emu);

    // Without the tap, the vif's own name.
    let other = Uuid::new_v4();
    env.write_config(&config(other, "pv", true));
    let st = env.wait_state(other, SwState::RUNNING);
    assert_eq!(st.vif_list[0].vif_used, vif_of(other));
}

#[test]
fn io_adapter_list_lists_only_reserved_adapters() {
    let (env, _probe) = edge_box();
    // eth0 is dom0's port: it cannot be reserved.
    let uuid = Uuid::new_v4();
    env.write_config(&domain_with_adapters(uuid, "greedy", &[(1, "eth0")]));
    let st = env.wait_status(uuid, "failed", |s| s.adapters_failed);
    assert!(st.io_adapter_list.is_empty(), "{st:#?}");

    let ok = Uuid::new_v4();
    env.write_config(&domain_with_adapters(ok, "router", &[(1, "eth1")]));
    let st = env.wait_state(ok, SwState::RUNNING);
    assert_eq!(st.io_adapter_list.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["eth1"]);
}

#[test]
fn disks_have_eves_devtypes() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "web", true);
    cfg["DiskConfigList"] = json!([
        {"FileLocation": "/persist/img/root.img", "Format": 1},
        {"FileLocation": "/persist/img/data.qcow2", "Format": 3},
        {"FileLocation": "/persist/img/install.iso", "Format": 9}
    ]);
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    let got: Vec<(&str, Format)> = st.disk_status_list.iter().map(|d| (d.devtype.as_str(), d.format)).collect();
    assert_eq!(got, [("hdd", Format::RAW), ("hdd", Format::QCOW2), ("cdrom", Format::RAW)]);
}

#[test]
fn an_unknown_virtualization_mode_runs_as_pv_and_nohyper_is_refused() {
    let mut env = Env::new();
    env.start();
    for mode in [2, 9] {
        let uuid = Uuid::new_v4();
        let mut cfg = config(uuid, "odd", true);
        cfg["VirtualizationMode"] = mode.into();
        env.write_config(&cfg);
        let st = env.wait_state(uuid, SwState::RUNNING);
        assert_eq!(st.vm.virtualization_mode, VmMode::PV, "EVE's status says PV");
        let spec = env.sim.info_of(st.domain_id).unwrap().spec;
        // As a PV app runs: PVH, the simulated host running HVM guests (EVE's xen-start).
        assert_eq!(spec.kind, DomainKind::Pvh, "mode {mode}");
        assert!(spec.cmdline.as_deref().is_some_and(|c| c.starts_with("console=hvc0")), "{spec:?}");
    }
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "container", true);
    cfg["VirtualizationMode"] = 4.into();
    env.write_config(&cfg);
    let st = env.wait_status(uuid, "config failure", |s| s.config_failed);
    assert!(st.error.error.contains("VirtualizationMode = 4: NOHYPER"), "{}", st.error.error);
}

#[test]
fn host_hardware_the_config_names_reaches_libxl() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "hw", true);
    cfg["IRQs"] = json!([88, 86]);
    cfg["IOMem"] = json!(["0xf7020,1"]);
    cfg["DtDev"] = json!(["/smb/gpio@f7020000"]);
    cfg["DeviceTree"] = json!("/persist/guest.dtb");
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    let r = env.sim.info_of(st.domain_id).unwrap().spec.resources;
    assert_eq!(r.irqs, [88, 86]);
    assert_eq!(r.iomem, [xenctl::IomemRange { start: 0xf7020, pages: 1, gfn: None }]);
    assert_eq!(
        (r.dtdevs, r.device_tree.as_deref()),
        (vec!["/smb/gpio@f7020000".to_string()], Some("/persist/guest.dtb"))
    );
}

#[test]
fn eve_fields_we_do_not_honour_yet_are_errors_when_set_and_ignored_when_neutral() {
    let mut env = Env::new();
    env.start();
    let set: [(&str, Value, &str); 1] = [(
        "IoAdapterList",
        json!([{"Type": 9, "Name": "eth1vf0", "EthVf": {"Index": 1, "VlanID": 5}}]),
        "IoAdapterList[0].EthVf = {\"Index\":1,\"VlanID\":5}",
    )];
    for (field, value, want) in set {
        let uuid = Uuid::new_v4();
        let mut cfg = config(uuid, "asks", true);
        cfg[field] = value;
        env.write_config(&cfg);
        let st = env.wait_status(uuid, "config failure", |s| s.config_failed);
        let file = env.config_path(uuid);
        assert!(
            st.error.error.starts_with(&format!("{}: {want}", file.display()))
                && st.error.error.ends_with("is not supported yet"),
            "{field}: {}",
            st.error.error
        );
        assert!(!st.error.error.contains("I2Nsb3Vk"), "user data is never in the status");
        assert_eq!(st.state, SwState::INSTALLED);
        assert!(env.sim.domains_of(uuid).is_empty(), "{field}: not booted");
    }
    // As EVE writes them when unset, and the values that ask for nothing.
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "plain", true);
    for (field, value) in [
        ("IRQs", json!(null)),
        ("IOMem", json!([])),
        ("DtDev", json!(null)),
        ("DeviceTree", json!("")),
        ("GPUConfig", json!("")),
        ("DisableLogs", json!(true)),
        ("MetaDataType", json!(1)),
        ("pubsub-large-CloudInitUserData", json!("I2Nsb3VkLWNvbmZpZw==")),
        ("pubsub-large-CipherData", json!(null)),
        ("IsCipher", json!(false)),
        ("CipherContext", json!(null)),
        ("IoAdapterList", json!(null)),
    ] {
        cfg[field] = value;
    }
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert!(!st.config_failed && st.error.error.is_empty(), "{st:#?}");
}
