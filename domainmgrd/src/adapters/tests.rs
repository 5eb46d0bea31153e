//! Unit tests of the adapters' input handling: when the inputs count as arrived, changed, or
//! kept (the daemon-level behaviour is in `domainmgrd/tests/devices.rs`).

use std::sync::Arc;

use super::*;
use crate::sim::SimHypervisor;

fn adapters(dir: &Path) -> Adapters {
    let sources = Sources {
        adapter_list: dir.join("zedagent/PhysicalIOAdapterList/global.json"),
        network_status: dir.join("nim/DeviceNetworkStatus/global.json"),
        host: Host { sysfs: dir.join("sys"), modprobe: dir.join("no-modprobe"), ..Host::default() },
    };
    let outputs = Outputs::open(&dir.join("domainmgr"), None).unwrap();
    Adapters::new(Arc::new(SimHypervisor::new()), sources, Arc::new(outputs), false)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_network_status_counts_only_once_it_names_a_port_and_is_kept_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = adapters(dir.path());
    let dns = a.sources.network_status.clone();
    write(&a.sources.adapter_list, r#"{"Initialized": true, "AdapterList": []}"#);
    assert!(a.reload() && !a.ready(), "a list alone is not enough");
    assert!(a.waiting_for().is_some_and(|w| w.contains("DeviceNetworkStatus")));

    write(&dns, r#"{"DPCKey": "", "Ports": [{"IfName": "eth1"}]}"#);
    assert!(!a.reload() && !a.ready(), "nim without a port config yet");
    write(&dns, r#"{"DPCKey": "zedagent", "Ports": null}"#);
    assert!(!a.reload() && !a.ready(), "no port named");
    write(&dns, r#"{"DPCKey": "zedagent", "Ports": [{"IfName": "eth0", "Cost": 0}]}"#);
    assert!(a.reload() && a.ready());
    assert!(a.ports().ifnames.contains("eth0"));
    write(&dns, r#"{"DPCKey": "zedagent", "Ports": [{"IfName": "eth0", "Cost": 7}]}"#);
    assert!(!a.reload(), "nothing we use changed");

    for later in [None, Some(r#"{"DPCKey": "zedagent", "Ports": []}"#), Some("{not json")] {
        match later {
            None => std::fs::remove_file(&dns).unwrap(),
            Some(text) => write(&dns, text),
        }
        assert!(!a.reload(), "{later:?}");
        assert_eq!(a.ports().ifnames.iter().collect::<Vec<_>>(), ["eth0"], "{later:?}: the last known ports");
    }
    write(&dns, r#"{"Ports": [{"IfName": "eth0"}, {"IfName": "eth1"}]}"#);
    assert!(a.reload(), "a status without DPCKey (not EVE's writer) counts");
}

#[test]
fn reservations_wait_for_the_policy_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = adapters(dir.path());
    let wanted = [IoAdapter { io_type: crate::eve::IoType(1), name: "eth1".into(), ..IoAdapter::default() }];
    let e = a.reserve(Uuid::new_v4(), &wanted).unwrap_err();
    assert!(e.contains("eth1 cannot be assigned yet: no PhysicalIOAdapterList has been received"), "{e}");
    // Adopted before any list: remembered, and freed again when the domain goes.
    let uuid = Uuid::new_v4();
    a.adopt(uuid, &wanted);
    assert!(a.claims.contains_key(&uuid));
    a.release(uuid);
    assert!(a.claims.is_empty());
}
