//! The setup logic against the fakes: what each device gets, what is refused, what is left
//! alone, and what is released.

use std::path::PathBuf;

use crate::fake::{FakeBlocks, FakeLinks, FakeStore};
use crate::{Device, HeldLoop, NativeDevices};

const NOOP: &str = "/usr/libexec/domainmgrd/native-hotplug";

type Nd = NativeDevices<FakeStore, FakeLinks, FakeBlocks>;

fn nd() -> Nd {
    let nd = NativeDevices::with(NOOP, FakeStore::default(), FakeLinks::default(), FakeBlocks::default(), None)
        .with_blkback_wait(std::time::Duration::from_millis(50));
    nd.links.add(1, "xenbr0", 1500);
    nd
}

/// A vif back end of `domid`/`devid` as libxl writes it, with `script`.
fn vif(nd: &Nd, domid: u32, devid: u32, script: &str, extra: &[(&str, &str)]) {
    let dir = format!("/local/domain/0/backend/vif/{domid}/{devid}");
    nd.store.set(&format!("{dir}/script"), script);
    nd.store.set(&format!("{dir}/bridge"), "xenbr0");
    nd.store.set(&format!("{dir}/state"), "2");
    for (k, v) in extra {
        nd.store.set(&format!("{dir}/{k}"), v);
    }
}

fn vbd(nd: &Nd, domid: u32, devid: u32, script: &str, params: &str, mode: &str) {
    let dir = format!("/local/domain/0/backend/vbd/{domid}/{devid}");
    nd.store.set(&format!("{dir}/script"), script);
    nd.store.set(&format!("{dir}/params"), params);
    nd.store.set(&format!("{dir}/mode"), mode);
    nd.store.set(&format!("{dir}/state"), "2");
}

fn get(nd: &Nd, path: &str) -> Option<String> {
    crate::Store::get(&nd.store, path)
}

#[test]
fn a_vif_is_renamed_given_the_bridge_mtu_plugged_up_and_connected() {
    let nd = nd();
    nd.links.add(7, "vif3.0", 1500);
    nd.links.links.lock().unwrap()[0].mtu = 9000;
    vif(&nd, 3, 0, NOOP, &[("vifname", "nbu5")]);
    let done = nd.attach(3).unwrap();
    assert_eq!(done.devices, vec![Device::Vif(0)]);
    let l = nd.links.by_name("nbu5").expect("renamed");
    assert_eq!((l.index, l.mtu, l.master, l.up), (7, 9000, Some(1), true));
    assert!(nd.links.by_name("vif3.0").is_none());
    assert_eq!(nd.links.macs.lock().unwrap()[&7], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(get(&nd, "/local/domain/0/backend/vif/3/0/hotplug-status").as_deref(), Some("connected"));
    // The front end's MTU at the device's own path, never under the vifname.
    assert_eq!(get(&nd, "/local/domain/3/device/vif/0/mtu").as_deref(), Some("9000"));
    assert!(nd.store.0.lock().unwrap().keys().all(|k| !k.contains("nbu5")));
}

#[test]
fn a_vif_takes_its_back_end_mtu_over_the_bridge() {
    let nd = nd();
    nd.links.add(7, "vif3.0", 1500);
    vif(&nd, 3, 0, NOOP, &[("mtu", "1400")]);
    nd.attach(3).unwrap();
    assert_eq!(nd.links.by_name("vif3.0").unwrap().mtu, 1400);
}

#[test]
fn an_hvm_vif_plugs_qemus_tap_too() {
    let nd = nd();
    nd.links.add(7, "vif4.0", 1500);
    nd.links.add(8, "vif4.0-emu", 1500);
    vif(&nd, 4, 0, NOOP, &[("vifname", "nbu2"), ("type", "vif_ioemu")]);
    nd.attach(4).unwrap();
    // Renamed after the vif, as the script renames it.
    let tap = nd.links.by_name("nbu2-emu").unwrap();
    assert_eq!((tap.index, tap.master, tap.up), (8, Some(1), true));
}

#[test]
fn devices_with_another_script_are_left_alone() {
    let nd = nd();
    nd.links.add(7, "vif3.0", 1500);
    vif(&nd, 3, 0, "/etc/xen/scripts/vif-bridge", &[]);
    nd.blocks.file("/img/a", 10);
    vbd(&nd, 3, 51712, "/etc/xen/scripts/block", "/img/a", "w");
    let done = nd.attach(3).unwrap();
    assert!(done.devices.is_empty());
    assert_eq!(nd.links.by_name("vif3.0").unwrap().master, None);
    assert!(get(&nd, "/local/domain/0/backend/vif/3/0/hotplug-status").is_none());
    assert!(nd.blocks.loops.lock().unwrap().is_empty());
}

#[test]
fn a_missing_bridge_or_interface_or_a_taken_name_fails_naming_it() {
    let nd = nd();
    nd.links.add(7, "vif3.0", 1500);
    vif(&nd, 3, 0, NOOP, &[("bridge", "br9")]);
    let (e, _) = nd.attach(3).unwrap_err();
    assert_eq!(e.to_string(), "domain 3: vif 0: vif3.0: the bridge br9 does not exist");
    assert!(get(&nd, "/local/domain/0/backend/vif/3/0/hotplug-status").is_none());

    // An openvswitch bridge: not ours to plug into.
    let nd = self::nd();
    nd.links.add(7, "vif3.0", 1500);
    nd.links.add(9, "ovsbr0", 1500);
    nd.links.links.lock().unwrap()[2].kind = Some("openvswitch".into());
    vif(&nd, 3, 0, NOOP, &[("bridge", "ovsbr0")]);
    let why = nd.attach(3).unwrap_err().0.why;
    assert!(why.starts_with("vif3.0: ovsbr0 is not a Linux bridge (openvswitch)"), "{why}");

    let nd = self::nd();
    vif(&nd, 5, 0, NOOP, &[]);
    assert_eq!(nd.attach(5).unwrap_err().0.to_string(), "domain 5: vif 0: netback made no interface vif5.0");

    let nd = self::nd();
    nd.links.add(7, "vif3.0", 1500);
    nd.links.add(8, "eth0", 1500);
    vif(&nd, 3, 0, NOOP, &[("vifname", "eth0")]);
    assert_eq!(
        nd.attach(3).unwrap_err().0.to_string(),
        "domain 3: vif 0: cannot rename vif3.0 to eth0: an interface of that name exists"
    );
}

#[test]
fn a_file_disk_gets_a_read_only_autoclear_loop_for_mode_r_and_its_device_in_hex() {
    let nd = nd();
    for m in 0..11 {
        nd.blocks.loops.lock().unwrap().insert(m, ((1, 1000 + u64::from(m)), false));
    }
    nd.blocks.file("/img/a", 10);
    vbd(&nd, 3, 51712, NOOP, "/img/a", "r");
    let done = nd.attach(3).unwrap();
    let dir = "/local/domain/0/backend/vbd/3/51712";
    assert_eq!(get(&nd, &format!("{dir}/physical-device")).as_deref(), Some("7:b"));
    assert_eq!(get(&nd, &format!("{dir}/physical-device-path")).as_deref(), Some("/dev/loop11"));
    assert_eq!(get(&nd, &format!("{dir}/hotplug-status")).as_deref(), Some("connected"));
    assert_eq!(nd.blocks.loops.lock().unwrap()[&11], ((0x801, 10), true));
    assert_eq!(done.loops, vec![HeldLoop { dev: "/dev/loop11".into(), file: "/img/a".into(), ident: (0x801, 10) }]);
    // Re-found from xenstore, as after a restart.
    assert_eq!(nd.held(3), done.loops);
    // A second attach (a daemon restarted mid-create) takes no second loop device.
    assert_eq!(nd.attach(3).unwrap().loops, done.loops);
    assert_eq!(nd.blocks.loops.lock().unwrap().len(), 12);
}

#[test]
fn a_block_device_is_used_as_it_is_unless_mounted_in_dom0_for_writing() {
    let nd = nd();
    nd.blocks.block("/dev/vg/guest", 253, 18);
    vbd(&nd, 3, 51712, NOOP, "/dev/vg/guest", "w");
    let done = nd.attach(3).unwrap();
    assert!(done.loops.is_empty());
    assert_eq!(get(&nd, "/local/domain/0/backend/vbd/3/51712/physical-device").as_deref(), Some("fd:12"));

    let nd = self::nd();
    nd.blocks.block("/dev/vg/guest", 253, 18);
    nd.blocks.mounted.lock().unwrap().push((253, 18));
    vbd(&nd, 3, 51712, NOOP, "/dev/vg/guest", "w");
    assert_eq!(
        nd.attach(3).unwrap_err().0.to_string(),
        "domain 3: vbd 51712: /dev/vg/guest is mounted in dom0, and so cannot be given to a guest read-write"
    );
}

/// Another domain (xl's, with the block script) uses /img/a through loop0.
fn shared(nd: &Nd, their_mode: &str) {
    nd.blocks.file("/img/a", 10);
    nd.blocks.loops.lock().unwrap().insert(0, ((0x801, 10), their_mode == "r"));
    let dir = "/local/domain/0/backend/vbd/2/51712";
    nd.store.set(&format!("{dir}/params"), "/img/a");
    nd.store.set(&format!("{dir}/mode"), their_mode);
    nd.store.set(&format!("{dir}/physical-device"), "7:0");
    nd.store.set("/local/domain/2/name", "web");
    nd.store.set("/local/domain/2/vm", "/vm/aaaa");
    nd.store.set("/local/domain/3/vm", "/vm/bbbb");
}

#[test]
fn sharing_follows_the_block_scripts_rule_across_all_domains() {
    // Read-write here, in use elsewhere: refused, naming the other domain.
    let nd = nd();
    shared(&nd, "r");
    vbd(&nd, 3, 51712, NOOP, "/img/a", "w");
    let (e, partial) = nd.attach(3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "domain 3: vbd 51712: /img/a is in use read-only by domain 2 (web) (vbd 51712): \
         a disk given read-write is not shared"
    );
    assert!(partial.loops.is_empty() && nd.blocks.loops.lock().unwrap().len() == 1);
    // Read-only here, read-write there: refused.
    let nd = self::nd();
    shared(&nd, "w");
    vbd(&nd, 3, 51712, NOOP, "/img/a", "r");
    assert!(nd.attach(3).unwrap_err().0.why.contains("in use read-write by domain 2 (web)"));
    // Read-only on both sides: shared.
    let nd = self::nd();
    shared(&nd, "r");
    vbd(&nd, 3, 51712, NOOP, "/img/a", "r");
    nd.attach(3).unwrap();
    // The same VM (a local migration's other half): allowed.
    let nd = self::nd();
    shared(&nd, "w");
    nd.store.set("/local/domain/3/vm", "/vm/aaaa");
    vbd(&nd, 3, 51712, NOOP, "/img/a", "w");
    nd.attach(3).unwrap();
    // QEMU's back end, `format:path`, counts too.
    let nd = self::nd();
    nd.blocks.file("/img/q", 11);
    nd.store.set("/local/domain/0/backend/qdisk/6/768/params", "aio:/img/q");
    nd.store.set("/local/domain/0/backend/qdisk/6/768/mode", "w");
    vbd(&nd, 3, 51712, NOOP, "/img/q", "r");
    assert!(nd.attach(3).unwrap_err().0.why.contains("in use read-write by domain 6 (qdisk 768)"));
}

#[test]
fn a_failure_after_a_loop_device_hands_it_back_for_release() {
    let nd = NativeDevices::with(
        NOOP,
        FakeStore::default(),
        FakeLinks { fail_master: true, ..FakeLinks::default() },
        FakeBlocks::default(),
        None,
    );
    nd.links.add(1, "xenbr0", 1500);
    nd.blocks.file("/img/a", 10);
    vbd(&nd, 3, 51712, NOOP, "/img/a", "w");
    // The vif comes first and fails: no loop yet.
    nd.links.add(7, "vif3.0", 1500);
    vif(&nd, 3, 0, NOOP, &[]);
    let (e, partial) = nd.attach(3).unwrap_err();
    assert_eq!(e.device, Device::Vif(0));
    assert!(partial.loops.is_empty() && nd.blocks.loops.lock().unwrap().is_empty());

    // A disk that fails its check after another disk got its loop device.
    let nd = self::nd();
    nd.blocks.file("/img/a", 10);
    nd.blocks.file("/img/b", 11);
    vbd(&nd, 3, 51712, NOOP, "/img/a", "w");
    vbd(&nd, 3, 51728, NOOP, "/img/b", "w");
    nd.store.set("/local/domain/0/error/backend/vbd/3/51728/error", "2 opening /dev/loop1");
    let (e, partial) = nd.attach(3).unwrap_err();
    assert_eq!(e.to_string(), "domain 3: vbd 51728: blkback: 2 opening /dev/loop1");
    assert_eq!(partial.loops.len(), 2);
    // Not while the back ends name them; once the domain is destroyed (its back ends gone).
    nd.release(&partial.loops);
    assert_eq!(nd.blocks.loops.lock().unwrap().len(), 2);
    nd.store.0.lock().unwrap().retain(|k, _| !k.starts_with("/local/domain/0/backend/vbd/3/"));
    nd.release(&partial.loops);
    assert!(nd.blocks.loops.lock().unwrap().is_empty());
}

#[test]
fn a_disk_blkback_never_opens_fails_its_check() {
    let nd = nd();
    nd.blocks.file("/img/a", 10);
    vbd(&nd, 3, 51712, NOOP, "/img/a", "w");
    nd.blocks.never_opened.lock().unwrap().push((3, 51712));
    let (e, partial) = nd.attach(3).unwrap_err();
    assert_eq!(e.to_string(), "domain 3: vbd 51712: blkback did not open its device");
    assert_eq!(partial.loops.len(), 1);
}

#[test]
fn release_detaches_only_a_loop_device_that_still_holds_its_file() {
    let nd = nd();
    nd.blocks.loops.lock().unwrap().insert(0, ((0x801, 10), false));
    nd.blocks.loops.lock().unwrap().insert(1, ((0x801, 99), false));
    let held =
        |m: u32| HeldLoop { dev: PathBuf::from(format!("/dev/loop{m}")), file: "/img/a".into(), ident: (0x801, 10) };
    // loop1 was freed and reused for another file; loop2 is gone; loop3 was freed and taken
    // again for the same file by another domain's disk, whose back end names it.
    nd.blocks.loops.lock().unwrap().insert(3, ((0x801, 10), true));
    nd.store.set("/local/domain/0/backend/vbd/9/51712/physical-device", "7:3");
    nd.release(&[held(0), held(1), held(2), held(3)]);
    assert_eq!(*nd.blocks.detached.lock().unwrap(), vec![PathBuf::from("/dev/loop0")]);
    assert!(nd.blocks.loops.lock().unwrap().contains_key(&1));
    assert!(nd.blocks.loops.lock().unwrap().contains_key(&3));
}

#[test]
fn a_disk_waiting_for_blkback_holds_up_no_other_domains_disk() {
    // The block script's lock covers the sharing check and the claim, not blkback's open.
    let nd = nd().with_blkback_wait(std::time::Duration::from_secs(5));
    nd.blocks.file("/img/a", 1);
    nd.blocks.file("/img/b", 2);
    vbd(&nd, 1, 51712, NOOP, "/img/a", "w");
    vbd(&nd, 2, 51712, NOOP, "/img/b", "w");
    nd.blocks.never_opened.lock().unwrap().push((1, 51712));
    std::thread::scope(|s| {
        let slow = s.spawn(|| nd.attach(1));
        while get(&nd, "/local/domain/0/backend/vbd/1/51712/physical-device").is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(nd.attach(2).is_ok());
        assert!(!slow.is_finished(), "domain 2's disk waited for domain 1's blkback");
        assert!(slow.join().unwrap().is_err());
    });
}
